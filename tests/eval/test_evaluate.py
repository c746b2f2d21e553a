"""`gafu eval` on the tiny model: weight 0 is the base, the same draws every time, the cache, files
written by LyCORIS's own code, two runs side by side, the command and its report."""

import dataclasses
import json
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from gafu.errors import GafuError
from gafu.eval.evaluate import EvalRequest, ProbeModel, evaluate_project, probe_plan
from gafu.eval.report import render_text
from gafu.network.settings import LokrSettings
from gafu.network.targets import named_layers
from tests.conftest import gafu_env


def test_weight_0_is_the_base_model_exactly_and_the_draws_repeat(sample_project, tiny_lokr_files):
    request = EvalRequest(lokr_files=[tiny_lokr_files[0]], weights=[0.0, 1.0])
    first = evaluate_project(sample_project, request)
    zero, one = first.rows
    assert zero.losses == first.base  # the network unhooked: the base model, bit for bit
    assert (zero.figures.fit, zero.figures.leakage, zero.figures.drift) == (0.0, 0.0, 0.0)
    assert zero.figures.trigger_share is None
    assert one.figures.fit != 0 and one.losses != first.base
    assert first.probe["target_pictures"] == 3 and first.probe["reg_pictures"] == 1
    assert first.probe["timesteps"] == [62, 187, 312, 437, 562, 687, 812, 937]
    # Measured again from scratch: the same noise and timesteps give the same losses.
    again = evaluate_project(sample_project, dataclasses.replace(request, reuse=False))
    assert (again.measured, again.reused, again.base_cached) == (2, 0, False)
    assert again.base == first.base and [r.losses for r in again.rows] == [r.losses for r in first.rows]
    # And from the cache: nothing measured, the same figures.
    cached = evaluate_project(sample_project, request)
    assert (cached.measured, cached.reused, cached.base_cached) == (0, 2, True)
    assert [r.figures for r in cached.rows] == [r.figures for r in first.rows]


def test_default_files_weights_and_the_suggestion(sample_project):
    result = evaluate_project(sample_project, EvalRequest())
    names = [row.path.name for row in result.rows]
    assert names == ["mzh-e000001.safetensors"] * 3 + ["mzh-e000002.safetensors"] * 3
    assert [row.weight for row in result.rows] == [0.5, 1.0, 1.5] * 2  # the plan's sample weights above 0
    assert [row.epoch for row in result.rows] == [1, 1, 1, 2, 2, 2]
    text = "\n".join(render_text(result))
    assert "style probe: 3 target pictures with and without the trigger, 1 regularization picture" in text
    fits = [row.figures.fit for row in result.rows]
    if result.suggestion is None:
        assert "no suggestion" in text
    else:
        chosen = result.rows[result.suggestion.index]
        assert chosen.figures.fit >= 0.8 * max(fits) and "suggested: output/mzh-e00000" in text


def _lycoris_file(folder, base, lycoris_network):
    """A LoKr written by LyCORIS's own kohya network (`save_weights`), under kohya's SDXL names;
    the network stays applied to `base`.

    LyCORIS names modules by the model's module paths: on diffusers' U-Net those are diffusers
    paths, where kohya's SGM U-Net has SGM paths. Each module is renamed to the name kohya's SDXL
    network gives the same layer (found by the layer itself); tensors and metadata are LyCORIS's.
    """
    settings = LokrSettings(dim=4, conv_dim=4, alpha=4.0, conv_alpha=4.0, factor=4)
    theirs = lycoris_network(base.unet, base.text_encoder, base.text_encoder_2, settings, folder)
    theirs.apply_to(base.text_encoders, base.unet, apply_text_encoder=True, apply_unet=True)
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for parameter in theirs.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
    written = folder / "lycoris-own.safetensors"
    args = {"algo": "lokr", "factor": "4", "conv_dim": "4", "conv_alpha": "4"}
    metadata = {"ss_network_module": "lycoris.kohya", "ss_network_dim": "4", "ss_network_alpha": "4.0"}
    metadata["ss_network_args"] = json.dumps(args)
    theirs.save_weights(str(written), torch.float32, dict(metadata))
    by_layer = {id(t.module): t.name for t in named_layers(base.unet, base.text_encoders).values()}
    kohya_name = {m.lora_name: by_layer[id(m.org_module[0])] for m in theirs.loras}
    tensors = load_file(str(written))
    renamed = {f"{kohya_name[k.split('.', 1)[0]]}.{k.split('.', 1)[1]}": v for k, v in tensors.items()}
    kohya_file = folder / "kohya-lycoris.safetensors"
    save_file(renamed, str(kohya_file), metadata)
    return theirs, kohya_file


