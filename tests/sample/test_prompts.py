"""Sample prompts: the plan's prompts, kohya-style prompts files."""

from __future__ import annotations

import pytest

from gafu.errors import GafuError
from gafu.plan.model import SamplePlan
from gafu.sample.prompts import FALLBACK_PROMPT, plan_prompts, read_prompts_file

TRIGGER = "mzh_style"
SAMPLE = SamplePlan(
    prompts=["1girl, smile"],
    negative="lowres",
    weights=[0.0, 1.0],
    seed=1234,
    scheduler="euler_a",
    steps=28,
    cfg=6.0,
    guidance_rescale=0.0,
    timestep_spacing="leading",
    width=1024,
    height=1024,
)


def write_prompts(tmp_path, text: str):
    path = tmp_path / "prompts.txt"
    path.write_text(text, encoding="utf-8")
    return path


def test_plan_prompts_carry_the_plan_settings_and_drop_a_written_trigger():
    sample = SamplePlan(**{**SAMPLE.__dict__, "prompts": [f"{TRIGGER}, 1girl, smile", "landscape"]})
    prompts = plan_prompts(sample, TRIGGER)
    assert [p.text for p in prompts] == ["1girl, smile", "landscape"]
    assert prompts[0].with_trigger(TRIGGER) == f"{TRIGGER}, 1girl, smile"
    assert (prompts[1].seed, prompts[1].steps, prompts[1].cfg, prompts[1].scheduler) == (
        1234,
        28,
        6.0,
        "euler_a",
    )
    empty = SamplePlan(**{**SAMPLE.__dict__, "prompts": []})
    assert [p.text for p in plan_prompts(empty, TRIGGER)] == [FALLBACK_PROMPT]


def test_resolved_plan_holds_the_dataset_prompts(make_captioned_project):
    from gafu.plan import resolve_plan

    project = make_captioned_project(
        [[TRIGGER, "1girl", "white dress"], [TRIGGER, "1girl", "white dress", "smile"]],
        [["1girl", "black dress"]],
    )
    plan = resolve_plan(project, 12.0, describe=lambda *a, **k: None)
    assert plan.sample.prompts[0] == "1girl, white dress"
    assert plan.sources["sample.prompts"] == "gafu default: the most typical target captions"


# --- prompts files --------------------------------------------------------------------------------
def test_kohya_prompt_file_options_override_the_plan(tmp_path):
    path = write_prompts(
        tmp_path,
        "# a comment\n\n"
        f"{TRIGGER}, 1girl, white dress --n bad hands, lowres --w 832 --h 1216 --s 20 --l 4.5 --d 7\n"
        "landscape --ss dpmpp_2m_karras\n",
    )
    first, second = read_prompts_file(path, SAMPLE, TRIGGER)
    assert first.text == "1girl, white dress"
    assert (first.negative, first.width, first.height, first.steps, first.cfg, first.seed) == (
        "bad hands, lowres",
        832,
        1216,
        20,
        4.5,
        7,
    )
    assert first.source == "prompts.txt line 3"
    assert (second.text, second.negative, second.width, second.seed, second.scheduler) == (
        "landscape",
        "lowres",
        1024,
        1234,
        "dpmpp_2m_karras",
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("1girl --w wide", r"prompts\.txt line 2: --w 'wide' is not a whole number"),
        ("1girl --w 1001", r"line 2: --w 1001 must be a positive multiple of 8"),
        ("1girl --l high", r"line 2: --l 'high' is not a number"),
        ("1girl --s 0", r"line 2: --s 0: at least one step"),
        ("1girl --x 3", r"line 2: unknown option --x"),
        ("--n lowres", r"line 2: no prompt before the options"),
    ],
)
def test_a_bad_prompts_line_is_named(tmp_path, line, message):
    path = write_prompts(tmp_path, f"1girl, smile\n{line}\n")
    with pytest.raises(GafuError, match=message):
        read_prompts_file(path, SAMPLE, TRIGGER)


def test_missing_empty_and_non_utf8_prompts_files_are_clear_errors(tmp_path):
    with pytest.raises(GafuError, match="does not exist"):
        read_prompts_file(tmp_path / "none.txt", SAMPLE, TRIGGER)
    with pytest.raises(GafuError, match="holds no prompts"):
        read_prompts_file(write_prompts(tmp_path, "# only a comment\n"), SAMPLE, TRIGGER)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("café, 1girl\n".encode("latin-1"))
    with pytest.raises(GafuError, match="not UTF-8"):
        read_prompts_file(latin, SAMPLE, TRIGGER)
