"""The captions of a prepared dataset, read once for `gafu tags` and `gafu check`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gafu.captions.text import CaptionFile, caption_from_bytes
from gafu.config import SETS, SetName
from gafu.errors import GafuError, os_error_message
from gafu.layout import DatasetPicture
from gafu.project import Project

SetChoice = Literal["target", "reg", "both"]
SET_CHOICES: tuple[SetChoice, ...] = ("target", "reg", "both")


def chosen_sets(choice: SetChoice) -> tuple[SetName, ...]:
    """The sets a `--set` choice names."""
    if choice not in SET_CHOICES:
        raise GafuError(f"unknown set {choice!r}", hint="use target, reg or both")
    return SETS if choice == "both" else (choice,)


@dataclass
class CaptionedPicture:
    """A prepared picture with its caption as found on disk."""

    picture: DatasetPicture
    text: str | None = None  # the caption file's exact text (BOM and CRLF kept); None: no caption
    caption: CaptionFile | None = None
    error: GafuError | None = None  # the caption could not be read (not UTF-8, unreadable)

    @property
    def set(self) -> SetName:
        """`"target"` or `"reg"`."""
        return self.picture.set

    @property
    def tags(self) -> list[str]:
        """The caption's tags (empty when there is no readable caption)."""
        return self.caption.tags if self.caption else []

    @property
    def has_caption(self) -> bool:
        """True when a readable caption file exists."""
        return self.caption is not None


def read_picture_caption(picture: DatasetPicture) -> CaptionedPicture:
    """The caption beside `picture`; an unreadable one is kept as `error`, not raised."""
    path = picture.caption_path
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return CaptionedPicture(picture)
    except OSError as exc:
        return CaptionedPicture(picture, error=os_error_message(exc, path, "read"))
    try:
        caption = caption_from_bytes(raw, path)
    except GafuError as exc:
        return CaptionedPicture(picture, error=exc)
    return CaptionedPicture(picture, text=raw.decode("utf-8"), caption=caption)


def load_captions(project: Project, sets: tuple[SetName, ...] = SETS) -> list[CaptionedPicture]:
    """Every prepared picture of `sets` with its caption, in set then file order."""
    return [read_picture_caption(p) for which in sets for p in project.pictures(which)]


def raise_unreadable(captioned: list[CaptionedPicture]) -> None:
    """Raise the first caption read error: an edit must not start while a caption cannot be read."""
    for item in captioned:
        if item.error is not None:
            raise item.error


def relative_name(project: Project, path: Path) -> str:
    """`path` relative to the project folder, with `/` (how reports and the journal name files)."""
    try:
        return Path(path).resolve().relative_to(project.root).as_posix()
    except ValueError:
        return Path(path).as_posix()


def find_picture(project: Project, name: str | Path) -> DatasetPicture:
    """The prepared picture `name` names: its path or its caption's, `<folder>/<file>`, file name or stem."""
    pictures = [p for which in SETS for p in project.pictures(which)]
    given = Path(name)
    if given.exists():
        wanted = given.resolve()
        for picture in pictures:
            if wanted in (picture.path.resolve(), picture.caption_path.resolve()):
                return picture
    text = given.as_posix().lower()
    matches = [p for p in pictures if text in _names_of(project, p)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise GafuError(
            f"no prepared picture named {name} in {project.dataset_dir}",
            hint="give its file name, `<folder>/<file>` or its path (see `gafu tags stats` for the sets)",
        )
    listing = ", ".join(relative_name(project, p.path) for p in matches[:4])
    raise GafuError(f"{name} names {len(matches)} pictures ({listing})", hint="give `<folder>/<file>`")


def _names_of(project: Project, picture: DatasetPicture) -> set[str]:
    """The names `find_picture` accepts for a picture, lower-case."""
    folder = picture.path.parent.name
    names = {picture.path.name, picture.path.stem, picture.caption_path.name, picture.key}
    names |= {f"{folder}/{picture.path.stem}", f"{folder}/{picture.caption_path.name}"}
    names.add(relative_name(project, picture.path))
    return {n.lower() for n in names}
