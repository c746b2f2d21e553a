"""Labelled grid PNGs, the single pictures' files, and the HTML page that shows the grids.

A grid is composed from the single pictures already on disk, one at a time, so a long grid costs
one canvas of memory, not every picture. Each grid PNG carries its labels as JSON in a text
chunk (`gafu_grid`), which the HTML page and tests read back.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

from gafu.errors import GafuError
from gafu.fsio import atomic_path, write_text_atomic

GRID_KEY = "gafu_grid"
GRID_PREFIX = "grid-"
BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
MIN_FONT = 8  # pixels
PADDING = 0.25  # of the font size, around each label


@dataclass
class GridSpec:
    """What a grid shows: pictures in rows (weights or epochs) and columns (with / without trigger)."""

    title: str  # the prompt
    subtitle: str  # its settings: seed, steps, CFG, sampler, size
    row_labels: list[str]
    column_labels: list[str]
    cells: list[list[str]]  # [row][column]: picture file names, relative to the grid's folder

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns)."""
        return len(self.row_labels), len(self.column_labels)


def save_picture(image: Image.Image, path: Path, text: dict[str, str]) -> Path:
    """Save one picture as PNG, atomically, with `text` chunks (A1111's `parameters` among them)."""
    info = PngInfo()
    for key, value in text.items():
        info.add_itxt(key, value)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", pnginfo=info)
    return path


def png_text(path: Path) -> dict[str, str]:
    """The text chunks of a PNG ({} when it cannot be read)."""
    try:
        with Image.open(path) as image:
            return {str(k): str(v) for k, v in getattr(image, "text", {}).items()}
    except (OSError, ValueError):
        return {}


def save_grid(spec: GridSpec, folder: Path, name: str) -> Path:
    """Compose `spec`'s pictures from `folder` into `folder/grid-<name>.png` with its labels."""
    rows, columns = spec.shape
    cell_w, cell_h = _cell_size(folder / spec.cells[0][0])
    font = _font(min(cell_w, cell_h), spec.column_labels, cell_w)
    pad = max(2, int(font.size * PADDING))
    line_h = font.size + 2 * pad
    label_w = int(max(font.getlength(label) for label in spec.row_labels)) + 2 * pad
    width = label_w + columns * cell_w
    title_lines = _wrap(spec.title, font, width - 2 * pad) + _wrap(spec.subtitle, font, width - 2 * pad)
    header_h = (len(title_lines) + 1) * line_h
    canvas = Image.new("RGB", (width, header_h + rows * cell_h), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(title_lines):
        draw.text((pad, i * line_h + pad), line, fill=INK, font=font)
    for c, label in enumerate(spec.column_labels):
        draw.text((label_w + c * cell_w + pad, len(title_lines) * line_h + pad), label, fill=INK, font=font)
    for r, label in enumerate(spec.row_labels):
        draw.text((pad, header_h + r * cell_h + pad), label, fill=INK, font=font)
        for c in range(columns):
            with Image.open(folder / spec.cells[r][c]) as picture:
                canvas.paste(
                    picture.convert("RGB").resize((cell_w, cell_h)),
                    (label_w + c * cell_w, header_h + r * cell_h),
                )
    info = PngInfo()
    info.add_itxt(GRID_KEY, json.dumps({**asdict(spec), "cell": [cell_w, cell_h]}, ensure_ascii=False))
    path = folder / f"{GRID_PREFIX}{name}.png"
    with atomic_path(path) as tmp:
        canvas.save(tmp, format="PNG", pnginfo=info)
    return path


def read_grid(path: Path) -> dict:
    """The labels saved in a grid PNG (`GridSpec` fields plus `cell`), or a GafuError."""
    raw = png_text(path).get(GRID_KEY)
    if raw is None:
        raise GafuError(f"{path} is not a gafu sample grid", path=path)
    return json.loads(raw)


def _cell_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as picture:
        return picture.size


def _font(cell_side: int, column_labels: list[str], cell_w: int):
    """Pillow's own font, scaled with the pictures, small enough for each column label to fit its column."""
    size = max(MIN_FONT, cell_side // 28)
    font = ImageFont.load_default(size=size)
    while size > MIN_FONT and max(font.getlength(label) for label in column_labels) > cell_w * 0.9:
        size -= 1
        font = ImageFont.load_default(size=size)
    return font


def _wrap(text: str, font, width: int) -> list[str]:
    """`text` in lines no wider than `width` pixels, broken at spaces."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}".strip()
        if line and font.getlength(candidate) > width:
            lines.append(line)
            line = word
        else:
            line = candidate
    return [*lines, line] if line else lines


# --- the HTML page ------------------------------------------------------------------------------
HOW_TO_READ = (
    "Rows are LoKr weights (or epochs); the left column has the trigger word in the prompt, the right "
    "one does not. Weight 0 is the base model alone. With the trigger the style should grow with the "
    "weight; without it the pictures should stay close to weight 0. Style appearing without the "
    "trigger is leaking into ordinary tags, which the regularization set is there to prevent."
)


def write_index(folder: Path, title: str = "gafu samples", notes: Mapping[str, str] | None = None) -> Path:
    """`folder/index.html`: every grid under `folder`, grouped by sub-folder.

    `notes` maps a sub-folder (`.` for `folder` itself) to HTML shown beside its grids: the style
    probe's figures of the LoKr they show.
    """
    folder = Path(folder)
    sections: dict[str, list[tuple[Path, dict]]] = {}
    for path in sorted(folder.rglob(f"{GRID_PREFIX}*.png")):
        try:
            sections.setdefault(path.parent.relative_to(folder).as_posix(), []).append(
                (path, read_grid(path))
            )
        except (GafuError, ValueError):
            continue  # not one of gafu's grids
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:1.5em;max-width:110em}"
        "img{max-width:100%;height:auto;border:1px solid #ccc}figure{margin:0 0 2em 0}"
        "figcaption{color:#444;margin:.3em 0}table.style-probe{border-collapse:collapse;margin:.5em 0 1em}"
        "table.style-probe td,table.style-probe th{border:1px solid #ccc;padding:.2em .6em;text-align:right}"
        "</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{html.escape(HOW_TO_READ)}</p>",
    ]
    for section, grids in sections.items():
        parts.append(f"<h2>{html.escape(section if section != '.' else folder.name)}</h2>")
        parts.append((notes or {}).get(section, ""))
        for path, spec in grids:
            link = html.escape(path.relative_to(folder).as_posix(), quote=True)
            caption = html.escape(f"{spec['title']} — {spec['subtitle']}")
            parts.append(
                f'<figure><a href="{link}"><img src="{link}" alt="{caption}" loading="lazy"></a>'
                f"<figcaption>{caption}</figcaption></figure>"
            )
    if not sections:
        parts.append("<p>No grids yet.</p>")
    parts.append("</body></html>")
    path = folder / "index.html"
    write_text_atomic(path, "\n".join(parts) + "\n")
    return path
