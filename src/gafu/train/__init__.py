"""`gafu train`: the recipe's training loop (P1–P9), resumable, on one GPU or several.

`train(project)` runs it; the modules, in the order a run uses them: `data` (buckets, epochs,
captions), `latents` (the VAE cache), `conditioning` (SDXL's text and size inputs), `noise`
(multires noise, targets, loss weights), `setup` (models, LoKr, optimizer, schedules), `loop`
(the loop), `state` (resume, lock, stop), `progress` (events, TensorBoard, progress bar),
`outputs` (file names, LoKr files), `runs` (the run in output/ and the earlier ones), `run` (the
phases, in order).

`train` and `TrainResult` are imported on first use, so reading a project's runs (`runs`, the
UI) does not load torch and diffusers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gafu.train.run import TrainResult, train

__all__ = ["TrainResult", "train"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from gafu.train import run

        return getattr(run, name)
    raise AttributeError(f"module 'gafu.train' has no attribute {name!r}")
