"""What each stage has done in a project and whether it is stale, from the files on disk.

A stage is `todo` (nothing yet), `partial`, `done`, `stale` (done, but something it read has
changed since), or `running` (training only). "Changed" is first judged by file modification
times: an output older than its inputs. Inputs can change back (an undo restores the captions a
plan was made from), so the content of the inputs (captions, pictures' sizes and times,
gafu.toml) is fingerprinted whenever an output is seen up to date, in `.gafu/ui/fresh.json`;
an output that only looks older than inputs with that same fingerprint is still `done`.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from gafu.config import SETS
from gafu.errors import GafuError
from gafu.fsio import read_json, write_json_atomic
from gafu.images import list_source_pictures
from gafu.prep.selection import set_selection
from gafu.project import Project

STAGES = ("prep", "tag", "check", "plan", "train", "sample")


@dataclass
class StageState:
    """One stage's status and a short line saying why."""

    name: str
    status: str  # todo, partial, done, stale, running
    detail: str


def newest(paths: Iterable[Path]) -> float:
    """The latest modification time among `paths` (0 when there are none)."""
    times = [p.stat().st_mtime for p in paths if p.exists()]
    return max(times, default=0.0)


def _mtime(path: Path) -> float:
    return path.stat().st_mtime if path.exists() else 0.0


def project_state(project: Project, *, training: bool = False) -> list[dict]:
    """Every stage's state, in workflow order."""
    pictures = [p for which in SETS for p in project.pictures(which)]
    dataset_time = newest([p.path for p in pictures] + [p.caption_path for p in pictures])
    inputs = Inputs(project, pictures, max(dataset_time, _mtime(project.config_path)))
    states = [
        _prep_state(project, len(pictures)),
        _tag_state(pictures),
        _report_state(project, "check", inputs, bool(pictures)),
        _report_state(project, "plan", inputs, bool(pictures)),
        _train_state(project, training, inputs),
        _sample_state(project),
    ]
    inputs.save()
    return [asdict(s) for s in states]


class Inputs:
    """What check, plan and train read (the dataset and gafu.toml): its newest time and fingerprint."""

    def __init__(self, project: Project, pictures: list, newest_time: float):
        self.project, self.pictures, self.time = project, pictures, newest_time
        self.path = project.state_dir / "ui" / "fresh.json"
        self.seen = _read_seen(self.path)
        self._fingerprint: str | None = None
        self.changed = False

    def fingerprint(self) -> str:
        """A hash of every caption's text, every picture's name, size and time, and gafu.toml."""
        if self._fingerprint is None:
            digest = hashlib.sha256(_file_bytes(self.project.config_path))
            for picture in sorted(self.pictures, key=lambda p: p.path):
                stat = picture.path.stat() if picture.path.exists() else None
                stamp = f"{stat.st_size}:{stat.st_mtime_ns}" if stat else "-"
                digest.update(f"{picture.path.relative_to(self.project.root).as_posix()}|{stamp}|".encode())
                digest.update(_file_bytes(picture.caption_path))
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def stale(self, stage: str, output: Path) -> bool:
        """Whether `output` (a stage's report or LoKr) is older than what it was made from."""
        key = f"{stage}:{output.relative_to(self.project.root).as_posix()}"
        output_time = _mtime(output)
        seen = self.seen.get(key)
        if output_time >= self.time:  # up to date: remember what the inputs were
            if seen != [output_time, self.fingerprint()]:
                self.seen[key], self.changed = [output_time, self.fingerprint()], True
            return False
        return seen != [output_time, self.fingerprint()]

    def save(self) -> None:
        """Keep what was seen up to date (bookkeeping: a failure only costs a `stale` later)."""
        if self.changed:
            with contextlib.suppress(GafuError, OSError):
                write_json_atomic(self.path, self.seen)


def _read_seen(path: Path) -> dict[str, list]:
    try:
        data = read_json(path, what="UI state") if path.is_file() else {}
    except GafuError:
        return {}
    return data if isinstance(data, dict) else {}


def _file_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b"\0"


def _prep_state(project: Project, count: int) -> StageState:
    if not count:
        return StageState("prep", "todo", "no prepared pictures yet")
    manifest_time = _mtime(project.prep_manifest_path)
    sources = []
    for which in SETS:
        main, wanted = project.source_dir(which), set_selection(project.config, which).wants
        for folder in project.source_folders(which):
            if folder.is_dir():
                found = list_source_pictures(folder)
                if folder == main:  # [sources] include/exclude name the set's own folder's pictures
                    found = [p for p in found if wanted(p.relative_to(folder).as_posix())]
                sources += found
    if manifest_time and newest(sources) > manifest_time:
        return StageState("prep", "stale", "an original changed since prep ran")
    return StageState("prep", "done", f"{count} pictures prepared")


def _tag_state(pictures: list) -> StageState:
    captioned = sum(1 for p in pictures if p.caption_path.is_file())
    if not pictures or not captioned:
        return StageState("tag", "todo", "no captions yet")
    if captioned < len(pictures):
        return StageState("tag", "partial", f"{captioned} of {len(pictures)} pictures captioned")
    return StageState("tag", "done", f"{captioned} pictures captioned")


def _report_state(project: Project, stage: str, inputs: Inputs, ready: bool) -> StageState:
    report = project.reports_dir / f"{stage}.json"
    if not report.exists():
        return StageState(stage, "todo", "not run yet" if ready else "prepare pictures first")
    if inputs.stale(stage, report):
        return StageState(stage, "stale", "the dataset or gafu.toml changed since it ran")
    return StageState(stage, "done", f"reports/{stage}.json")


def _train_state(project: Project, training: bool, inputs: Inputs) -> StageState:
    from gafu.train.runs import current_run

    if training:
        return StageState("train", "running", "a training run is in progress")
    run = current_run(project.output_dir, project.output_name)
    final = next((f.path for f in run.lokr_files if f.kind == "final"), None)
    if final is not None:
        if inputs.stale("train", final):
            return StageState("train", "stale", "the dataset or gafu.toml changed since the run")
        return StageState("train", "done", final.name)
    if run.resumable:
        return StageState(
            "train", "partial", f"stopped at step {run.saved_step} of {run.total_steps}: resume or start over"
        )
    if run.lokr_files:
        return StageState("train", "partial", f"{len(run.lokr_files)} LoKr file(s), no final LoKr yet")
    return StageState("train", "todo", "no LoKr yet")


def _sample_state(project: Project) -> StageState:
    from gafu.sample.grid import GRID_PREFIX

    grids = list((project.output_dir / "samples").rglob(f"{GRID_PREFIX}*.png"))
    if not grids:
        return StageState("sample", "todo", "no sample grids yet")
    lokr_time = newest(project.output_dir.glob("*.safetensors"))
    if lokr_time > newest(grids):
        return StageState("sample", "stale", "a LoKr is newer than the latest grid")
    return StageState("sample", "done", f"{len(grids)} grid(s)")
