"""`prepare`: the user's originals → `dataset/train/<repeats>_<trigger>/` and `dataset/reg/<repeats>_reg/`.

Phases: check the folders of originals → follow a renamed concept folder → decide, per
original, its output name and whether it must be (re)made → prepare the target set →
prepare the regularization set, keeping target pictures out of it (D2) → report missing
originals and duplicates → count (D1, D2) → save the manifest and `reports/prep.json`.
"""

from __future__ import annotations

import os
import sys
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path, PurePath, PurePosixPath
from typing import Any

from gafu import recipe
from gafu.config import SETS, SetName
from gafu.errors import GafuError, os_error_message
from gafu.images import SOURCE_SUFFIXES, list_source_pictures, near_duplicate_pairs
from gafu.layout import CAPTION_SUFFIX, PICTURE_SUFFIX
from gafu.prep.manifest import Manifest, ManifestEntry, load_manifest, save_manifest
from gafu.prep.names import output_names
from gafu.prep.settings import PrepSettings, resolve_settings
from gafu.prep.work import (
    PictureJob,
    PictureResult,
    TargetHashes,
    TargetMatch,
    find_target_duplicate,
    ignore_interrupts,
    phash_from_hex,
    prepare_picture,
)
from gafu.project import Project
from gafu.reports import write_report

Progress = Callable[[int, int], None]  # (pictures handled so far, pictures in all)
Row = dict[str, Any]


@dataclass
class PrepSummary:
    """What one prep run did: the summary printed, `--json` and `reports/prep.json`."""

    settings: PrepSettings
    sets: dict[str, dict[str, int]] = field(default_factory=dict)  # per set: counts
    prepared: list[Row] = field(default_factory=list)
    skipped: list[Row] = field(default_factory=list)  # with a reason: unchanged, dropped (D2)
    failed: list[Row] = field(default_factory=list)
    duplicates: list[Row] = field(default_factory=list)  # within a set: exact or near
    reg_duplicates: list[Row] = field(default_factory=list)  # D2: target pictures found in reg
    upscaled: list[Row] = field(default_factory=list)  # by more than settings.upscale_warn
    cropped: list[Row] = field(default_factory=list)
    renamed: list[Row] = field(default_factory=list)  # outputs not named after their original
    missing: list[Row] = field(default_factory=list)  # originals gone; outputs kept unless pruned
    moved: list[Row] = field(default_factory=list)  # concept folders renamed (repeats/trigger)
    warnings: list[str] = field(default_factory=list)
    report_path: str = ""

    @property
    def exit_code(self) -> int:
        """1 when any picture failed, else 0."""
        return 1 if self.failed else 0

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for `--json` and the report)."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["settings"] = self.settings.to_dict()
        data["exit_code"] = self.exit_code
        return data


def prepare(
    project: Project,
    settings: PrepSettings | None = None,
    *,
    prune: bool = False,
    workers: int = 0,
    on_progress: Progress | None = None,
) -> PrepSummary:
    """Prepare every original of the project's sets (only what changed), and report what was done.

    `workers`: processes (0 = `prep.workers` in gafu.toml, and if that is 0, every core).
    Raises GafuError for what stops the whole run (a missing or empty folder, a full disk, a
    read-only dataset folder); everything prepared until then is kept and recorded.
    """
    settings = settings or resolve_settings(project)
    originals = {which: _list_originals(project, which) for which in SETS if project.source_dir(which)}
    manifest = load_manifest(project.prep_manifest_path)
    summary = PrepSummary(settings=settings)
    for which in originals:
        _follow_concept_folder(project, which, manifest, summary)
    plans = {
        which: _plan_set(project, which, found, manifest, settings, summary)
        for which, found in originals.items()
    }
    total = sum(len(plan.current) for plan in plans.values())
    recorder = _Recorder(project, manifest, summary, _ProgressCounter(on_progress, total))
    try:
        with _Workers(_worker_count(workers or project.config.prep.workers, plans)) as pool:
            for which, plan in plans.items():
                recorder.progress.advance(len(plan.unchanged))
                summary.skipped.extend(_skip_row(which, manifest, key) for key in plan.unchanged)
                jobs = plan.jobs
                if which == "reg":  # D2: reg workers check each picture against the target set
                    hashes = _target_hashes(project, manifest)
                    jobs = [_with_target_hashes(job, hashes) for job in jobs]
                pool.run(jobs, recorder)
                if recorder.fatal is not None:
                    raise recorder.fatal
    finally:
        save_manifest(manifest, project.prep_manifest_path)  # keep what was done, even on a fatal error
    if "reg" in plans:
        _remove_reg_duplicates(project, manifest, summary)
    for which, plan in plans.items():
        _handle_missing(project, which, plan, manifest, summary, prune=prune)
        _find_duplicates(which, manifest, summary)
    _count(project, plans, summary)
    _sort_rows(summary)
    save_manifest(manifest, project.prep_manifest_path)
    report = write_report(project.reports_dir, "prep", summary.to_dict())
    summary.report_path = report.as_posix()
    return summary


