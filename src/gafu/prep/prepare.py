"""`prepare`: the user's originals → `dataset/train/<repeats>_<trigger>/` and `dataset/reg/<repeats>_reg/`.

Phases: check the folders of originals and sort them by concept folder (D5: kohya's
`<repeats>_<name>` subfolders keep theirs) → follow a renamed concept folder → set aside the
pictures gafu.toml excludes, bring back those it no longer excludes (D1) → decide, per
original, its output name and whether it must be (re)made → prepare the target set, then the
regularization set, keeping target pictures out of it (D2), carrying the captions beside the
originals to pictures without one → report missing originals and duplicates → count (D1, D2)
→ save the manifest and `reports/prep.json`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePath, PurePosixPath

from gafu.config import SETS, SetName
from gafu.errors import GafuError, os_error_message
from gafu.images import SOURCE_SUFFIXES, list_source_pictures
from gafu.layout import CAPTION_SUFFIX, PICTURE_SUFFIX
from gafu.prep.aside import apply_selection, restore_orphan_caption
from gafu.prep.captions import carry_captions, original_caption_suffixes, trigger_hints
from gafu.prep.checks import (
    count_pictures,
    find_duplicates,
    reg_duplicate,
    remove_reg_duplicates,
    target_hashes,
)
from gafu.prep.concepts import (
    ConceptGroup,
    check_distinct,
    concept_source_group,
    loose_originals_warning,
    main_folder_groups,
)
from gafu.prep.manifest import Manifest, ManifestEntry, load_manifest, save_manifest
from gafu.prep.names import output_names
from gafu.prep.pool import PictureWorkers, worker_count
from gafu.prep.selection import set_selection
from gafu.prep.settings import PrepSettings, resolve_settings
from gafu.prep.summary import PrepSummary, Row
from gafu.prep.work import PictureJob, PictureResult, TargetHashes, remove_output
from gafu.project import Project
from gafu.reports import write_report

Progress = Callable[[int, int], None]  # (pictures handled so far, pictures in all)


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
    summary = PrepSummary(settings=settings)
    groups = {which: _concept_groups(project, which, summary) for which in SETS if project.has_sources(which)}
    check_distinct([group for found in groups.values() for group in found], project.config_path)
    caption_suffixes = original_caption_suffixes(project)
    manifest = load_manifest(project.prep_manifest_path)
    for which, found in groups.items():
        _follow_concept_folders(project, which, found, manifest, summary)
    try:
        aside = apply_selection(project, manifest)  # D1: pictures gafu.toml leaves out, moved aside and back
    finally:
        save_manifest(manifest, project.prep_manifest_path)  # what moved is recorded, even on an error
    summary.set_aside, summary.restored = aside.set_aside, aside.restored
    summary.warnings += aside.notes
    plans = {
        which: _plan_set(project, which, found, manifest, settings, summary)
        for which, found in groups.items()
    }
    total = sum(len(plan.current) for plan in plans.values())
    recorder = _Recorder(project, manifest, summary, _ProgressCounter(on_progress, total))
    try:
        jobs_per_set = max(len(plan.jobs) for plan in plans.values())
        with PictureWorkers(worker_count(workers or project.config.prep.workers, jobs_per_set)) as pool:
            for which, plan in plans.items():
                recorder.progress.advance(len(plan.unchanged))
                summary.skipped.extend(_skip_row(which, manifest, key) for key in plan.unchanged)
                jobs = plan.jobs
                if which == "reg":  # D2: reg workers check each picture against the target set
                    hashes = target_hashes(project, manifest)
                    jobs = [_with_target_hashes(job, hashes) for job in jobs]
                pool.run(jobs, recorder)
                if recorder.fatal is not None:
                    raise recorder.fatal
    finally:
        save_manifest(manifest, project.prep_manifest_path)  # keep what was done, even on a fatal error
    if "reg" in plans:
        remove_reg_duplicates(project, manifest, summary)
    for which, plan in plans.items():
        carry_captions(project, which, plan.current, caption_suffixes, summary)
        _handle_missing(project, which, plan, manifest, summary, prune=prune)
        find_duplicates(which, manifest, summary)
    count_pictures(project, {which: len(plan.current) for which, plan in plans.items()}, summary)
    summary.concepts = [group.row(project.root) for found in groups.values() for group in found]
    summary.warnings.extend(filter(None, (loose_originals_warning(found, w) for w, found in groups.items())))
    trigger_hints(project, summary)
    _sort_rows(summary)
    save_manifest(manifest, project.prep_manifest_path)
    summary.report_path = (project.reports_dir / "prep.json").as_posix()
    write_report(project.reports_dir, "prep", summary.to_dict())
    return summary


# --- the folders of originals ----------------------------------------------------------------


def _concept_groups(project: Project, which: SetName, summary: PrepSummary) -> list[ConceptGroup]:
    """The set's originals by the concept folder each goes to (D5); [sources] include/exclude apply to
    the set's own folder."""
    groups = []
    if project.source_dir(which):
        originals = _selected(project, which, _list_originals(project, which), summary)
        groups += main_folder_groups(project, which, originals)
    for index, concept in enumerate(project.config.sources.concepts):
        if concept.set == which:
            key = f"sources.concepts[{index}].folder"
            found = _list_originals(project, which, project.resolve(concept.folder), key)
            groups.append(concept_source_group(project, index, concept, found))
    return groups


