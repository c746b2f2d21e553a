"""`.gafu/prep-manifest.json`: what prep made from which original (the contract with later stages).

Later stages read it for the bars prep added (T4: `letterboxed` / `pillarboxed`) and for the
original behind each prepared picture. It is bookkeeping: deleting it makes the next prep redo
its work, nothing more.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from gafu.config import SetName
from gafu.errors import GafuError
from gafu.fsio import read_json, write_json_atomic

MANIFEST_VERSION = 1
Bars = Literal["letterboxed", "pillarboxed"]


@dataclass
class ManifestEntry:
    """One prepared picture: where it came from, with which settings, and what was done to it."""

    set: SetName
    source: str  # absolute POSIX path of the original
    source_sha256: str
    source_size: tuple[int, int]  # (width, height) after EXIF orientation
    settings: str  # key of the settings that shaped this output; another key means redo
    output_size: tuple[int, int]
    bars: Bars | None = None  # T4: bars added by padding (top/bottom: letterboxed, sides: pillarboxed)
    scale: float = 1.0  # output pixels per source pixel
    crop: tuple[int, int, int, int] | None = None  # (left, top, right, bottom) kept, in source pixels
    notes: list[str] = field(default_factory=list)
    source_phash: str = (
        ""  # gafu.images.PictureHash of the picture (as text), for duplicate checks on re-runs
    )
    source_bytes: int = 0  # the original's size and modification time when it was hashed:
    source_mtime_ns: int = 0  # an unchanged (size, mtime) pair means an unchanged hash, as git assumes


@dataclass
class Manifest:
    """Every prepared picture, keyed by its path relative to the project root (POSIX).

    `aside` holds the entries of pictures set aside by `[sources] exclude` (their files are in
    `set-aside/`), under the key they had and get back when they return to the dataset.
    """

    entries: dict[str, ManifestEntry] = field(default_factory=dict)
    aside: dict[str, ManifestEntry] = field(default_factory=dict)

    def bars_for(self, relative: str) -> Bars | None:
        """The bars prep added to the picture at `relative` (None if none or unknown)."""
        entry = self.entries.get(relative)
        return entry.bars if entry else None


def load_manifest(path: Path) -> Manifest:
    """Read the manifest; a missing file is an empty manifest, a damaged one a clear error."""
    if not path.exists():
        return Manifest()
    data = read_json(path, what="prep manifest")
    if not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION:
        raise GafuError(
            f"{path} is not a prep manifest of version {MANIFEST_VERSION}",
            path=path,
            hint="delete it and run `gafu prep` again (it is rebuilt; pictures are kept)",
        )
    return Manifest(
        entries={key: _entry(path, key, raw) for key, raw in data.get("entries", {}).items()},
        aside={key: _entry(path, key, raw) for key, raw in data.get("aside", {}).items()},
    )


def _entry(path: Path, key: str, raw: dict) -> ManifestEntry:
    try:
        raw = dict(raw)
        raw["source_size"] = tuple(raw["source_size"])
        raw["output_size"] = tuple(raw["output_size"])
        if raw.get("crop") is not None:
            raw["crop"] = tuple(raw["crop"])
        return ManifestEntry(**raw)
    except (TypeError, KeyError) as exc:
        raise GafuError(
            f"{path} has a damaged entry for {key} ({exc})",
            path=path,
            hint="delete it and run `gafu prep` again",
        ) from exc


def save_manifest(manifest: Manifest, path: Path) -> bool:
    """Write the manifest atomically unless the file already says the same; True if written."""
    data: dict = {
        "version": MANIFEST_VERSION,
        "entries": {key: asdict(entry) for key, entry in sorted(manifest.entries.items())},
    }
    if manifest.aside:
        data["aside"] = {key: asdict(entry) for key, entry in sorted(manifest.aside.items())}
    if path.is_file() and _same_json(path, data):
        return False  # a re-run that changed nothing rewrites nothing
    write_json_atomic(path, data)
    return True


def _same_json(path: Path, data: dict) -> bool:
    try:
        return json.loads(path.read_text(encoding="utf-8")) == json.loads(json.dumps(data))
    except (OSError, ValueError):
        return False