# --- the folders of originals ----------------------------------------------------------------


def _list_originals(project: Project, which: SetName) -> list[Path]:
    """The set's originals; a missing, non-folder or picture-less folder stops the run."""
    folder = project.source_dir(which)
    key = f"sources.{which}"
    if not folder.exists():
        raise GafuError(
            f"the {_set_title(which)} folder {folder} does not exist",
            path=folder,
            hint=f"fix {key} in {project.config_path}",
        )
    if not folder.is_dir():
        raise GafuError(
            f"the {_set_title(which)} folder {folder} is a file, not a folder",
            path=folder,
            hint=f"fix {key} in {project.config_path}",
        )
    try:
        found = list_source_pictures(folder)
    except OSError as exc:
        raise os_error_message(exc, folder, "read") from exc
    dataset = project.dataset_dir.resolve()
    found = [path for path in found if dataset not in path.resolve().parents]  # never its own outputs
    if not found:
        kinds = " ".join(sorted(SOURCE_SUFFIXES))
        raise GafuError(
            f"the {_set_title(which)} folder {folder} holds no pictures ({kinds})",
            path=folder,
            hint=f"add pictures or fix {key} in {project.config_path}",
        )
    return found


def _set_title(which: SetName) -> str:
    return "target" if which == "target" else "regularization"


def _follow_concept_folder(
    project: Project, which: SetName, manifest: Manifest, summary: PrepSummary
) -> None:
    """Rename the set's concept folder when the repeats or trigger changed, so captions move with it."""
    current = _relative(project, project.concept_dir(which))
    old = {
        str(PurePosixPath(key).parent)
        for key, entry in manifest.entries.items()
        if entry.set == which and str(PurePosixPath(key).parent) != current
    }
    if not old:
        return
    for folder in sorted(old):
        old_dir, new_dir = project.root / folder, project.concept_dir(which)
        if old_dir.is_dir() and new_dir.exists():
            raise GafuError(
                f"{old_dir} (made by an earlier prep) and {new_dir} both exist",
                path=old_dir,
                hint=f"keep one: move the captions you want into {new_dir.name} and delete the other",
            )
        if old_dir.is_dir():
            try:
                old_dir.rename(new_dir)
            except OSError as exc:
                raise os_error_message(exc, old_dir, "rename") from exc
            summary.moved.append({"set": which, "from": folder, "to": current})
    for key in [key for key, entry in manifest.entries.items() if entry.set == which]:
        if str(PurePosixPath(key).parent) in old:
            manifest.entries[f"{current}/{PurePosixPath(key).name}"] = manifest.entries.pop(key)


# --- what to do for each original ------------------------------------------------------------


@dataclass
class _SetPlan:
    """One set's originals, their outputs, and which of them need work."""

    which: SetName
    current: dict[str, Path] = field(default_factory=dict)  # output key → original
    unchanged: list[str] = field(default_factory=list)  # output keys skipped without opening
    jobs: list[PictureJob] = field(default_factory=list)


