"""The caption journal (`.gafu/journal/`): every `gafu tags` edit, recorded so `gafu tags undo` reverts it.

An entry holds, for each caption the edit changed, its exact text before and after (BOM and
CRLF included), so undo restores the files byte for byte. The entry is written *before* the
captions; if a caption write then fails, the captions already written are restored and the
entry is dropped (or, where a restore failed too, narrowed to the captions left changed).
An entry may therefore list a caption that still holds its earlier text; undo skips those.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gafu.captions.dataset import relative_name
from gafu.errors import GafuError, os_error_message
from gafu.fsio import read_json, write_bytes_atomic, write_json_atomic
from gafu.project import Project

JOURNAL_VERSION = 1
_ENTRY_NAME = re.compile(r"^(\d{6,})\.json$")


@dataclass(frozen=True)
class TextWrite:
    """One file going from `old` text to `new` text."""

    path: Path
    old: str
    new: str


class WriteFailed(GafuError):
    """A write of a batch failed; `left_changed` are the writes that stayed done (their restore failed)."""

    def __init__(self, cause: GafuError, left_changed: list[TextWrite]):
        self.left_changed = left_changed
        super().__init__(str(cause), path=cause.path)


def write_all_or_restore(writes: list[TextWrite]) -> None:
    """Write every file atomically; on a failure put back those already written, then raise WriteFailed."""
    done: list[TextWrite] = []
    try:
        for write in writes:
            _write_text(write.path, write.new)
            done.append(write)
    except BaseException as exc:
        left = _restore(done)
        if isinstance(exc, GafuError):
            raise WriteFailed(exc, left) from exc
        raise


def _write_text(path: Path, text: str) -> None:
    # surrogateescape: a caption that stopped being UTF-8 since an edit is still restored byte for byte
    write_bytes_atomic(path, text.encode("utf-8", errors="surrogateescape"))


def _restore(done: list[TextWrite]) -> list[TextWrite]:
    """Write back the old text of `done`, newest first; returns those that could not be restored."""
    left = []
    for write in reversed(done):
        try:
            _write_text(write.path, write.old)
        except GafuError:
            left.append(write)
    return left


# --- entries ---------------------------------------------------------------------------------
@dataclass
class JournalChange:
    """A caption an edit changed: its path relative to the project, text before and after."""

    path: str
    before: str
    after: str


@dataclass
class JournalEntry:
    """One recorded edit."""

    id: int
    action: str  # the edit as the user gave it, e.g. `add censored --set both`
    written_at: str
    changes: list[JournalChange] = field(default_factory=list)


def entry_path(project: Project, entry_id: int) -> Path:
    """`.gafu/journal/<id>.json`."""
    return project.journal_dir / f"{entry_id:06d}.json"


def entry_ids(project: Project) -> list[int]:
    """Ids of the recorded edits, oldest first."""
    folder = project.journal_dir
    if not folder.is_dir():
        return []
    return sorted(int(m.group(1)) for p in folder.iterdir() if (m := _ENTRY_NAME.match(p.name)))


def list_entries(project: Project) -> list[JournalEntry]:
    """Every recorded edit, oldest first."""
    return [load_entry(project, i) for i in entry_ids(project)]


def load_entry(project: Project, entry_id: int) -> JournalEntry:
    """Read one entry; a damaged one is a GafuError naming it."""
    path = entry_path(project, entry_id)
    data = read_json(path, what="journal entry")
    try:
        if data["version"] != JOURNAL_VERSION:
            raise KeyError("version")
        changes = [JournalChange(**c) for c in data["changes"]]
        return JournalEntry(
            id=data["id"], action=data["action"], written_at=data["written_at"], changes=changes
        )
    except (KeyError, TypeError) as exc:
        raise GafuError(
            f"journal entry {path} is damaged ({exc})",
            path=path,
            hint="delete it (that edit can then no longer be undone)",
        ) from exc


def _save_entry(project: Project, entry: JournalEntry) -> None:
    write_json_atomic(entry_path(project, entry.id), {"version": JOURNAL_VERSION, **asdict(entry)})


def _delete_entry(project: Project, entry_id: int) -> bool:
    try:
        entry_path(project, entry_id).unlink(missing_ok=True)
    except OSError:
        return False
    return True


def apply_journaled(project: Project, action: str, writes: list[TextWrite]) -> int:
    """Record `writes` as one journal entry, then make them; returns the entry's id.

    On a failed caption write nothing stays changed (the captions already written are restored),
    or, where a restore fails too, the entry lists exactly the captions left changed.
    """
    ids = entry_ids(project)
    entry = JournalEntry(
        id=(ids[-1] + 1) if ids else 1,
        action=action,
        written_at=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        changes=[JournalChange(relative_name(project, w.path), w.old, w.new) for w in writes],
    )
    _save_entry(project, entry)
    try:
        write_all_or_restore(writes)
    except WriteFailed as exc:
        raise _edit_failed(project, entry, exc) from exc
    return entry.id


def _edit_failed(project: Project, entry: JournalEntry, exc: WriteFailed) -> GafuError:
    if not exc.left_changed:
        _delete_entry(project, entry.id)
        return GafuError(f"{exc}; no caption was changed", path=exc.path)
    left = {relative_name(project, w.path) for w in exc.left_changed}
    entry.changes = [c for c in entry.changes if c.path in left]
    with contextlib.suppress(GafuError):  # else the first entry stays: it lists more, which undo skips
        _save_entry(project, entry)
    return GafuError(
        f"{exc}; {len(left)} caption(s) written before the failure could not be put back",
        path=exc.path,
        hint="`gafu tags undo` reverts them once the folder is writable",
    )


# --- undo ------------------------------------------------------------------------------------
@dataclass
class UndoResult:
    """What `undo_last` reverted (or, with dry_run, would revert)."""

    entry: JournalEntry | None
    restored: list[str] = field(default_factory=list)  # captions given back their earlier text
    missing: list[str] = field(default_factory=list)  # captions deleted since the edit (left alone)
    dry_run: bool = False


def undo_last(project: Project, *, force: bool = False, dry_run: bool = False) -> UndoResult:
    """Revert the latest recorded edit; again for the one before it, and so on.

    A caption changed since the edit (by hand, or by `gafu tag`) is not overwritten unless
    `force`. Entries with nothing left to revert are dropped on the way.
    """
    for entry_id in reversed(entry_ids(project)):
        entry = load_entry(project, entry_id)
        restores, missing, changed_since = _plan_undo(project, entry)
        if changed_since and not force:
            raise GafuError(
                f"{len(changed_since)} caption(s) changed since edit {entry.id} ({entry.action}), "
                f"e.g. {changed_since[0]}; undo would overwrite those changes",
                path=project.root / changed_since[0],
                hint="look at them with `gafu tags show`, or pass --force to restore them anyway",
            )
        if not restores:
            if not dry_run:
                _delete_entry(project, entry.id)
            continue
        if not dry_run:
            try:
                write_all_or_restore(restores)
            except WriteFailed as exc:
                if not exc.left_changed:
                    raise GafuError(f"{exc}; undo did not change anything", path=exc.path) from exc
                raise GafuError(
                    f"{exc}; {len(exc.left_changed)} caption(s) were already restored",
                    path=exc.path,
                    hint="run `gafu tags undo` again once the folder is writable, to restore the rest",
                ) from exc
            # If this fails the entry stays, harmlessly: its captions hold their earlier text now.
            _delete_entry(project, entry.id)
        names = [relative_name(project, w.path) for w in restores]
        return UndoResult(entry=entry, restored=names, missing=missing, dry_run=dry_run)
    return UndoResult(entry=None, dry_run=dry_run)


def _plan_undo(project: Project, entry: JournalEntry) -> tuple[list[TextWrite], list[str], list[str]]:
    """(writes that revert the entry, captions missing now, captions changed since the edit)."""
    restores, missing, changed_since = [], [], []
    for change in entry.changes:
        path = project.root / change.path
        current = _current_text(path)
        if current is None:
            missing.append(change.path)
        elif current == change.before:
            continue  # already holds its earlier text
        elif current == change.after:
            restores.append(TextWrite(path, current, change.before))
        else:
            changed_since.append(change.path)
            restores.append(TextWrite(path, current, change.before))
    return restores, missing, changed_since


def _current_text(path: Path) -> str | None:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise os_error_message(exc, path, "read") from exc
    return raw.decode("utf-8", errors="surrogateescape")
