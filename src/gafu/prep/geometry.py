"""Where each original lands in its training picture: pure arithmetic on sizes (D4).

A `Placement` says which part of the source is kept (`box`), the size it is scaled to
(`content_size`) and where it goes in the output (`offset`). Pad mode keeps the whole
picture and adds bars; bucket mode fills the whole output and crops what does not fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gafu import recipe
from gafu.prep.manifest import Bars

# gafu's choice: padding thinner than 2 % of the side in total (under ~15 px a bar at 1536) is
# a sliver the WD tagger does not see as bars, so it is not tagged letterboxed/pillarboxed (T4).
BARS_MIN_FRACTION = 0.02

Box = tuple[int, int, int, int]  # (left, top, right, bottom) in source pixels


@dataclass(frozen=True)
class Placement:
    """How one source picture becomes one output picture."""

    source_size: tuple[int, int]
    box: Box  # the part of the source that is kept
    content_size: tuple[int, int]  # what `box` is scaled to
    output_size: tuple[int, int]
    offset: tuple[int, int] = (0, 0)  # top-left corner of the content in the output
    bars: Bars | None = None  # T4: bars added by padding, when not negligible

    @property
    def scale(self) -> float:
        """Output pixels per source pixel (> 1 means upscaled)."""
        return self.content_size[0] / (self.box[2] - self.box[0])

    @property
    def crop(self) -> Box | None:
        """The kept box when part of the source was cut off, else None."""
        full = (0, 0, *self.source_size)
        return None if self.box == full else self.box

    @property
    def crop_fraction(self) -> float:
        """Share of the source's area cut off (0 when nothing was)."""
        kept = (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])
        return 1.0 - kept / (self.source_size[0] * self.source_size[1])


def pad_placement(width: int, height: int, side: int) -> Placement:
    """D4a: the whole picture, scaled so its long side is `side`, centred on a square."""
    scale = side / max(width, height)
    content = (max(1, min(side, round(width * scale))), max(1, min(side, round(height * scale))))
    pad_x, pad_y = side - content[0], side - content[1]
    min_bars = side * BARS_MIN_FRACTION
    bars: Bars | None = None
    if pad_y >= min_bars:
        bars = "letterboxed"  # T4: top and bottom bars (a landscape picture)
    elif pad_x >= min_bars:
        bars = "pillarboxed"  # T4: left and right bars (a portrait picture)
    return Placement(
        source_size=(width, height),
        box=(0, 0, width, height),
        content_size=content,
        output_size=(side, side),
        offset=(pad_x // 2, pad_y // 2),
        bars=bars,
    )


def bucket_placement(
    width: int,
    height: int,
    *,
    max_side: int = recipe.BUCKET_MAX_SIDE,
    max_area: int = recipe.BUCKET_MAX_SIDE**2,
    step: int = recipe.BUCKET_STEP,
) -> Placement:
    """D4b: aspect kept, sides multiples of `step`, long side ≤ `max_side`, area ≤ `max_area`.

    The size is the largest that fits, with each side rounded down or up to a multiple of
    `step`; of those, the one that needs the smallest centre crop. The output is then its own
    bucket: a trainer's bucketing (area ≤ the training side², sides multiples of 64) keeps it
    whole instead of cropping it again.
    """
    fit = min(max_side / max(width, height), math.sqrt(max_area / (width * height)))
    ideal_w, ideal_h = width * fit, height * fit
    sizes = [
        (w, h)
        for w in _near_multiples(ideal_w, step)
        for h in _near_multiples(ideal_h, step)
        if w <= max_side and h <= max_side and w * h <= max_area
    ]
    if not sizes:  # only for limits below one step; settings validation prevents that
        raise ValueError(f"no {step}-multiple size fits max_side={max_side}, max_area={max_area}")
    output = min(sizes, key=lambda size: (_crop_fraction(width, height, *size), -size[0] * size[1]))
    return Placement(
        source_size=(width, height),
        box=_centre_box(width, height, *output),
        content_size=output,
        output_size=output,
    )


def _near_multiples(value: float, step: int) -> set[int]:
    """The multiples of `step` just below and just above `value` (never below one step)."""
    below = max(step, math.floor(value / step) * step)
    above = max(step, math.ceil(value / step) * step)
    return {below, above}


def _crop_fraction(width: int, height: int, out_w: int, out_h: int) -> float:
    """Share of the source cut off when it is scaled to cover (out_w, out_h) and centre-cropped."""
    source_aspect, output_aspect = width / height, out_w / out_h
    return 1.0 - min(source_aspect / output_aspect, output_aspect / source_aspect)


def _centre_box(width: int, height: int, out_w: int, out_h: int) -> Box:
    """The centred part of the source with the output's aspect ratio."""
    scale = max(out_w / width, out_h / height)  # cover the output
    kept_w = min(width, max(1, round(out_w / scale)))
    kept_h = min(height, max(1, round(out_h / scale)))
    left, top = (width - kept_w) // 2, (height - kept_h) // 2
    return (left, top, left + kept_w, top + kept_h)