def _plan_set(
    project: Project,
    which: SetName,
    originals: list[Path],
    manifest: Manifest,
    settings: PrepSettings,
    summary: PrepSummary,
) -> _SetPlan:
    """Name each original's output and decide whether it can be skipped (same content and settings)."""
    folder = project.source_dir(which)
    concept = project.concept_dir(which)
    relative = [PurePath(path.relative_to(folder)) for path in originals]
    by_source = {entry.source: key for key, entry in manifest.entries.items() if entry.set == which}
    kept = {
        rel: PurePosixPath(by_source[path.as_posix()]).stem
        for rel, path in zip(relative, originals, strict=True)
        if path.as_posix() in by_source
    }
    names = output_names(relative, kept)
    plan = _SetPlan(which)
    for rel, source in zip(relative, originals, strict=True):
        name = names[rel]
        output = concept / f"{name.stem}{PICTURE_SUFFIX}"
        key = _relative(project, output)
        plan.current[key] = source
        if name.reason:
            summary.renamed.append(
                {"set": which, "source": source.as_posix(), "output": key, "reason": name.reason}
            )
        entry = manifest.entries.get(key)
        reusable = entry is not None and entry.set == which and settings.matches(entry.settings)
        if reusable and entry.source == source.as_posix() and _same_stat(entry, source) and output.is_file():
            plan.unchanged.append(key)
            continue
        known = entry.source_sha256 if reusable else None
        plan.jobs.append(PictureJob(which, str(source), str(output), settings, known_sha256=known))
    return plan


def _same_stat(entry: ManifestEntry, source: Path) -> bool:
    """The original's size and modification time are those recorded when it was hashed."""
    try:
        stat = source.stat()
    except OSError:
        return False
    return (entry.source_bytes, entry.source_mtime_ns) == (stat.st_size, stat.st_mtime_ns)


def _relative(project: Project, path: Path) -> str:
    return path.relative_to(project.root).as_posix()


# --- running the work ------------------------------------------------------------------------


class _ProgressCounter:
    def __init__(self, callback: Progress | None, total: int):
        self.callback, self.total, self.done = callback, total, 0

    def advance(self, count: int = 1) -> None:
        self.done += count
        if self.callback is not None and count:
            self.callback(self.done, self.total)


