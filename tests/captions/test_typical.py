"""The dataset's typical captions as default sample prompts (P10)."""

from __future__ import annotations

from gafu import recipe
from gafu.captions.typical import typical_prompts

TRIGGER = "mzh_style"


def test_typical_prompts_are_real_captions_without_trigger_or_unwanted_tags():
    captions = [
        [TRIGGER, "1girl", "solo", "white dress", "letterboxed"],
        [TRIGGER, "1girl", "solo", "white dress", "smile"],
        [TRIGGER, "1girl", "solo", "black dress"],
        [TRIGGER, "landscape", "tree", "sky"],
        [TRIGGER, "landscape", "tree", "river"],
    ]
    prompts = typical_prompts(captions, trigger=TRIGGER, unwanted=recipe.UNWANTED_TAGS)
    assert len(prompts) == 2
    # the most typical caption, its tags ordered by how many captions hold them
    assert prompts[0] == "1girl, solo, white dress"
    # the second shares less than half its tags with the first: the landscape captions
    assert prompts[1].startswith("landscape, tree")
    assert all(TRIGGER not in p and "letterboxed" not in p for p in prompts)


def test_typical_prompts_take_near_duplicates_when_nothing_else_is_there():
    captions = [[TRIGGER, "1girl", "solo"], [TRIGGER, "1girl", "solo", "smile"]]
    prompts = typical_prompts(captions, trigger=TRIGGER, unwanted=[])
    assert prompts == ["1girl, solo", "1girl, solo, smile"]
    assert typical_prompts([[TRIGGER]], trigger=TRIGGER, unwanted=[]) == []
