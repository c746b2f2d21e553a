"""The demo's planted drift (RECIPE D1): a few target pictures from an "older period", in muted colour.

An artist's style drifts; the recipe's example is muted colouring in older pictures and vivid
in newer ones. The demo draws every fourth target picture that way, so `gafu check` has a drift
to find (and `gafu check --exclude-outliers` something to set aside) in the demo project.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

DRIFT_EVERY = 4  # target pictures 1, 5, 9 … are from the older period
KEPT_SATURATION = 0.2  # the older period's colours keep this share of their distance from grey


def is_older_period(index: int) -> bool:
    """True for the target pictures the demo draws in the older, muted period."""
    return index % DRIFT_EVERY == 1


def older_period(picture: Image.Image) -> Image.Image:
    """`picture` in muted colour: each pixel pulled towards its own grey."""
    pixels = np.asarray(picture.convert("RGB"), dtype=np.float32)
    grey = pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # (H, W)
    muted = grey[..., None] + KEPT_SATURATION * (pixels - grey[..., None])
    return Image.fromarray(np.clip(muted + 0.5, 0, 255).astype(np.uint8))
