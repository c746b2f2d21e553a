"""Does the target set hold one style, or pictures of another period? (RECIPE D1)

Input: a table of style cues per picture (`gafu.curation.cues`, the tagger's style-tag
probabilities, optionally an image model's embedding). Output: groups of pictures that stand
apart from the rest, each with the cues that set it apart in plain words and numbers.

For each cue, on a scale where its spread is even (log for counts and widths, logit for shares):
- **two groups**: a two-component Gaussian mixture with one shared spread, fitted by EM from
  every split of the sorted values, against one Gaussian; the likelihood-ratio statistic says
  how much better two groups explain the values. A shared spread (never below the cue's
  smallest meaningful difference) keeps a tight clump of near-equal values from passing for a
  group of its own;
- **pictures that stand apart**: a picture's distance from the others' median in units of the
  others' spread (the spread never below the smallest meaningful difference).

A finding needs a *style* cue (colour saturation, line width, palette, texture, a style tag, the
image model): brightness, contrast, colourfulness and edge density move with what a picture
shows (a night scene is darker) and only support a finding. The thresholds were set on
synthetic sets of known style (`bench/style_check.py`; the false-alarm rate and recall it
measures are in docs/benchmarks.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Scale = Literal["linear", "log", "share"]

MIN_PICTURES = 8  # fewer pictures cannot show two groups
MIN_GROUP_SHARE = 0.15  # the smaller of two groups holds at least this share of the pictures …
MIN_GROUP = 2  # … and at least this many
SUPPORTED_SHARE = 0.6  # two style cues finding (nearly) the same groups need this share of their own bar
BAR_SET_SIZE = 24  # the bars hold for this many pictures; for more, they grow with √(pictures / this)
SAME_GROUPS = 0.6  # Jaccard overlap at which two cues' groups are the same
OUTLIER_Z = 7.0  # a picture this many spreads from the others' median stands apart on that cue
OUTLIER_FLOORS = 2.0  # … and by at least this many smallest meaningful differences
MAX_OUTLIER_SHARE = 0.1  # more pictures than this apart on one cue are a group, not outliers
SPLIT_STARTS = 9  # EM starts, spread over the possible splits of the sorted values
EM_STEPS = 25


@dataclass(frozen=True)
class Cue:
    """How one cue is compared and described."""

    name: str
    title: str  # "saturation"
    lower: str  # words for a group with lower values: "more muted"
    higher: str  # "more vivid"
    floor: float  # the smallest difference that matters: in the cue's units, or a ratio on the log scale
    scale: Scale = "linear"
    style: bool = True  # can a finding rest on it (False: it moves with content, it only supports)
    unit: str = ""
    digits: int = 2
    split_lr: float = 12.0  # the two-group statistic it must reach alone (set on homogeneous sets)
    least: float = 1e-6  # log scale: values below this are as good as this (no grain is no grain)

    def shown(self, value: float) -> str:
        """A value as the report prints it."""
        return f"{value:.{self.digits}f}{self.unit}"

    def transform(self, values: np.ndarray) -> np.ndarray:
        """Values on the scale the statistics use (NaN stays NaN)."""
        if self.scale == "log":
            return np.log(np.maximum(values, self.least))
        if self.scale == "share":
            p = np.clip(values, 0.005, 0.995)
            return np.log(p / (1 - p))
        return values

    def spread_floor(self, raw: np.ndarray) -> float:
        """The floor of the spread on the transformed scale, around the median of the `raw` values."""
        finite = raw[np.isfinite(raw)]
        middle = float(np.median(finite)) if finite.size else 0.0
        if self.scale == "linear":
            return self.floor / 2
        if self.scale == "log":
            return math.log(self.floor) / 2
        middle = min(max(middle, self.floor / 2 + 0.01), 0.99 - self.floor / 2)  # the floor around the median
        low, high = self.transform(np.array([middle - self.floor / 2, middle + self.floor / 2]))
        return abs(float(high - low)) / 2

    def differs(self, a: float, b: float, times: float = 1.0) -> bool:
        """True when `a` and `b` differ by at least `times` the smallest difference that matters."""
        if self.scale == "log":
            low, high = sorted((max(a, self.least), max(b, self.least)))
            return high / low >= self.floor**times
        return abs(a - b) >= times * self.floor


@dataclass
class CueDifference:
    """How a group differs from the rest on one cue."""

    cue: str
    words: str  # "more muted"
    title: str
    group: float  # median of the group
    rest: float  # median of the rest
    strength: float  # likelihood-ratio statistic (groups) or spreads from the rest (outliers)
    text: str = ""  # "saturation 0.21 vs 0.48"
    shown: tuple[str, str] = ("", "")  # the two medians as printed


@dataclass
class StyleGroup:
    """Pictures that stand apart from the rest of the target set, and why."""

    kind: Literal["groups", "apart"]  # two groups (periods), or a few pictures apart
    pictures: list[str]
    rest: int  # pictures in the rest
    differences: list[CueDifference] = field(default_factory=list)  # the strongest first

    @property
    def headline(self) -> str:
        """`more muted (saturation 0.21 vs 0.48 for the rest)`."""
        main = self.differences[0]
        return f"{main.words} ({main.text} for the rest)"


# gafu.curation.cues, with the smallest differences that matter (a ratio on the log scale) and,
# for the style cues, the two-group statistic each must reach (set on homogeneous synthetic sets).
_SHARE, _LOG = "share", "log"
# fmt: off
PIXEL_CUES: tuple[Cue, ...] = (
    Cue("saturation", "saturation", "more muted", "more saturated", 0.06, _SHARE, split_lr=12),
    Cue("vivid", "strongest colours' saturation", "more muted", "more vivid", 0.08, _SHARE, split_lr=14),
    Cue("palette", "colours", "fewer colours", "more colours", 1.5, _LOG, digits=0, split_lr=13, least=1),
    Cue("grain", "grain", "smoother", "grainier", 1.5, _LOG, digits=3, least=0.002),
    Cue("line_width", "line width", "thinner lines", "thicker lines", 1.4, _LOG, unit=" px", digits=1,
        split_lr=17, least=0.5),
    Cue("colourfulness", "colourfulness", "less colourful", "more colourful", 1.4, _LOG, style=False,
        digits=0, least=2),
    Cue("brightness", "brightness", "darker", "lighter", 0.08, _SHARE, style=False),
    Cue("contrast", "contrast", "flatter", "more contrasty", 1.3, _LOG, style=False, least=0.01),
    Cue("edges", "edge density", "less detailed", "more detailed", 0.01, _SHARE, style=False, digits=3),
    Cue("ink", "line coverage", "less line work", "more line work", 0.005, _SHARE, style=False, digits=3),
)
# fmt: on
TAG_FLOOR = 0.15  # a style tag's probability must differ by this much to count


def tag_cue(tag: str) -> Cue:
    """The cue of a tagger style tag (its probability; RECIPE D1's muted vs vivid is `muted_color`)."""
    text = tag.replace("_", " ")
    return Cue(f"tag:{tag}", f"{text!r} probability", f"less {text}", f"more {text}", TAG_FLOOR, "share")


def robust_scale(values: np.ndarray, floors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column of `values` (N, K): median and spread (1.4826 × MAD), the spread never below `floors`."""
    centre = np.nanmedian(values, axis=0)
    spread = 1.4826 * np.nanmedian(np.abs(values - centre), axis=0)
    return centre, np.maximum(np.nan_to_num(spread), floors)


def find_style_groups(table: dict[str, dict[str, float]], cues: list[Cue]) -> list[StyleGroup]:
    """Groups of pictures in `table` (picture → cue → value) that stand apart, strongest first."""
    names = sorted(table)
    if len(names) < MIN_PICTURES:
        return []
    splits: list[tuple[Cue, set[str], float, np.ndarray]] = []
    apart: dict[str, list[tuple[Cue, float, np.ndarray]]] = {}
    for cue in cues:
        raw = np.array([table[n].get(cue.name, math.nan) for n in names], dtype=np.float64)
        values = cue.transform(raw)
        known = np.isfinite(values)
        if known.sum() < MIN_PICTURES:
            continue
        split = _two_groups(values[known], cue.spread_floor(raw))
        if split is not None:
            statistic, smaller = split
            group = {str(n) for n, k in zip(np.array(names)[known], smaller, strict=True) if k}
            if _meaningful(raw, names, group, cue):
                splits.append((cue, group, statistic, raw))
        for name, z in _standing_apart(values, raw, cue, names):
            apart.setdefault(name, []).append((cue, z, raw))
    groups = _merge_splits(splits, names)
    taken = {n for g in groups for n in g.pictures}
    groups += _outlier_groups(apart, taken, names)
    return sorted(groups, key=lambda g: -g.differences[0].strength)


# --- two groups -----------------------------------------------------------------------------------


def _two_groups(values: np.ndarray, spread_floor: float) -> tuple[float, np.ndarray] | None:
    """The best two-group fit of `values`: (likelihood-ratio statistic, mask of the smaller group)."""
    n = len(values)
    smallest = max(MIN_GROUP, math.ceil(MIN_GROUP_SHARE * n))
    if n < 2 * smallest:
        return None
    floor = max(spread_floor, 1e-9)
    sd1 = max(float(values.std()), floor)
    one = -n * math.log(sd1) - float(((values - values.mean()) ** 2).sum()) / (2 * sd1**2)
    ordered = np.sort(values)
    best: tuple[float, np.ndarray] | None = None
    starts = sorted(
        {round(x) for x in np.linspace(smallest, n - smallest, min(SPLIT_STARTS, n - 2 * smallest + 1))}
    )
    for k in starts:  # EM from several splits of the sorted values; the best fit wins
        fitted = _em(values, ordered[:k], ordered[k:], floor)
        if fitted is None:
            continue
        loglik, responsibility = fitted
        statistic = 2 * (loglik - one)
        lower = responsibility > 0.5  # (N,): in the lower component
        if min(lower.sum(), n - lower.sum()) < smallest:
            continue
        if best is None or statistic > best[0]:
            smaller = lower if lower.sum() <= n - lower.sum() else ~lower
            best = (statistic, smaller)
    return best


def _em(
    values: np.ndarray, low: np.ndarray, high: np.ndarray, floor: float
) -> tuple[float, np.ndarray] | None:
    """EM for two Gaussians with one shared spread, from a split: (log-likelihood, P(lower) per value)."""
    n = len(values)
    means = np.array([low.mean(), high.mean()])
    weights = np.array([len(low), len(high)], dtype=np.float64) / n
    spread = max(math.sqrt((((low - means[0]) ** 2).sum() + ((high - means[1]) ** 2).sum()) / n), floor)
    for _ in range(EM_STEPS):
        log_p = -((values[:, None] - means[None]) ** 2) / (2 * spread**2) + np.log(weights)[None]  # (N, 2)
        top = log_p.max(axis=1, keepdims=True)
        resp = np.exp(log_p - top)
        resp /= resp.sum(axis=1, keepdims=True)
        counts = resp.sum(axis=0)
        if counts.min() < MIN_GROUP_SHARE * n / 2:
            return None  # one component emptied: no two groups here
        weights = counts / n
        means = (resp * values[:, None]).sum(axis=0) / counts
        spread = max(math.sqrt(float((resp * (values[:, None] - means[None]) ** 2).sum()) / n), floor)
    log_p = -((values[:, None] - means[None]) ** 2) / (2 * spread**2) + np.log(weights)[None]
    top = log_p.max(axis=1, keepdims=True)
    loglik = float((top[:, 0] + np.log(np.exp(log_p - top).sum(axis=1))).sum()) - n * math.log(spread)
    resp = np.exp(log_p - top)
    resp /= resp.sum(axis=1, keepdims=True)
    lower = 0 if means[0] <= means[1] else 1
    return loglik, resp[:, lower]


def _meaningful(raw: np.ndarray, names: list[str], group: set[str], cue: Cue) -> bool:
    inside = np.array([n in group for n in names])
    return cue.differs(_median(raw[inside]), _median(raw[~inside]))


def _merge_splits(
    splits: list[tuple[Cue, set[str], float, np.ndarray]], names: list[str]
) -> list[StyleGroup]:
    """One finding per set of groups the cues agree on; it must rest on a style cue (or two agreeing)."""
    splits = sorted(splits, key=lambda s: -s[2])
    used = [False] * len(splits)
    found = []
    for i, (_, group, _, _) in enumerate(splits):
        if used[i]:
            continue
        agreeing = [
            j for j in range(i, len(splits)) if not used[j] and _jaccard(group, splits[j][1]) >= SAME_GROUPS
        ]
        style = [splits[j] for j in agreeing if splits[j][0].style]
        scale = max(1.0, math.sqrt(len(names) / BAR_SET_SIZE))  # the statistic grows with the set
        strong = any(s[2] >= scale * s[0].split_lr for s in style)
        supported = sum(1 for s in style if s[2] >= SUPPORTED_SHARE * scale * s[0].split_lr) >= 2
        if not (strong or supported):
            continue
        for j in agreeing:
            used[j] = True
        lead = max(style, key=lambda s: s[2])
        members = sorted(lead[1])
        inside = np.array([n in lead[1] for n in names])
        differences = [_difference(splits[j][0], splits[j][3], inside, splits[j][2]) for j in agreeing]
        differences.sort(key=lambda d: (d.cue != lead[0].name, -d.strength))
        found.append(
            StyleGroup(
                "groups" if len(members) > MIN_GROUP else "apart",
                members,
                len(names) - len(members),
                differences,
            )
        )
    return found


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 0.0


# --- pictures that stand apart --------------------------------------------------------------------


def _standing_apart(
    values: np.ndarray, raw: np.ndarray, cue: Cue, names: list[str]
) -> list[tuple[str, float]]:
    """Pictures far from the others' median on this cue: (name, signed spreads from it)."""
    if not cue.style:
        return []
    known = np.flatnonzero(np.isfinite(values))
    floor = cue.spread_floor(raw)
    found = []
    for i in known:
        others = known[known != i]
        centre = float(np.median(values[others]))
        spread = max(1.4826 * float(np.median(np.abs(values[others] - centre))), floor)
        z = (values[i] - centre) / spread
        if abs(z) >= OUTLIER_Z and cue.differs(raw[i], _median(raw[others]), OUTLIER_FLOORS):
            found.append((names[i], float(z)))
    if len(found) > max(1, MAX_OUTLIER_SHARE * len(known)):
        return []  # that many apart is a second group, which the two-group test judges
    return found


def _outlier_groups(
    apart: dict[str, list[tuple[Cue, float, np.ndarray]]], taken: set[str], names: list[str]
) -> list[StyleGroup]:
    """Pictures apart on the same cue, in the same direction, as one finding each."""
    by_reason: dict[tuple[str, bool], list[str]] = {}
    detail: dict[tuple[str, bool], tuple[Cue, np.ndarray, float]] = {}
    for name, reasons in apart.items():
        if name in taken:
            continue
        cue, z, raw = max(reasons, key=lambda r: abs(r[1]))
        key = (cue.name, z > 0)
        by_reason.setdefault(key, []).append(name)
        previous = detail.get(key)
        detail[key] = (cue, raw, max(abs(z), previous[2] if previous else 0.0))
    found = []
    for key, members in by_reason.items():
        cue, raw, strength = detail[key]
        inside = np.array([n in members for n in names])
        found.append(
            StyleGroup(
                "apart", sorted(members), len(names) - len(members), [_difference(cue, raw, inside, strength)]
            )
        )
    return found


# --- words ----------------------------------------------------------------------------------------


def _difference(cue: Cue, raw: np.ndarray, inside: np.ndarray, strength: float) -> CueDifference:
    group, rest = _median(raw[inside]), _median(raw[~inside])
    words = cue.lower if group < rest else cue.higher
    text = f"{cue.title} {cue.shown(group)} vs {cue.shown(rest)}"
    return CueDifference(
        cue.name, words, cue.title, round(group, 4), round(rest, 4), round(strength, 2), text
    )


def _median(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else math.nan
