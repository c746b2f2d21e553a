"""`gafu train`: the recipe's training loop (P1–P9), resumable, on one GPU or several.

`train(project)` runs it; the modules, in the order a run uses them: `data` (buckets, epochs,
captions), `latents` (the VAE cache), `conditioning` (SDXL's text and size inputs), `noise`
(multires noise, targets, loss weights), `setup` (models, LoKr, optimizer, schedules), `loop`
(the loop), `state` (resume, lock, stop), `progress` (events, TensorBoard, progress bar),
`outputs` (file names, LoKr files), `run` (the phases, in order).
"""

from gafu.train.run import TrainResult, train

__all__ = ["TrainResult", "train"]
