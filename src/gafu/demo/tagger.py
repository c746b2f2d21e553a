"""The demo's tagger: a tiny WD-format tagger whose tags describe the demo's synthetic pictures.

It is `gafu.tagging.tiny`'s model (real ONNX, run by onnxruntime like any WD tagger) with a
vocabulary tuned to the demo scenes: the sky (day, sunset, night), the drawing's look (flat
colours, pencil greys, noisy paint) and tags every scene has. Scores are probabilities, so the
recipe's two thresholds (T2) give target captions fewer tags than regularization captions:
`outdoors` scores about 0.45, above 0.35 and below 0.5.
"""

from __future__ import annotations

from pathlib import Path

from gafu.tagging.labels import RATING
from gafu.tagging.tiny import TinyTag, build_tiny_tagger

DEMO_TAGS: tuple[TinyTag, ...] = (
    TinyTag("general", RATING, bias=2.0),
    TinyTag("sensitive", RATING, bias=-2.0),
    TinyTag("no_humans", bias=3.0),  # ≈ 0.95 on every scene
    TinyTag("scenery", bias=1.5),  # ≈ 0.82
    TinyTag("outdoors", bias=-0.2),  # ≈ 0.45: on regularization captions only (T2)
    # The tagger sees each picture padded to a square with white (as WD taggers expect), so the
    # sky tags read colour differences and overall darkness, which padding only scales.
    # blue_sky: 20·(blue − red) + 6·(sum of channels − 1.5) + 10·saturation − 7.5
    TinyTag("blue_sky", bias=-16.5, weights={"blue": 26.0, "red": -14.0, "green": 6.0, "saturation": 10.0}),
    TinyTag("sunset", bias=-2.0, weights={"red": 10.0, "blue": -10.0}),
    # night: dark and bluer than red — 10·(blue − red) + 20·(1.5 − sum of channels) − 3.5
    TinyTag("night", bias=26.5, weights={"blue": -10.0, "red": -30.0, "green": -20.0}),
    TinyTag("flat_color", bias=3.0, weights={"edges": -200.0}),
    TinyTag("monochrome", bias=3.0, weights={"saturation": -120.0}),
    TinyTag("traditional_media", bias=-5.0, weights={"edges": 150.0}),
)


def build_demo_tagger(folder: Path) -> Path:
    """Write the demo tagger (`model.onnx` + `selected_tags.csv`) into `folder` and return it."""
    return build_tiny_tagger(folder, DEMO_TAGS)
