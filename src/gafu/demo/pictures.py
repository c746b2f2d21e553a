"""Synthetic pictures for `gafu demo`: the same kinds of scenes drawn in several styles.

The target style is what a style LoKr is for: flat fills from one fixed palette and thick black
outlines. The regularization styles draw the same scenes (D3: the same kinds of tags) in other
ways — soft gradients without outlines, a pencil sketch on paper, pastel watercolour with noise —
so that only the trigger word, seen on target pictures alone, explains the target's look (D2).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from gafu.demo.drift import is_older_period, older_period
from gafu.fsio import atomic_path

RGB = tuple[int, int, int]

# The scenes every style draws: a sky, a ground and one subject.
SUBJECTS = ("house", "tree", "flower", "moon", "mountain", "boat")
SKIES: dict[str, tuple[RGB, RGB]] = {  # sky, ground
    "day": ((110, 170, 235), (90, 165, 75)),
    "sunset": ((240, 140, 90), (120, 80, 60)),
    "night": ((25, 30, 70), (30, 45, 35)),
}
SIZES = ((256, 256), (320, 256), (256, 320))  # sides in multiples of 64 (D4b)

# The target style's fixed palette: every fill is the nearest of these, flat.
TARGET_PALETTE: tuple[RGB, ...] = (
    (86, 180, 233),  # sky
    (60, 170, 90),  # grass
    (245, 130, 50),  # sunset
    (122, 60, 40),  # earth
    (20, 30, 90),  # night
    (20, 70, 50),  # night grass
    (235, 60, 60),
    (250, 210, 60),
    (250, 245, 225),
    (140, 110, 160),
)
REG_STYLES = ("soft", "sketch", "watercolour")


@dataclass(frozen=True)
class Scene:
    """What one picture shows; the same scene can be drawn in any style."""

    subject: str
    sky: str
    size: tuple[int, int]
    seed: int


@dataclass(frozen=True)
class _Brush:
    """How a style fills and outlines a shape."""

    fill: Callable[[RGB], RGB]
    outline: RGB | None
    width: int


def scenes(count: int, seed: int) -> list[Scene]:
    """`count` scenes cycling through every subject, sky and size, in a seeded order."""
    rng = random.Random(seed)
    skies = list(SKIES)
    # Each subject comes back under another sky, so no sky tag always goes with one subject.
    return [
        Scene(
            SUBJECTS[i % len(SUBJECTS)],
            skies[(i + i // len(SUBJECTS)) % len(skies)],
            rng.choice(SIZES),
            rng.randrange(1 << 30),
        )
        for i in range(count)
    ]


def draw_scene(scene: Scene, style: str) -> Image.Image:
    """`scene` drawn in `style` ("target" or one of REG_STYLES), as an RGB picture."""
    rng = random.Random(scene.seed)
    brush = _brush(style, rng)
    width, height = scene.size
    sky, ground = SKIES[scene.sky]
    picture = Image.new("RGB", scene.size, brush.fill(sky))
    draw = ImageDraw.Draw(picture)
    horizon = int(height * rng.uniform(0.6, 0.72))
    draw.rectangle(
        (0, horizon, width, height), fill=brush.fill(ground), outline=brush.outline, width=brush.width
    )
    _draw_subject(draw, scene.subject, (width, height, horizon), brush, rng)
    return _finish(picture, style, rng)


def write_demo_pictures(
    target_dir: Path, reg_dir: Path, *, n_target: int = 12, seed: int = 0
) -> dict[str, int]:
    """Write the target set and an equally large regularization set (D1, D2) as PNG files."""
    counts = {"target": 0, "reg": 0}
    for i, scene in enumerate(scenes(n_target, seed)):
        picture = draw_scene(scene, "target")
        if is_older_period(i):  # D1: a planted drift for `gafu check` to find
            picture = older_period(picture)
        _save(picture, target_dir / f"target_{i:02d}_{scene.subject}.png")
        counts["target"] += 1
    # Other scenes for regularization: it must not contain a target picture (D2).
    for i, scene in enumerate(scenes(n_target, seed + 1)):
        style = REG_STYLES[(i // 2) % len(REG_STYLES)]  # every style meets every sky
        _save(draw_scene(scene, style), reg_dir / f"reg_{i:02d}_{style}_{scene.subject}.png")
        counts["reg"] += 1
    return counts


# --- styles ---------------------------------------------------------------------------------------


def _brush(style: str, rng: random.Random) -> _Brush:
    if style == "target":
        return _Brush(fill=_nearest_in_palette, outline=(12, 12, 12), width=6)
    if style == "soft":
        return _Brush(fill=lambda c: _shift(c, rng, 25), outline=None, width=0)
    if style == "sketch":
        return _Brush(fill=_paper_grey, outline=(70, 70, 70), width=1)
    if style == "watercolour":
        return _Brush(fill=lambda c: _pastel(_shift(c, rng, 20)), outline=None, width=0)
    raise ValueError(f"unknown demo style {style!r}; known: target, {', '.join(REG_STYLES)}")


def _finish(picture: Image.Image, style: str, rng: random.Random) -> Image.Image:
    if style == "soft":  # shading: a vertical light gradient over blurred shapes
        picture = picture.filter(ImageFilter.GaussianBlur(3))
        return _blend_gradient(picture, strength=0.25)
    if style == "sketch":  # paper grain
        return _add_noise(picture, rng, amplitude=10)
    if style == "watercolour":  # bleeding edges and pigment noise
        picture = picture.filter(ImageFilter.GaussianBlur(2))
        return _add_noise(picture, rng, amplitude=22)
    return picture


def _nearest_in_palette(colour: RGB) -> RGB:
    return min(TARGET_PALETTE, key=lambda p: sum((a - b) ** 2 for a, b in zip(p, colour, strict=True)))


def _shift(colour: RGB, rng: random.Random, amount: int) -> RGB:
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in colour)  # type: ignore[return-value]


def _pastel(colour: RGB) -> RGB:
    return tuple((c + 2 * 235) // 3 for c in colour)  # type: ignore[return-value]


def _paper_grey(colour: RGB) -> RGB:
    grey = int(0.3 * colour[0] + 0.59 * colour[1] + 0.11 * colour[2])
    level = 150 + grey // 3  # a light pencil tone
    return (level, level, level - 6)


def _blend_gradient(picture: Image.Image, strength: float) -> Image.Image:
    pixels = np.asarray(picture, dtype=np.float32)
    light = np.linspace(1 + strength, 1 - strength, pixels.shape[0], dtype=np.float32)[:, None, None]
    return Image.fromarray(np.clip(pixels * light, 0, 255).astype(np.uint8))


def _add_noise(picture: Image.Image, rng: random.Random, amplitude: int) -> Image.Image:
    noise = np.random.default_rng(rng.randrange(1 << 30)).normal(0, amplitude, (*picture.size[::-1], 1))
    pixels = np.asarray(picture, dtype=np.float32) + noise
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


# --- subjects -------------------------------------------------------------------------------------


def _draw_subject(
    draw: ImageDraw.ImageDraw, subject: str, frame: tuple[int, int, int], brush: _Brush, rng
) -> None:
    width, height, horizon = frame
    x = int(width * rng.uniform(0.3, 0.7))
    s = int(min(width, height) * rng.uniform(0.18, 0.26))  # subject scale
    shape = {"outline": brush.outline, "width": brush.width}
    if subject == "house":
        draw.rectangle(
            (x - s, horizon - s, x + s, horizon + s // 4), fill=brush.fill((240, 230, 210)), **shape
        )
        draw.polygon(
            [(x - s - 8, horizon - s), (x, horizon - 2 * s), (x + s + 8, horizon - s)],
            fill=brush.fill((200, 60, 50)),
            **shape,
        )
        draw.rectangle(
            (x - s // 4, horizon - s // 2, x + s // 4, horizon + s // 4),
            fill=brush.fill((60, 60, 120)),
            **shape,
        )
    elif subject == "tree":
        draw.rectangle(
            (x - s // 5, horizon - s, x + s // 5, horizon + s // 3), fill=brush.fill((120, 80, 40)), **shape
        )
        draw.ellipse(
            (x - s, horizon - 2 * s - s // 2, x + s, horizon - s // 2),
            fill=brush.fill((40, 150, 60)),
            **shape,
        )
    elif subject == "flower":
        draw.line(
            (x, horizon + s // 2, x, horizon - s), fill=brush.fill((40, 140, 60)), width=max(3, brush.width)
        )
        for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            cx, cy = x + dx * s // 2, horizon - s + dy * s // 2
            draw.ellipse(
                (cx - s // 3, cy - s // 3, cx + s // 3, cy + s // 3), fill=brush.fill((235, 90, 140)), **shape
            )
        draw.ellipse(
            (x - s // 4, horizon - s - s // 4, x + s // 4, horizon - s + s // 4),
            fill=brush.fill((250, 200, 60)),
            **shape,
        )
    elif subject == "moon":
        y = int(horizon * 0.4)
        draw.ellipse((x - s, y - s, x + s, y + s), fill=brush.fill((245, 235, 180)), **shape)
    elif subject == "mountain":
        draw.polygon(
            [(x - 2 * s, horizon), (x, horizon - 2 * s), (x + 2 * s, horizon)],
            fill=brush.fill((110, 110, 130)),
            **shape,
        )
        draw.polygon(
            [(x - s // 2, horizon - 3 * s // 2), (x, horizon - 2 * s), (x + s // 2, horizon - 3 * s // 2)],
            fill=brush.fill((250, 250, 250)),
            **shape,
        )
    elif subject == "boat":
        draw.polygon(
            [
                (x - s, horizon),
                (x + s, horizon),
                (x + s // 2, horizon + s // 2),
                (x - s // 2, horizon + s // 2),
            ],
            fill=brush.fill((150, 90, 50)),
            **shape,
        )
        draw.polygon(
            [(x, horizon - 3 * s // 2), (x, horizon - 4), (x + s, horizon - 4)],
            fill=brush.fill((245, 245, 235)),
            **shape,
        )
    else:
        raise ValueError(f"unknown demo subject {subject!r}")


def _save(picture: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        picture.save(tmp, format="PNG")
