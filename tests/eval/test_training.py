"""The style probe at every save of `gafu train`: events, TensorBoard, LoKr metadata, held-out pictures."""

import json

import pytest
from safetensors import safe_open

from gafu.eval.evaluate import EvalRequest, evaluate_project
from gafu.eval.training import METADATA_KEY, read_metadata_figures
from gafu.network.files import read_lokr_file
from gafu.plan.model import load_plan
from gafu.train import train

FIGURES = ("fit", "leakage", "trigger_share", "drift")


def _metadata(path) -> dict[str, str]:
    with safe_open(str(path), "pt") as handle:
        return dict(handle.metadata())


def _scalars(log_dir) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(log_dir))
    accumulator.Reload()
    return {
        tag: [(s.step, s.value) for s in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]
    }


@pytest.mark.slow
def test_every_save_is_measured_into_events_tensorboard_and_metadata(train_project):
    project = train_project(3, 3, epochs=2, unet_lr=5e-3, probe={"holdout": 1, "timesteps": 3})
    events = []
    train(project, callbacks=[events.append])
    plan = load_plan(project.plan_path)
    assert plan.eval.held_out and plan.dataset.target.pictures == 2  # one of each set held out
    evals = [e for e in events if e["event"] == "eval"]
    assert [(e["epoch"], e["path"], e["base"]) for e in evals] == [
        (1, "output/mzh_style-e000001.safetensors", "measured"),
        (2, "output/mzh_style.safetensors", "cached"),  # the base model measured once per run
    ]
    kinds = [e["event"] for e in events]
    assert kinds.index("eval") == kinds.index("save") + 1  # each right after its file's save
    logged = [
        json.loads(line) for line in (project.output_dir / "logs" / "progress.jsonl").open(encoding="utf-8")
    ]
    assert [e for e in logged if e["event"] == "eval"] == evals
    scalars = _scalars(project.output_dir / "logs")
    for name in FIGURES:
        expected = [(e["step"], e[name]) for e in evals if e[name] is not None]
        assert [(step, pytest.approx(v, abs=1e-6)) for step, v in expected] == scalars.get(
            f"style/{name}", []
        )
    for event in evals:
        path = project.root / event["path"]
        stored = read_metadata_figures(_metadata(path))
        assert {k: stored[k] for k in FIGURES} == {k: event[k] for k in FIGURES}
        assert (
            stored["weight"] == 1.0
            and stored["probe"]["held_out"]
            and stored["probe"]["timesteps"]
            == [
                166,
                500,
                833,
            ]
        )
        assert stored["losses"]["base"]["trigger"] > 0
        # The held-out pictures were never trained on: the tag counts are the two that trained.
        assert json.loads(_metadata(path)["ss_tag_frequency"])["2_mzh_style"]["mzh_style"] == 2
    assert evals[1]["fit"] > 0  # the loss on the probe fell, even on pictures it never saw
    # `gafu eval` of the saved files gives the figures stored at their saves (fp32 files, same draws).
    again = evaluate_project(project, EvalRequest(weights=[1.0]))
    assert again.base_cached  # the base model's losses, measured during training
    for row, event in zip(again.rows, evals, strict=True):
        for name in FIGURES:
            assert getattr(row.figures, name) == pytest.approx(event[name], rel=1e-4, abs=1e-7), name


@pytest.mark.slow
def test_the_probe_changes_nothing_that_is_trained(train_project, tmp_path):
    import os

    measured = train_project(2, 2, epochs=2)
    train(measured)
    with_probe = read_lokr_file(measured.output_dir / "mzh_style.safetensors").tensors
    os.rename(measured.root, tmp_path / "measured")
    plain = train_project(2, 2, epochs=2, probe={"during_training": False})
    events = []
    train(plain, callbacks=[events.append])
    assert "eval" not in [e["event"] for e in events]
    without = read_lokr_file(plain.output_dir / "mzh_style.safetensors")
    assert METADATA_KEY not in without.metadata
    assert with_probe.keys() == without.tensors.keys()
    assert all(with_probe[k].equal(without.tensors[k]) for k in with_probe)


def test_a_stopped_run_saves_without_measuring(train_project):
    project = train_project(2, 2, epochs=3)

    def stop(event):
        if event["event"] == "step":
            (project.output_dir / "STOP").write_text("", encoding="utf-8")

    events = []
    result = train(project, callbacks=[stop, events.append])
    assert result.outcome == "stopped"
    assert "eval" not in [e["event"] for e in events]  # Ctrl-C should be quick
    assert METADATA_KEY not in _metadata(result.lokr)


@pytest.mark.slow
def test_a_run_without_regularization_still_measures_drift_on_its_pictures(train_project):
    project = train_project(2, 2, epochs=1, regularization=False, output_name="mzh_style-noreg")
    events = []
    train(project, callbacks=[events.append])
    plan = load_plan(project.plan_path)
    assert plan.dataset.reg is None and plan.batch.steps_per_epoch == 1  # P3 without regularization
    (measured,) = [e for e in events if e["event"] == "eval"]
    assert measured["path"] == "output/mzh_style-noreg.safetensors"
    assert measured["drift"] is not None  # the same regularization pictures as a run with them
    saved_plan = json.loads(_metadata(project.output_dir / "mzh_style-noreg.safetensors")["gafu_plan"])
    assert saved_plan["dataset"]["reg"] is None  # what `gafu eval --compare` labels the run by
