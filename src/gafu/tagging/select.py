"""Probabilities → tags: per-set thresholds (T2), MCut, character and rating tags.

Selection always works on a picture's kept scores (every probability at or above the score
floor, rounded), whether they come straight from the model or from a score file, so
`gafu tag --rethreshold` gives exactly the caption a fresh run would.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gafu.tagging.labels import CHARACTER, GENERAL, RATING, TaggerLabels

SCORE_DECIMALS = 4  # what the score files keep; more is noise for a threshold
MCUT_MIN_CHARACTER = 0.15  # with MCut, a character tag needs at least this (as the WD reference does)


@dataclass
class PictureScores:
    """A picture's kept probabilities by category, tag name → probability (CSV names, e.g. `long_hair`)."""

    general: dict[str, float] = field(default_factory=dict)
    character: dict[str, float] = field(default_factory=dict)
    rating: dict[str, float] = field(default_factory=dict)  # all of them: the caption takes the top one


@dataclass(frozen=True)
class Thresholds:
    """How one set's tags are chosen."""

    general: float  # T2: 0.5 target, 0.35 reg
    character: float
    mcut: bool = False  # choose the general threshold at the largest gap between probabilities
    rating: bool = False  # write the most likely rating tag


def keep_scores(probabilities: np.ndarray, labels: TaggerLabels, floor: float) -> PictureScores:
    """One picture's probabilities `(n_tags,)` → the scores kept: rating all, others at or above `floor`."""
    rounded = np.round(probabilities.astype(np.float64), SCORE_DECIMALS)
    scores = PictureScores()
    for category, kept in ((GENERAL, scores.general), (CHARACTER, scores.character), (RATING, scores.rating)):
        indices = labels.by_category[category]
        if category != RATING:
            indices = indices[rounded[indices] >= floor]
        kept.update((labels.names[i], float(rounded[i])) for i in indices)
    return scores


def select_tags(scores: PictureScores, thresholds: Thresholds, floor: float) -> list[str]:
    """Tag names for a caption: rating (if asked), characters, then general tags, most likely first."""
    general_cut, character_cut = thresholds.general, thresholds.character
    if thresholds.mcut:
        general_cut = mcut_threshold(list(scores.general.values()), floor)
        character_cut = max(MCUT_MIN_CHARACTER, mcut_threshold(list(scores.character.values()), floor))
    tags = []
    if thresholds.rating and scores.rating:
        tags.append(max(scores.rating.items(), key=lambda item: (item[1], item[0]))[0])
    tags += _at_or_above(scores.character, character_cut)
    tags += _at_or_above(scores.general, general_cut)
    return tags


def mcut_threshold(probabilities: list[float], floor: float) -> float:
    """MCut (Largeron et al., 2012): the midpoint of the largest gap between sorted probabilities.

    The floor counts as the lowest probability, so the cut is defined for one kept score
    and is the same on scores read back from a score file.
    """
    values = sorted([*probabilities, floor], reverse=True)
    if len(values) < 2:
        return 1.0
    gaps = [values[i] - values[i + 1] for i in range(len(values) - 1)]
    best = int(np.argmax(gaps))
    return (values[best] + values[best + 1]) / 2


def _at_or_above(scores: dict[str, float], cut: float) -> list[str]:
    chosen = [(p, name) for name, p in scores.items() if p >= cut]
    return [name for p, name in sorted(chosen, key=lambda item: (-item[0], item[1]))]
