"""Groups of pictures apart in style (D1), on cue tables made by hand: the statistics and the words."""

import math

import numpy as np
import pytest

from gafu.curation.consistency import PIXEL_CUES, Cue, find_style_groups, robust_scale, tag_cue

SATURATION = next(c for c in PIXEL_CUES if c.name == "saturation")
BRIGHTNESS = next(c for c in PIXEL_CUES if c.name == "brightness")


def table(values: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    count = len(next(iter(values.values())))
    return {f"p{i:02d}": {cue: v[i] for cue, v in values.items()} for i in range(count)}


def spread(centre: float, width: float, count: int, seed: int) -> list[float]:
    return list(np.random.default_rng(seed).normal(centre, width, count))


def test_a_group_apart_is_named_with_its_numbers():
    values = spread(0.5, 0.05, 16, 1) + spread(0.15, 0.03, 8, 2)
    groups = find_style_groups(table({"saturation": values}), [SATURATION])
    assert len(groups) == 1 and groups[0].kind == "groups"
    assert groups[0].pictures == [f"p{i:02d}" for i in range(16, 24)] and groups[0].rest == 16
    difference = groups[0].differences[0]
    assert difference.words == "more muted" and difference.group < 0.2 < 0.45 < difference.rest
    assert groups[0].headline.startswith("more muted (saturation 0.1")


def test_one_spread_of_values_is_no_group():
    assert find_style_groups(table({"saturation": spread(0.5, 0.08, 40, 3)}), [SATURATION]) == []


def test_differences_below_the_smallest_that_matters_are_no_group():
    values = [0.50] * 12 + [0.48] * 12  # two clean groups, 0.02 apart: below saturation's 0.06
    assert find_style_groups(table({"saturation": values}), [SATURATION]) == []


def test_a_content_cue_alone_never_makes_a_finding_but_supports_one():
    dark = spread(0.6, 0.03, 16, 4) + spread(0.2, 0.03, 8, 5)  # night scenes: darker, not another style
    assert find_style_groups(table({"brightness": dark}), [BRIGHTNESS]) == []
    muted = spread(0.5, 0.05, 16, 6) + spread(0.15, 0.03, 8, 7)
    groups = find_style_groups(table({"saturation": muted, "brightness": dark}), [SATURATION, BRIGHTNESS])
    assert [d.cue for d in groups[0].differences] == ["saturation", "brightness"]


def test_a_picture_alone_stands_apart_and_unknown_values_are_left_out():
    values = spread(3.0, 0.2, 20, 8)
    values[4] = 0.8
    values[7] = math.nan  # no lines to measure in that picture
    line = next(c for c in PIXEL_CUES if c.name == "line_width")
    groups = find_style_groups(table({"line_width": values}), [line])
    assert [(g.kind, g.pictures) for g in groups] == [("apart", ["p04"])]
    assert groups[0].differences[0].words == "thinner lines"


def test_too_few_pictures_are_not_compared():
    assert find_style_groups(table({"saturation": [0.5] * 6 + [0.0]}), [SATURATION]) == []


@pytest.mark.parametrize(("cue", "a", "b", "differs"), [
    (SATURATION, 0.40, 0.47, True), (SATURATION, 0.40, 0.45, False),
    (next(c for c in PIXEL_CUES if c.name == "line_width"), 2.0, 2.9, True),
    (next(c for c in PIXEL_CUES if c.name == "line_width"), 2.0, 2.7, False),
    (next(c for c in PIXEL_CUES if c.name == "grain"), 0.0001, 0.0015, False),  # both "no grain"
])  # fmt: skip
def test_smallest_differences_that_matter(cue: Cue, a, b, differs):
    assert cue.differs(a, b) is differs


def test_tag_cues_speak_of_the_tag():
    cue = tag_cue("muted_color")
    assert (cue.name, cue.lower, cue.higher) == ("tag:muted_color", "less muted color", "more muted color")


def test_robust_scale_keeps_spreads_above_their_floors():
    values = np.array([[1.0, 5.0], [1.0, 6.0], [1.0, 7.0], [1.0, 100.0]])
    centre, scale = robust_scale(values, np.array([0.1, 0.1]))
    assert (
        centre.tolist() == [1.0, 6.5] and scale[0] == 0.1 and 1 < scale[1] < 3
    )  # the outlier barely moves it
