"""A pool of candidate regularization pictures, tagged once and kept: `.gafu/pools/<pool>.json`.

Each picture of the pool folder is decoded once: the project's WD tagger scores it (every
probability above the score floor is kept, as `gafu tag` keeps them), and from the same decoded
picture gafu takes its perceptual hash (to keep target pictures out, D2) and its style cues (to
keep styles varied, D3). Entries are reused while the file's size and modification time and the
tagger are the same, and the file is saved every few dozen pictures, so an interrupted run
continues where it stopped. The file is bookkeeping: deleting it only means tagging again.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gafu.curation.cues import array_cues
from gafu.errors import GafuError, os_error_message
from gafu.fsio import read_json, sha256_file, write_json_atomic
from gafu.images import list_source_pictures, perceptual_hash
from gafu.project import Project
from gafu.tagging.locate import locate_tagger
from gafu.tagging.scores import TaggerIdentity
from gafu.tagging.select import PictureScores, keep_scores
from gafu.tagging.tag import TagEvents, set_thresholds

POOL_VERSION = 1
SAVE_EVERY = 64  # pictures between saves of the pool file, so an interrupted run keeps its work
# px: the pool's style cues and hash are measured on the picture reduced to about this; enough to
# tell styles apart for variety, and a few milliseconds a picture beside decoding it
DESCRIBE_SIDE = 160


@dataclass
class PoolPicture:
    """One pool picture: its scores, perceptual hash and style cues, and the file they were made from."""

    sha256: str
    size: int  # bytes, and the modification time: unchanged means the entry still holds
    mtime_ns: int
    phash: str
    cues: dict[str, float]
    scores: PictureScores


@dataclass
class ScoredPool:
    """Every usable picture of a pool, with what it took to get there."""

    folder: Path
    pictures: dict[str, PoolPicture] = field(default_factory=dict)  # by path in the pool (POSIX)
    failed: dict[str, str] = field(default_factory=dict)  # unreadable pictures, with the reason
    left_out: dict[str, list[str]] = field(default_factory=dict)  # reason → pictures never tagged
    tagger: str = ""
    provider: str | None = None
    tagged_now: int = 0  # run through the model this time
    reused: int = 0  # from the pool file
    seconds: float = 0.0  # wall time of the tagging pass
    floor: float = 0.0
    notes: list[str] = field(default_factory=list)


def pool_file(project: Project, folder: Path) -> Path:
    """`.gafu/pools/<folder name>-<hash of its path>.json`."""
    resolved = folder.resolve()
    digest = hashlib.sha256(resolved.as_posix().encode("utf-8")).hexdigest()[:12]
    return project.state_dir / "pools" / f"{resolved.name[:40] or 'pool'}-{digest}.json"


def describe_picture(image: Image.Image) -> dict[str, Any]:
    """Perceptual hash and style cues of a decoded picture (run in the tagger's loader threads)."""
    factor = max(1, max(image.size) // DESCRIBE_SIDE)
    small = image.reduce(factor) if factor > 1 else image
    return {"phash": str(perceptual_hash(small)), "cues": array_cues(np.asarray(small.convert("RGB")))}


def score_pool(
    project: Project,
    folder: Path,
    *,
    tagger: str | None = None,
    batch_size: int | None = None,
    cpu_only: bool = False,
    threads: int | None = None,
    events: TagEvents | None = None,
) -> ScoredPool:
    """Tag every picture of `folder` with the project's tagger, reusing the pool file's entries."""
    from gafu.tagging.model import open_tagger
    from gafu.tagging.pipeline import Failed, score_pictures

    events = events or TagEvents()
    config = project.config
    files = locate_tagger(tagger or config.tag.tagger, base=project.root)
    identity = TaggerIdentity(files.reference, sha256_file(files.model), sha256_file(files.labels))
    thresholds = set_thresholds(config, "reg")
    floor = config.tag.score_floor
    if not thresholds.mcut:
        floor = min(floor, thresholds.general, thresholds.character)
    pool = ScoredPool(folder=folder, tagger=files.reference, floor=floor)
    path = pool_file(project, folder)
    known = _load(path, identity, floor)
    candidates = _candidates(project, folder, pool)
    to_run: list[tuple[str, Path, tuple[int, int]]] = []
    for relative, picture in candidates:
        try:
            stat = picture.stat()
        except OSError as exc:
            pool.failed[relative] = str(os_error_message(exc, picture, "read"))
            continue
        entry = known.get(relative)
        if entry is not None and (entry.size, entry.mtime_ns) == (stat.st_size, stat.st_mtime_ns):
            pool.pictures[relative] = entry
            pool.reused += 1
        else:
            to_run.append((relative, picture, (stat.st_size, stat.st_mtime_ns)))
    started = time.perf_counter()
    try:
        if to_run:
            model = open_tagger(files, cpu_only=cpu_only)
            pool.provider = model.provider
            if events.on_start:
                events.on_start(files.reference, model.provider, len(to_run))
            size = model.input.batch or batch_size or config.tag.batch_size
            paths = [picture for _, picture, _ in to_run]
            for done, item in enumerate(
                score_pictures(model, paths, batch_size=size, threads=threads, describe=describe_picture), 1
            ):
                relative, _, (bytes_, mtime) = to_run[item.index]
                if isinstance(item, Failed):
                    pool.failed[relative] = str(item.error)
                else:
                    described = item.described
                    pool.pictures[relative] = PoolPicture(
                        item.picture_sha256,
                        bytes_,
                        mtime,
                        described["phash"],
                        described["cues"],
                        keep_scores(item.probabilities, model.labels, floor),
                    )
                    pool.tagged_now += 1
                if events.on_progress:
                    events.on_progress(1)
                if done % SAVE_EVERY == 0:
                    _save(path, folder, identity, floor, pool)
    finally:
        pool.seconds = time.perf_counter() - started
        if to_run or set(known) != set(pool.pictures):
            _save(path, folder, identity, floor, pool)
    return pool


def _candidates(project: Project, folder: Path, pool: ScoredPool) -> list[tuple[str, Path]]:
    """The pool's pictures, less those in the target folder or the project (D2: never a target picture)."""
    if not folder.is_dir():
        raise GafuError(f"the pool folder {folder} does not exist or is not a folder", path=folder)
    target = project.source_dir("target")
    inside = [p.resolve() for p in (target, project.root) if p is not None]
    found = []
    try:
        listing = list_source_pictures(folder)
    except OSError as exc:
        raise os_error_message(exc, folder, "read") from exc
    for picture in listing:
        relative = picture.relative_to(folder).as_posix()
        resolved = picture.resolve()
        holder = next((p for p in inside if p in resolved.parents), None)
        if holder is not None:
            reason = (
                "in the target folder (D2)" if target and holder == target.resolve() else "in the project"
            )
            pool.left_out.setdefault(reason, []).append(relative)
        else:
            found.append((relative, picture))
    if not found:
        raise GafuError(f"the pool folder {folder} holds no pictures gafu can use", path=folder)
    return found


def _load(path: Path, identity: TaggerIdentity, floor: float) -> dict[str, PoolPicture]:
    """The pool file's entries made by this tagger at a floor low enough; nothing when it is unusable."""
    if not path.is_file():
        return {}
    try:
        data = read_json(path, what="pool file")
    except GafuError:
        return {}  # bookkeeping: a damaged file only means tagging again
    if (
        not isinstance(data, dict)
        or data.get("version") != POOL_VERSION
        or data.get("tagger", {}).get("key") != identity.key
        or not isinstance(data.get("floor"), int | float)
        or data["floor"] > floor
    ):
        return {}
    entries = {}
    for relative, raw in data.get("pictures", {}).items():
        try:
            cues = {name: math.nan if value is None else float(value) for name, value in raw["cues"].items()}
            scores = PictureScores(**raw["scores"])
            entries[relative] = PoolPicture(
                raw["sha256"], raw["size"], raw["mtime_ns"], raw["phash"], cues, scores
            )
        except (KeyError, TypeError):
            continue
    return entries


def _save(path: Path, folder: Path, identity: TaggerIdentity, floor: float, pool: ScoredPool) -> None:
    data = {
        "version": POOL_VERSION,
        "pool": folder.resolve().as_posix(),
        "tagger": {**vars(identity), "key": identity.key},
        "floor": floor,
        "pictures": {
            relative: {**asdict(entry), "cues": {k: _number(v) for k, v in entry.cues.items()}}
            for relative, entry in sorted(pool.pictures.items())
        },
    }
    try:
        write_json_atomic(path, data)
    except GafuError as exc:  # bookkeeping: the pick goes on, a later run tags again
        note = f"note: the pool's scores were not saved ({exc}); the next run tags the pool again"
        if note not in pool.notes:
            pool.notes.append(note)


def _number(value: float) -> float | None:
    """A cue as JSON holds it (NaN, a cue with nothing to measure, as null)."""
    return None if math.isnan(value) else round(value, 5)
