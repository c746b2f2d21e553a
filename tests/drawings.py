"""Synthetic illustrations in controllable styles, for the D1 style check's tests and its benchmark.

A drawing is a scene (a sky of the time of day, a ground, a few shapes and figures) drawn in a
style: fill (flat, shaded, textured), outline width, palette saturation, grain. The same style
over many seeds is a *homogeneous* set whose content varies as an artist's pictures do (day,
sunset and night scenes; few or many shapes); a style changed for some of the pictures is a
*planted drift*, as a change of period would be.
"""

from __future__ import annotations

import colorsys
import dataclasses
import random
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

RGB = tuple[int, int, int]
Fill = Literal["flat", "shaded", "textured"]

LIGHT = {"day": 1.0, "evening": 0.75, "night": 0.35}  # how lit a scene is: night scenes are dark


@dataclass(frozen=True)
class DrawingStyle:
    """How a scene is drawn."""

    name: str
    fill: Fill = "flat"
    outline: int = 6  # px at 512 px (0: no outlines)
    saturation: float = 1.0  # 1: the palette as it is; 0: grey
    palette_seed: int = 0  # which colours the artist uses
    grain: float = 0.0  # per-pixel noise amplitude (0–255)
    line_colour: RGB = (15, 12, 12)

    def but(self, **changes) -> DrawingStyle:
        """This style with some values changed (a drift)."""
        return dataclasses.replace(self, **changes)


# Styles of the homogeneous sets: each a different artist.
STYLES: tuple[DrawingStyle, ...] = (
    DrawingStyle("flat, thick outlines", outline=6, palette_seed=1),
    DrawingStyle("flat, thin outlines", outline=2, palette_seed=2),
    DrawingStyle("shaded, no outlines", fill="shaded", outline=0, palette_seed=3),
    DrawingStyle("shaded, outlines", fill="shaded", outline=3, palette_seed=4, saturation=0.8),
    DrawingStyle("textured paint", fill="textured", outline=0, palette_seed=5, grain=14),
    DrawingStyle("muted flat", outline=4, palette_seed=6, saturation=0.45),
    DrawingStyle("pencil on paper", fill="textured", outline=2, palette_seed=7, saturation=0.12, grain=8),
)


def palette(style: DrawingStyle) -> list[RGB]:
    """The style's ten colours: the artist's hues, at the style's saturation."""
    rng = random.Random(style.palette_seed)
    colours = []
    for _ in range(10):
        hue, value = rng.random(), rng.uniform(0.55, 1.0)
        chroma = rng.uniform(0.35, 0.9) * value
        colour = np.array(colorsys.hsv_to_rgb(hue, chroma / value, value), dtype=np.float32) * 255
        colours.append(_saturate(colour, style.saturation))
    return colours


def draw(style: DrawingStyle, seed: int, size: tuple[int, int] = (384, 384)) -> Image.Image:
    """One scene (chosen by `seed`) in `style`, as an RGB picture of `size`."""
    rng = random.Random(seed)
    width, height = size
    scale = max(size) / 512
    light = LIGHT[rng.choice(list(LIGHT))]
    colours = [tuple(int(c * light) for c in colour) for colour in palette(style)]
    sky, ground = (_vary(colour, rng) for colour in rng.sample(colours, 2))
    picture = Image.new("RGB", size, sky)
    draw_ = ImageDraw.Draw(picture)
    horizon = int(height * rng.uniform(0.55, 0.75))
    line = round(style.outline * scale)
    outline = style.line_colour if line else None
    draw_.rectangle((0, horizon, width, height), fill=ground)
    for _ in range(rng.randint(2, 6)):
        colour = _vary(rng.choice(colours), rng)
        x, y = rng.uniform(0.1, 0.9) * width, rng.uniform(0.25, 0.9) * height
        r = rng.uniform(0.06, 0.18) * min(size)
        kind = rng.choice(("ellipse", "rectangle", "triangle", "figure"))
        if kind == "ellipse":
            draw_.ellipse((x - r, y - r * 0.8, x + r, y + r * 0.8), fill=colour, outline=outline, width=line)
        elif kind == "rectangle":
            draw_.rectangle(
                (x - r, y - r, x + r * 0.7, y + r * 1.2), fill=colour, outline=outline, width=line
            )
        elif kind == "triangle":
            draw_.polygon(
                [(x - r, y + r), (x, y - r), (x + r, y + r)], fill=colour, outline=outline, width=line
            )
        else:  # a figure: a head over a body
            skin = _saturate(np.array((245, 210, 180), np.float32) * light, style.saturation)
            draw_.rectangle(
                (x - r * 0.5, y, x + r * 0.5, y + r * 1.6), fill=colour, outline=outline, width=line
            )
            draw_.ellipse((x - r * 0.4, y - r * 0.8, x + r * 0.4, y), fill=skin, outline=outline, width=line)
    return _finish(picture, style, rng)


def drawing_set(
    style: DrawingStyle, count: int, *, seed: int = 0, drift: DrawingStyle | None = None, drifted: int = 0
) -> tuple[list[Image.Image], list[int]]:
    """`count` pictures in `style`; the `drifted` ones at seeded random places drawn in `drift` instead.

    Returns the pictures and the indices of the drifted ones.
    """
    rng = random.Random(seed)
    chosen = sorted(rng.sample(range(count), drifted)) if drift is not None and drifted else []
    sizes = ((384, 384), (448, 320), (320, 448))
    pictures = [
        draw(drift if i in chosen else style, seed * 1000 + i, sizes[rng.randrange(len(sizes))])  # type: ignore[arg-type]
        for i in range(count)
    ]
    return pictures, chosen


def _vary(colour: RGB, rng: random.Random) -> RGB:
    """A shade of `colour`: artists mix their palette, a little more or less saturated and light."""
    hue, saturation, value = colorsys.rgb_to_hsv(*(c / 255 for c in colour))
    saturation, value = (
        min(1.0, saturation * rng.uniform(0.8, 1.15)),
        min(1.0, value * rng.uniform(0.85, 1.1)),
    )
    return tuple(round(c * 255) for c in colorsys.hsv_to_rgb(hue, saturation, value))  # type: ignore[return-value]


def _saturate(colour: np.ndarray, saturation: float) -> RGB:
    grey = float(colour @ np.array([0.299, 0.587, 0.114], dtype=np.float32))
    mixed = grey + saturation * (colour - grey)
    return tuple(round(float(c)) for c in np.clip(mixed, 0, 255))  # type: ignore[return-value]


def _finish(picture: Image.Image, style: DrawingStyle, rng: random.Random) -> Image.Image:
    if style.fill == "shaded":  # soft light from above over blurred shapes
        picture = picture.filter(ImageFilter.GaussianBlur(2))
        pixels = np.asarray(picture, dtype=np.float32)
        light = np.linspace(1.2, 0.8, pixels.shape[0], dtype=np.float32)[:, None, None]
        picture = Image.fromarray(np.clip(pixels * light, 0, 255).astype(np.uint8))
    elif style.fill == "textured":
        picture = picture.filter(ImageFilter.GaussianBlur(1))
    if style.grain:
        noise = np.random.default_rng(rng.randrange(1 << 30)).normal(0, style.grain, (*picture.size[::-1], 1))
        picture = Image.fromarray(np.clip(np.asarray(picture, np.float32) + noise, 0, 255).astype(np.uint8))
    return picture
