"""`gafu tag`: captions from a WD tagger, with the recipe's thresholds and trigger word (T1–T4).

Read in this order:
- `locate`: find the tagger (a folder with `model.onnx` + `selected_tags.csv`, or a hub repo id).
- `labels`: read `selected_tags.csv` (rating, general and character tags).
- `model`: the ONNX session and the input the graph asks for (size, layout, batch).
- `preprocess`: a picture as the WD taggers expect it (white square, BGR, 0–255).
- `pipeline`: pictures decoded in threads while the model runs on the previous batch.
- `select`: probabilities → tags (per-set thresholds, MCut, character and rating tags).
- `captions`: tags → caption (trigger first, bars tags, exclude/add lists, merge).
- `scores`: the per-set score files that make `--rethreshold` possible without the model.
- `tag`: the stage itself, `tag_project` and `rethreshold_project`.
- `tiny`: a tiny WD-format tagger built from picture statistics, for tests and `gafu demo`.
"""
