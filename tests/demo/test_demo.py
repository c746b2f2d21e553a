"""`gafu demo` end to end: every stage on the miniature world and the shipped demo model (issues 9, 19)."""

import json
import shutil
import subprocess
import sys

import pytest
from PIL import Image

from gafu.captions.text import read_caption, write_caption
from gafu.demo.drift import is_older_period
from gafu.demo.judge import JUDGE_FILE, KNOWN_STYLES
from gafu.demo.pretrain import shipped_model
from gafu.demo.run import DEMO_TRIGGER, MARKER, DemoSettings, load_demo_result, run_demo
from gafu.demo.verdict import VERDICT_FILE, judge_lokr
from gafu.demo.world import WORLD_SIDE
from gafu.errors import GafuError
from gafu.network.files import read_lokr_file
from gafu.project import Project
from tests.conftest import gafu_env
from tests.terminal import assert_progress, needs_terminal, run_in_terminal

SETTINGS = DemoSettings()  # the demo as `gafu demo` runs it: its scores are what this file asserts
# What "higher" must mean to be told apart from noise, for the probe's trigger share.
CLEARLY_HIGHER = 0.1
# For the tests that only need a folder refused: nothing is trained.
FAST = DemoSettings(pictures=8, epochs=2, restart_every_epochs=1, save_every_epochs=1, sample_steps=3)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo run once, as a user runs it: `gafu demo` in a terminal (in process where there is no pty)."""
    folder = tmp_path_factory.mktemp("demo") / "gafu-demo"
    if sys.platform == "win32":
        return run_demo(folder, SETTINGS), None
    run = run_in_terminal(["demo", str(folder)], env=gafu_env(), timeout=900)
    assert run.returncode == 0, run.output[-3000:]
    return load_demo_result(folder), run


@pytest.mark.slow
def test_every_stage_runs_in_order_and_the_report_links_its_results(demo):
    result, _ = demo
    names = ["make inputs", "init", "prep", "tag", "check", "plan", "train", "eval", "sample", "judge"]
    assert [s.name for s in result.stages] == names
    page = result.report.read_text(encoding="utf-8")
    for grid in result.grids:
        assert grid.relative_to(result.folder).as_posix() in page
    assert result.lokr.relative_to(result.folder).as_posix() in page
    assert result.judge_sheet.relative_to(result.folder).as_posix() in page


@needs_terminal
@pytest.mark.slow
def test_the_demo_draws_its_stages_and_bars_in_a_terminal(demo):
    result, run = demo
    assert_progress(run, "step")
    assert_progress(run, "picture")
    shown = [line.split()[0] for line in run.output.splitlines() if line.startswith("  ") and " s  " in line]
    assert shown == [s.name.split()[0] for s in result.stages]  # each stage as it ends, in order
    assert "did the style land in the trigger? " in run.output


@pytest.mark.slow
def test_the_trigger_raises_the_style_and_the_other_tags_do_not(demo):
    """Issue 19's bar: at weight 1 the judge gives the target style ≥ 0.7 with the trigger, and
    without it stays within 0.1 of the base model's score."""
    result, _ = demo
    verdict = json.loads((result.folder / VERDICT_FILE).read_text(encoding="utf-8"))
    rows = {row["weight"]: row for row in verdict["rows"]}
    assert sorted(rows) == list(SETTINGS.judge_weights) and verdict["pictures_per_cell"] == 16
    assert rows[0.0]["with_trigger"] < 0.1  # the base model never drew the target style
    assert rows[1.0]["with_trigger"] >= 0.7, rows[1.0]
    assert abs(rows[1.0]["without_trigger"] - rows[1.0]["base"]) <= 0.1, rows[1.0]
    assert verdict["learned"] and verdict["answer"].startswith("yes")
    section = result.report.read_text(encoding="utf-8").split("Did it learn the style?")[1]
    assert f"<td>{rows[1.0]['with_trigger']:.2f}</td>" in section


