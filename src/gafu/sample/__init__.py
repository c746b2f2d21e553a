"""`gafu sample`: the LoKr's style at several weights, with and without the trigger (P10, P9).

`samples.render_samples(project, …)` is the stage; `training.render_training_samples` renders the
same grids for `gafu train`. Modules: prompts (defaults and kohya-style files), schedulers (the
family's sampler), render (the pipeline), sheet (rows × prompts → pictures and grids), grid (PNG
grids and the HTML page).
"""
