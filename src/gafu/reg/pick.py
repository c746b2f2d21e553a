"""`gafu reg pick`: choose a regularization set from a pool that covers the target's tags (RECIPE D2, D3).

Phases: the target's tags, weighted by how many target captions hold each (D3 coverage
counts them so) → tag the pool (`gafu.reg.pool`, cached) → leave out target pictures (D2:
the same file, or a perceptual hash within the near-duplicate distance) → choose, one picture
at a time:

1. the gain of a candidate is the share of target tag uses it would newly cover; once no
   candidate covers anything new, the share it would cover again, each further picture of a
   tag counting half the one before (so frequent target tags get several examples);
2. among the candidates within `BAND` of the best gain, the one whose style is farthest from
   the target's style and from every picture already chosen (D3: "as varied in style as
   possible");
3. never a near-duplicate of a picture already chosen.

A candidate's tags are the caption `gafu tag` would write for it in the regularization set
(T2's 0.35 threshold, `[tag.reg]` exclude and add lists), so the coverage it predicts is the
one `gafu check` will report once the chosen pictures are prepared and tagged.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gafu.captions.dataset import load_captions, relative_name
from gafu.captions.text import tag_key
from gafu.check.coverage import compute_coverage, not_counted_keys, target_tag_files
from gafu.curation.consistency import PIXEL_CUES, robust_scale
from gafu.errors import GafuError
from gafu.fsio import sha256_file
from gafu.images import COLOUR_DIFFERENCE_LIMIT, COLOUR_GRID, NEAR_DUPLICATE_DISTANCE
from gafu.prep.manifest import load_manifest
from gafu.prep.selection import set_selection
from gafu.project import Project
from gafu.reg.pool import PoolPicture, ScoredPool, describe_picture, score_pool
from gafu.tagging.captions import build_caption, caption_rules
from gafu.tagging.scores import load_scores, scores_path
from gafu.tagging.select import select_tags
from gafu.tagging.tag import TagEvents, set_thresholds

BAND = 0.8  # candidates within this share of the best gain compete on style
DEPTH_FACTOR = 0.5  # each further picture of a target tag is worth this much of the one before
STYLE_TAG_FLOOR = 0.1  # smallest difference of a style tag's probability that counts as a difference


@dataclass(frozen=True)
class PickOptions:
    """Choices of one `gafu reg pick` run."""

    count: int | None = None  # pictures to choose; None = as many as the target set has (D2)
    tagger: str | None = None  # overrides [tag] tagger
    batch_size: int | None = None
    cpu_only: bool = False
    threads: int | None = None


@dataclass
class Pick:
    """One chosen picture and what it adds."""

    picture: str  # path in the pool folder (POSIX)
    adds: list[str] = field(default_factory=list)  # target tags it covers first, as `tag ×uses`
    again: list[str] = field(default_factory=list)  # target tags it gives another example of
    coverage: float = 0.0  # predicted D3 coverage with this picture and those before it
    style_distance: float = 0.0  # from the target's style and the pictures chosen before, in spreads
    tags: list[str] = field(default_factory=list)  # the caption `gafu tag` would write for it


@dataclass
class PickResult:
    """What `gafu reg pick` found and chose."""

    pool: str
    count: int  # pictures asked for
    pool_pictures: int = 0
    candidates: int = 0
    left_out: dict[str, list[str]] = field(default_factory=dict)  # reason → pool pictures
    failed: dict[str, str] = field(default_factory=dict)
    coverage_before: float | None = None  # the current regularization set's D3 coverage
    before_reason: str = ""
    coverage_after: float = 0.0  # predicted, with the chosen pictures
    coverage_possible: float = 0.0  # with every candidate of the pool
    uncovered_after: list[str] = field(default_factory=list)  # as `tag ×uses`
    picks: list[Pick] = field(default_factory=list)
    tagger: str = ""
    tagged_now: int = 0
    reused: int = 0
    seconds: dict[str, float] = field(default_factory=dict)  # tagging, target, choosing, total
    notes: list[str] = field(default_factory=list)

    @property
    def chosen(self) -> list[str]:
        """The chosen pictures' paths in the pool folder."""
        return [pick.picture for pick in self.picks]

    def to_dict(self) -> dict[str, Any]:
        """Plain data for `--json`, the UI and `reports/reg-pick.json`."""
        return asdict(self)