@pytest.mark.slow
def test_a_recipe_without_the_trigger_fails_the_judge_and_the_probe_tells(demo, tmp_path):
    """The same run with the trigger taken out of the target captions: nothing calls the style up,
    and the style probe gives the demo's LoKr the clearly higher trigger share."""
    from gafu.eval.evaluate import EvalRequest, evaluate_project
    from gafu.train.run import train

    result, _ = demo
    folder = tmp_path / "no-trigger"
    shutil.copytree(result.folder, folder)
    project = Project.open(folder / "project")
    for picture in project.pictures("target"):
        caption = read_caption(picture.caption_path)
        write_caption(picture.caption_path, [t for t in caption.tags if t != DEMO_TRIGGER])
    run = train(project, restart=True)
    verdict = judge_lokr(
        project, run.lokr, shipped_model() / JUDGE_FILE, weights=[0.0, 1.0], count=16, folder=folder
    )
    assert not verdict.learned and not verdict.trigger_raises
    # Both files on the demo project's probe (its captions have the trigger).
    probe = evaluate_project(
        Project.open(result.project), EvalRequest(lokr_files=[result.lokr, run.lokr], weights=[1.0])
    )
    with_trigger, without = (row.figures for row in probe.rows)
    assert with_trigger.fit > 0 and without.fit > 0
    assert with_trigger.trigger_share >= (without.trigger_share or 0) + CLEARLY_HIGHER, (
        with_trigger,
        without,
    )


@pytest.mark.slow
def test_the_report_shows_where_the_style_went(demo):
    result, _ = demo
    saves = list(range(SETTINGS.save_every_epochs, SETTINGS.epochs + 1, SETTINGS.save_every_epochs))
    assert [e["epoch"] for e in result.style] == saves  # the probe at every save, the final one too
    rows = result.evaluation["rows"]
    assert [r["weight"] for r in rows] == [0.5, 1.0, 1.5]  # gafu eval at the plan's sample weights
    # the same draws (the file is saved in fp16, the trainer measured its fp32 weights)
    assert rows[1]["fit"] == pytest.approx(result.style[-1]["fit"], rel=0.05)
    page = result.report.read_text(encoding="utf-8")
    section = page.split("Where the style went")[1].split("Sample grids")[0]
    for name in ("fit", "leakage", "trigger share", "drift"):
        assert f"<th>{name}</th>" in section
    assert (result.project / "reports" / "eval.json").is_file()


@pytest.mark.slow
def test_originals_and_layout(demo):
    result, _ = demo
    project = Project.open(result.project)
    aside = sorted((project.root / "set-aside").rglob("*.png"))
    assert len(project.pictures("target")) + len(aside) == SETTINGS.pictures
    assert len(project.pictures("reg")) == SETTINGS.reg_pictures
    assert len(list((result.folder / "originals" / "target").glob("*.png"))) == SETTINGS.pictures  # untouched
    # D5: kohya's layout, <repeats>_<trigger> and <repeats>_reg; the model's own side (D4b).
    assert project.concept_dir("target").name == f"2_{DEMO_TRIGGER}"
    assert project.concept_dir("reg").name == "2_reg"
    for picture in project.pictures("target") + project.pictures("reg"):
        assert Image.open(picture.path).size == (WORLD_SIDE, WORLD_SIDE)


@pytest.mark.slow
def test_captions_follow_t2_and_t3(demo):
    result, _ = demo
    project = Project.open(result.project)
    target = [read_caption(p.caption_path).tags for p in project.pictures("target")]
    reg = [read_caption(p.caption_path).tags for p in project.pictures("reg")]
    assert all(tags[0] == DEMO_TRIGGER for tags in target)  # T3: trigger first
    assert not any(DEMO_TRIGGER in tags for tags in reg)  # T3: never in regularization
    # T2: the demo tagger scores `outdoors` 0.45, between the two thresholds.
    assert all("outdoors" in tags for tags in reg) and not any("outdoors" in tags for tags in target)
    # the tagger knows a few styles (as a WD tagger knows "sketch"), never the target's
    assert sum(any(t in tags for t in KNOWN_STYLES) for tags in reg) >= 4
    assert not any(t in tags for tags in target for t in KNOWN_STYLES)


