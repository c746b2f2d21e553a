"""Training runs on the tiny model: learning, outputs, resume, stop, NaN, full disks, the lock."""

import errno
import json
import os
import signal
from types import SimpleNamespace

import pytest
import torch
from safetensors import safe_open

from gafu.errors import GafuError
from gafu.models.load import load_base_model
from gafu.network.files import PLAN_KEY, load_network, read_lokr_file
from gafu.plan import resolve_plan
from gafu.plan.model import load_plan
from gafu.train import train
from gafu.train.data import epoch_batches, load_pictures
from gafu.train.latents import cached_latents
from gafu.train.loop import micro_batch_losses
from gafu.train.noise import loss_snr_table, noise_scheduler
from gafu.train.state import list_states


def _events(project) -> list[dict]:
    lines = (project.output_dir / "logs" / "progress.jsonl").read_text("utf-8").splitlines()
    return [json.loads(line) for line in lines]


def _tensors(path) -> dict[str, torch.Tensor]:
    return read_lokr_file(path).tensors


def _fixed_batch_loss(project, tiny_model, lokr) -> float:
    """The training loss over every picture with fixed noise and timesteps, with `lokr` (or none) applied."""
    base = load_base_model(tiny_model.diffusers_dir, dtype=torch.float32)
    if lokr is not None:
        load_network(lokr, base.unet, base.text_encoders).apply_to()
    plan = load_plan(project.plan_path)
    pictures = load_pictures(project, plan)
    latents, _ = cached_latents(pictures, base.vae, project.latent_cache_dir, device=torch.device("cpu"))
    run = SimpleNamespace(
        plan=plan,
        accelerator=SimpleNamespace(
            device=torch.device("cpu"), autocast=torch.autocast("cpu", enabled=False).__class__
        ),
        base=base,
        latents=latents,
        noise_scheduler=noise_scheduler(base.scheduler_config, plan.loss),
        loss_snr=loss_snr_table(base.scheduler_config),
    )
    run.accelerator.autocast = lambda: torch.autocast("cpu", enabled=False)
    with torch.no_grad():
        losses = [
            micro_batch_losses(run, batch, torch.Generator().manual_seed(i))
            for i, batch in enumerate(epoch_batches(plan, pictures, 1))
        ]
    return torch.cat(losses).mean().item()


def test_training_writes_the_plans_files_and_the_loss_goes_down(train_project, tiny_model, tmp_path_factory):
    project = train_project(4, 4, epochs=4, unet_lr=5e-3, save_every_epochs=2)
    events = []
    result = train(project, callbacks=[events.append])
    plan = load_plan(project.plan_path)
    assert plan == resolve_plan(project)
    output = project.output_dir
    assert result.outcome == "done" and result.step == plan.batch.total_steps == 8
    assert result.saved == [output / "mzh_style-e000002.safetensors", output / "mzh_style.safetensors"]
    steps = [e for e in events if e["event"] == "step"]
    assert [e["step"] for e in steps] == list(range(1, 9))
    assert [e["epoch"] for e in steps] == [1, 1, 2, 2, 3, 3, 4, 4]  # the plan's steps per epoch
    assert all(
        e["lr_te"] == pytest.approx(e["lr_unet"] * plan.optimizer.text_encoder_lr_ratio) for e in steps
    )
    assert steps[0]["lr_unet"] == pytest.approx(5e-3, rel=0.3)  # cosine with restarts, one cycle per epoch
    assert steps[1]["lr_unet"] < steps[0]["lr_unet"] and steps[2]["lr_unet"] > steps[1]["lr_unet"]
    assert [e["event"] for e in _events(project)] == [e["event"] for e in events]
    # The latent cache is filled first (8 pictures, from 0 to 8), then the steps.
    caching = [(e["done"], e["total"]) for e in events if e["event"] == "latents"]
    assert caching[0] == (0, 8) and caching[-1] == (8, 8)
    assert events[len(caching)]["event"] == "start" and events[-1] == {
        **events[-1],
        "event": "done",
        "path": "output/mzh_style.safetensors",
    }
    assert [e["path"] for e in events if e["event"] == "save"] == [
        "output/mzh_style-e000002.safetensors",
        "output/mzh_style.safetensors",
    ]
    assert list(output.glob("logs/events.out.tfevents.*"))
    assert [s for s, _ in list_states(output / "state")] == [4, 8]
    assert not (output / "train.lock").exists()
    # The LoKr: metadata with the plan, text-encoder modules trained too (P4).
    with safe_open(str(result.lokr), "pt") as handle:
        metadata = handle.metadata()
    assert json.loads(metadata[PLAN_KEY])["batch"]["total_steps"] == 8
    assert metadata["ss_steps"] == "8" and metadata["ss_epoch"] == "4"
    assert json.loads(metadata["ss_tag_frequency"])["2_mzh_style"]["mzh_style"] == 4
    # A shared LoKr shows no folder of the user's disk: the model by its file name, as sd-scripts.
    local = [
        tmp_path_factory.getbasetemp().resolve().as_posix(),
        str(tmp_path_factory.getbasetemp().resolve()),
    ]
    assert not [key for key, value in metadata.items() if any(folder in value for folder in local)]
    assert metadata["ss_sd_model_name"] == tiny_model.diffusers_dir.name
    assert json.loads(metadata[PLAN_KEY])["model"]["path"] == tiny_model.diffusers_dir.name
    tensors = _tensors(result.lokr)
    assert any(k.startswith("lora_te1") and k.endswith("w2") and tensors[k].abs().sum() > 0 for k in tensors)
    # Learning: the loss on a fixed batch (fixed noise and timesteps) is lower with the LoKr.
    assert _fixed_batch_loss(project, tiny_model, result.lokr) < _fixed_batch_loss(project, tiny_model, None)


