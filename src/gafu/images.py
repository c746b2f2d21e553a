"""Opening pictures safely (shared by prep, tag and check) and perceptual hashes for duplicates."""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from gafu.errors import GafuError

if TYPE_CHECKING:
    import imagehash

with contextlib.suppress(ImportError):  # AVIF where the plugin is installed
    import pillow_avif  # noqa: F401

# Every format Pillow reads that people keep art in.
SOURCE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".jfif", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".avif"}
)
# Pillow's own decompression-bomb limit; gafu refuses (not just warns) above it.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
# Hamming distance between 64-bit perceptual hashes at or below which two pictures are the same
# picture (re-encoded, resized, slightly recoloured); imagededup and similar tools use 8–10.
NEAR_DUPLICATE_DISTANCE = 8

RGB = tuple[int, int, int]
WHITE: RGB = (255, 255, 255)
BLACK: RGB = (0, 0, 0)


class PictureError(GafuError):
    """One picture cannot be used; stages report it and go on with the others."""


@dataclass
class LoadedPicture:
    """An opened picture, flattened to RGB, with what was done to get there."""

    image: Image.Image
    source_size: tuple[int, int]  # (width, height) after EXIF orientation
    notes: list[str] = field(default_factory=list)  # e.g. "animated: first frame used"


def is_picture_file(path: Path) -> bool:
    """True for a file whose suffix is one gafu reads."""
    return path.is_file() and path.suffix.lower() in SOURCE_SUFFIXES


def list_source_pictures(folder: Path) -> list[Path]:
    """Picture files directly in `folder` and its subfolders, sorted, hidden files skipped."""
    return sorted(
        p
        for p in folder.rglob("*")
        if is_picture_file(p) and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def load_picture(path: Path, background: RGB = WHITE) -> LoadedPicture:
    """Open `path` as an RGB picture: EXIF orientation applied, transparency composited on `background`.

    Raises PictureError (naming the file) for an empty, corrupt, truncated, non-picture or
    oversized file.
    """
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise PictureError(f"{path} is an empty (0-byte) file", path=path, hint="remove or replace it")
    except OSError as exc:
        raise PictureError(f"cannot read {path}: {exc.strerror}", path=path) from exc
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                if opened.width * opened.height > MAX_PIXELS:
                    raise Image.DecompressionBombError("too many pixels")
                if getattr(opened, "is_animated", False):
                    notes.append(f"animated ({getattr(opened, 'n_frames', '?')} frames): first frame used")
                    opened.seek(0)
                opened.load()
                image = ImageOps.exif_transpose(opened) or opened
                image = flatten_to_rgb(image, background)
    except PictureError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PictureError(
            f"{path} is too large to open safely (more than {MAX_PIXELS:,} pixels; "
            "possibly a decompression bomb)",
            path=path,
            hint="downscale it in an image editor or remove it",
        ) from exc
    except UnidentifiedImageError as exc:
        raise PictureError(
            f"{path} is not a picture Pillow can read", path=path, hint="remove it or re-save it as PNG"
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:  # truncated / corrupt data
        raise PictureError(
            f"{path} is corrupt or truncated ({exc})", path=path, hint="re-download or re-export it"
        ) from exc
    return LoadedPicture(image=image, source_size=image.size, notes=notes)


def flatten_to_rgb(image: Image.Image, background: RGB = WHITE) -> Image.Image:
    """Any Pillow mode → 8-bit RGB; alpha is composited on `background`, 16-bit scaled (not clipped)."""
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        values = np.asarray(image).astype(np.float64)
        scale = 257.0 if mode.startswith("I;16") or values.max(initial=0) > 255 else 1.0
        image = Image.fromarray(np.clip(values / scale + 0.5, 0, 255).astype(np.uint8), "L")
    elif mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if values.max(initial=0) <= 1.0:
            values = values * 255.0
        image = Image.fromarray(np.clip(values + 0.5, 0, 255).astype(np.uint8), "L")
    elif mode in ("P", "PA", "LA", "La", "RGBa"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        canvas = Image.new("RGB", image.size, background)
        canvas.paste(image, mask=image.getchannel("A"))
        return canvas
    if image.mode != "RGB":
        image = image.convert("RGB")  # CMYK, YCbCr, L, 1, LAB …
    return image


def perceptual_hash(image: Image.Image) -> imagehash.ImageHash:
    """64-bit DCT perceptual hash (imagehash.phash) of a picture."""
    import imagehash  # here, not at the top: training reads pictures and needs no hashes (nor SciPy)

    return imagehash.phash(image)


def near_duplicate_pairs(
    hashes: dict[str, imagehash.ImageHash],
    others: dict[str, imagehash.ImageHash] | None = None,
    max_distance: int = NEAR_DUPLICATE_DISTANCE,
) -> list[tuple[str, str, int]]:
    """Pairs `(a, b, distance)` of near-identical pictures within `hashes`, or between it and `others`."""
    if others is None:
        candidates = [(a, hashes[a], b, hashes[b]) for a, b in combinations(sorted(hashes), 2)]
    else:
        candidates = [(a, hashes[a], b, others[b]) for a in sorted(hashes) for b in sorted(others)]
    return [(a, b, int(ha - hb)) for a, ha, b, hb in candidates if ha - hb <= max_distance]