def pick_regularization(
    project: Project, pool_folder: Path, options: PickOptions | None = None, events: TagEvents | None = None
) -> PickResult:
    """Tag the pool (cached) and choose the regularization pictures; writes nothing but the pool file."""
    options = options or PickOptions()
    started = time.perf_counter()
    pool_folder = Path(pool_folder).expanduser().resolve()
    target_dir = project.source_dir("target")
    if target_dir is not None and pool_folder == target_dir.resolve():
        raise GafuError(
            f"the pool {pool_folder} is the target folder; regularization pictures are other styles (D2)",
            hint="give a folder of other artists' pictures",
        )
    weights, spelling, counts = _target_tags(project)
    count = options.count or len(project.pictures("target"))
    if count < 1:
        raise GafuError("--count must be at least 1", hint="or prepare the target set first (`gafu prep`)")
    pool = score_pool(
        project,
        pool_folder,
        tagger=options.tagger,
        batch_size=options.batch_size,
        cpu_only=options.cpu_only,
        threads=options.threads,
        events=events,
    )
    tagged = time.perf_counter()
    result = PickResult(
        pool=pool_folder.as_posix(),
        count=count,
        pool_pictures=len(pool.pictures) + len(pool.failed) + sum(map(len, pool.left_out.values())),
        left_out=dict(pool.left_out),
        failed=dict(pool.failed),
        tagger=pool.tagger,
        tagged_now=pool.tagged_now,
        reused=pool.reused,
        notes=list(pool.notes),
    )
    target = _target(project)
    names = _usable(project, pool, target, result)
    result.candidates = len(names)
    if not names:
        raise GafuError(f"no picture of the pool {pool_folder} can be used", hint="see the pictures left out")
    before = _coverage_now(project)
    result.coverage_before, result.before_reason = before.share, before.reason
    choosing = time.perf_counter()
    _choose(project, pool, target, names, weights, spelling, counts, result)
    done = time.perf_counter()
    result.seconds = {
        "tagging": round(pool.seconds, 3),  # the pool's tagging pass, hashes and cues included
        "target": round(choosing - tagged, 3),  # the target's hashes and cues, the coverage now
        "choosing": round(done - choosing, 3),
        "total": round(done - started, 3),
    }
    return result


# --- the target's tags ------------------------------------------------------------------------


def _target_tags(project: Project) -> tuple[np.ndarray, list[str], list[int]]:
    """Target tag weights (each tag's share of the counted uses), keyed in order; their spellings and uses."""
    config = project.config
    target = load_captions(project, ("target",))
    if not any(c.has_caption for c in target):
        raise GafuError(
            "the target set has no captions yet, so there are no target tags to cover (D3)",
            hint="run `gafu prep` and `gafu tag` first",
        )
    files, spelling = target_tag_files(
        target, not_counted_keys(config.project.trigger, config.check.unwanted)
    )
    keys = sorted(files, key=lambda k: (-len(files[k]), k))
    uses = [len(files[k]) for k in keys]
    total = sum(uses) or 1
    return np.array(uses, dtype=np.float64) / total, [spelling[k] for k in keys], uses


def _coverage_now(project: Project):
    config = project.config
    return compute_coverage(
        load_captions(project, ("target",)),
        load_captions(project, ("reg",)),
        trigger=config.project.trigger,
        unwanted=config.check.unwanted,
    )


# --- which pool pictures may be chosen ----------------------------------------------------------


def _usable(project: Project, pool: ScoredPool, target: _Target, result: PickResult) -> list[str]:
    """Pool pictures that are not target pictures (D2) nor set aside by `[sources.exclude] reg`."""
    reg_dir = project.source_dir("reg")
    same_folder = reg_dir is not None and reg_dir.resolve() == pool.folder
    excluded = set_selection(project.config, "reg") if same_folder else None
    usable = []
    names = sorted(pool.pictures)
    pool_hashes = _Hashes.of([pool.pictures[n].phash for n in names])
    near_target = pool_hashes.near(_Hashes.of(target.phashes)).any(axis=1)
    for name, is_near in zip(names, near_target, strict=True):
        entry = pool.pictures[name]
        if entry.sha256 in target.sha256:
            result.left_out.setdefault("a copy of a target picture (D2)", []).append(name)
        elif is_near:
            result.left_out.setdefault("a near-duplicate of a target picture (D2)", []).append(name)
        elif excluded is not None and excluded.excluded_by(name):
            result.left_out.setdefault("in [sources.exclude] reg", []).append(name)
        else:
            usable.append(name)
    return usable


