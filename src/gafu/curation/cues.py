"""Style cues of one picture: numbers a change of period or technique moves (RECIPE D1).

An artist's style drifts (the recipe's example: muted colouring in older pictures, vivid in
newer ones). These cues describe *how* a picture is drawn rather than *what* it shows, so the
pictures of another period stand apart from the rest (`gafu.curation.consistency`):

| cue | value | a drift it shows |
|---|---|---|
| `saturation` | mean HSV saturation of the pixels not dark, 0–1 (NaN: a dark picture) | muted colouring |
| `vivid` | mean saturation of the 3 most saturated colours covering 0.5 % each | muted colouring, any area |
| `colourfulness` | Hasler & Süsstrunk's colourfulness (2003), 0–~150 | muted colouring |
| `brightness` | mean luma, 0–1 | a darker or lighter palette |
| `contrast` | standard deviation of luma, 0–1 | flat vs contrasty shading |
| `palette` | colours (4 bits per channel) that cover 90 % of the picture | flat fills vs painting |
| `grain` | median luma difference to a 3×3 blur, 0–1 | smooth fills vs paper texture |
| `edges` | share of pixels on a luma edge (a step over 0.08) | detail and line density |
| `line_width` | mean width of dark strokes, px at a 512 px long side (NaN: no lines) | thin outlines |
| `ink` | share of the picture covered by dark lines | more or less line work |

They are computed on the picture scaled to `CUE_SIDE` on its long side, inside the part prep
filled (the padding bars are left out), so a picture's size and padding do not move them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

CUE_SIDE = 512  # px: long side the cues are measured at (line widths are in these pixels)
CUE_NAMES = (
    "saturation",
    "vivid",
    "colourfulness",
    "brightness",
    "contrast",
    "palette",
    "grain",
    "edges",
    "line_width",
    "ink",
)
EDGE_STEP = 0.08  # luma step (0–1) between neighbours that counts as an edge
DARK_LINE = 0.4  # luma below which a pixel can be line work …
LINE_DEPTH = 0.3  # … when closing the luma lightens it by this share of the closed value
LINE_WINDOW = 16  # px: dark structures narrower than this are lines (a power of 2)
MIN_INK = 0.002  # below this share of dark-line pixels there are no lines to measure
MAX_LINE = 12  # px: a dark run wider than this both ways is a shape, not a line
LIT = 0.2  # brightest channel (0–1) below which a pixel's or colour's saturation is not measured
MIN_LIT = 0.05  # a picture with fewer lit pixels than this has no saturation to measure (NaN)
VIVID_COLOURS = 3  # `vivid`: the most saturated colours averaged …
VIVID_SHARE = 0.005  # … of those covering at least this share of the picture
PALETTE_SHARE = 0.9  # `palette`: the colours it takes to cover this share of the picture


@dataclass(frozen=True)
class Box:
    """The part of a picture that holds the artwork (left, top, right, bottom), in pixels."""

    left: int
    top: int
    right: int
    bottom: int


def picture_cues(image: Image.Image, box: Box | None = None, *, side: int = CUE_SIDE) -> dict[str, float]:
    """The style cues of `image` (RGB) inside `box` (default: all of it), at `side` px on the long side."""
    if box is not None:
        image = image.crop((box.left, box.top, box.right, box.bottom))
    scale = side / max(image.size)
    if scale < 1:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BOX)
    return array_cues(np.asarray(image.convert("RGB")), luma_image=image.convert("L"))


def array_cues(rgb: np.ndarray, *, luma_image: Image.Image | None = None) -> dict[str, float]:
    """The style cues of an RGB array `(H, W, 3)` with values 0–255 (any dtype), at its own size."""
    rgb = np.asarray(rgb)
    red, green, blue = (rgb[..., c].astype(np.float32) for c in range(3))  # (H, W) each, 0–255
    largest = np.maximum(np.maximum(red, green), blue)
    smallest = np.minimum(np.minimum(red, green), blue)
    lit = largest > LIT * 255  # the saturation of dark pixels is noise
    luma = (0.299 / 255) * red + (0.587 / 255) * green + (0.114 / 255) * blue  # (H, W), 0–1
    if luma_image is None:
        luma_image = Image.fromarray(np.clip(luma * 255 + 0.5, 0, 255).astype(np.uint8), "L")
    blur = np.asarray(luma_image.filter(ImageFilter.BoxBlur(1)), dtype=np.float32) / 255.0
    on_edge = np.zeros(luma.shape, dtype=bool)
    on_edge[:, 1:] |= np.abs(np.diff(luma, axis=1)) > EDGE_STEP
    on_edge[1:, :] |= np.abs(np.diff(luma, axis=0)) > EDGE_STEP
    codes = ((rgb[..., 0].astype(np.uint16) >> 4) << 8) | ((rgb[..., 1] >> 4) << 4) | (rgb[..., 2] >> 4)
    counts = np.bincount(codes.ravel(), minlength=4096)  # pixels of each colour at 4 bits per channel
    saturation = np.where(lit, (largest - smallest) / np.maximum(largest, 1.0), 0.0)  # (H, W)
    rg, yb = red - green, 0.5 * (red + green) - blue  # opponent channels (Hasler & Süsstrunk, 2003)
    return {
        "saturation": float(saturation[lit].mean()) if lit.mean() >= MIN_LIT else math.nan,
        "vivid": _vivid(codes[::2, ::2].ravel(), saturation[::2, ::2].ravel(), lit[::2, ::2].ravel()),
        "colourfulness": float(math.hypot(rg.std(), yb.std()) + 0.3 * math.hypot(rg.mean(), yb.mean())),
        "brightness": float(luma.mean()),
        "contrast": float(luma.std()),
        "palette": float(np.searchsorted(np.cumsum(np.sort(counts)[::-1]), PALETTE_SHARE * codes.size) + 1),
        "grain": float(np.median(np.abs(luma - blur))),
        "edges": float(on_edge.mean()),
        **_line_cues(luma),
    }


def _vivid(codes: np.ndarray, saturation: np.ndarray, lit: np.ndarray) -> float:
    """Mean saturation of the most saturated colours that cover VIVID_SHARE of the picture each.

    Unlike the mean saturation, it does not depend on how much of the picture each colour covers,
    so a grey sky under vivid figures still reads as vivid colouring. A colour (4 bits per
    channel) has the mean saturation of its lit pixels. Every second pixel is enough.
    """
    counts = np.bincount(codes, minlength=4096)
    lit_counts = np.bincount(codes[lit], minlength=4096)
    used = np.flatnonzero((counts >= VIVID_SHARE * codes.size) & (lit_counts > 0))
    if not used.size:
        return math.nan
    colour_saturation = np.bincount(codes[lit], saturation[lit], minlength=4096)[used] / lit_counts[used]
    return float(np.sort(colour_saturation)[-VIVID_COLOURS:].mean())


def _line_cues(luma: np.ndarray) -> dict[str, float]:
    """Dark line work: thin dark valleys in the luma, found by a morphological closing.

    Closing the luma with a window of LINE_WINDOW px fills every dark structure narrower than
    the window with the light around it, and leaves wider dark shapes as they are; a pixel the
    closing lightens by LINE_DEPTH of its surroundings' luma, and that is dark itself, is line
    work. Its stroke width is the shorter of its dark runs across and down (a horizontal line is
    long across and as wide as it is thick down); the line width is the mean over line pixels,
    so thin and thick outlines of the same drawing differ in it whatever the drawing shows.
    """
    closed = _closing(luma, LINE_WINDOW)
    dark = (luma < DARK_LINE) & (closed - luma > LINE_DEPTH * closed)
    dark |= _neighbours(dark) >= 5  # pinholes in a stroke (grain, antialiasing) belong to it
    dark &= _neighbours(dark) >= 2  # a line pixel continues a line; lone specks are grain
    width = np.minimum(_runs(dark), _runs(dark.T).T)  # (H, W): the stroke's width through each pixel
    ink = dark & (width <= MAX_LINE)
    share = float(ink.mean())
    if share < MIN_INK:
        return {"line_width": math.nan, "ink": share}
    return {"line_width": float(width[ink].mean()), "ink": share}


def _closing(values: np.ndarray, window: int) -> np.ndarray:
    """Grey-level closing (max filter, then min filter) with a square window of `window` (a power of 2)."""
    return _extreme(_extreme(values, window, np.maximum), window, np.minimum)


def _extreme(values: np.ndarray, window: int, pick: np.ufunc) -> np.ndarray:
    """A separable running max or min over `window` × `window` pixels, by doubling (window a power of 2)."""
    out = np.pad(values, window // 2, mode="edge")
    span = 1
    while span < window:  # out[i] = pick over [i, i + 2·span), down the rows
        out = pick(out[:-span], out[span:])
        span *= 2
    span = 1
    while span < window:  # … and across the columns
        out = pick(out[:, :-span], out[:, span:])
        span *= 2
    return out[: values.shape[0], : values.shape[1]]


def _runs(mask: np.ndarray) -> np.ndarray:
    """For each set pixel of `mask` (H, W), the length of the run of set pixels along its row."""
    height, width = mask.shape
    padded = np.zeros((height, width + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    flat = padded.ravel()
    steps = np.diff(flat)
    starts, ends = np.flatnonzero(steps == 1) + 1, np.flatnonzero(steps == -1) + 1
    lengths = ends - starts
    runs = np.zeros(flat.size, dtype=np.int32)
    if lengths.size:
        offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        runs[np.repeat(starts, lengths) + offsets] = np.repeat(lengths, lengths)
    return runs.reshape(height, width + 2)[:, 1:-1]


def _neighbours(mask: np.ndarray) -> np.ndarray:
    """How many of each pixel's 8 neighbours are set in `mask`."""
    padded = np.pad(mask, 1).astype(np.uint8)
    height, width = mask.shape
    return sum(
        padded[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
        if dy or dx
    )
