"""`train(project)`: the run as named phases — plan → lock → models → network → data → optimizer →
resume → loop → save — and what the loop calls back for (report, save, sample, stop).

The plan decides every training value: resolved fresh (`resolve_plan`) for a new run and saved
as `output/plan.json`; read back from there by `resume=True`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from gafu.errors import GafuError
from gafu.plan.model import Plan, load_plan, save_plan
from gafu.project import Project
from gafu.train import data, setup
from gafu.train.conditioning import too_long
from gafu.train.latents import cached_latents
from gafu.train.loop import Diverged, TrainingRun, diverged_error, run_loop
from gafu.train.noise import loss_snr_table, noise_scheduler
from gafu.train.outputs import LokrWriter, RunPaths
from gafu.train.progress import Callback, ProgressBar, ProgressLog, Reporter, TensorBoardLog, Throughput
from gafu.train.runs import check_start, move_aside
from gafu.train.state import (
    StopRequest,
    list_states,
    load_state,
    restore_rng_state,
    rng_state,
    save_state,
    stop_on_signals,
    train_lock,
)


@dataclass
class TrainResult:
    """What a run did."""

    outcome: str  # "done" or "stopped"
    step: int
    total_steps: int
    lokr: Path  # the last LoKr file written
    state: Path | None  # the last resumable state written
    saved: list[Path] = field(default_factory=list)  # every LoKr file written by this run
    notes: list[str] = field(default_factory=list)
    processes: int = 1  # processes that trained (accelerate launch: one per GPU)
    main_process: bool = True  # False in the other processes of a multi-process run


def train(
    project: Project,
    *,
    plan: Plan | None = None,
    resume: bool = False,
    restart: bool = False,
    callbacks: list[Callback] | None = None,
    progress_bar: bool = False,
) -> TrainResult:
    """Train the project's LoKr: a fresh run from `plan` (default: `resolve_plan(project)`), or resume.

    `callbacks` receive every progress event (CONTRACTS.md). Ctrl-C, SIGTERM and `output/STOP`
    end the run after the current step with a LoKr and a state saved (outcome "stopped").
    """
    paths = RunPaths.of(project)
    plan = _run_plan(project, paths, plan, resume=resume, restart=restart)
    accelerator = setup.make_accelerator(plan)
    main = accelerator.is_main_process
    listeners: list[Callback] = [*(callbacks or [])]
    if main:
        listeners += [ProgressLog(paths.progress), TensorBoardLog(paths.logs), ProgressBar(progress_bar)]
    report = Reporter(listeners if main else [])
    lock = train_lock(paths.output) if main else contextlib.nullcontext()
    notes: list[str] = []
    with lock, stop_on_signals(StopRequest(paths.stop_file)) as stop:
        if main and not resume:
            moved = move_aside(paths.output)  # a new run starts in an output/ of its own
            if moved is not None:
                notes.append(f"the previous run was moved to {data.relative(moved, project.root)}/")
            save_plan(plan, paths.plan)  # the plan of the run, next to what it makes
        try:
            return _train(project, plan, paths, accelerator, report, stop, resume=resume, notes=notes)
        except GafuError as exc:
            report("error", message=str(exc), path=None)
            raise
        finally:
            accelerator.wait_for_everyone()
            accelerator.end_training()


def _run_plan(project: Project, paths: RunPaths, plan: Plan | None, *, resume: bool, restart: bool) -> Plan:
    """The plan of this run: output/plan.json to resume; else the given or freshly resolved one."""
    if resume and (plan is not None or restart):
        raise GafuError("--resume continues the saved run with its own plan; it takes no other options")
    check_start(paths.output, resume=resume, restart=restart)  # before minutes of planning or loading
    if resume:
        return load_plan(paths.plan)
    if plan is None:
        from gafu.plan import resolve_plan

        plan = resolve_plan(project)
    return plan


def _train(project, plan, paths, accelerator, report, stop, *, resume: bool, notes: list[str]) -> TrainResult:
    device, main = accelerator.device, accelerator.is_main_process
    # --- data: pictures, buckets, counts checked against the plan (P2, P3)
    pictures = data.load_pictures(project, plan)
    data.check_counts(plan, pictures)
    # --- models: frozen base, LoKr on top (P6), latents cached once by the VAE in fp32
    base = setup.load_models(project, plan, device)
    notes = [*notes, *base.warnings, *base.notes, *_caption_notes(base, pictures)]
    probing = main and plan.eval.during_training and bool(plan.eval.target or plan.eval.reg)
    probe_pictures = data.probe_pictures(project, plan) if probing else []
    # Held-out probe pictures need latents too; a probe picture that also trains is encoded once.
    encode = list({p.picture.path: p for p in [*probe_pictures, *pictures]}.values())
    with accelerator.main_process_first():
        latents, encoded = cached_latents(
            encode,
            base.vae,
            project.latent_cache_dir,
            device=device,
            on_progress=lambda done, total: report("latents", done=done, total=total),
        )
    base.vae.to("cpu")  # off the GPU while training (P-cache_latents)
    if encoded:
        notes.append(f"{encoded} latents encoded into {project.latent_cache_dir}")
    network = setup.attach_network(base, plan, device)
    # --- optimizer (P4, P5); the LR schedule is stepped by the loop once per optimizer step
    optimizer = accelerator.prepare(setup.make_optimizer(network, plan, device))
    lr_scheduler = setup.make_lr_scheduler(optimizer, plan)
    hooks = RunHooks(project, plan, paths, report, stop, accelerator, pictures)
    run = TrainingRun(
        plan=plan,
        accelerator=accelerator,
        base=base,
        network=network,
        optimizer=optimizer,
        lr_scheduler=lr_scheduler,
        noise_scheduler=noise_scheduler(base.scheduler_config, plan.loss),
        loss_snr=loss_snr_table(base.scheduler_config),
        pictures=pictures,
        latents=latents,
        hooks=hooks,
    )
    hooks.run = run
    if probing:  # the style probe at every save (fit, leakage, trigger share, drift)
        from gafu.eval.training import TrainingProbe

        hooks.probe = TrainingProbe(run, probe_pictures, project.root, project.eval_cache_dir)
    # --- resume: weights, optimizer, scheduler, step and RNG from the last state
    start = _resume(run, paths) if resume else 0
    hooks.step = start
    if start >= plan.batch.total_steps:
        raise GafuError(
            f"the run in {paths.output} is already finished ({start} steps)", hint="see its LoKr files"
        )
    report(
        "start",
        pid=os.getpid(),
        total_steps=plan.batch.total_steps,
        epochs=plan.batch.epochs,
        resumed_from=start if resume else None,
    )
    # --- the loop: from here a stop saves what was trained (and says so at once)
    stop.on_request, stop.training = hooks.stopping, True
    try:
        outcome, step = run_loop(run, start)
    except Diverged as error:
        raise diverged_error(error, plan, hooks.last_lokr) from None
    # --- save: the final LoKr, or the stopped run's LoKr and state
    lokr, state = hooks.finish(outcome, step)
    message = (
        f"trained {step} steps: {lokr}"
        if outcome == "done"
        else f"stopped at step {step} ({stop.reason}); resume with `gafu train --resume`: {lokr}"
    )
    report("done" if outcome == "done" else "stopped", message=message, path=hooks.relative(lokr))
    saved = list(hooks.writer.saved) if main else []
    return TrainResult(
        outcome,
        step,
        plan.batch.total_steps,
        lokr,
        state,
        saved,
        notes + sorted(set(hooks.notes)),
        processes=accelerator.num_processes,
        main_process=main,
    )


def _caption_notes(base, pictures: list[data.TrainPicture]) -> list[str]:
    long = sum(too_long(base.tokenizers, ", ".join(p.tags)) for p in pictures)
    if not long:
        return []
    return [
        f"{long} captions are longer than CLIP's 75 tokens: their last tags are cut off, as sd-scripts does"
    ]


def _resume(run: TrainingRun, paths: RunPaths) -> int:
    step, path = list_states(paths.state)[-1]
    state = load_state(path)
    if state.get("plan_sha256") != plan_sha256(run.plan):
        raise GafuError(
            f"{path} was saved by a run with another plan than {paths.plan}",
            path=path,
            hint="start over with `gafu train --restart`",
        )
    run.network.load_state_dict(state["network"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.lr_scheduler.load_state_dict(state["lr_scheduler"])
    scaler = run.accelerator.scaler
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    restore_rng_state(state["rng"])
    return step


def plan_sha256(plan: Plan) -> str:
    """A hash of the plan's values (its notes and sources aside): a state belongs to one plan.

    The style probe (`eval`) is left out: it changes nothing that is trained (a holdout shows in
    the dataset's counts).
    """
    skip = ("notes", "warnings", "sources", "eval")
    values = {k: v for k, v in plan.to_dict().items() if k not in skip}
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode("utf-8")).hexdigest()


class RunHooks:
    """What the loop calls back for: progress events, saves and samples, stop requests."""

    def __init__(self, project, plan, paths, report, stop, accelerator, pictures):
        self.project, self.plan, self.paths, self.report = project, plan, paths, report
        self.stop, self.accelerator = stop, accelerator
        self.main = accelerator.is_main_process
        self.writer = LokrWriter(
            plan, data.tag_frequency(pictures), started_at=time.time(), project_root=project.root
        )
        self.run: TrainingRun | None = None
        self.probe = None  # gafu.eval.training.TrainingProbe when the plan measures at saves
        self.since_save = time.perf_counter()  # training time between saves, for the probe's share
        self.not_training = 0.0  # seconds of sampling since the last save
        self.last_probe = None  # (epoch, ProbeResult) of the latest measurement
        self.last_lokr: str | None = None
        self.last_state: Path | None = None
        self.notes: list[str] = []
        self.step = 0  # the last finished optimizer step

    def relative(self, path: Path) -> str:
        """A path as events give it: relative to the project, POSIX style."""
        return data.relative(path, self.project.root)

    def stop_requested(self) -> bool:
        """True once Ctrl-C, SIGTERM or output/STOP asked this process to stop."""
        return self.stop.requested

    def stopping(self, reason: str) -> None:
        """The `stopping` event, as soon as a stop is asked for: the run ends after the step in progress."""
        step = self.step + 1
        again = "Ctrl-C again aborts without saving" if reason == "SIGINT" else reason
        self.report("stopping", step=step, reason=reason, message=f"stopping after step {step} ({again})")

    def report_step(self, step: int, epoch: int, loss: float, lrs: dict, throughput: Throughput) -> None:
        """The `step` event: loss, the step's learning rates, speed, time left."""
        self.step = step
        self.report(
            "step",
            step=step,
            total_steps=self.plan.batch.total_steps,
            epoch=epoch,
            epochs=self.plan.batch.epochs,
            loss=loss,
            lr_unet=lrs.get("unet", 0.0),
            lr_te=lrs.get("text_encoder"),
            samples_per_s=round(throughput.samples_per_s, 3),
            step_s=round(throughput.eta(1), 4),
            eta_s=round(throughput.eta(self.plan.batch.total_steps - step), 1),
        )

    def end_of_epoch(self, epoch: int, step: int) -> None:
        """Every `save_every_epochs`: a LoKr and a state; every `sample_every_epochs`: grids (P1, P10)."""
        plan = self.plan.run
        if epoch < self.plan.batch.epochs and plan.save_every_epochs and epoch % plan.save_every_epochs == 0:
            self._save(self.paths.epoch_file(plan.output_name, epoch), epoch, step, measure=True)
        if plan.sample_every_epochs and epoch % plan.sample_every_epochs == 0:
            self._sample(epoch)

    def finish(self, outcome: str, step: int) -> tuple[Path, Path | None]:
        """The run's last LoKr and state: the final file when done, a step file when stopped."""
        per_epoch = self.plan.batch.steps_per_epoch
        epoch = -(-step // per_epoch)
        name = self.plan.run.output_name
        if outcome == "done":
            path = self.paths.final_file(name)
        elif step % per_epoch == 0 and epoch % max(1, self.plan.run.save_every_epochs) == 0:
            path = self.paths.epoch_file(name, epoch)  # stopped right at a saved epoch
        else:
            path = self.paths.step_file(name, step)
        self._save(path, epoch, step, measure=outcome == "done")  # a stop is quick: no probe
        return path, self.last_state

    def _save(self, path: Path, epoch: int, step: int, *, measure: bool = False) -> None:
        """The LoKr at `path` (with the style probe's figures) and a resumable state (main process)."""
        run = self.run
        self.accelerator.wait_for_everyone()
        if not self.main:
            return
        trained_for = time.perf_counter() - self.since_save - self.not_training
        probed = self.probe.measure() if measure and self.probe is not None else None
        self.last_probe = (epoch, probed) if probed is not None else self.last_probe
        extra = probed.metadata() if probed is not None else None
        self.writer.save(run.network, path, epoch=epoch, step=step, extra=extra)
        self.last_lokr = self.relative(path)
        self.report("save", epoch=epoch, step=step, path=self.last_lokr)
        if probed is not None:
            share = probed.seconds / trained_for if trained_for > 0 else None
            self.report(
                "eval",
                epoch=epoch,
                step=step,
                path=self.last_lokr,
                **probed.event(),
                share_of_training=None if share is None else round(share, 4),
            )
        content = {
            "plan_sha256": plan_sha256(self.plan),
            "network": {k: v.detach().to("cpu", torch.float32) for k, v in run.network.state_dict().items()},
            "optimizer": run.optimizer.state_dict(),
            "lr_scheduler": run.lr_scheduler.state_dict(),
            "scaler": run.accelerator.scaler.state_dict() if run.accelerator.scaler is not None else None,
            "rng": rng_state(),
            "epoch": epoch,
        }
        self.last_state = save_state(self.paths.state, step, content, keep=self.plan.run.keep_states)
        self.since_save, self.not_training = time.perf_counter(), 0.0

    def _sample(self, epoch: int) -> None:
        if not self.main:
            return
        from gafu.sample.training import render_training_samples

        # The sampler moves the VAE (kept off the GPU while training) to the U-Net and back.
        run, started = self.run, time.perf_counter()
        probed = self.last_probe[1] if self.last_probe and self.last_probe[0] == epoch else None
        figures = [("weight 1 (at its save)", probed.figures)] if probed is not None else []
        grids = render_training_samples(
            run.base, run.network, self.plan, epoch, self.paths.sample_dir(epoch), figures=figures
        )
        self.not_training += time.perf_counter() - started
        index = self.paths.samples / "index.html"
        self.report(
            "sample",
            epoch=epoch,
            grids=[self.relative(g) for g in grids],
            html=self.relative(index) if index.is_file() else None,
        )
