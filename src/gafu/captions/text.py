"""Caption text: tags as trainers and UIs read them, and one matching rule for every stage.

A caption is one line of comma-separated tags (trainers, gafu's and kohya's, read only the
first line; the editing stages keep every line's tags so nothing is lost). Tags are
written with spaces (`long hair`), except kaomoji that are made of underscores (`^_^`).
Two spellings are the same tag when their `tag_key` is equal: underscores vs spaces,
escaped vs plain parentheses and letter case do not matter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from gafu.errors import os_error_message
from gafu.fsio import decode_utf8, write_text_atomic

# Danbooru tags whose underscores are part of the face, not word separators (the WD taggers'
# own list).
KAOMOJI = frozenset(
    {
        "0_0", "(o)_(o)", "+_+", "+_-", "._.", "<o>_<o>", "<|>_<|>", "=_=", ">_<", "3_3",
        "6_9", ">_o", "@_@", "^_^", "o_o", "u_u", "x_x", "|_|", "||_||",
    }
)  # fmt: skip

_SPACES = re.compile(r"\s+")
_LINE_END = re.compile(r"\r\n|\r|\n")  # what Python's text mode (and so sd-scripts) splits lines at
_ESCAPED_PAREN = re.compile(r"\\([()])")


def tag_to_text(tag: str, *, escape_parentheses: bool = False) -> str:
    """A tag as written in a caption: `long_hair` → `long hair`, kaomoji kept, `(`→`\\(` if asked."""
    tag = tag.strip()
    plain = _ESCAPED_PAREN.sub(r"\1", tag)
    text = plain if plain in KAOMOJI else _SPACES.sub(" ", plain.replace("_", " ")).strip()
    if escape_parentheses and text not in KAOMOJI:
        text = text.replace("(", r"\(").replace(")", r"\)")
    return text


def tag_key(tag: str) -> str:
    """The matching key of a tag: spelling differences (`_`/space, `\\(`/`(`, case) removed."""
    return tag_to_text(tag).lower()


def parse_caption(text: str) -> list[str]:
    """Tags of a caption text: split on commas and line ends, blanks dropped, repeats dropped."""
    tags: list[str] = []
    seen: set[str] = set()
    for piece in re.split(r"[,\r\n]", text):
        tag = _SPACES.sub(" ", piece).strip()
        if not tag:
            continue
        key = tag_key(tag)
        if key not in seen:
            seen.add(key)
            tags.append(tag)
    return tags


def format_caption(tags: Iterable[str]) -> str:
    """One caption line: `a, b, c`."""
    return ", ".join(tags)


def contains_tag(tags: Iterable[str], tag: str) -> bool:
    """True when `tags` holds `tag` in any spelling."""
    key = tag_key(tag)
    return any(tag_key(t) == key for t in tags)


def remove_tags(tags: Iterable[str], remove: Iterable[str]) -> list[str]:
    """`tags` without any spelling of the tags in `remove`."""
    keys = {tag_key(t) for t in remove}
    return [t for t in tags if tag_key(t) not in keys]


def with_trigger_first(tags: Iterable[str], trigger: str) -> list[str]:
    """T3: the trigger as the first tag, and nowhere else."""
    return [trigger, *remove_tags(tags, [trigger])]


@dataclass
class CaptionFile:
    """A caption read from disk, with what was wrong with its text (already repaired in `tags`)."""

    path: Path
    tags: list[str]  # every line's tags
    problems: list[str] = field(default_factory=list)
    trained: list[str] = field(default_factory=list)  # the first line's tags: what a trainer reads (P7)


def read_caption(path: Path) -> CaptionFile:
    """Read a caption file, tolerating a BOM, CRLF, trailing commas, blank and repeated tags.

    Each of those is noted in `problems`; text that is not UTF-8 raises a GafuError naming the file.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise os_error_message(exc, path, "read") from exc
    return caption_from_bytes(raw, path)


def caption_from_bytes(raw: bytes, path: Path) -> CaptionFile:
    """`read_caption` on bytes already read from `path` (so a caller can keep the exact text too)."""
    text = decode_utf8(raw, path, what="caption")
    problems = []
    if raw.startswith(b"\xef\xbb\xbf"):
        problems.append("starts with a byte-order mark")
    if "\r" in text:
        problems.append("has Windows (CRLF) line ends")
    all_lines = _LINE_END.split(text)
    lines = [line.strip() for line in all_lines if line.strip()]
    used = max((i + 1 for i, line in enumerate(all_lines) if line.strip()), default=0)
    if used > 1:
        problems.append(f"has {used} lines (trainers, gafu's and kohya's, train only the first line's tags)")
    if any(line.endswith(",") for line in lines):
        problems.append("ends with a comma")
    pieces = [p.strip() for line in lines for p in line.rstrip(",").split(",")]
    if any(not p for p in pieces):
        problems.append("has empty tags")
    tags = parse_caption(text)
    if len([p for p in pieces if p]) != len(tags):
        problems.append("repeats a tag")
    return CaptionFile(path=path, tags=tags, problems=problems, trained=parse_caption(all_lines[0]))


def caption_file_text(tags: Iterable[str]) -> str:
    """The text gafu writes for a caption: one line, `\\n` end."""
    return format_caption(tags) + "\n"


def write_caption(path: Path, tags: Iterable[str]) -> None:
    """Write a caption atomically: one UTF-8 line, no BOM, `\\n` end."""
    write_text_atomic(path, caption_file_text(tags))
