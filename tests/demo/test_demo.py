"""`gafu demo` end to end: every stage on the synthetic dataset and the tiny model (issue 9)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from gafu.captions.text import read_caption
from gafu.demo.drift import is_older_period
from gafu.demo.run import DEMO_TRIGGER, MARKER, DemoSettings, run_demo
from gafu.errors import GafuError
from gafu.network.files import read_lokr_file
from gafu.project import Project
from tests.conftest import gafu_env

# The demo's settings, shortened: 8 pictures (still every sky in both sets, for D3), two epochs,
# three sampling steps.
FAST = DemoSettings(pictures=8, epochs=2, restart_every_epochs=1, save_every_epochs=1, sample_steps=3)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    stages = []
    result = run_demo(tmp_path_factory.mktemp("demo") / "gafu-demo", FAST, on_stage=stages.append)
    return result, stages


@pytest.mark.slow
def test_every_stage_runs_in_order_and_the_report_links_its_results(demo):
    result, heard = demo
    names = ["make inputs", "init", "prep", "tag", "check", "plan", "train", "eval", "sample"]
    assert [s.name for s in result.stages] == names and heard == result.stages
    page = result.report.read_text(encoding="utf-8")
    for grid in result.grids:
        assert grid.relative_to(result.folder).as_posix() in page
    assert result.lokr.relative_to(result.folder).as_posix() in page


@pytest.mark.slow
def test_the_report_shows_where_the_style_went(demo):
    result, _ = demo
    assert [e["epoch"] for e in result.style] == [1, 2]  # the probe at every save, the final one too
    rows = result.evaluation["rows"]
    assert [r["weight"] for r in rows] == [0.5, 1.0, 1.5]  # gafu eval at the plan's sample weights
    # the same draws (the file is saved in fp16, the trainer measured its fp32 weights)
    assert rows[1]["fit"] == pytest.approx(result.style[-1]["fit"], rel=0.02)
    page = result.report.read_text(encoding="utf-8")
    section = page.split("Where the style went")[1].split("Sample grids")[0]
    for name in ("fit", "leakage", "trigger share", "drift"):
        assert f"<th>{name}</th>" in section
    assert f"<td>{result.style[-1]['fit']:+.2%}</td>".replace("%", " %") in section
    assert (result.project / "reports" / "eval.json").is_file()


@pytest.mark.slow
def test_originals_and_layout(demo):
    result, _ = demo
    project = Project.open(result.project)
    for which, n in (("target", FAST.pictures), ("reg", FAST.pictures)):
        assert len(project.pictures(which)) == n
    # D5: kohya's layout, <repeats>_<trigger> and <repeats>_reg; sides multiples of 64 (D4b).
    assert project.concept_dir("target").name == f"2_{DEMO_TRIGGER}"
    assert project.concept_dir("reg").name == "2_reg"
    for picture in project.pictures("target") + project.pictures("reg"):
        width, height = Image.open(picture.path).size
        assert width % 64 == 0 and height % 64 == 0 and max(width, height) <= 320


@pytest.mark.slow
def test_captions_follow_t2_and_t3(demo):
    result, _ = demo
    project = Project.open(result.project)
    target = [read_caption(p.caption_path).tags for p in project.pictures("target")]
    reg = [read_caption(p.caption_path).tags for p in project.pictures("reg")]
    assert all(tags[0] == DEMO_TRIGGER for tags in target)  # T3: trigger first
    assert not any(DEMO_TRIGGER in tags for tags in reg)  # T3: never in regularization
    # T2: the demo tagger scores `outdoors` ≈ 0.45, between the two thresholds.
    assert all("outdoors" in tags for tags in reg) and not any("outdoors" in tags for tags in target)
    assert sum(map(len, reg)) / len(reg) > sum(map(len, target)) / len(target) - 1


@pytest.mark.slow
def test_check_report_and_plan_numbers(demo):
    result, _ = demo
    check = json.loads((result.project / "reports" / "check.json").read_text(encoding="utf-8"))
    assert check["summary"]["error"] == 0
    # D1: the demo draws every fourth target picture in an older, muted period; check names those.
    drift = [f for f in check["findings"] if f["code"] in ("style-groups", "style-apart")]
    target = Project.open(result.project).pictures("target")
    older = [p.path.name for p in target if is_older_period(int(p.path.stem.split("_")[1]))]
    assert len(drift) == 1 and [Path(f).name for f in drift[0]["files"]] == older and len(older) == 2
    assert "more muted" in drift[0]["message"]
    assert check["coverage"]["uncovered"] == []  # D3: every target tag is in regularization captions
    plan = json.loads((result.project / "output" / "plan.json").read_text(encoding="utf-8"))
    batch = plan["batch"]
    # P2: effective batch = repeats × target pictures; P3: with regularization, 2 steps an epoch.
    assert batch["effective_batch"] == 2 * FAST.pictures
    assert batch["batch_size"] * batch["gradient_accumulation"] >= batch["effective_batch"]
    assert batch["steps_per_epoch"] == 2 and batch["total_steps"] == 2 * FAST.epochs


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
    # Saved every epoch; the last one is the final file, named without an epoch.
    assert len(epochs) == FAST.epochs - 1 and result.lokr.name == f"{DEMO_TRIGGER}.safetensors"


@pytest.mark.slow
def test_grids_have_the_expected_size(demo):
    result, _ = demo
    weights = Project.open(result.project).config.sample.weights
    assert result.grids
    for grid in result.grids:
        width, height = Image.open(grid).size
        # Two columns (with and without the trigger) and a row per weight, plus labels.
        assert 2 * FAST.sample_side <= width < 2 * FAST.sample_side + 200
        assert len(weights) * FAST.sample_side <= height < len(weights) * FAST.sample_side + 200


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
    assert "minutes" not in shown and "under a minute" not in readme