def _list_originals(
    project: Project, which: SetName, folder: Path | None = None, key: str = ""
) -> list[Path]:
    """The originals in the set's folder (or `folder`, from gafu.toml's `key`); a missing,
    non-folder or picture-less folder stops the run."""
    folder = folder or project.source_dir(which)
    key = key or f"sources.{which}"
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


def _selected(project: Project, which: SetName, found: list[Path], summary: PrepSummary) -> list[Path]:
    """The originals gafu.toml's include and exclude lists keep; none kept stops the run."""
    selection = set_selection(project.config, which)
    folder = project.source_dir(which)
    kept = [path for path in found if selection.wants(path.relative_to(folder).as_posix())]
    summary.left_out[which] = len(found) - len(kept)
    if not kept:
        raise GafuError(
            f"gafu.toml's [sources.include] / [sources.exclude] leave none of the {len(found)} pictures "
            f"of the {_set_title(which)} folder {folder}",
            path=project.config_path,
            hint=f"check the {which} lists under [sources.include] and [sources.exclude]",
        )
    return kept


def _set_title(which: SetName) -> str:
    return "target" if which == "target" else "regularization"


def _follow_concept_folders(
    project: Project, which: SetName, groups: list[ConceptGroup], manifest: Manifest, summary: PrepSummary
) -> None:
    """Rename a concept folder whose repeats or name changed in gafu.toml, so captions move with it."""
    folder_of = {
        original.as_posix(): _relative(project, group.folder)
        for group in groups
        for original in group.originals
    }
    moves: dict[str, set[str]] = {}
    for key, entry in manifest.entries.items():
        old, new = str(PurePosixPath(key).parent), folder_of.get(entry.source)
        if entry.set == which and new is not None and new != old:
            moves.setdefault(old, set()).add(new)
    for old, targets in sorted(moves.items()):
        if len(targets) != 1:  # its originals now go to several folders: not a rename
            continue
        new = targets.pop()
        old_dir, new_dir = project.root / old, project.root / new
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
            summary.moved.append({"set": which, "from": old, "to": new})
        for table in (manifest.entries, manifest.aside):  # set-aside pictures come back to the new folder
            for key in [key for key, entry in table.items() if entry.set == which]:
                if str(PurePosixPath(key).parent) == old:
                    table[f"{new}/{PurePosixPath(key).name}"] = table.pop(key)


# --- what to do for each original ------------------------------------------------------------


@dataclass
class _SetPlan:
    """One set's originals, their outputs, and which of them need work."""

    current: dict[str, Path] = field(default_factory=dict)  # output key → original
    unchanged: list[str] = field(default_factory=list)  # output keys skipped without opening
    jobs: list[PictureJob] = field(default_factory=list)


def _plan_set(
    project: Project,
    which: SetName,
    groups: list[ConceptGroup],
    manifest: Manifest,
    settings: PrepSettings,
    summary: PrepSummary,
) -> _SetPlan:
    """Name each original's output and decide whether it can be skipped (same content and settings)."""
    by_source = {entry.source: key for key, entry in manifest.entries.items() if entry.set == which}
    plan = _SetPlan()
    for group in groups:
        _plan_group(project, which, group, by_source, manifest, settings, summary, plan)
    return plan


def _plan_group(
    project: Project,
    which: SetName,
    group: ConceptGroup,
    by_source: dict[str, str],
    manifest: Manifest,
    settings: PrepSettings,
    summary: PrepSummary,
    plan: _SetPlan,
) -> None:
    """`_plan_set` for the originals of one concept folder (output names are unique within it)."""
    originals = group.originals
    relative = [PurePath(path.relative_to(group.root)) for path in originals]
    kept = {
        rel: PurePosixPath(by_source[path.as_posix()]).stem
        for rel, path in zip(relative, originals, strict=True)
        if path.as_posix() in by_source
    }
    names = output_names(relative, kept)
    for rel, source in zip(relative, originals, strict=True):
        name = names[rel]
        output = group.folder / f"{name.stem}{PICTURE_SUFFIX}"
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
        if not output.exists():
            restore_orphan_caption(project, which, output)  # a caption set aside before the manifest was lost
        known = entry.source_sha256 if reusable else None
        plan.jobs.append(PictureJob(which, str(source), str(output), settings, known_sha256=known))


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


def _with_target_hashes(job: PictureJob, hashes: TargetHashes) -> PictureJob:
    return PictureJob(job.set, job.source, job.output, job.settings, job.known_sha256, hashes)


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
            reg_duplicate(self.project, key, source, result.match, self.manifest, self.summary)
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


# --- originals that disappeared ----------------------------------------------------------------


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
            remove_output(output)
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


def _sort_rows(summary: PrepSummary) -> None:
    """Rows in a stable order (workers finish in any order)."""
    rows_with_sources = (
        summary.prepared,
        summary.skipped,
        summary.failed,
        summary.upscaled,
        summary.cropped,
        summary.captions_carried,
        summary.captions_kept,
        summary.caption_failed,
    )
    for rows in rows_with_sources:
        rows.sort(key=lambda row: (SETS.index(row["set"]), row["source"]))
