"""Captions beside the originals (`a.png` + `a.txt`, as kohya datasets have them) carried to the
prepared pictures as their starting captions (D5).

A caption is carried only to a prepared picture that has none yet, so a caption tagged or
edited in gafu is never replaced; the original's caption is copied byte for byte (`gafu check`
lists what a trainer would trip on, `gafu tags tidy` cleans it). T3 still applies: carried
target captions that do not start with the trigger are counted, with the command that fixes them.
"""

from __future__ import annotations

from pathlib import Path

from gafu.captions.text import caption_from_bytes, contains_tag, tag_key
from gafu.config import SetName
from gafu.errors import ConfigError, GafuError, os_error_message
from gafu.fsio import decode_utf8, write_bytes_atomic
from gafu.images import SOURCE_SUFFIXES
from gafu.layout import CAPTION_SUFFIX
from gafu.prep.summary import PrepSummary
from gafu.project import Project


def original_caption_suffixes(project: Project) -> list[str]:
    """`[prep] caption_extensions`, checked: each a suffix such as `.txt`, none a picture's."""
    suffixes = project.config.prep.caption_extensions
    for suffix in suffixes:
        if not suffix.startswith(".") or len(suffix) < 2 or suffix.lower() in SOURCE_SUFFIXES:
            raise ConfigError(
                f"{project.config_path}: prep.caption_extensions has {suffix!r}, which is not a "
                "caption file's extension",
                hint='use extensions with their dot, e.g. [".txt", ".caption"]',
            )
    return suffixes


def caption_beside(original: Path, suffixes: list[str]) -> Path | None:
    """The first caption file beside `original` (`a.png` → `a.txt`), or None."""
    for suffix in suffixes:
        candidate = original.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


def carry_captions(
    project: Project, which: SetName, current: dict[str, Path], suffixes: list[str], summary: PrepSummary
) -> None:
    """Copy each original's caption to its prepared picture where that has no caption yet.

    `current` maps each prepared picture (relative to the project) to its original. A caption
    that cannot be read or is not UTF-8 is reported and left behind (the picture is prepared);
    a failed write stops the run, like a failed picture write.
    """
    for key, original in sorted(current.items()):
        picture = project.root / key
        source = caption_beside(original, suffixes) if picture.is_file() else None
        if source is None:
            continue
        row = {
            "set": which,
            "source": source.as_posix(),
            "output": Path(key).with_suffix(CAPTION_SUFFIX).as_posix(),
        }
        try:
            data = source.read_bytes()
        except OSError as exc:
            summary.caption_failed.append({**row, "reason": str(os_error_message(exc, source, "read"))})
            continue
        caption = picture.with_suffix(CAPTION_SUFFIX)
        if caption.is_file():
            if _read_quietly(caption) != data:  # tagged or edited in gafu: it stays
                summary.captions_kept.append(row)
            continue
        try:
            text = decode_utf8(data, source, what="caption")
        except GafuError as exc:
            summary.caption_failed.append({**row, "reason": f"{exc}; the picture was prepared without it"})
            continue
        if not text.strip():
            continue  # an empty caption carries nothing; `gafu tag` captions the picture
        write_bytes_atomic(caption, data)
        summary.captions_carried.append(row)


def trigger_hints(project: Project, summary: PrepSummary) -> None:
    """T3 on the captions carried this run: the trigger first in target captions, in no reg caption."""
    trigger = project.config.project.trigger
    if not trigger or not summary.captions_carried:
        return
    without, in_reg = 0, 0
    for row in summary.captions_carried:
        path = project.root / row["output"]
        try:
            tags = caption_from_bytes(path.read_bytes(), path).tags
        except (OSError, GafuError):
            continue
        if row["set"] == "target" and (not tags or tag_key(tags[0]) != tag_key(trigger)):
            without += 1
        elif row["set"] == "reg" and contains_tag(tags, trigger):
            in_reg += 1
    if without:
        summary.warnings.append(
            f"{_captions(without)} carried into the target set {_do(without)} not start with the trigger "
            f"{trigger!r} (RECIPE T3): `gafu tags add {trigger} --set target` puts it first in every one"
        )
    if in_reg:
        summary.warnings.append(
            f"{_captions(in_reg)} carried into the regularization set {_have(in_reg)} the trigger "
            f"{trigger!r}, which must be in none (RECIPE T3): "
            f"`gafu tags remove {trigger} --set reg` takes it out"
        )


def _read_quietly(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _captions(count: int) -> str:
    return "1 caption" if count == 1 else f"{count} captions"


def _do(count: int) -> str:
    return "does" if count == 1 else "do"


def _have(count: int) -> str:
    return "has" if count == 1 else "have"