def _worker_count(requested: int, plans: dict[SetName, _SetPlan]) -> int:
    """`requested` processes, or every core the process may use; never more than there is work."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    jobs = max(len(plan.jobs) for plan in plans.values())
    limit = 61 if sys.platform == "win32" else jobs  # Windows' process pools take at most 61 workers
    return max(1, min(requested or cores, jobs, limit))


class _Workers:
    """Runs picture jobs in this process (one worker) or in a pool of spawned processes."""

    def __init__(self, count: int):
        self.count = count
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> _Workers:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def run(self, jobs: list[PictureJob], record: Callable[[PictureResult], bool]) -> None:
        """Prepare `jobs`, passing each result to `record`; stop handing out work once it returns False."""
        if self.count <= 1 or len(jobs) <= 1:
            for job in jobs:
                if not record(prepare_picture(job)):
                    return
            return
        if self._pool is None:  # spawn: what Windows and macOS use, so Linux tests the same path
            self._pool = ProcessPoolExecutor(self.count, get_context("spawn"), initializer=ignore_interrupts)
        futures = [self._pool.submit(prepare_picture, job) for job in jobs]
        pending: set[Future[PictureResult]] = set(futures)
        try:
            for future in as_completed(futures):
                pending.discard(future)
                if not record(_result(future)):
                    break
        finally:
            for future in pending:
                future.cancel()
        for future in pending:  # after a stop: pictures already being written are still recorded
            if not future.cancelled():
                record(_result(future))


def _result(future: Future[PictureResult]) -> PictureResult:
    try:
        return future.result()
    except BrokenProcessPool as exc:
        raise GafuError(
            "a prep worker process died (out of memory?); pictures prepared so far are kept",
            hint="run again with fewer workers, e.g. `gafu prep --workers 2`",
        ) from exc


def _with_target_hashes(job: PictureJob, hashes: TargetHashes) -> PictureJob:
    return PictureJob(job.set, job.source, job.output, job.settings, job.known_sha256, hashes)


def _target_hashes(project: Project, manifest: Manifest) -> TargetHashes:
    """Content and perceptual hashes of the target pictures in the dataset."""
    entries = [
        e for key, e in manifest.entries.items() if e.set == "target" and (project.root / key).is_file()
    ]
    return TargetHashes(
        exact={e.source_sha256: e.source for e in entries},
        perceptual={e.source: e.source_phash for e in entries if e.source_phash},
    )


# --- recording results -----------------------------------------------------------------------


class _Recorder:
    """Books each result into the manifest and the summary, and remembers an error that stops the run."""

    def __init__(
        self, project: Project, manifest: Manifest, summary: PrepSummary, progress: _ProgressCounter
    ):
        self.project, self.manifest, self.summary, self.progress = project, manifest, summary, progress
        self.fatal: GafuError | None = None

    def __call__(self, result: PictureResult) -> bool:
        """Record one result; False when no further picture should be started."""
        job = result.job
        key = _relative(self.project, Path(job.output))
        source = Path(job.source).as_posix()
        self.progress.advance()
        if result.status == "done":
            _record_done(self.project, key, result, self.manifest, self.summary)
        elif result.status == "unchanged":  # touched, same content: only the recorded stat changes
            entry = self.manifest.entries[key]
            entry.source = source
            entry.source_bytes, entry.source_mtime_ns = result.source_stat
            self.summary.skipped.append(_skip_row(job.set, self.manifest, key))
        elif result.status == "reg-duplicate":
            assert result.match is not None
            _reg_duplicate(self.project, key, source, result.match, self.manifest, self.summary)
        elif result.status == "failed":
            self.summary.failed.append({"set": job.set, "source": source, "reason": result.message})
        else:  # fatal: a full disk or a read-only folder fails every picture alike
            self.fatal = self.fatal or GafuError(result.message)
        return self.fatal is None


def _record_done(
    project: Project, key: str, result: PictureResult, manifest: Manifest, summary: PrepSummary
) -> None:
    entry = result.entry
    assert entry is not None
    previous = manifest.entries.get(key)
    caption = (project.root / key).with_suffix(CAPTION_SUFFIX)
    if previous and previous.source_sha256 != entry.source_sha256 and caption.is_file():
        entry.notes.append("caption kept from the earlier picture: re-tag it if it no longer fits")
    manifest.entries[key] = entry
    summary.warnings.extend(f"{entry.source}: {note}" for note in entry.notes if note.startswith("animated"))
    summary.prepared.append(
        {
            "set": entry.set,
            "source": entry.source,
            "output": key,
            "size": list(entry.output_size),
            "bars": entry.bars,
            "scale": entry.scale,
            "crop": list(entry.crop) if entry.crop else None,
            "notes": entry.notes,
        }
    )
    if entry.scale > summary.settings.upscale_warn:
        summary.upscaled.append(
            {"set": entry.set, "output": key, "source": entry.source, "scale": entry.scale}
        )
    if entry.crop:
        width, height = entry.source_size
        kept = (entry.crop[2] - entry.crop[0]) * (entry.crop[3] - entry.crop[1])
        summary.cropped.append(
            {
                "set": entry.set,
                "output": key,
                "source": entry.source,
                "crop": list(entry.crop),
                "percent": round(100 * (1 - kept / (width * height)), 1),
            }
        )


def _skip_row(which: SetName, manifest: Manifest, key: str) -> Row:
    entry = manifest.entries[key]
    return {
        "set": which,
        "source": entry.source,
        "output": key,
        "reason": "unchanged (same original and settings)",
    }


# --- D2: no target picture in the regularization set -------------------------------------------


def _remove_reg_duplicates(project: Project, manifest: Manifest, summary: PrepSummary) -> None:
    """Check reg pictures prepared earlier against today's target set (a target may be new)."""
    hashes = _target_hashes(project, manifest)
    for key, entry in sorted(manifest.entries.items()):
        if entry.set != "reg":
            continue
        match = find_target_duplicate(entry.source_sha256, entry.source_phash, hashes)
        if match is not None:
            _reg_duplicate(project, key, entry.source, match, manifest, summary)


def _reg_duplicate(
    project: Project, key: str, source: str, match: TargetMatch, manifest: Manifest, summary: PrepSummary
) -> None:
    """A reg original that is a target picture: never in the dataset; an error unless dropping (D2)."""
    removed = _remove_output(project.root / key) if manifest.entries.pop(key, None) else False
    drop = summary.settings.on_reg_duplicate == "drop"
    summary.reg_duplicates.append(
        {
            "target": match.target,
            "reg": source,
            "kind": match.kind,
            "distance": match.distance,
            "action": "dropped" if drop else "error",
            "output_removed": key if removed else None,
        }
    )
    what = "a copy of" if match.kind == "exact" else f"a near-duplicate (distance {match.distance}) of"
    if drop:
        reason = f"{what} target picture {match.target}: dropped from reg (RECIPE D2)"
        summary.skipped.append({"set": "reg", "source": source, "output": key, "reason": reason})
        return
    reason = (
        f"{source} is {what} target picture {match.target}, and the regularization set must not "
        "contain target pictures (RECIPE D2); remove it from the regularization folder, or pass "
        '--drop-reg-duplicates (prep.on_reg_duplicate = "drop")'
    )
    summary.failed.append({"set": "reg", "source": source, "reason": reason})