def test_a_lokr_written_by_lycoris_is_measured_as_lycoris_applies_it(
    sample_project, lycoris_network, tmp_path
):
    plan, _, _ = probe_plan(sample_project)
    model = ProbeModel.load(sample_project, plan, "cpu")
    probe, _ = model.probe(sample_project)
    theirs, kohya_file = _lycoris_file(tmp_path, model.base, lycoris_network)  # applied to this model
    theirs.set_multiplier(0.7)
    with torch.no_grad():
        expected = probe.measure(model, 4).means()  # LyCORIS's own forward
    result = evaluate_project(sample_project, EvalRequest(lokr_files=[kohya_file], weights=[0.7]))
    (row,) = result.rows
    for case, value in expected.items():
        assert row.losses[case] == pytest.approx(value, rel=1e-5), case
    assert row.epoch is None  # kohya's file says no epoch here, and its name has none


def test_two_runs_side_by_side(sample_project, tiny_lokr_files):
    first, second = (sample_project.output_dir / p.name for p in tiny_lokr_files)
    for path in (first, second):  # two runs: one with the regularization set, one without
        reg = {"pictures": 1} if path == first else None
        tensors = load_file(str(path))
        with safe_open(str(path), "pt") as handle:
            metadata = dict(handle.metadata())
        metadata["gafu_plan"] = json.dumps({"dataset": {"reg": reg}})
        metadata["ss_epoch"] = "1"  # both runs' files at the same epoch
        save_file(tensors, str(path.with_name(("withreg" if reg else "noreg") + ".safetensors")), metadata)
    result = evaluate_project(sample_project, EvalRequest(compare=["withreg", "noreg"]))
    assert [run.label for run in result.runs] == [
        "withreg (with regularization: 1 pictures)",
        "noreg (without regularization)",
    ]
    assert [(row.run, row.weight) for row in result.rows] == [(0, 1.0), (1, 1.0)]
    text = "\n".join(render_text(result))
    assert "A: withreg (with regularization: 1 pictures)" in text and "B: noreg" in text
    assert "the recipe's claim at epoch 1, weight 1: leakage" in text
    assert ("holds here" in text) != ("does not hold here" in text)
    with pytest.raises(GafuError, match="no run 'elsewhere'"):
        evaluate_project(sample_project, EvalRequest(compare=["withreg", "elsewhere"]))
    with pytest.raises(GafuError, match="several runs"):
        evaluate_project(sample_project, EvalRequest(compare=["output", "noreg"]))
    moved = sample_project.output_dir / "runs" / "2026-01-31_142500"  # run 1 after `train --restart`
    moved.mkdir(parents=True)
    (sample_project.output_dir / "withreg.safetensors").replace(moved / "withreg.safetensors")
    result = evaluate_project(sample_project, EvalRequest(compare=["withreg", "noreg"]))
    assert result.runs[0].files == [moved / "withreg.safetensors"]


def test_gafu_eval_command_prints_the_table_and_keeps_the_report(sample_project):
    command = [
        sys.executable,
        "-m",
        "gafu",
        "eval",
        str(sample_project.root),
        "--weights",
        "1",
        "--min-fit",
        "0%",
    ]
    as_json = subprocess.run(
        [*command, "--json"], capture_output=True, text=True, env=gafu_env(), timeout=600
    )
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads((sample_project.reports_dir / "eval.json").read_text("utf-8"))
    assert report["stage"] == "eval" and len(report["rows"]) == 2
    assert set(report["rows"][0]) >= {"file", "epoch", "weight", "fit", "leakage", "trigger_share", "drift"}
    assert json.loads(as_json.stdout)["rows"] == report["rows"]
    if any(
        row["fit"] is not None and row["fit"] >= 0 and row["trigger_share"] is not None
        for row in report["rows"]
    ):
        assert report["suggestion"]["min_fit"] == 0.0 and report["suggestion"]["min_fit_from"] == "--min-fit"
    table = subprocess.run(command, capture_output=True, text=True, env=gafu_env(), timeout=600, check=False)
    assert table.returncode == 0, table.stderr
    assert "trigger share" in table.stdout and "output/mzh-e000002.safetensors" in table.stdout
    assert "0 measured, 2 from the cache" in table.stdout  # the same files and weights: answered at once
    with pytest.raises(GafuError, match=r"nope.safetensors does not exist"):
        evaluate_project(sample_project, EvalRequest(lokr_files=[sample_project.root / "nope.safetensors"]))


# (That the probe tells a LoKr trained with the trigger from one trained without it is tested on the
# demo model, which draws: tests/demo/test_demo.py.)
