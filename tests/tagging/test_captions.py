"""Choosing tags from scores (thresholds, MCut, floor) and building captions (T3, T4, lists, merge)."""

import numpy as np
import pytest

from gafu.config import Config
from gafu.errors import ConfigError
from gafu.tagging.captions import CaptionRules, build_caption, caption_rules, merge_caption
from gafu.tagging.labels import CHARACTER, GENERAL, RATING, TaggerLabels
from gafu.tagging.select import PictureScores, Thresholds, keep_scores, mcut_threshold, select_tags

TARGET = CaptionRules(which="target", trigger="mzh_style")
REG = CaptionRules(which="reg", trigger="mzh_style")


def _labels():
    names = ("general", "sensitive", "1girl", "smile", "hat", "hatsune_miku", "artist_name")
    categories = (RATING, RATING, GENERAL, GENERAL, GENERAL, CHARACTER, 1)
    return TaggerLabels(names=names, categories=categories, path=None)


def test_scores_keep_every_probability_at_or_above_the_floor_and_every_rating():
    probabilities = np.array([0.9, 0.01, 0.97, 0.05, 0.049, 0.3, 0.99])
    scores = keep_scores(probabilities, _labels(), floor=0.05)
    assert scores.rating == {"general": 0.9, "sensitive": 0.01}
    assert scores.general == {"1girl": 0.97, "smile": 0.05}
    assert scores.character == {"hatsune_miku": 0.3}  # other Danbooru categories are never kept


def test_thresholds_choose_general_character_and_rating_tags():
    scores = PictureScores(
        general={"1girl": 0.97, "smile": 0.45, "hat": 0.36},
        character={"hatsune_miku": 0.8},
        rating={"general": 0.9, "sensitive": 0.2},
    )
    assert select_tags(scores, Thresholds(general=0.5, character=0.85), 0.05) == ["1girl"]
    assert select_tags(scores, Thresholds(general=0.35, character=0.75), 0.05) == [
        "hatsune_miku",
        "1girl",
        "smile",
        "hat",
    ]
    with_rating = select_tags(scores, Thresholds(general=0.5, character=0.85, rating=True), 0.05)
    assert with_rating == ["general", "1girl"]


def test_mcut_cuts_at_the_largest_gap():
    assert mcut_threshold([0.9, 0.85, 0.3, 0.2], floor=0.05) == pytest.approx((0.85 + 0.3) / 2)
    assert mcut_threshold([0.4], floor=0.05) == pytest.approx((0.4 + 0.05) / 2)
    scores = PictureScores(general={"a": 0.9, "b": 0.85, "c": 0.3, "d": 0.2})
    assert select_tags(scores, Thresholds(general=0.99, character=0.99, mcut=True), 0.05) == ["a", "b"]


def test_trigger_leads_target_captions_and_never_appears_on_reg_captions():
    predicted = ["1girl", "mzh_style", "smile"]  # the model itself predicting the trigger
    assert build_caption(predicted, TARGET) == ["mzh_style", "1girl", "smile"]
    assert build_caption(predicted, REG) == ["1girl", "smile"]
    assert build_caption(["mzh style"], REG) == []  # any spelling of it


def test_tag_text_keeps_kaomoji_and_escapes_parentheses_when_asked():
    predicted = ["long_hair", "^_^", ">_<", "star_(symbol)"]
    assert build_caption(predicted, REG) == ["long hair", "^_^", ">_<", "star (symbol)"]
    escaped = CaptionRules(which="reg", trigger="mzh_style", escape_parentheses=True)
    assert build_caption(predicted, escaped)[-1] == r"star \(symbol\)"


def test_bars_tags_and_the_set_lists():
    rules = CaptionRules(
        which="target",
        trigger="mzh_style",
        exclude=(r"star_\(symbol\)", "Long Hair"),  # spelled differently from the tags
        add=("mosaic_censoring",),
    )
    caption = build_caption(["long_hair", "star_(symbol)", "smile"], rules, bars="letterboxed")
    assert caption == ["mzh_style", "smile", "letterboxed", "mosaic censoring"]
    assert build_caption(["smile"], REG, bars="pillarboxed") == ["smile", "pillarboxed"]


def test_merge_keeps_existing_tags_first_and_adds_what_they_lack():
    existing = ["my own tag", "Long Hair", "mzh_style"]
    fresh = ["mzh_style", "long hair", "smile"]
    assert merge_caption(existing, fresh, TARGET) == ["mzh_style", "my own tag", "Long Hair", "smile"]
    assert merge_caption(existing, ["smile"], REG) == ["my own tag", "Long Hair", "smile"]


@pytest.mark.parametrize(
    ("which", "section", "needle"),
    [
        ("target", {"add": ["a_b"], "exclude": ["a b"]}, "both `add` and `exclude`"),
        ("target", {"exclude": ["mzh style"]}, "excludes the trigger"),
        ("reg", {"add": ["mzh_style"]}, "adds the trigger"),
    ],
)
def test_contradictory_lists_are_config_errors(which, section, needle):
    config = Config()
    config.project.trigger = "mzh_style"
    for key, value in section.items():
        setattr(config.tag.for_set(which), key, value)
    with pytest.raises(ConfigError, match=needle):
        caption_rules(config, which)
