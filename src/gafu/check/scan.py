"""What is on disk in each set's outer folder (D5): concept folders, pictures, captions, strays."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gafu.captions.dataset import CaptionedPicture, load_captions
from gafu.config import SetName
from gafu.layout import CAPTION_SUFFIX, TRAINER_PICTURE_SUFFIXES, parse_concept_folder
from gafu.project import Project


@dataclass
class SetScan:
    """One set's outer folder as a trainer would read it, and what it would skip."""

    which: SetName
    outer: Path
    captioned: list[CaptionedPicture] = field(default_factory=list)  # pictures in concept folders
    misnamed_folders: list[Path] = field(default_factory=list)  # not `<repeats>_<name>`: skipped
    stray_pictures: list[Path] = field(default_factory=list)  # outside any concept folder: skipped
    orphan_captions: list[Path] = field(default_factory=list)  # captions with no picture beside them

    @property
    def exists(self) -> bool:
        """True when the outer folder is there."""
        return self.outer.is_dir()


def scan_set(project: Project, which: SetName) -> SetScan:
    """Walk one set's outer folder (`dataset/train` or `dataset/reg`)."""
    scan = SetScan(which=which, outer=project.set_dir(which))
    if not scan.exists:
        return scan
    scan.captioned = load_captions(project, (which,))
    for child in sorted(scan.outer.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_dir():
            if parse_concept_folder(child.name) is None:
                scan.misnamed_folders.append(child)
            else:
                scan.orphan_captions += _orphan_captions(child)
        elif child.suffix.lower() in TRAINER_PICTURE_SUFFIXES:
            scan.stray_pictures.append(child)
    return scan


def _orphan_captions(concept: Path) -> list[Path]:
    """Caption files whose picture is missing (kohya pairs `name.png` with `name.txt`)."""
    stems = {p.stem for p in concept.iterdir() if p.suffix.lower() in TRAINER_PICTURE_SUFFIXES}
    return sorted(
        p
        for p in concept.iterdir()
        if p.suffix == CAPTION_SUFFIX and p.is_file() and not p.name.startswith(".") and p.stem not in stems
    )
