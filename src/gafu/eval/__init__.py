"""`gafu eval`: where the style went — fit, leakage, trigger share and drift from the model's own loss.

Modules: `probe` (fixed pictures, captions, noise and timesteps; the trainer's loss on them),
`figures` (the four figures and their formulas, the suggestion), `cache` (losses on disk, the
base model's measured once), `training` (the probe at every save of `gafu train`), `evaluate`
(the stage: LoKr files × weights, `--compare`), `report` (the table, `reports/eval.json`, and
the figures already measured, for `gafu sample`'s page, the UI and the demo).
"""
