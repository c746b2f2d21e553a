"""One original → one training picture. Runs in worker processes (spawn-safe: top-level, picklable)."""

from __future__ import annotations

import functools
import io
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from PIL import Image

from gafu.config import SetName
from gafu.errors import GafuError, os_error_message
from gafu.fsio import sha256_bytes, write_bytes_atomic
from gafu.images import PictureError, PictureHash, load_picture, near_duplicate_pairs, perceptual_hash
from gafu.prep.geometry import Placement, bucket_placement, pad_placement
from gafu.prep.manifest import ManifestEntry
from gafu.prep.settings import PNG_COMPRESS_LEVEL, PrepSettings

Status = Literal["done", "unchanged", "failed", "reg-duplicate", "fatal"]
_TRANSPARENT_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


@dataclass(frozen=True)
class TargetHashes:
    """The target set's pictures, for keeping them out of the regularization set (D2)."""

    exact: dict[str, str]  # source sha256 → target source
    perceptual: dict[str, str]  # target source → perceptual hash (hex)


@dataclass(frozen=True)
class PictureJob:
    """What a worker needs to prepare one original."""

    set: SetName
    source: str
    output: str
    settings: PrepSettings
    known_sha256: str | None = None  # the output was made from this content with these settings
    target_hashes: TargetHashes | None = None  # given for regularization pictures only


@dataclass(frozen=True)
class TargetMatch:
    """The target picture a regularization picture turned out to be (D2)."""

    target: str  # the target original
    kind: Literal["exact", "near"]  # same file content, or same perceptual hash within the limit
    distance: int = 0  # perceptual-hash distance


@dataclass
class PictureResult:
    """What happened to one original."""

    job: PictureJob
    status: Status
    message: str = ""  # why it failed
    entry: ManifestEntry | None = None  # for "done"
    match: TargetMatch | None = None  # for "reg-duplicate"
    source_stat: tuple[int, int] = (0, 0)  # the original's (size, mtime in ns) when it was read


def ignore_interrupts() -> None:
    """Worker initializer: Ctrl-C is handled by the main process, which stops handing out work."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def prepare_picture(job: PictureJob) -> PictureResult:
    """Prepare one original: hash it, skip it if unchanged, else place, encode and write its output."""
    source, output = Path(job.source), Path(job.output)
    try:
        stat = source.stat()  # before reading: a later change then shows as a newer mtime
        data = source.read_bytes()
    except OSError as exc:
        return PictureResult(job, "failed", str(os_error_message(exc, source, "read")))
    sha = sha256_bytes(data)
    if sha == job.known_sha256 and output.is_file():
        return PictureResult(job, "unchanged", source_stat=(stat.st_size, stat.st_mtime_ns))  # touched
    if job.target_hashes and (match := find_target_duplicate(sha, "", job.target_hashes)):
        return PictureResult(job, "reg-duplicate", match=match)
    try:
        placement, picture, transparent, notes = _render(source, job.settings)
    except PictureError as exc:
        return PictureResult(job, "failed", str(exc))
    except MemoryError:
        return PictureResult(job, "failed", f"{source} is too large to fit in memory")
    phash = str(perceptual_hash(picture.crop((*placement.offset, *_corner(placement)))))
    if job.target_hashes and (match := find_target_duplicate(sha, phash, job.target_hashes)):
        return PictureResult(job, "reg-duplicate", match=match)
    try:
        _write_png(picture, output)
    except GafuError as exc:  # disk full, read-only folder: no other picture can be written either
        return PictureResult(job, "fatal", str(exc))
    entry = ManifestEntry(
        set=job.set,
        source=source.as_posix(),
        source_sha256=sha,
        source_size=placement.source_size,
        settings=job.settings.key(transparent=transparent),
        output_size=placement.output_size,
        bars=placement.bars,
        scale=round(placement.scale, 4),
        crop=placement.crop,
        notes=notes,
        source_phash=phash,
        source_bytes=stat.st_size,
        source_mtime_ns=stat.st_mtime_ns,
    )
    return PictureResult(job, "done", entry=entry)


def _write_png(picture: Image.Image, output: Path) -> None:
    """Encode in memory, then write atomically (a failed write leaves no partial file)."""
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    write_bytes_atomic(output, buffer.getvalue())


def remove_output(output: Path) -> bool:
    """Delete a prepared picture (never its caption); True if there was one."""
    try:
        output.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise os_error_message(exc, output, "delete") from exc
    return True


def _render(source: Path, settings: PrepSettings) -> tuple[Placement, Image.Image, bool, list[str]]:
    """Open, place and resize one picture: (placement, output picture, had transparency, notes)."""
    try:
        loaded = load_picture(source, settings.background_rgb)
        transparent = _has_transparency(source)
        width, height = loaded.source_size
        if settings.mode == "pad":
            placement = pad_placement(width, height, settings.side)
        else:
            placement = bucket_placement(
                width, height, max_side=settings.max_side, max_area=settings.max_area
            )
        picture = place(loaded.image, placement, settings.background_rgb)
    except PictureError:
        raise
    except Exception as exc:  # Pillow's decoders raise many kinds for damaged files
        raise PictureError(
            f"{source} could not be read ({type(exc).__name__}: {exc})",
            path=source,
            hint="re-export it as PNG or remove it",
        ) from exc
    notes = list(loaded.notes)
    if transparent:
        notes.append(f"transparency composited on {settings.background}")
    if placement.scale > 1.0:
        notes.append(f"upscaled {placement.scale:.2f}x")
    return placement, picture, transparent, notes


def place(image: Image.Image, placement: Placement, background: tuple[int, int, int]) -> Image.Image:
    """The output picture: the kept box, resized (Lanczos), on a canvas of the background when padded."""
    content = image
    if placement.content_size != image.size or placement.crop is not None:
        content = image.resize(placement.content_size, Image.Resampling.LANCZOS, box=placement.box)
    if placement.output_size == placement.content_size:
        return content
    canvas = Image.new("RGB", placement.output_size, background)
    canvas.paste(content, placement.offset)
    return canvas


def _corner(placement: Placement) -> tuple[int, int]:
    """Bottom-right corner of the content in the output (the perceptual hash ignores the bars)."""
    return (placement.offset[0] + placement.content_size[0], placement.offset[1] + placement.content_size[1])


def find_target_duplicate(sha: str, phash: str, targets: TargetHashes) -> TargetMatch | None:
    """The target picture this one is (D2): the same content, or the nearest perceptual match."""
    if sha in targets.exact:
        return TargetMatch(targets.exact[sha], "exact")
    if not phash:
        return None
    pairs = near_duplicate_pairs(
        {"": picture_hash(phash)},
        {source: picture_hash(value) for source, value in targets.perceptual.items()},
    )
    if not pairs:
        return None
    _, target, distance = min(pairs, key=lambda pair: (pair[2], pair[1]))
    return TargetMatch(target, "near", distance)


@functools.lru_cache(maxsize=8192)
def picture_hash(text: str) -> PictureHash:
    """A picture hash from its stored form (cached: every reg picture is compared to every target)."""
    return PictureHash.parse(text)


def _has_transparency(path: Path) -> bool:
    """True when the file has an alpha channel or a transparent palette colour (header only)."""
    with Image.open(path) as image:
        return image.mode in _TRANSPARENT_MODES or "transparency" in image.info
