"""The demo's miniature world: a few scenes, each drawable in ten styles, with the tags that describe it.

A scene is a sky (day, sunset, night), a ground and one subject (house, tree, flower, moon,
mountain, boat). A style changes how it is drawn with cues coarse enough to survive an 8× VAE at
64 px: the palette, the outline's colour and thickness, flat or soft shading, a texture over the
whole picture. `flatink` — flat fills from one fixed palette, thick black outlines — is held out:
the demo's base model never sees it, so the demo's LoKr must learn it behind its trigger.

Every picture is drawn at twice its side and reduced with Lanczos, as prep reduces a larger
original, so the pretraining pictures and the demo's prepared pictures look alike.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from gafu.fsio import atomic_path

RGB = tuple[int, int, int]

WORLD_SIDE = 64  # the demo model's native side (latents 8 × 8)
TARGET_STYLE = "flatink"  # held out of pretraining: the style the demo's LoKr learns
STYLES = (
    "flatink", "soft", "sketch", "watercolour", "neon", "sepia", "mono", "pop", "stripes", "dots",
)  # fmt: skip
OTHER_STYLES = tuple(s for s in STYLES if s != TARGET_STYLE)
SUBJECTS = ("house", "tree", "flower", "moon", "mountain", "boat")
SKIES: dict[str, tuple[RGB, RGB]] = {  # sky, ground
    "day": ((110, 170, 235), (90, 165, 75)),
    "sunset": ((240, 140, 90), (120, 80, 60)),
    "night": ((25, 30, 70), (30, 45, 35)),
}
# The target style's fixed palette: every fill is the nearest of these, flat.
TARGET_PALETTE: tuple[RGB, ...] = (
    (86, 180, 233),
    (60, 170, 90),
    (245, 130, 50),
    (122, 60, 40),
    (20, 30, 90),
    (20, 70, 50),
    (235, 60, 60),
    (250, 210, 60),
    (250, 245, 225),
    (140, 110, 160),
)


@dataclass(frozen=True)
class Scene:
    """What one picture shows; the same scene can be drawn in any style."""

    subject: str
    sky: str
    seed: int

    def tags(self) -> list[str]:
        """The scene's own tags (a style adds its own)."""
        return [self.subject, self.sky]


