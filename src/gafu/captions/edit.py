"""`gafu tags add/remove/replace/tidy`: batch caption edits that keep the recipe's rules and can be undone.

Every caption an edit writes obeys T3 (the trigger first in target captions, absent from
regularization captions) and holds each tag once; tags match in any spelling (`tag_key`).
An edit first reads every caption it may touch (a caption that cannot be read stops it before
anything is written), works out the change list, then records it in the journal and writes it.
With `dry_run` it only returns the change list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gafu.captions.dataset import (
    CaptionedPicture,
    SetChoice,
    chosen_sets,
    find_picture,
    load_captions,
    raise_unreadable,
    relative_name,
)
from gafu.captions.journal import TextWrite, apply_journaled
from gafu.captions.text import (
    caption_file_text,
    contains_tag,
    remove_tags,
    tag_key,
    tag_to_text,
    with_trigger_first,
)
from gafu.captions.where import TagFilter, parse_where
from gafu.config import SetName
from gafu.errors import GafuError
from gafu.project import Project

# The default `--set` of add/remove/replace: both sets, because T4's tags (censored, bars …)
# belong on both, and a tag fixed on one side only would differ between the sets. T5 edits
# (removing a feature the style should absorb) are target-only and say `--set target`.
DEFAULT_SET: SetChoice = "both"

Transform = Callable[[SetName, list[str]], list[str]]


@dataclass(frozen=True)
class CaptionChange:
    """One caption an edit changes."""

    set: SetName
    picture: str  # path relative to the project folder
    caption_path: Path
    before_text: str
    before: tuple[str, ...]
    after: tuple[str, ...]

    @property
    def after_text(self) -> str:
        """What gafu writes."""
        return caption_file_text(self.after)

    @property
    def added(self) -> list[str]:
        """Tags in the new caption that were not in the old one."""
        return [t for t in self.after if not contains_tag(self.before, t)]

    @property
    def removed(self) -> list[str]:
        """Tags of the old caption that are gone."""
        return [t for t in self.before if not contains_tag(self.after, t)]

    def to_dict(self) -> dict:
        """Plain data for `--json`."""
        return {
            "set": self.set,
            "picture": self.picture,
            "added": self.added,
            "removed": self.removed,
            "before": list(self.before),
            "after": list(self.after),
        }


@dataclass
class EditResult:
    """What an edit changed (or, with dry_run, would change)."""

    action: str
    changes: list[CaptionChange] = field(default_factory=list)
    selected: int = 0  # captioned pictures in the chosen sets that passed --where / --picture
    uncaptioned: list[str] = field(default_factory=list)  # chosen pictures without a caption: skipped
    notes: list[str] = field(default_factory=list)
    journal_id: int | None = None
    dry_run: bool = False

    def count(self, which: SetName) -> int:
        """Captions changed in one set."""
        return sum(1 for c in self.changes if c.set == which)

    def to_dict(self) -> dict:
        """Plain data for `--json`."""
        return {
            "action": self.action,
            "dry_run": self.dry_run,
            "journal_id": self.journal_id,
            "selected": self.selected,
            "changed": {"target": self.count("target"), "reg": self.count("reg")},
            "changes": [c.to_dict() for c in self.changes],
            "uncaptioned": self.uncaptioned,
            "notes": self.notes,
        }


@dataclass(frozen=True)
class Selection:
    """Which captions an edit looks at: `--set`, `--where` and `--picture`."""

    sets: SetChoice = DEFAULT_SET
    where: Sequence[str] = ()
    pictures: Sequence[str | Path] = ()

    def describe(self) -> str:
        """The selection as command-line options, for the journal and the printout."""
        parts = [f"--set {self.sets}"]
        parts += [f"--where {w!r}" for w in self.where]
        parts += [f"--picture {p}" for p in self.pictures]
        return " ".join(parts)


# --- the edits -------------------------------------------------------------------------------
def tags_add(
    project: Project, tags: Sequence[str], selection: Selection | None = None, *, dry_run: bool = False
) -> EditResult:
    """Add `tags` (at the end) to every selected caption that lacks them."""
    selection = selection or Selection()
    new = _tag_arguments(project, tags)
    _refuse_trigger_in_reg(project, new, selection)

    def add(_which: SetName, current: list[str]) -> list[str]:
        return current + [t for t in new if not contains_tag(current, t)]

    return _edit(project, "add " + " ".join(new), selection, add, dry_run=dry_run)


def tags_remove(
    project: Project, tags: Sequence[str], selection: Selection | None = None, *, dry_run: bool = False
) -> EditResult:
    """Remove `tags` (in any spelling) from every selected caption."""
    selection = selection or Selection()
    gone = _tag_arguments(project, tags)
    _refuse_removing_trigger(project, gone, selection)
    return _edit(
        project,
        "remove " + " ".join(gone),
        selection,
        lambda _w, cur: remove_tags(cur, gone),
        dry_run=dry_run,
    )


def tags_replace(
    project: Project, old: str, new: str, selection: Selection | None = None, *, dry_run: bool = False
) -> EditResult:
    """Replace tag `old` by `new` in place; where `new` is already there, just drop `old`."""
    selection = selection or Selection()
    old_tag, new_tag = _tag_arguments(project, [old, new], allow_same=True)
    _refuse_removing_trigger(project, [old_tag], selection)
    _refuse_trigger_in_reg(project, [new_tag], selection)

    def replace(_which: SetName, current: list[str]) -> list[str]:
        if not contains_tag(current, old_tag):
            return current
        key, new_key = tag_key(old_tag), tag_key(new_tag)
        out = []
        for tag in current:
            if tag_key(tag) == key:
                if new_key == key or not contains_tag(current, new_tag):
                    out.append(new_tag)
            else:
                out.append(tag)
        return out

    return _edit(project, f"replace {old_tag} {new_tag}", selection, replace, dry_run=dry_run)


def tags_tidy(project: Project, selection: Selection | None = None, *, dry_run: bool = False) -> EditResult:
    """Rewrite selected captions cleanly: no BOM, one line, no empty or repeated tags, T3 kept."""
    return _edit(
        project, "tidy", selection or Selection(), lambda _w, cur: cur, dry_run=dry_run, compare_text=True
    )


# --- the common path -------------------------------------------------------------------------
def _edit(
    project: Project,
    action: str,
    selection: Selection,
    transform: Transform,
    *,
    dry_run: bool,
    compare_text: bool = False,
) -> EditResult:
    """Select captions, apply `transform` plus the T3 rules, and write (journaled) what changed."""
    action = f"{action} {selection.describe()}"
    result = EditResult(action=action, dry_run=dry_run)
    chosen, result.notes = select_captions(project, selection)
    for item in chosen:
        if not item.has_caption:
            result.uncaptioned.append(relative_name(project, item.picture.path))
            continue
        result.selected += 1
        after = keep_recipe_rules(
            item.set, transform(item.set, list(item.tags)), project.config.project.trigger
        )
        unchanged = caption_file_text(after) == item.text if compare_text else list(after) == list(item.tags)
        if not unchanged:
            result.changes.append(
                CaptionChange(
                    set=item.set,
                    picture=relative_name(project, item.picture.path),
                    caption_path=item.picture.caption_path,
                    before_text=item.text or "",
                    before=tuple(item.tags),
                    after=tuple(after),
                )
            )
    if result.changes and not dry_run:
        writes = [TextWrite(c.caption_path, c.before_text, c.after_text) for c in result.changes]
        result.journal_id = apply_journaled(project, action, writes)
    return result


def keep_recipe_rules(which: SetName, tags: Iterable[str], trigger: str) -> list[str]:
    """T3 on a caption about to be written: trigger first on target, absent on reg; each tag once."""
    unique: list[str] = []
    for tag in tags:
        if tag.strip() and not contains_tag(unique, tag):
            unique.append(tag)
    if not trigger:
        return unique
    return with_trigger_first(unique, trigger) if which == "target" else remove_tags(unique, [trigger])


def select_captions(project: Project, selection: Selection) -> tuple[list[CaptionedPicture], list[str]]:
    """The pictures an edit looks at, and notes on the selection (e.g. a --where tag no caption has)."""
    captioned = load_captions(project, chosen_sets(selection.sets))
    raise_unreadable(captioned)
    notes: list[str] = []
    if selection.pictures:
        wanted = {find_picture(project, name).path for name in selection.pictures}
        captioned = [c for c in captioned if c.picture.path in wanted]
        if not captioned:
            raise GafuError("the pictures given with --picture are not in the chosen --set")
    if selection.where:
        where = parse_where(selection.where)
        notes += _unknown_where_tags(where, captioned)
        captioned = [c for c in captioned if c.has_caption and where.matches(c.tags)]
    return captioned, notes


def _unknown_where_tags(where: TagFilter, captioned: list[CaptionedPicture]) -> list[str]:
    present = {tag_key(t) for c in captioned for t in c.tags}
    return [
        f"--where: no caption has the tag {key!r} (inside --where, write spaces in a tag as _)"
        for key in sorted(where.keys - present)
    ]


def _tag_arguments(project: Project, tags: Sequence[str], *, allow_same: bool = False) -> list[str]:
    """The tags as gafu writes them (`long_hair` → `long hair`); empty or comma-holding ones refused."""
    if not tags:
        raise GafuError("no tag given")
    escape = project.config.tag.escape_parentheses
    out: list[str] = []
    for raw in tags:
        if any(ch in raw for ch in ",\r\n"):
            raise GafuError(f"{raw!r} holds a comma or line break", hint="give each tag as its own argument")
        text = tag_to_text(raw, escape_parentheses=escape)
        if not text:
            raise GafuError("an empty tag was given", hint="check the quotes on the command line")
        if allow_same or not contains_tag(out, text):
            out.append(text)
    return out


def _names_trigger(tags: Iterable[str], trigger: str) -> bool:
    return bool(trigger) and contains_tag(tags, trigger)


def _refuse_trigger_in_reg(project: Project, tags: Iterable[str], selection: Selection) -> None:
    trigger = project.config.project.trigger
    if _names_trigger(tags, trigger) and "reg" in chosen_sets(selection.sets):
        raise GafuError(
            f"the trigger {trigger!r} never goes in a regularization caption (RECIPE T3)",
            hint="to put it first in the target captions, add --set target",
        )


def _refuse_removing_trigger(project: Project, tags: Iterable[str], selection: Selection) -> None:
    trigger = project.config.project.trigger
    if _names_trigger(tags, trigger) and "target" in chosen_sets(selection.sets):
        raise GafuError(
            f"the trigger {trigger!r} stays first in every target caption (RECIPE T3)",
            hint="to take it out of regularization captions, add --set reg; to change the trigger, "
            "edit [project] trigger in gafu.toml, then `gafu tags replace OLD NEW --set target`",
        )