def test_resumed_run_equals_uninterrupted(train_project, tmp_path):
    whole = train_project(4, 4, epochs=2)
    train(whole)
    expected = _tensors(whole.output_dir / "mzh_style.safetensors")
    expected_losses = [e["loss"] for e in _events(whole) if e["event"] == "step"]

    os.rename(whole.root, tmp_path / "whole")
    stopped = train_project(4, 4, epochs=2)

    def stop_after_first_step(event):
        if event["event"] == "step" and event["step"] == 1:
            (stopped.output_dir / "STOP").write_text("", encoding="utf-8")

    first = train(stopped, callbacks=[stop_after_first_step])
    assert first.outcome == "stopped" and first.step == 2  # the STOP file is seen at the next step boundary
    assert not (stopped.output_dir / "STOP").exists()
    assert first.lokr == stopped.output_dir / "mzh_style-e000001.safetensors"
    with pytest.raises(GafuError, match="--resume"):
        train(stopped)  # a fresh run would lose the saved one
    second = train(stopped, resume=True)
    assert second.outcome == "done" and second.step == 4
    resumed = _tensors(stopped.output_dir / "mzh_style.safetensors")
    assert resumed.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(resumed[key], value), key
    events = _events(stopped)
    assert [e["loss"] for e in events if e["event"] == "step"] == expected_losses
    assert [e["resumed_from"] for e in events if e["event"] == "start"] == [None, 2]
    assert [e["event"] for e in events if e["event"] in ("stopped", "done")] == ["stopped", "done"]


def test_sigint_mid_epoch_leaves_a_loadable_lokr_and_a_resumable_state(train_project, tiny_base):
    project = train_project(4, 4, epochs=1, batch_size=2, gradient_accumulation=2)  # 4 steps an epoch

    def interrupt(event):
        if event["event"] == "step" and event["step"] == 1:
            os.kill(os.getpid(), signal.SIGINT)

    previous = signal.getsignal(signal.SIGINT)
    result = train(project, callbacks=[interrupt])
    assert signal.getsignal(signal.SIGINT) is previous  # the handler is put back
    assert result.outcome == "stopped" and result.step == 2
    assert result.lokr == project.output_dir / "mzh_style-step000002.safetensors"
    assert result.state == project.output_dir / "state" / "step-00000002.pt"
    unet, te1, te2 = (tiny_base.unet, *tiny_base.text_encoders)
    network = load_network(result.lokr, unet, (te1, te2))
    assert len(network.names) > 0
    assert _events(project)[-1]["event"] == "stopped" and "step 2" in _events(project)[-1]["message"]
    assert train(project, resume=True).step == load_plan(project.plan_path).batch.total_steps