@dataclass
class _Target:
    """The target set as the pool is compared with it: its files' hashes and its pictures' style cues."""

    sha256: set[str] = field(default_factory=set)  # originals (set aside too) and prepared pictures
    phashes: list[str] = field(default_factory=list)  # as stored: `<structure hex>:<colours hex>`
    cues: list[dict[str, float]] = field(default_factory=list)  # measured as the pool's are
    names: list[str] = field(default_factory=list)  # project-relative, in the order of `cues`


def _target(project: Project) -> _Target:
    """Hashes and cues of the target set: prep's record of its originals, and each prepared picture."""
    from gafu.images import PictureError, load_picture

    manifest = load_manifest(project.prep_manifest_path)
    target = _Target()
    for entry in [*manifest.entries.values(), *manifest.aside.values()]:
        if entry.set == "target":
            target.sha256.add(entry.source_sha256)
            if entry.source_phash:
                target.phashes.append(entry.source_phash)
    for picture in project.pictures("target"):
        try:
            described = describe_picture(load_picture(picture.path).image)
            target.sha256.add(sha256_file(picture.path))
        except (PictureError, GafuError):
            continue  # `gafu check` reports it
        target.phashes.append(described["phash"])
        target.cues.append(described["cues"])
        target.names.append(relative_name(project, picture.path))
    return target


