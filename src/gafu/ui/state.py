"""What each stage has done in a project and whether it is stale, from the files on disk.

A stage is `todo` (nothing yet), `partial`, `done`, `stale` (done, but something it read has
changed since: its output is older than its inputs), or `running` (training only). Times are
file modification times, so the state needs no bookkeeping of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from gafu.config import SETS
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
    config_time = _mtime(project.config_path)
    states = [
        _prep_state(project, len(pictures)),
        _tag_state(pictures),
        _report_state(project, "check", max(dataset_time, config_time), bool(pictures)),
        _report_state(project, "plan", max(dataset_time, config_time), bool(pictures)),
        _train_state(project, training, max(dataset_time, config_time)),
        _sample_state(project),
    ]
    return [asdict(s) for s in states]


def _prep_state(project: Project, count: int) -> StageState:
    if not count:
        return StageState("prep", "todo", "no prepared pictures yet")
    manifest_time = _mtime(project.prep_manifest_path)
    sources = []
    for which in SETS:
        folder = project.source_dir(which)
        if folder is not None and folder.is_dir():
            wanted = set_selection(project.config, which).wants  # a pool's other pictures do not count
            sources += [p for p in list_source_pictures(folder) if wanted(p.relative_to(folder).as_posix())]
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


def _report_state(project: Project, stage: str, inputs_time: float, ready: bool) -> StageState:
    report = project.reports_dir / f"{stage}.json"
    if not report.exists():
        return StageState(stage, "todo", "not run yet" if ready else "prepare pictures first")
    if _mtime(report) < inputs_time:
        return StageState(stage, "stale", "the dataset or gafu.toml changed since it ran")
    return StageState(stage, "done", f"reports/{stage}.json")


def _train_state(project: Project, training: bool, inputs_time: float) -> StageState:
    if training:
        return StageState("train", "running", "a training run is in progress")
    final = project.output_dir / f"{project.output_name}.safetensors"
    saved = sorted(project.output_dir.glob(f"{project.output_name}-e*.safetensors"))
    if final.exists():
        if _mtime(final) < inputs_time:
            return StageState("train", "stale", "the dataset or gafu.toml changed since the run")
        return StageState("train", "done", final.name)
    if saved:
        return StageState("train", "partial", f"{len(saved)} epoch file(s), no final LoKr yet")
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