def test_v_prediction_family_trains_with_velocity_and_ztsnr(train_project):
    project = train_project(
        2, 2, family="noob-vpred", epochs=1, gradient_checkpointing=True, min_snr_gamma=5.0
    )
    result = train(project)
    plan = load_plan(project.plan_path)
    assert plan.loss.v_parameterization and plan.loss.zero_terminal_snr
    assert plan.loss.scale_v_pred_loss_like_noise_pred
    with safe_open(str(result.lokr), "pt") as handle:
        metadata = handle.metadata()
    assert metadata["modelspec.prediction_type"] == "v" and metadata["ss_zero_terminal_snr"] == "True"
    tensors = _tensors(result.lokr)
    assert all(torch.isfinite(t).all() for t in tensors.values())
    assert any(
        k.startswith("lora_unet") and k.endswith("w2") and t.abs().sum() > 0 for k, t in tensors.items()
    )


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_files(train_project):
    project = train_project(4, 0, batch_size=8, epochs=3, unet_lr=1e30)  # one step an epoch
    with pytest.raises(GafuError, match=r"NaN/inf at step (\d+).*learning rate too high") as raised:
        train(project)
    message = str(raised.value)
    step = int(raised.value.args[0].split("NaN/inf at step ")[1].split()[0])
    assert step > 1  # the first step trains; its huge update makes the next loss overflow
    saved = sorted(p.name for p in project.output_dir.glob("*.safetensors"))
    assert saved and "mzh_style.safetensors" not in saved
    assert f"the last good LoKr is output/{saved[-1]}" in message
    assert all(torch.isfinite(t).all() for t in _tensors(project.output_dir / saved[-1]).values())
    assert _events(project)[-1]["event"] == "error"
    assert not (project.output_dir / "train.lock").exists()


@pytest.mark.parametrize(("code", "words"), [(errno.ENOSPC, "disk full"), (errno.EROFS, "permission denied")])
def test_a_full_or_read_only_output_is_a_clear_error_keeping_earlier_saves(
    train_project, write_failure, code, words
):
    project = train_project(4, 4, epochs=2)
    write_failure.under(project.output_dir, code, after=3)  # plan.json, e000001 LoKr, its state; then fail
    with pytest.raises(GafuError, match=words) as raised:
        train(project)
    assert "\n" not in str(raised.value)
    earlier = project.output_dir / "mzh_style-e000001.safetensors"
    assert earlier.is_file() and _tensors(earlier)
    assert not (project.output_dir / "mzh_style.safetensors").exists()
    assert not list(project.output_dir.glob(".*.tmp"))
    assert _events(project)[-1]["event"] == "error"


def test_read_only_output_fails_before_training(train_project, write_failure):
    project = train_project(2, 0)
    write_failure.under(project.output_dir, errno.EROFS)
    with pytest.raises(GafuError, match=r"permission denied.*plan\.json"):
        train(project)
    assert not list(project.output_dir.glob("*.safetensors"))


def test_a_live_lock_refuses_a_second_trainer_and_a_stale_one_is_taken_over(train_project):
    import subprocess
    import sys

    project = train_project(2, 0, epochs=1)
    lock = project.output_dir / "train.lock"
    lock.parent.mkdir(parents=True)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock.write_text(str(sleeper.pid), encoding="utf-8")
        with pytest.raises(GafuError, match=f"process {sleeper.pid}.*train.lock"):
            train(project)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert lock.read_text(encoding="utf-8") == str(sleeper.pid)  # not taken while its holder lived
    assert train(project).outcome == "done"  # the holder is gone: the lock is stale
    assert not lock.exists()


def test_adamw_8bit_without_cuda_is_a_clear_error(train_project):
    project = train_project(2, 0, epochs=1, optimizer="adamw8bit")
    with pytest.raises(GafuError, match="8-bit AdamW needs a CUDA GPU"):
        train(project)


def test_sample_grids_during_training_through_gafu_sample(train_project):
    project = train_project(2, 2, epochs=2, sample_every_epochs=1)
    result = train(project)
    samples = [e for e in _events(project) if e["event"] == "sample"]
    assert [e["epoch"] for e in samples] == [1, 2]
    for event in samples:
        assert event["grids"] and all((project.root / g).is_file() for g in event["grids"])
        assert all(g.startswith(f"output/samples/e{event['epoch']:06d}/") for g in event["grids"])
    assert result.outcome == "done"
