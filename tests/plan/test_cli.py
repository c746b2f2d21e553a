import json
import subprocess
import sys

from gafu.cli import COMMANDS, main
from gafu.fsio import read_json
from gafu.plan import plan_from_dict
from tests.conftest import gafu_env


def test_plan_is_a_command_after_init():
    assert COMMANDS.index("plan") > COMMANDS.index("init")


def test_plan_prints_the_plan_and_writes_the_report_only(prepared_project, capsys):
    project = prepared_project(n_target=40, n_reg=40, size=(512, 512))
    assert main(["plan", str(project.root), "--vram", "16"]) == 0
    out = capsys.readouterr().out
    assert "effective batch" in out and "recipe P2: repeats 2 × 40 target pictures" in out
    assert "steps per epoch" in out and "lr_scheduler" not in out
    report = read_json(project.reports_dir / "plan.json")
    assert report["stage"] == "plan"
    assert plan_from_dict(report["plan"]).batch.total_steps == 400
    assert not project.output_dir.exists()  # output/plan.json is gafu train's


def test_plan_json_and_default_project_folder(prepared_project, capsys, monkeypatch):
    project = prepared_project(n_target=4, n_reg=4, size=(256, 256), family="noob-vpred")
    monkeypatch.chdir(project.root)
    assert main(["plan", "--json", "--vram", "12"]) == 0
    captured = capsys.readouterr()
    plan = plan_from_dict(json.loads(captured.out))
    assert plan.loss.v_parameterization and plan.memory.vram_gb == 12
    assert "gafu: warning: no base model" in captured.err


def test_plan_export_kohya(prepared_project, capsys, tmp_path):
    project = prepared_project(n_target=4, n_reg=4, size=(256, 256))
    folder = tmp_path / "kohya"
    assert main(["plan", str(project.root), "--vram", "24", "--export", "kohya", str(folder)]) == 0
    out = capsys.readouterr().out
    assert sorted(p.name for p in folder.iterdir()) == ["command.txt", "config.toml", "dataset.toml"]
    assert "sdxl_train_network.py --config_file" in out


def test_plan_errors_are_one_line(prepared_project, make_project, capsys, tmp_path):
    project = prepared_project(n_target=2, n_reg=2, size=(256, 256))
    assert main(["plan", str(project.root), "--export", "onetrainer", str(tmp_path / "x")]) == 2
    assert "gafu: error: --export onetrainer: unknown format; use one of: kohya" in capsys.readouterr().err
    assert main(["plan", str(project.root), "--vram", "-3"]) == 2
    assert "--vram -3" in capsys.readouterr().err
    assert main(["plan", str(tmp_path / "nowhere")]) == 2
    assert "no such project folder" in capsys.readouterr().err


def test_plan_runs_as_a_module_in_seconds(prepared_project):
    project = prepared_project(n_target=4, n_reg=4, size=(256, 256))
    env = gafu_env()
    done = subprocess.run(
        [sys.executable, "-m", "gafu", "plan", str(project.root), "--json"],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    plan = plan_from_dict(json.loads(done.stdout))
    assert plan.memory.gpu == "" and plan.memory.vram_gb == 12.0  # no GPU here: the stated default
