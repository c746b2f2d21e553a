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
# The hash sees only luminance structure (two flat pictures of any colours hash alike), so a
# match must also have the same colours: the mean difference of their 4 × 4 grids of average
# colours (0–255) at most this. Re-encoding and resizing move it by 1–3, a slight recolour ~10.
COLOUR_GRID = 4
COLOUR_DIFFERENCE_LIMIT = 24

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


@dataclass(frozen=True)
class PictureHash:
    """A picture's 64-bit perceptual hash (its luminance structure) and its coarse colours."""

    structure: imagehash.ImageHash
    colours: bytes = b""  # COLOUR_GRID² average RGB colours; empty in hashes saved without them

    def __str__(self) -> str:
        """`<hash hex>:<colours hex>` (the hash alone when there are no colours), as stored."""
        return f"{self.structure}:{self.colours.hex()}" if self.colours else str(self.structure)

    @classmethod
    def parse(cls, text: str) -> PictureHash:
        """The hash written by `str()` (a bare hex hash, as older gafu stored it, has no colours)."""
        import imagehash  # here, not at the top: training reads pictures and needs no hashes (nor SciPy)

        structure, _, colours = text.partition(":")
        return cls(imagehash.hex_to_hash(structure), bytes.fromhex(colours))

    def same_colours(self, other: PictureHash) -> bool:
        """True unless both have colours and they differ by more than COLOUR_DIFFERENCE_LIMIT."""
        if not (self.colours and other.colours) or len(self.colours) != len(other.colours):
            return True
        mine, theirs = np.frombuffer(self.colours, np.uint8), np.frombuffer(other.colours, np.uint8)
        return float(np.abs(mine.astype(np.int16) - theirs).mean()) <= COLOUR_DIFFERENCE_LIMIT


def perceptual_hash(image: Image.Image) -> PictureHash:
    """64-bit DCT perceptual hash (imagehash.phash) of a picture, with its 4 × 4 average colours."""
    import imagehash  # see PictureHash.parse

    grid = image.convert("RGB").resize((COLOUR_GRID, COLOUR_GRID), Image.Resampling.BOX)
    return PictureHash(imagehash.phash(image), np.asarray(grid, dtype=np.uint8).tobytes())


def near_duplicate_pairs(
    hashes: dict[str, PictureHash],
    others: dict[str, PictureHash] | None = None,
    max_distance: int = NEAR_DUPLICATE_DISTANCE,
) -> list[tuple[str, str, int]]:
    """Pairs `(a, b, distance)` of near-identical pictures within `hashes`, or between it and `others`.

    Near means hashes at most `max_distance` apart and colours alike (`PictureHash.same_colours`).
    """
    if others is None:
        candidates = [(a, hashes[a], b, hashes[b]) for a, b in combinations(sorted(hashes), 2)]
    else:
        candidates = [(a, hashes[a], b, others[b]) for a in sorted(hashes) for b in sorted(others)]
    return [
        (a, b, int(ha.structure - hb.structure))
        for a, ha, b, hb in candidates
        if ha.structure - hb.structure <= max_distance and ha.same_colours(hb)
    ]


def resize_area(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """`image` shrunk to `size` by area averaging: OpenCV's `INTER_AREA`, without OpenCV.

    Each output pixel is the mean of the source pixels under it, a partly covered pixel weighted
    by the part covered (separable, so rows then columns), rounded to 8 bits. This is how
    sd-scripts shrinks a picture to its bucket (`cv2.resize(..., interpolation=cv2.INTER_AREA)` in
    its `library/utils.py` `resize_image`); Pillow's BOX filter is not the same for fractional
    scales (it weighs a pixel by its centre, not by the area covered).
    """
    width, height = size
    if width > image.width or height > image.height:
        raise ValueError(f"resize_area shrinks only: {image.size} → {size}")
    pixels = np.asarray(image, dtype=np.float64)
    pixels = _area_average(_area_average(pixels, height, axis=0), width, axis=1)
    # OpenCV rounds halves to even, except on its exact 2 × 2 path, which rounds them up.
    halving = image.size == (2 * width, 2 * height)
    rounded = np.floor(pixels + 0.5) if halving else np.rint(pixels)
    return Image.fromarray(np.clip(rounded, 0, 255).astype(np.uint8), image.mode)


def _area_average(values: np.ndarray, size: int, axis: int) -> np.ndarray:
    """`values` (float64) averaged over `size` equal intervals along `axis`, the source read once."""
    length = values.shape[axis]
    if size == length:
        return values
    moved = np.moveaxis(values, axis, 0)  # (length, …)
    # Interval ends k × length / size in source pixels, as whole pixels and a part of the next
    # (integer arithmetic: a float end just below `length` would count the last pixel twice).
    whole, remainder = np.divmod(np.arange(size + 1, dtype=np.int64) * length, size)  # whole: increasing
    part = (remainder / size).reshape(-1, *([1] * (moved.ndim - 1)))
    # The source summed up to each end: whole pixels (block sums, accumulated), then part of the next.
    blocks = np.add.reduceat(moved, whole[:-1], axis=0)
    upto = np.concatenate([np.zeros_like(blocks[:1]), np.cumsum(blocks, axis=0)])
    upto += part * moved[np.minimum(whole, length - 1)]
    return np.moveaxis((upto[1:] - upto[:-1]) * (size / length), 0, axis)