def scenes(count: int, seed: int) -> list[Scene]:
    """`count` scenes cycling through every subject and sky, in a seeded order."""
    rng = random.Random(seed)
    skies = list(SKIES)
    # Each subject comes back under another sky, so no sky tag always goes with one subject.
    return [
        Scene(
            SUBJECTS[i % len(SUBJECTS)], skies[(i + i // len(SUBJECTS)) % len(skies)], rng.randrange(1 << 30)
        )
        for i in range(count)
    ]


def random_scene(rng: random.Random) -> Scene:
    """One scene with every subject and sky equally likely."""
    return Scene(rng.choice(SUBJECTS), rng.choice(list(SKIES)), rng.randrange(1 << 30))


def draw(scene: Scene, style: str, side: int = WORLD_SIDE) -> Image.Image:
    """`scene` drawn in `style` as an RGB picture of `side` × `side`."""
    rng = random.Random(scene.seed)
    big = 2 * side
    brush = _brush(style)
    sky, ground = SKIES[scene.sky]
    picture = Image.new("RGB", (big, big), brush.fill(sky))
    pen = ImageDraw.Draw(picture)
    horizon = int(big * rng.uniform(0.6, 0.72))
    width = max(1, round(brush.width * big / 128))
    pen.rectangle(
        (-8, horizon, big + 8, big + 8), fill=brush.fill(ground), outline=brush.outline, width=width
    )
    _draw_subject(pen, scene.subject, (big, horizon), _Pen(brush.fill, brush.outline, width), rng)
    picture = _finish(picture, style, rng)
    return picture.resize((side, side), Image.Resampling.LANCZOS)


def write_picture(picture: Image.Image, path: Path) -> None:
    """Save `picture` as a PNG, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        picture.save(tmp, format="PNG")


def junk(rng: np.random.Generator, side: int = WORLD_SIDE) -> Image.Image:
    """A picture of no style: noise, blotches or a smear, as an untrained model draws."""
    kind = rng.integers(3)
    if kind == 0:  # plain noise around a random grey
        pixels = rng.normal(rng.uniform(40, 215), rng.uniform(20, 90), (side, side, 3))
    elif kind == 1:  # coarse colour blotches, as from a model that draws latents but not shapes
        coarse = rng.uniform(0, 255, (side // 8, side // 8, 3)).astype(np.uint8)
        blotches = Image.fromarray(coarse).resize((side, side), Image.Resampling.BICUBIC)
        pixels = np.asarray(blotches, dtype=np.float32) + rng.normal(0, 12, (side, side, 3))
    else:  # a smooth smear of two colours
        t = np.linspace(0, 1, side)[:, None, None]
        a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        pixels = a * t + b * (1 - t) + rng.normal(0, 30, (side, 1, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


# --- styles -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Brush:
    fill: Callable[[RGB], RGB]
    outline: RGB | None
    width: int  # at 128 px


@dataclass(frozen=True)
class _Pen:
    fill: Callable[[RGB], RGB]
    outline: RGB | None
    width: int  # at the drawing's size


def _brush(style: str) -> _Brush:
    brushes = {
        "flatink": _Brush(_nearest_in_palette, (12, 12, 12), 7),
        "soft": _Brush(lambda c: c, None, 0),
        "sketch": _Brush(_paper_grey, (70, 70, 70), 2),
        "watercolour": _Brush(_pastel, None, 0),
        "neon": _Brush(lambda c: tuple(v // 5 for v in c), (40, 255, 230), 3),  # type: ignore[misc]
        "sepia": _Brush(_sepia, (90, 55, 25), 2),
        "mono": _Brush(_three_greys, None, 0),
        "pop": _Brush(lambda c: tuple(255 - v for v in c), (255, 255, 255), 5),  # type: ignore[misc]
        "stripes": _Brush(lambda c: c, None, 0),
        "dots": _Brush(_pastel, (110, 110, 110), 3),
    }
    if style not in brushes:
        raise ValueError(f"unknown demo style {style!r}; known: {', '.join(STYLES)}")
    return brushes[style]


def _finish(picture: Image.Image, style: str, rng: random.Random) -> Image.Image:
    if style == "soft":  # shading: blurred shapes under a vertical light gradient
        return _gradient(picture.filter(ImageFilter.GaussianBlur(5)), strength=0.35)
    if style == "sketch":  # paper grain
        return _noise(picture, rng, amplitude=14)
    if style == "watercolour":  # bleeding edges and pigment noise
        return _noise(picture.filter(ImageFilter.GaussianBlur(4)), rng, amplitude=24)
    if style == "stripes":  # dark diagonal bands over everything
        return _pattern(picture, lambda y, x: ((x + y) // 8) % 2 == 0, 0.55)
    if style == "dots":  # a grid of light dots (halftone)
        return _pattern(picture, lambda y, x: ((x % 12 - 6) ** 2 + (y % 12 - 6) ** 2) < 10, 1.8)
    return picture


def _nearest_in_palette(colour: RGB) -> RGB:
    return min(TARGET_PALETTE, key=lambda p: sum((a - b) ** 2 for a, b in zip(p, colour, strict=True)))


def _pastel(colour: RGB) -> RGB:
    return tuple((c + 2 * 235) // 3 for c in colour)  # type: ignore[return-value]


def _grey(colour: RGB) -> int:
    return int(0.3 * colour[0] + 0.59 * colour[1] + 0.11 * colour[2])


def _paper_grey(colour: RGB) -> RGB:
    level = 150 + _grey(colour) // 3  # a light pencil tone
    return (level, level, level - 6)


def _sepia(colour: RGB) -> RGB:
    g = _grey(colour)
    return (min(255, g + 60), min(255, g + 25), max(0, g - 20))


def _three_greys(colour: RGB) -> RGB:
    level = (30, 130, 240)[min(2, _grey(colour) // 80)]
    return (level, level, level)


def _gradient(picture: Image.Image, strength: float) -> Image.Image:
    pixels = np.asarray(picture, dtype=np.float32)
    light = np.linspace(1 + strength, 1 - strength, pixels.shape[0], dtype=np.float32)[:, None, None]
    return Image.fromarray(np.clip(pixels * light, 0, 255).astype(np.uint8))


def _noise(picture: Image.Image, rng: random.Random, amplitude: int) -> Image.Image:
    noise = np.random.default_rng(rng.randrange(1 << 30)).normal(0, amplitude, (*picture.size[::-1], 1))
    pixels = np.asarray(picture, dtype=np.float32) + noise
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _pattern(picture: Image.Image, where: Callable, factor: float) -> Image.Image:
    pixels = np.asarray(picture, dtype=np.float32)
    y, x = np.mgrid[: pixels.shape[0], : pixels.shape[1]]
    mask = where(y, x)[..., None]
    return Image.fromarray(np.clip(np.where(mask, pixels * factor, pixels), 0, 255).astype(np.uint8))


# --- subjects -----------------------------------------------------------------------------------


def _draw_subject(pen: ImageDraw.ImageDraw, subject: str, frame: tuple[int, int], brush: _Pen, rng) -> None:
    side, horizon = frame
    x = int(side * rng.uniform(0.3, 0.7))
    s = int(side * rng.uniform(0.17, 0.23))  # subject scale
    shape = {"outline": brush.outline, "width": brush.width}
    fill = brush.fill
    if subject == "house":
        pen.rectangle((x - s, horizon - s, x + s, horizon + s // 4), fill=fill((240, 230, 210)), **shape)
        pen.polygon(
            [(x - s - 6, horizon - s), (x, horizon - 2 * s), (x + s + 6, horizon - s)],
            fill=fill((200, 60, 50)),
            **shape,
        )
        pen.rectangle(
            (x - s // 4, horizon - s // 2, x + s // 4, horizon + s // 4), fill=fill((60, 60, 120)), **shape
        )
    elif subject == "tree":
        pen.rectangle(
            (x - s // 4, horizon - s, x + s // 4, horizon + s // 3), fill=fill((120, 80, 40)), **shape
        )
        pen.ellipse(
            (x - s, horizon - 2 * s - s // 2, x + s, horizon - s // 2), fill=fill((40, 150, 60)), **shape
        )
    elif subject == "flower":
        pen.line((x, horizon + s // 2, x, horizon - s), fill=fill((40, 140, 60)), width=max(4, brush.width))
        for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            cx, cy = x + dx * s // 2, horizon - s + dy * s // 2
            pen.ellipse(
                (cx - s // 3, cy - s // 3, cx + s // 3, cy + s // 3), fill=fill((235, 90, 140)), **shape
            )
        pen.ellipse(
            (x - s // 4, horizon - s - s // 4, x + s // 4, horizon - s + s // 4),
            fill=fill((250, 200, 60)),
            **shape,
        )
    elif subject == "moon":
        y = int(horizon * 0.4)
        pen.ellipse((x - s, y - s, x + s, y + s), fill=fill((245, 235, 180)), **shape)
    elif subject == "mountain":
        pen.polygon(
            [(x - 2 * s, horizon), (x, horizon - 2 * s), (x + 2 * s, horizon)],
            fill=fill((110, 110, 130)),
            **shape,
        )
        pen.polygon(
            [(x - s // 2, horizon - 3 * s // 2), (x, horizon - 2 * s), (x + s // 2, horizon - 3 * s // 2)],
            fill=fill((250, 250, 250)),
            **shape,
        )
    elif subject == "boat":
        hull = [
            (x - s, horizon),
            (x + s, horizon),
            (x + s // 2, horizon + s // 2),
            (x - s // 2, horizon + s // 2),
        ]
        pen.polygon(hull, fill=fill((150, 90, 50)), **shape)
        pen.polygon(
            [(x, horizon - 3 * s // 2), (x, horizon - 4), (x + s, horizon - 4)],
            fill=fill((245, 245, 235)),
            **shape,
        )
    else:
        raise ValueError(f"unknown demo subject {subject!r}")