def _remove_output(output: Path) -> bool:
    """Delete a prepared picture (never its caption); True if there was one."""
    try:
        output.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise os_error_message(exc, output, "delete") from exc
    return True


# --- originals that disappeared, duplicates, counts ------------------------------------------


def _handle_missing(
    project: Project, which: SetName, plan: _SetPlan, manifest: Manifest, summary: PrepSummary, *, prune: bool
) -> None:
    """Report outputs whose original is gone; keep them unless pruning (captions always stay)."""
    for key in sorted(k for k, e in manifest.entries.items() if e.set == which and k not in plan.current):
        entry = manifest.entries[key]
        output = project.root / key
        if not output.is_file():
            del manifest.entries[key]  # both gone: only bookkeeping is left
            continue
        caption = output.with_suffix(CAPTION_SUFFIX)
        if prune:
            _remove_output(output)
            del manifest.entries[key]
        summary.missing.append(
            {
                "set": which,
                "source": entry.source,
                "output": key,
                "pruned": prune,
                "caption_kept": _relative(project, caption) if caption.is_file() else None,
            }
        )


def _find_duplicates(which: SetName, manifest: Manifest, summary: PrepSummary) -> None:
    """Exact (same content) and near (perceptual hash) duplicates within one set."""
    entries = {e.source: e for e in manifest.entries.values() if e.set == which}
    by_content: dict[str, list[str]] = defaultdict(list)
    for source, entry in sorted(entries.items()):
        by_content[entry.source_sha256].append(source)
    for sources in by_content.values():
        summary.duplicates.extend(
            {"set": which, "kind": "exact", "a": sources[0], "b": other, "distance": 0}
            for other in sources[1:]
        )
    hashes = {source: phash_from_hex(e.source_phash) for source, e in entries.items() if e.source_phash}
    for a, b, distance in near_duplicate_pairs(hashes):
        if entries[a].source_sha256 != entries[b].source_sha256:
            summary.duplicates.append({"set": which, "kind": "near", "a": a, "b": b, "distance": distance})


def _count(project: Project, plans: dict[SetName, _SetPlan], summary: PrepSummary) -> None:
    """Per-set counts, and the recipe's warnings about them (D1, D2)."""
    in_dataset = {which: len(project.pictures(which)) for which in SETS}
    for which, plan in plans.items():
        summary.sets[which] = {
            "originals": len(plan.current),
            "prepared": sum(1 for row in summary.prepared if row["set"] == which),
            "unchanged": sum(
                1 for row in summary.skipped if row["set"] == which and row["reason"].startswith("unchanged")
            ),
            "failed": sum(1 for row in summary.failed if row["set"] == which),
            "dropped": sum(
                1 for row in summary.reg_duplicates if which == "reg" and row["action"] == "dropped"
            ),
            "in_dataset": in_dataset[which],
        }
    target, reg = in_dataset["target"], in_dataset["reg"]
    if target < recipe.TARGET_MIN_PICTURES:
        summary.warnings.append(
            f"the target set has {_pictures(target)}; {recipe.TARGET_MIN_PICTURES} or more is typical "
            "(RECIPE D1) — add more of the style if you have them"
        )
    low, high = recipe.REG_TO_TARGET_RATIO
    if "reg" not in plans:
        summary.warnings.append(
            "no regularization set: the style will leak into every tag of the target set (RECIPE D2); "
            "set sources.reg in gafu.toml"
        )
    elif target and not low * target <= reg <= high * target:
        summary.warnings.append(
            f"the regularization set has {_pictures(reg)} for {_pictures(target)} in the target set; "
            f"about as many ({low:g}–{high:g}×) is the recipe (RECIPE D2)"
        )


def _pictures(count: int) -> str:
    return f"{count} picture" if count == 1 else f"{count} pictures"


def _sort_rows(summary: PrepSummary) -> None:
    """Rows in a stable order (workers finish in any order)."""
    for rows in (summary.prepared, summary.skipped, summary.failed, summary.upscaled, summary.cropped):
        rows.sort(key=lambda row: (SETS.index(row["set"]), row["source"]))