@dataclass(frozen=True)
class _Hashes:
    """Perceptual hashes as arrays, compared many at once as `near_duplicate_pairs` compares two."""

    bits: np.ndarray  # (N, 64) bool: the luminance structure
    colours: np.ndarray  # (N, COLOUR_GRID² × 3) float, NaN where a hash was saved without colours

    @classmethod
    def of(cls, hashes: list[str]) -> _Hashes:
        """From hashes as stored (`<structure hex>[:<colours hex>]`)."""
        size = COLOUR_GRID * COLOUR_GRID * 3
        structures = b"".join(bytes.fromhex(h.partition(":")[0].rjust(16, "0")[-16:]) for h in hashes)
        bits = np.unpackbits(np.frombuffer(structures, np.uint8).reshape(len(hashes), 8), axis=1)
        colours = np.full((len(hashes), size), np.nan)
        for row, text in enumerate(hashes):
            raw = bytes.fromhex(text.partition(":")[2])
            if len(raw) == size:
                colours[row] = np.frombuffer(raw, np.uint8)
        return cls(bits.astype(bool), colours)

    def near(self, other: _Hashes) -> np.ndarray:
        """`(len(self), len(other))`: structure within NEAR_DUPLICATE_DISTANCE and colours alike (D2)."""
        if not len(self.bits) or not len(other.bits):
            return np.zeros((len(self.bits), len(other.bits)), dtype=bool)
        distance = (self.bits[:, None, :] != other.bits[None, :, :]).sum(axis=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a hash without colours: NaN, taken as alike
            apart = np.abs(self.colours[:, None, :] - other.colours[None, :, :]).mean(axis=2)
        return (distance <= NEAR_DUPLICATE_DISTANCE) & ~(apart > COLOUR_DIFFERENCE_LIMIT)

    def __getitem__(self, rows: slice) -> _Hashes:
        return _Hashes(self.bits[rows], self.colours[rows])


# --- choosing ---------------------------------------------------------------------------------------


def _choose(
    project: Project,
    pool: ScoredPool,
    target: _Target,
    names: list[str],
    weights: np.ndarray,
    spelling: list[str],
    uses: list[int],
    result: PickResult,
) -> None:
    """Greedy weighted coverage with a style tie-break (see the module's docstring)."""
    config = project.config
    thresholds, rules = set_thresholds(config, "reg"), caption_rules(config, "reg")
    index = {tag_key(tag): i for i, tag in enumerate(spelling)}
    captions = [
        build_caption(select_tags(pool.pictures[n].scores, thresholds, pool.floor), rules) for n in names
    ]
    has = np.zeros((len(names), len(spelling)), dtype=bool)  # (candidates, target tags)
    for row, caption in enumerate(captions):
        for tag in caption:
            if tag_key(tag) in index:
                has[row, index[tag_key(tag)]] = True
    counts = np.array(uses)

    def share(covered: np.ndarray) -> float:  # D3 coverage: covered target tag uses / all of them
        return round(int(counts[covered].sum()) / max(int(counts.sum()), 1), 4)

    result.coverage_possible = share(has.any(axis=0))
    styles, target_style = _style_space(project, [pool.pictures[n] for n in names], target)
    known = np.isfinite(target_style)  # the cues the target has values for
    distance = np.sqrt(((styles[:, known] - target_style[known]) ** 2).mean(axis=1))  # (C,): from the target
    seen = np.zeros(len(spelling))  # chosen pictures holding each target tag
    free = np.ones(len(names), dtype=bool)
    hashes = _Hashes.of([pool.pictures[n].phash for n in names])
    for _ in range(min(result.count, len(names))):
        value = np.where(seen == 0, weights, 0.0)
        gain = has @ value
        if not (gain[free] > 0).any():
            gain = has @ (weights * DEPTH_FACTOR**seen * (seen > 0))
        best = gain[free].max()
        band = free & (gain >= BAND * best) if best > 0 else free.copy()
        row = int(np.flatnonzero(band)[np.argmax(distance[band])])
        free[row] = False
        new = has[row] & (seen == 0)
        again = has[row] & (seen > 0)
        seen += has[row]
        result.picks.append(
            Pick(
                picture=names[row],
                adds=[f"{spelling[i]} ×{uses[i]}" for i in np.flatnonzero(new)],
                again=[spelling[i] for i in np.flatnonzero(again)],
                coverage=share(seen > 0),
                style_distance=round(float(distance[row]), 2),
                tags=captions[row],
            )
        )
        distance = np.minimum(distance, np.sqrt(((styles - styles[row]) ** 2).mean(axis=1)))
        free &= ~hashes.near(hashes[row : row + 1])[:, 0]  # never the same picture twice
        if not free.any():
            break
    result.coverage_after = share(seen > 0)
    result.uncovered_after = [f"{spelling[i]} ×{uses[i]}" for i in np.flatnonzero(seen == 0)]
    if len(result.picks) < result.count:
        result.notes.append(
            f"the pool gave {len(result.picks)} usable pictures of the {result.count} asked for"
        )


def _style_space(
    project: Project, pictures: list[PoolPicture], target: _Target
) -> tuple[np.ndarray, np.ndarray]:
    """Candidates' style vectors `(C, K)` and the target's `(K,)`: each cue on its own scale (log, logit),
    in units of its spread in the pool (never below its smallest difference that matters)."""
    tags = [t for t in project.config.check.style_tags if any(t in p.scores.general for p in pictures)]
    scores = {}
    with contextlib.suppress(GafuError):  # no score file: the style tags are not compared
        scores = load_scores(scores_path(project.tag_scores_dir, "target"), "target").pictures
    target_tags = [(scores[n].scores.general if n in scores else None) for n in target.names]
    columns, target_columns, floors = [], [], []
    for cue in [c for c in PIXEL_CUES if c.style]:  # what a picture shows must not count as its style
        raw = np.array([p.cues.get(cue.name, math.nan) for p in pictures], dtype=np.float64)
        columns.append(cue.transform(raw))
        target_columns.append(
            cue.transform(np.array([c.get(cue.name, math.nan) for c in target.cues], dtype=np.float64))
        )
        floors.append(2 * cue.spread_floor(raw))
    for tag in tags:
        columns.append(np.array([p.scores.general.get(tag, 0.0) for p in pictures]))
        target_columns.append(np.array([math.nan if g is None else g.get(tag, 0.0) for g in target_tags]))
        floors.append(STYLE_TAG_FLOOR)
    values = np.stack(columns, axis=1)  # (C, K)
    centre, scale = robust_scale(values, np.array(floors))
    styles = np.nan_to_num((values - centre) / scale)  # an unknown cue (no lines) counts as typical
    if not target.cues:
        return styles, np.full(values.shape[1], np.inf)
    with warnings.catch_warnings():  # a column the target has no value in stays NaN: it is not compared
        warnings.simplefilter("ignore", RuntimeWarning)
        middle = np.nanmedian(np.stack(target_columns, axis=1), axis=0)
    return styles, (middle - centre) / scale
