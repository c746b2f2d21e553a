"""The run in output/: starting over moves the previous one aside; the current run's files are found."""

from __future__ import annotations

import hashlib

import pytest

from gafu.errors import GafuError
from gafu.plan.model import load_plan
from gafu.sample.samples import epoch_file, latest_lokr
from gafu.train import train
from gafu.train.runs import check_start, current_run, lokr_files, move_aside
from gafu.train.state import save_state


def _digests(folder) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.slow
def test_starting_over_moves_the_previous_run_aside_and_sampling_takes_the_new_run(train_project):
    project = train_project(2, 2, epochs=2)  # 2 steps an epoch
    train(project)
    before = _digests(project.output_dir)
    assert "mzh_style.safetensors" in before

    def stop_early(event):  # the new run is interrupted in its first epoch
        if event["event"] == "step" and event["step"] == 1:
            (project.output_dir / "STOP").write_text("", encoding="utf-8")

    again = train(project, restart=True, callbacks=[stop_early])
    assert again.outcome == "stopped" and again.step == 2
    runs = list((project.output_dir / "runs").iterdir())
    assert len(runs) == 1 and any(f"output/runs/{runs[0].name}/" in note for note in again.notes)
    # Nothing deleted: the previous run, whole, in output/runs/<date>/.
    assert _digests(runs[0]) == before
    # output/ holds the new run only, and every command's pick is the new run's file.
    top = sorted(p.name for p in project.output_dir.glob("*.safetensors"))
    assert top == ["mzh_style-e000001.safetensors"]
    plan = load_plan(project.plan_path)
    assert latest_lokr(project, plan) == project.output_dir / "mzh_style-e000001.safetensors"
    assert latest_lokr(project, plan).read_bytes() != (runs[0] / "mzh_style-e000001.safetensors").read_bytes()
    with pytest.raises(GafuError, match="no LoKr for epoch 2"):
        epoch_file(project, plan, 2)  # the old run's epoch 2 is not this run's


def test_the_latest_lokr_of_a_stopped_run_is_its_stop_file(tmp_path):
    for name in ("mzh-e000001.safetensors", "mzh-e000002.safetensors", "mzh-step000005.safetensors"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "other-e000009.safetensors").write_bytes(b"")
    files = lokr_files(tmp_path, "mzh", steps_per_epoch=2)
    assert [f.label for f in files] == ["epoch 1", "epoch 2", "step 5"]
    (tmp_path / "mzh.safetensors").write_bytes(b"")
    assert lokr_files(tmp_path, "mzh", steps_per_epoch=2)[-1].label == "final"


def test_move_aside_keeps_the_lock_and_names_folders_apart(tmp_path):
    output = tmp_path / "output"
    (output / "state").mkdir(parents=True)
    (output / "train.lock").write_text("1", encoding="utf-8")
    (output / "a.safetensors").write_bytes(b"a")
    first = move_aside(output)
    (output / "b.safetensors").write_bytes(b"b")
    second = move_aside(output)
    assert first != second and first.parent == second.parent == output / "runs"
    assert (first / "a.safetensors").read_bytes() == b"a" and (first / "state").is_dir()
    assert (second / "b.safetensors").read_bytes() == b"b"
    assert sorted(p.name for p in output.iterdir()) == ["runs", "train.lock"]
    assert move_aside(output) is None  # nothing of a run left


def test_check_start_says_what_a_saved_run_needs(train_project):
    project = train_project(2, 2, epochs=1)
    output = project.output_dir
    assert check_start(output, resume=False, restart=False).saved_step is None
    with pytest.raises(GafuError, match="nothing to resume"):
        check_start(output, resume=True, restart=False)
    from gafu.plan import resolve_plan
    from gafu.plan.model import save_plan

    plan = resolve_plan(project)
    save_plan(plan, project.plan_path)
    save_state(output / "state", 1, {}, keep=2)
    with pytest.raises(GafuError, match=r"holds a stopped run saved at step 1.*--resume.*--restart"):
        check_start(output, resume=False, restart=False)
    assert check_start(output, resume=True, restart=False).resumable
    save_state(output / "state", plan.batch.total_steps, {}, keep=2)
    with pytest.raises(GafuError, match="already finished"):
        check_start(output, resume=True, restart=False)
    with pytest.raises(GafuError, match="holds a finished run") as refused:
        check_start(output, resume=False, restart=False)
    assert "--resume" not in str(refused.value)
    assert current_run(output, "mzh_style").finished
