"""The long commands run in a terminal, as a user runs them: they exit 0 and draw their progress.

Each runs `python -m gafu` on a pseudo-terminal (tests/terminal.py); the projects are the tests'
tiny ones. A command added later gets a test here the same way. (`gafu demo` is run in a terminal
by its own tests, tests/demo/test_demo.py, whose results the other demo tests read.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gafu.captions.text import write_caption
from gafu.config import load_config, save_config
from gafu.prep.prepare import prepare
from gafu.project import Project
from tests.conftest import gafu_env
from tests.drawings import STYLES, draw
from tests.terminal import CTRL_C, assert_progress, needs_terminal, run_in_terminal

pytestmark = [needs_terminal, pytest.mark.slow]


def test_prep_draws_its_bar(make_project):
    project = make_project(n_target=3, n_reg=2)
    run = run_in_terminal(["prep", str(project.root), "--workers", "1"], env=gafu_env())
    assert_progress(run, "picture", total=5)
    assert "3 prepared" in run.output


def test_tag_draws_its_bar(untagged_project):
    project = untagged_project(3, 2)
    run = run_in_terminal(["tag", str(project.root)], env=gafu_env())
    assert_progress(run, "picture", total=5)
    assert all(p.caption_path.is_file() for p in project.pictures("target"))


def test_train_draws_the_latent_cache_then_the_steps(train_project):
    project = train_project(2, 2, epochs=2)
    run = run_in_terminal(["train", str(project.root)], env=gafu_env())
    steps = assert_progress(run, "step")
    assert steps[-1][1] == 4  # 2 + 2 pictures, batch 2: two steps an epoch
    # The latents are encoded before the first step, with a bar of their own.
    assert run.first("encoding latents") != -1, run.tail()
    assert 0 <= run.first_bar("picture") < run.first_bar("step")
    assert (4, 4) in run.bars("picture")
    assert "trained 4 steps" in run.output


def test_ctrl_c_says_at_once_that_the_run_stops_after_the_step(train_project):
    project = train_project(2, 2, epochs=8)  # 16 steps: time to press Ctrl-C
    after_first_step = r"\b[1-9]\d*/16 \[[\d:]+<"  # the step bar, once it has moved
    run = run_in_terminal(["train", str(project.root)], env=gafu_env(), press=(after_first_step, CTRL_C))
    assert run.returncode == 0, run.tail()
    assert run.pressed_at, run.tail()
    drawn = run.bars("step", end=run.pressed_at[0])[-1][0]  # steps finished when Ctrl-C was pressed
    after = run.output[run.pressed_at[0] :]
    notice = "(Ctrl-C again aborts without saving)"
    assert notice in after, run.tail()
    step = int(after.split(notice)[0].rsplit("stopping after step ", 1)[1].strip())
    assert step > drawn
    # The notice comes before the step it names is finished, and the run stops right after it.
    assert after.find(notice) < after.find(f"{step}/16 [")
    assert f"stopped at step {step} of 16; LoKr: " in after
    saved = after.split(f"stopped at step {step} of 16; LoKr: ")[1].split()[0]
    assert Path(saved).is_file() and Path(saved).parent == project.output_dir


def test_reg_pick_draws_its_bar(make_project, tiny_tagger, tmp_path):
    project = make_project(n_target=3, n_reg=0, family="sdxl")
    config = load_config(project.config_path)
    config.tag.tagger = str(tiny_tagger)
    save_config(config, project.config_path)
    project = Project.open(project.root)
    prepare(project, workers=1)
    for picture in project.pictures("target"):
        write_caption(picture.caption_path, ["mzh_style", "1girl", "smile"])
    pool = tmp_path / "pool"
    pool.mkdir()
    for i in range(4):
        draw(STYLES[i % len(STYLES)], seed=500 + i, size=(320, 256)).save(pool / f"p{i}.png")
    args = ["reg", "pick", str(project.root), str(pool), "--count", "2", "--dry-run"]
    run = run_in_terminal(args, env=gafu_env())
    assert_progress(run, "picture", total=4)
    assert "D3 coverage with these 2 pictures" in run.output, run.tail()


def test_sample_draws_its_bar(sample_project):
    run = run_in_terminal(["sample", str(sample_project.root), "--weights", "0,1"], env=gafu_env())
    assert_progress(run, "picture", total=8)  # 2 weights × 2 prompts × with/without the trigger
    assert "8 pictures rendered" in run.output


def test_eval_draws_its_bar(sample_project):
    run = run_in_terminal(["eval", str(sample_project.root), "--weights", "1"], env=gafu_env())
    states = assert_progress(run, "row")
    assert states[-1][1] >= 3  # the base model and two saved epochs, each a row of probe losses
    assert "trigger share" in run.output and "figures kept in" in run.output
