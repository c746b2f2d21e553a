"""Output names: `<stem>.png`, made unique when originals share a stem (`a.jpg` + `a.png`)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import PurePath


@dataclass(frozen=True)
class OutputName:
    """The stem an original's output gets, and why it is not simply the original's stem."""

    stem: str
    reason: str | None = None


def output_names(sources: list[PurePath], kept: dict[PurePath, str]) -> dict[PurePath, OutputName]:
    """A unique output stem for each source (paths relative to their folder of originals).

    A source that already has an output keeps its stem (`kept`), so adding a picture never
    renames another one's output or separates it from its caption. Otherwise a source whose
    stem is unique keeps it; stems that collide (compared case-insensitively, as Windows and
    macOS do) get their subfolder and, if still needed, their extension: `a.png` + `sub/a.png`
    → `a`, `sub_a`; `a.jpg` + `a.png` → `a_jpg`, `a_png`. Deterministic for the same folder.
    """
    by_stem: dict[str, list[PurePath]] = defaultdict(list)
    for source in sources:
        by_stem[source.stem.casefold()].append(source)
    taken: set[str] = set()
    names: dict[PurePath, OutputName] = {}
    for source in sources:
        stem = kept.get(source)
        if stem is not None and stem.casefold() not in taken:
            taken.add(stem.casefold())
            names[source] = OutputName(stem, _reason(source, stem))
    for source in sources:
        if source in names:
            continue
        group = by_stem[source.stem.casefold()]
        stem = _unique(_disambiguated(source, group), taken)
        taken.add(stem.casefold())
        names[source] = OutputName(stem, _reason(source, stem, group))
    return names


def _disambiguated(source: PurePath, group: list[PurePath]) -> str:
    """The source's stem, or a longer one that tells it apart from the others in `group`."""
    if len(group) == 1:
        return source.stem
    with_folder = {member: "_".join([*member.parent.parts, member.stem]) for member in group}
    name = with_folder[source]
    if sum(other.casefold() == name.casefold() for other in with_folder.values()) == 1:
        return name
    return f"{name}_{source.suffix[1:].lower()}"


def _unique(stem: str, taken: set[str]) -> str:
    candidate, number = stem, 2
    while candidate.casefold() in taken:
        candidate, number = f"{stem}_{number}", number + 1
    return candidate


def _reason(source: PurePath, stem: str, group: list[PurePath] | None = None) -> str | None:
    if stem == source.stem:
        return None
    others = [other.as_posix() for other in group or [] if other != source]
    if others:
        return f"its name is shared with {', '.join(others)}"
    return "the name it was given when another original shared it"
