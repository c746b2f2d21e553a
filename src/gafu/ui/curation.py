"""The UI's curation endpoints: pictures set aside (RECIPE D1) and the regularization pick (D2, D3).

Setting aside and bringing back go through `gafu.prep.aside` (gafu.toml's `[sources] exclude`,
files moved to `set-aside/`, nothing deleted); the pick runs `gafu reg pick`'s library
function in a thread of the server, with progress, and writes gafu.toml only when asked.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gafu.errors import GafuError
from gafu.project import Project
from gafu.ui.files import url_of_name
from gafu.ui.jobs import JobConflict


@dataclass
class RegPicker:
    """`gafu reg pick` in a thread of the server, with progress for the page."""

    root: Path
    thread: threading.Thread | None = None
    progress: dict[str, Any] = field(default_factory=lambda: {"state": "idle"})
    result: Any = None  # the last PickResult, for writing it
    guard: threading.Lock = field(default_factory=threading.Lock)

    def start(self, pool: Path, count: int | None) -> None:
        """Tag the pool (cached) and choose; the page polls `progress`."""
        with self.guard:
            if self.thread is not None and self.thread.is_alive():
                raise JobConflict("a regularization pick is already running")
            self.progress = {"state": "running", "done": 0, "total": None, "pool": str(pool)}
            self.result = None
            self.thread = threading.Thread(
                target=self._run, args=(pool, count), name="gafu-ui-reg-pick", daemon=True
            )
            self.thread.start()

    def _run(self, pool: Path, count: int | None) -> None:
        from gafu.reg.pick import PickOptions, pick_regularization
        from gafu.tagging.tag import TagEvents

        def on_start(reference: str, provider: str, total: int) -> None:
            self.progress.update(tagger=reference, provider=provider, total=total)

        def on_progress(done: int) -> None:
            self.progress["done"] += done

        try:
            result = pick_regularization(
                Project.open(self.root), pool, PickOptions(count=count), TagEvents(on_start, on_progress)
            )
        except Exception as exc:  # shown on the page; the CLI gives the same message
            self.progress.update(state="failed", error=str(exc))
            return
        self.result = result
        self.progress.update(state="done", result=result.to_dict())


class CurationEndpoints:
    """Mixed into `gafu.ui.api.Api`: `root`, `project()` and `reg_picker` come from there."""

    root: Path
    reg_picker: RegPicker

    def project(self) -> Project:  # provided by Api
        raise NotImplementedError

    def get_aside(self, query: dict[str, str]) -> dict[str, Any]:
        """The pictures set aside by `[sources] exclude`, with their thumbnails."""
        from gafu.prep.aside import aside_picture
        from gafu.prep.manifest import load_manifest
        from gafu.prep.selection import relative_source

        project = self.project()
        manifest = load_manifest(project.prep_manifest_path)
        pictures = []
        for key, entry in sorted(manifest.aside.items()):
            aside = aside_picture(project, entry.set, key).relative_to(project.root).as_posix()
            pictures.append(
                {
                    "name": key,
                    "set": entry.set,
                    "aside": aside,
                    "original": relative_source(project, entry.set, entry.source) or entry.source,
                    "thumb": url_of_name(aside, "thumb") if (project.root / aside).is_file() else None,
                }
            )
        return {"pictures": pictures}

    def post_aside(self, body: dict[str, Any]) -> dict[str, Any]:
        """Set pictures aside now: their originals go into `[sources] exclude` (undone by restore)."""
        from gafu.prep.aside import set_aside

        return set_aside(self.project(), _names(body)).to_dict()

    def post_aside_restore(self, body: dict[str, Any]) -> dict[str, Any]:
        """Bring set-aside pictures back (their lines leave `[sources] exclude`)."""
        from gafu.prep.aside import bring_back

        return bring_back(self.project(), _names(body)).to_dict()

    def post_reg_pick(self, body: dict[str, Any]) -> dict[str, Any]:
        """Start `gafu reg pick` on a pool folder (`{"pool": "D:/art/pool", "count": 40}`)."""
        pool = str(body.get("pool") or "").strip()
        if not pool:
            raise GafuError("name the pool folder", hint="a folder of candidate pictures in other styles")
        count = body.get("count")
        if count not in (None, ""):
            if not str(count).isdigit() or int(count) < 1:
                raise GafuError(f"count must be a whole number of at least 1, not {count!r}")
            count = int(count)
        else:
            count = None
        folder = Path(pool).expanduser()
        if not folder.is_dir():
            raise GafuError(f"no such folder: {folder}", hint="give the pool's full path")
        self.project()  # a broken gafu.toml is reported now, not from the thread
        self.reg_picker.start(folder.resolve(), count)
        return self.reg_picker.progress

    def get_reg_status(self, query: dict[str, str]) -> dict[str, Any]:
        """The pick's progress, and its result once done."""
        return self.reg_picker.progress

    def post_reg_write(self, body: dict[str, Any]) -> dict[str, Any]:
        """Write the last pick into gafu.toml (`{"copy_to": "D:/art/my-reg"}` copies the pictures first)."""
        from gafu.reg.write import write_choice

        result = self.reg_picker.result
        if result is None:
            raise GafuError("no pick to write yet", hint="run the pick first")
        copy_to = str(body.get("copy_to") or "").strip()
        written = write_choice(self.project(), result, copy_to=Path(copy_to) if copy_to else None)
        return written.to_dict()


def _names(body: dict[str, Any]) -> list[str]:
    names = body.get("pictures")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise GafuError("send the pictures as a list of names", hint='{"pictures": ["dataset/train/…"]}')
    return names
