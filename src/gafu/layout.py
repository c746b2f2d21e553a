"""The kohya-style dataset layout (D5): `<outer>/<repeats>_<name>/<picture>.png + .txt`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from gafu.config import SetName

PICTURE_SUFFIX = ".png"  # what prep writes
CAPTION_SUFFIX = ".txt"  # D5: `image.png` + `image.txt`
# Picture files a trainer picks up from a concept folder (kohya's list, lower-case).
TRAINER_PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".avif", ".jxl")

_CONCEPT = re.compile(r"^(\d+)_(.+)$")
_UNSAFE_IN_NAMES = re.compile(r'[<>:"/\\|?*\x00-\x1f]')


def concept_folder_name(repeats: int, name: str) -> str:
    """`<repeats>_<name>` with characters Windows forbids in names replaced (D5)."""
    safe = _UNSAFE_IN_NAMES.sub("_", name.strip()).replace(" ", "_").rstrip(". ") or "concept"
    return f"{repeats}_{safe}"


def parse_concept_folder(name: str) -> tuple[int, str] | None:
    """`(repeats, name)` for a folder named `<repeats>_<name>`, else None."""
    match = _CONCEPT.match(name)
    if not match or int(match.group(1)) < 1:
        return None
    return int(match.group(1)), match.group(2)


@dataclass(frozen=True)
class DatasetPicture:
    """One prepared picture and its caption file (which may not exist yet)."""

    set: SetName
    path: Path
    repeats: int

    @property
    def caption_path(self) -> Path:
        """The `.txt` beside the picture."""
        return self.path.with_suffix(CAPTION_SUFFIX)

    @property
    def key(self) -> str:
        """A stable name for reports: `<concept folder>/<file name>`."""
        return f"{self.path.parent.name}/{self.path.name}"


def list_pictures(outer: Path, which: SetName) -> list[DatasetPicture]:
    """Every picture in the concept folders under `outer`, sorted; folders not named `<n>_<x>` skipped."""
    pictures: list[DatasetPicture] = []
    if not outer.is_dir():
        return pictures
    for concept in sorted(p for p in outer.iterdir() if p.is_dir()):
        parsed = parse_concept_folder(concept.name)
        if parsed is None:
            continue
        for path in sorted(concept.iterdir()):
            if path.is_file() and path.suffix.lower() in TRAINER_PICTURE_SUFFIXES:
                pictures.append(DatasetPicture(set=which, path=path, repeats=parsed[0]))
    return pictures
