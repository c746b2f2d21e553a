"""`gafu tag`: one caption per prepared picture, obeying the recipe's T2–T4.

`tag_project` runs the WD tagger over the pictures that need a caption and writes captions
and score files; `rethreshold_project` rewrites captions from the score files alone (no
model), after a threshold or a list in gafu.toml changed.

Existing captions are never silently replaced. `mode` says what happens to a picture that
has one: "skip" (the default) leaves it; "overwrite" replaces it; "merge" keeps its tags as
they are and appends the new tags it lacks (T3 still enforced: the trigger first on target
captions, absent from regularization captions). An empty caption file counts as none.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean
from typing import Any, Literal

from gafu.captions.text import format_caption, read_caption
from gafu.config import SETS, Config, SetName
from gafu.errors import ConfigError, GafuError
from gafu.fsio import sha256_bytes, sha256_file, write_text_atomic
from gafu.layout import DatasetPicture
from gafu.prep.manifest import Manifest, load_manifest
from gafu.project import Project
from gafu.reports import write_report
from gafu.tagging.captions import CaptionRules, build_caption, caption_rules, merge_caption
from gafu.tagging.locate import TaggerFiles, locate_tagger
from gafu.tagging.scores import (
    ScoredPicture,
    ScoreFile,
    TaggerIdentity,
    load_scores,
    save_scores,
    scores_path,
)
from gafu.tagging.select import Thresholds, keep_scores, select_tags

Mode = Literal["skip", "overwrite", "merge"]
MODES: tuple[Mode, ...] = ("skip", "overwrite", "merge")
SAVE_SCORES_EVERY = 64  # pictures between score-file saves, so an interrupted run keeps its scores


@dataclass(frozen=True)
class TagOptions:
    """Choices of one `gafu tag` run (gafu.toml holds the rest)."""

    mode: Mode = "skip"  # what to do with a picture that already has a caption
    tagger: str | None = None  # overrides [tag] tagger: a folder or a hub repo id
    batch_size: int | None = None  # overrides [tag] batch_size
    cpu_only: bool = False  # ignore CUDA / DirectML
    threads: int | None = None  # picture-loading threads; None = cores − 1, up to 4


@dataclass
class TagEvents:
    """What a caller (the CLI's progress bar) hears while the stage runs."""

    on_start: Callable[[str, str, int], None] | None = None  # (tagger, provider, pictures to run)
    on_progress: Callable[[int], None] | None = None  # pictures finished since the last call


@dataclass
class SetSummary:
    """What happened to one set."""

    pictures: int = 0
    tagged: int = 0  # captions written
    unchanged: int = 0  # captions that already said what the scores give (--rethreshold)
    reused_scores: int = 0  # pictures whose scores came from the score file, not the model
    skipped: dict[str, list[str]] = field(default_factory=dict)  # reason → pictures
    failed: dict[str, str] = field(default_factory=dict)  # picture → error
    selection: dict[str, Any] = field(default_factory=dict)
    tags_per_caption: dict[str, float] = field(default_factory=dict)  # over every caption of the set

    def skip(self, reason: str, picture: DatasetPicture) -> None:
        """Count a picture left alone, and why."""
        self.skipped.setdefault(reason, []).append(picture.key)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {
            "pictures": self.pictures,
            "tagged": self.tagged,
            "unchanged": self.unchanged,
            "skipped": sum(len(v) for v in self.skipped.values()),
            "failed": len(self.failed),
            "reused_scores": self.reused_scores,
            "tags_per_caption": self.tags_per_caption,
            "selection": self.selection,
            "skipped_pictures": self.skipped,
            "failed_pictures": self.failed,
        }


@dataclass
class TagResult:
    """What a `gafu tag` run did."""

    mode: Mode
    rethreshold: bool
    sets: dict[str, SetSummary] = field(default_factory=dict)
    tagger: str | None = None  # None when no picture needed the model
    provider: str | None = None
    batch_size: int | None = None
    model_pictures: int = 0  # pictures run through the model
    seconds: float = 0.0  # wall time of the model pass
    model_seconds: float = 0.0  # of which inside session.run
    warnings: list[str] = field(default_factory=list)
    report_path: Path | None = None

    @property
    def failed(self) -> int:
        """Pictures that failed, in all sets."""
        return sum(len(s.failed) for s in self.sets.values())

    def to_dict(self) -> dict[str, Any]:
        """The `--json` summary and the body of reports/tag.json."""
        sets = {name: summary.to_dict() for name, summary in self.sets.items()}
        return {
            "mode": self.mode,
            "rethreshold": self.rethreshold,
            "tagged": sum(s["tagged"] for s in sets.values()),
            "skipped": sum(s["skipped"] for s in sets.values()),
            "failed": self.failed,
            "tagger": self.tagger,
            "provider": self.provider,
            "batch_size": self.batch_size,
            "model_pictures": self.model_pictures,
            "pictures_per_second": round(self.model_pictures / self.seconds, 2) if self.seconds else None,
            "model_busy": round(self.model_seconds / self.seconds, 3) if self.seconds else None,
            "warnings": self.warnings,
            "sets": sets,
        }


# --- the stage -------------------------------------------------------------------------------


def tag_project(
    project: Project, options: TagOptions | None = None, events: TagEvents | None = None
) -> TagResult:
    """Caption the project's pictures with the WD tagger (T1–T4): captions, score files, reports/tag.json."""
    options, events = options or TagOptions(), events or TagEvents()
    _check_mode(options.mode)
    work = _open_sets(project)
    result = TagResult(mode=options.mode, rethreshold=False, sets={w.which: w.summary for w in work})
    queue = []
    for w in work:
        for picture in w.pictures:
            if options.mode == "skip" and _has_caption(picture):
                w.summary.skip("has a caption", picture)
            else:
                queue.append((w, picture))
    try:
        if queue:
            _caption_queue(project, queue, options, events, result)
    finally:
        for w in work:
            w.save_scores()
    return _finish(project, work, result)


def rethreshold_project(project: Project, mode: Mode = "skip") -> TagResult:
    """Rewrite captions from the score files, without the model, after gafu.toml's tag settings changed.

    A caption edited since gafu wrote it (its file no longer matches the hash in the score
    file) is left alone with `mode="skip"`, replaced with "overwrite", merged with "merge".
    Pictures without scores, or changed since they were scored, are left alone and listed.
    """
    _check_mode(mode)
    work = _open_sets(project)
    result = TagResult(mode=mode, rethreshold=True, sets={w.which: w.summary for w in work})
    try:
        for w in work:
            below = sum(1 for e in w.scores.pictures.values() if e.floor > w.floor)
            if below:
                result.warnings.append(
                    f"{w.which}: a threshold is below the score floor {below} pictures were scored at, "
                    "so tags between are missing from their captions; lower [tag] score_floor and run "
                    "`gafu tag --overwrite` to score them again"
                )
            for picture in w.pictures:
                _rethreshold_picture(w, picture, mode)
    finally:
        for w in work:
            w.save_scores()
    return _finish(project, work, result)


# --- one set's settings and bookkeeping --------------------------------------------------------


@dataclass
class _SetWork:
    which: SetName
    root: Path
    pictures: list[DatasetPicture]
    rules: CaptionRules
    thresholds: Thresholds
    floor: float  # scores are kept at or above this
    manifest: Manifest
    scores: ScoreFile
    scores_file: Path
    summary: SetSummary

    def key(self, picture: DatasetPicture) -> str:
        """The picture's key in prep's manifest and the score files."""
        return _relative_key(self.root, picture)

    def save_scores(self) -> None:
        """Write the set's score file (only when there are scores to keep)."""
        if self.scores.pictures or self.scores_file.exists():
            save_scores(self.scores, self.scores_file)

    def write_caption(
        self, picture: DatasetPicture, entry: ScoredPicture, existing: list[str] | None
    ) -> bool:
        """Write the caption the entry's scores give, merged into `existing` tags if given.

        Returns False, writing nothing, when the caption already says that.
        """
        names = select_tags(entry.scores, self.thresholds, entry.floor)
        tags = build_caption(names, self.rules, self.manifest.bars_for(self.key(picture)))
        if existing is not None:
            tags = merge_caption(existing, tags, self.rules)
        text = format_caption(tags) + "\n"
        sha = sha256_bytes(text.encode("utf-8"))
        changed = _file_sha256(picture.caption_path) != sha
        if changed:
            write_text_atomic(picture.caption_path, text)
        entry.caption_sha256 = sha  # what gafu wrote, to tell later edits from it
        return changed


def _open_sets(project: Project) -> list[_SetWork]:
    config = project.config
    _check_settings(config)
    manifest = load_manifest(project.prep_manifest_path)
    work = []
    for which in SETS:
        pictures = project.pictures(which)
        if not pictures:
            continue
        section = config.tag.for_set(which)
        thresholds = set_thresholds(config, which)
        floor = config.tag.score_floor  # lower where a threshold is lower, so its tags are kept
        if not section.mcut:
            floor = min(floor, thresholds.general, thresholds.character)
        path = scores_path(project.tag_scores_dir, which)
        scores = load_scores(path, which)
        current = {_relative_key(project.root, picture) for picture in pictures}
        scores.pictures = {k: v for k, v in scores.pictures.items() if k in current}  # drop removed pictures
        work.append(
            _SetWork(
                which=which,
                root=project.root,
                pictures=pictures,
                rules=caption_rules(config, which),
                thresholds=thresholds,
                floor=floor,
                manifest=manifest,
                scores=scores,
                scores_file=path,
                summary=SetSummary(pictures=len(pictures), selection=_selection(thresholds, config)),
            )
        )
    return work


def set_thresholds(config: Config, which: SetName) -> Thresholds:
    """How gafu.toml says one set's tags are chosen (T2)."""
    section = config.tag.for_set(which)
    return Thresholds(
        general=section.threshold,
        character=config.tag.character_threshold,
        mcut=section.mcut,
        rating=config.tag.include_rating,
    )


def _relative_key(root: Path, picture: DatasetPicture) -> str:
    """The picture's path relative to the project root (POSIX), as prep's manifest keys it."""
    return picture.path.relative_to(root).as_posix()


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise GafuError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")


def threshold_problems(config: Config) -> dict[str, str]:
    """The thresholds outside (0, 1], by name ("character", "target", "reg"), each with its message."""
    tag = config.tag
    values = {
        "character": ("[tag] character_threshold", tag.character_threshold),
        "target": ("[tag.target] threshold", tag.target.threshold),
        "reg": ("[tag.reg] threshold", tag.reg.threshold),
    }
    return {
        key: f"gafu.toml {name} = {value} must be above 0 and at most 1 (RECIPE T2)"
        for key, (name, value) in values.items()
        if not 0 < value <= 1
    }


def _check_settings(config: Config) -> None:
    tag = config.tag
    problems = threshold_problems(config)
    if problems:
        raise ConfigError(next(iter(problems.values())))
    if not 0 <= tag.score_floor < 1:
        raise ConfigError(f"gafu.toml [tag] score_floor = {tag.score_floor} must be from 0 up to below 1")
    if tag.batch_size < 1:
        raise ConfigError(f"gafu.toml [tag] batch_size = {tag.batch_size} must be at least 1")


def _selection(thresholds: Thresholds, config: Config) -> dict[str, Any]:
    return {
        "threshold": "mcut" if thresholds.mcut else thresholds.general,
        "character_threshold": "mcut" if thresholds.mcut else thresholds.character,
        "rating": thresholds.rating,
        "score_floor": config.tag.score_floor,
    }


# --- running the model ---------------------------------------------------------------------------


def _caption_queue(
    project: Project,
    queue: list[tuple[_SetWork, DatasetPicture]],
    options: TagOptions,
    events: TagEvents,
    result: TagResult,
) -> None:
    """Caption the queued pictures: from kept scores where they still hold, else through the model."""
    files = locate_tagger(options.tagger or project.config.tag.tagger, base=project.root)
    identity = TaggerIdentity(files.reference, sha256_file(files.model), sha256_file(files.labels))
    result.tagger = files.reference
    merge = options.mode == "merge"
    to_run: list[tuple[_SetWork, DatasetPicture]] = []
    for w, picture in queue:
        w.scores.taggers[identity.key] = identity
        entry = _reusable_scores(w, picture, identity)
        if entry is None:
            to_run.append((w, picture))
        elif _write_or_fail(w, picture, entry, merge=merge):
            w.summary.reused_scores += 1
    if to_run:
        batch_size = options.batch_size or project.config.tag.batch_size
        _run_model(files, identity, to_run, options, batch_size, events, result)


def _run_model(
    files: TaggerFiles,
    identity: TaggerIdentity,
    to_run: list[tuple[_SetWork, DatasetPicture]],
    options: TagOptions,
    batch_size: int,
    events: TagEvents,
    result: TagResult,
) -> None:
    """Score the pictures with the model in batches and write each caption as its scores arrive."""
    from gafu.tagging.model import open_tagger
    from gafu.tagging.pipeline import Failed, score_pictures

    tagger = open_tagger(files, cpu_only=options.cpu_only)
    batch_size = tagger.input.batch or batch_size  # a fixed-batch export runs at its own size
    result.provider, result.batch_size = tagger.provider, batch_size
    if events.on_start:
        events.on_start(files.reference, tagger.provider, len(to_run))
    started = time.perf_counter()
    done = 0
    paths = [picture.path for _, picture in to_run]
    for item in score_pictures(tagger, paths, batch_size=batch_size, threads=options.threads):
        w, picture = to_run[item.index]
        if isinstance(item, Failed):
            w.summary.failed[picture.key] = str(item.error)
        else:
            scores = keep_scores(item.probabilities, tagger.labels, w.floor)
            entry = ScoredPicture(item.picture_sha256, identity.key, w.floor, scores)
            _write_or_fail(w, picture, entry, merge=options.mode == "merge")
        done += 1
        if events.on_progress:
            events.on_progress(1)
        if done % SAVE_SCORES_EVERY == 0:
            for open_set in {id(w): w for w, _ in to_run}.values():
                open_set.save_scores()
    result.model_pictures = done
    result.seconds = time.perf_counter() - started
    result.model_seconds = tagger.model_seconds


def _write_or_fail(w: _SetWork, picture: DatasetPicture, entry: ScoredPicture, *, merge: bool) -> bool:
    """Keep the scores and write one caption; an existing caption gafu cannot read fails this picture only.

    A failing write (disk full, no permission) stops the run: it would fail for every picture.
    """
    w.scores.pictures[w.key(picture)] = entry
    try:
        existing = read_caption(picture.caption_path).tags if merge and _has_caption(picture) else None
    except GafuError as exc:
        w.summary.failed[picture.key] = str(exc)
        return False
    if w.write_caption(picture, entry, existing):
        w.summary.tagged += 1
    else:
        w.summary.unchanged += 1
    return True


def _reusable_scores(w: _SetWork, picture: DatasetPicture, identity: TaggerIdentity) -> ScoredPicture | None:
    """The kept scores, if this tagger made them from this very picture at a low enough floor."""
    entry = w.scores.pictures.get(w.key(picture))
    if entry is None or entry.tagger != identity.key or entry.floor > w.floor:
        return None
    if _file_sha256(picture.path) != entry.picture_sha256:
        return None
    return ScoredPicture(entry.picture_sha256, entry.tagger, entry.floor, entry.scores)


# --- re-thresholding ------------------------------------------------------------------------------


def _rethreshold_picture(w: _SetWork, picture: DatasetPicture, mode: Mode) -> None:
    entry = w.scores.pictures.get(w.key(picture))
    if entry is None:
        w.summary.skip("no scores (run `gafu tag` first)", picture)
        return
    if _file_sha256(picture.path) != entry.picture_sha256:
        w.summary.skip("picture changed since it was scored (run `gafu tag --overwrite`)", picture)
        return
    edited = _has_caption(picture) and _file_sha256(picture.caption_path) != entry.caption_sha256
    if edited and mode == "skip":
        w.summary.skip("caption edited since gafu wrote it (--overwrite or --merge to change it)", picture)
        return
    _write_or_fail(w, picture, entry, merge=edited and mode == "merge")


# --- the end of a run ----------------------------------------------------------------------------


def _finish(project: Project, work: list[_SetWork], result: TagResult) -> TagResult:
    for w in work:
        w.summary.tags_per_caption = _tags_per_caption(w.pictures)
    result.report_path = write_report(project.reports_dir, "tag", result.to_dict())
    return result


def _tags_per_caption(pictures: list[DatasetPicture]) -> dict[str, float]:
    """Mean, min and max tags per caption over the set's readable captions (the trigger counted)."""
    counts = []
    for picture in pictures:
        if not picture.caption_path.is_file():
            continue
        try:
            counts.append(len(read_caption(picture.caption_path).tags))
        except GafuError:
            continue
    if not counts:
        return {"captions": 0}
    return {"captions": len(counts), "mean": round(mean(counts), 2), "min": min(counts), "max": max(counts)}


def _has_caption(picture: DatasetPicture) -> bool:
    """A caption file with any text in it (an empty file is no caption)."""
    try:
        data = picture.caption_path.read_bytes()
    except FileNotFoundError:
        return False
    except OSError:
        return True  # unreadable: never treat it as absent, so it is not overwritten
    return bool(data.removeprefix(b"\xef\xbb\xbf").strip())


def _file_sha256(path: Path) -> str | None:
    try:
        return sha256_file(path)
    except GafuError:
        return None