@pytest.mark.slow
def test_check_finds_the_older_period_and_the_demo_sets_it_aside(demo):
    result, _ = demo
    check = json.loads((result.project / "reports" / "check.json").read_text(encoding="utf-8"))
    assert check["summary"]["error"] == 0
    # D1: the demo draws every fourth target picture in an older, muted period; check names them.
    drift = [f for f in check["findings"] if f["code"] in ("style-groups", "style-apart")]
    found = {name.split("/")[-1] for f in drift for name in f["files"]}
    older = {f"target_{i:02d}" for i in range(SETTINGS.pictures) if is_older_period(i)}
    assert older <= {name[: len("target_00")] for name in found}
    aside = {p.name[: len("target_00")] for p in (result.project / "set-aside").rglob("*.png")}
    assert older <= aside
    assert check["coverage"]["uncovered"] == []  # D3: every target tag is in regularization captions
    plan = json.loads((result.project / "output" / "plan.json").read_text(encoding="utf-8"))
    batch = plan["batch"]
    kept = SETTINGS.pictures - len(aside)
    # P2: effective batch = repeats × target pictures; P3: with regularization, 2 steps an epoch.
    assert batch["effective_batch"] == 2 * kept
    assert batch["steps_per_epoch"] == 2 and batch["total_steps"] == 2 * SETTINGS.epochs


@pytest.mark.slow
def test_lokr_file_has_kohya_lycoris_names_and_metadata(demo):
    result, _ = demo
    lokr = read_lokr_file(result.lokr)
    assert lokr.module_names and all(
        n.startswith(("lora_unet_", "lora_te1_", "lora_te2_")) for n in lokr.module_names
    )
    assert any(key.endswith(".lokr_w1") for key in lokr.tensors)
    assert lokr.metadata["ss_network_module"] == "lycoris.kohya"
    assert "algo=lokr" in lokr.metadata["ss_network_args"].replace('"', "").replace(": ", "=")
    assert DEMO_TRIGGER in lokr.metadata["ss_tag_frequency"]
    epochs = sorted(result.lokr.parent.glob(f"{DEMO_TRIGGER}-e*.safetensors"))
    # Saved every few epochs; the last one is the final file, named without an epoch.
    saves = SETTINGS.epochs // SETTINGS.save_every_epochs
    assert len(epochs) == saves - 1 and result.lokr.name == f"{DEMO_TRIGGER}.safetensors"


@pytest.mark.slow
def test_grids_have_the_expected_size(demo):
    result, _ = demo
    weights = Project.open(result.project).config.sample.weights
    assert result.grids
    for grid in result.grids:
        width, height = Image.open(grid).size
        # Two columns (with and without the trigger) and a row per weight, plus labels.
        assert 2 * SETTINGS.sample_side <= width < 2 * SETTINGS.sample_side + 200
        assert len(weights) * SETTINGS.sample_side <= height < len(weights) * SETTINGS.sample_side + 200


def test_demo_refuses_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(GafuError, match="not made by `gafu demo`"):
        run_demo(tmp_path, FAST)
    assert (tmp_path / "mine.txt").read_text(encoding="utf-8") == "keep me"


def test_demo_replaces_an_earlier_demo_only_with_force(tmp_path):
    folder = tmp_path / "demo"
    folder.mkdir()
    (folder / MARKER).write_text('{"made_by": "gafu demo"}', encoding="utf-8")
    (folder / "old.txt").write_text("old", encoding="utf-8")
    with pytest.raises(GafuError, match="pass --force"):
        run_demo(folder, FAST)
    assert (folder / "old.txt").exists()


def test_cli_reports_a_non_empty_folder_in_one_line(tmp_path):
    (tmp_path / "mine.txt").write_text("x", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "gafu", "demo", str(tmp_path)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=gafu_env(),
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("gafu: error:")
    assert "not made by `gafu demo`" in done.stderr


def test_the_help_and_the_readme_give_the_same_running_time(capsys):
    from pathlib import Path

    from gafu.cli import main
    from gafu.demo.run import RUNNING_TIME

    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    readme = " ".join((Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8").split())
    assert RUNNING_TIME in shown and RUNNING_TIME in readme
    assert shown.count("minute") == RUNNING_TIME.count("minute")  # no second running time in the help
