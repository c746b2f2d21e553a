"""A picture as the WD taggers expect it: on white, padded to a centred square, BGR, 0–255.

This follows the preprocessing the models were published with (SmilingWolf's reference
code): transparency composited on white, the picture centred on a white square, resized with
a bicubic filter, float32 values 0–255, channels in BGR order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from gafu.images import WHITE, load_picture

RESIZE_FILTER = Image.Resampling.BICUBIC  # the filter of the models' reference preprocessing


def prepare_picture(image: Image.Image, height: int, width: int) -> np.ndarray:
    """An RGB picture → `(height, width, 3)` float32 BGR 0–255, centred on a white square first."""
    side = max(image.size)
    if image.size != (side, side):
        square = Image.new("RGB", (side, side), WHITE)
        square.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
        image = square
    if image.size != (width, height):
        image = image.resize((width, height), RESIZE_FILTER)
    rgb = np.asarray(image, dtype=np.float32)
    return np.ascontiguousarray(rgb[:, :, ::-1])  # RGB → BGR


def load_for_tagger(path: Path, height: int, width: int) -> np.ndarray:
    """Open a picture (alpha on white; PictureError when unreadable) and prepare it for the tagger."""
    return prepare_picture(load_picture(path, WHITE).image, height, width)
