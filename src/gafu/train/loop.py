"""The training loop: for each epoch, for each optimizer step — forward/backward, step, log, save, stop.

One optimizer step covers `gradient_accumulation` micro-batches of the epoch (P2); with several
processes each takes its share of them, and the gradients are summed across processes before
the step, so the effective batch is the plan's whatever the number of GPUs. As in sd-scripts, a
micro-batch's loss is the mean over its samples (each weighted: prior loss P3, min-SNR, v-pred
scaling P9) and a step's loss is the sum of its micro-batches' losses divided by the accumulation
count — also in an epoch's last, shorter step.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from gafu.errors import GafuError
from gafu.models.load import BaseModel
from gafu.network.lokr import LokrNetwork
from gafu.plan.model import Plan
from gafu.train.conditioning import encode_text, time_ids
from gafu.train.data import Batch, TrainPicture, epoch_batches, optimizer_steps
from gafu.train.latents import CachedLatent
from gafu.train.noise import loss_weights, training_noise, training_target
from gafu.train.progress import Throughput


@dataclass
class TrainingRun:
    """Everything the loop works with, set up by `gafu.train.run`."""

    plan: Plan
    accelerator: Any
    base: BaseModel
    network: LokrNetwork
    optimizer: Any  # accelerate's wrapped optimizer
    lr_scheduler: Any
    noise_scheduler: Any
    loss_snr: torch.Tensor  # (T,) SNR per timestep for the loss weights (gafu.train.noise.loss_snr_table)
    pictures: list[TrainPicture]
    latents: dict[Any, CachedLatent]
    hooks: Any  # gafu.train.run.RunHooks: report, save, sample, stop


class Diverged(Exception):
    """The loss became NaN or infinite."""

    def __init__(self, step: int, epoch: int):
        super().__init__(f"step {step}, epoch {epoch}")
        self.step, self.epoch = step, epoch


def run_loop(run: TrainingRun, start_step: int) -> tuple[str, int]:
    """Train from `start_step` to the plan's end or a stop; returns ("done" | "stopped", step)."""
    plan, hooks = run.plan, run.hooks
    per_epoch, throughput = plan.batch.steps_per_epoch, Throughput()
    step = start_step
    for epoch in range(step // per_epoch + 1, plan.batch.epochs + 1):
        steps = optimizer_steps(epoch_batches(plan, run.pictures, epoch), plan.batch.gradient_accumulation)
        for micro_batches in steps[step - (epoch - 1) * per_epoch :]:
            # --- forward/backward over this process's share of the step's micro-batches
            started = time.perf_counter()
            loss_sum, nonfinite = accumulate_gradients(run, micro_batches, step)
            # --- step: gradients summed over processes, clipped; the optimizer and the LR move
            loss_sum, stop = _agree(run, loss_sum, nonfinite, hooks.stop_requested())
            if not math.isfinite(loss_sum):
                raise Diverged(step + 1, epoch)
            rates = {group.get("name"): group["lr"] for group in run.optimizer.param_groups}  # this step's
            optimizer_step(run)
            step += 1
            # --- log: the mean of the step's micro-batch losses (sd-scripts logs micro-batch losses)
            samples = sum(len(batch) for batch in micro_batches)
            throughput.add(time.perf_counter() - started, samples)
            hooks.report_step(step, epoch, loss_sum / len(micro_batches), rates, throughput)
            # --- stop (Ctrl-C, SIGTERM, output/STOP): the step is finished, so its state is whole
            if stop:
                return "stopped", step
        # --- end of epoch: LoKr + state every N epochs, sample grids when asked
        hooks.end_of_epoch(epoch, step)
    return "done", step


def accumulate_gradients(run: TrainingRun, micro_batches: list[Batch], step: int) -> tuple[float, bool]:
    """Backward over this process's micro-batches; returns the sum of their losses and a NaN flag.

    Each micro-batch's loss is the mean over its samples, and its gradient is divided by the
    plan's accumulation count, as sd-scripts does (`train_network.py` `process_batch` returns
    `loss.mean()`; accelerate's `backward` divides it by `gradient_accumulation_steps`). A sample
    of a smaller micro-batch (a bucket's remainder) therefore weighs more, and an epoch's last,
    short step has a smaller gradient: kohya's training, not a per-sample average.
    """
    accelerator = run.accelerator
    accumulation = run.plan.batch.gradient_accumulation
    rank, world = accelerator.process_index, accelerator.num_processes
    loss_sum, nonfinite = 0.0, False
    for index in range(rank, len(micro_batches), world):
        generator = _generator(run.plan.run.seed, step, index, accelerator.device)
        loss = micro_batch_losses(run, micro_batches[index], generator).mean()
        accelerator.backward(loss / accumulation)
        value = loss.detach().item()
        loss_sum += value
        nonfinite = nonfinite or not math.isfinite(value)
    return loss_sum, nonfinite


def micro_batch_losses(run: TrainingRun, batch: Batch, generator: torch.Generator) -> torch.Tensor:
    """(B,) weighted MSE of one micro-batch: its noise and timesteps drawn, then `denoising_losses`."""
    plan, device = run.plan, run.accelerator.device
    entries = [run.latents[sample.picture.picture.path] for sample in batch]
    latents = torch.stack([e.latent for e in entries]).to(device)  # (B, 4, H/8, W/8)
    noise = training_noise(latents, generator, plan.loss)
    timesteps = torch.randint(
        0, run.noise_scheduler.config.num_train_timesteps, (len(batch),), generator=generator, device=device
    )
    losses = denoising_losses(run, latents, noise, timesteps, [s.caption for s in batch], entries)
    prior = torch.tensor([s.picture.loss_weight for s in batch], device=device)
    return losses * prior


class Denoising(Protocol):
    """What a denoising loss needs: a TrainingRun, or the style probe's model (`gafu.eval`)."""

    plan: Plan
    accelerator: Any  # device, autocast()
    base: BaseModel
    noise_scheduler: Any
    loss_snr: torch.Tensor  # (T,) gafu.train.noise.loss_snr_table


def denoising_losses(
    run: Denoising,
    latents: torch.Tensor,
    noise: torch.Tensor,
    timesteps: torch.Tensor,
    captions: list[str],
    entries: list[CachedLatent],
) -> torch.Tensor:
    """(B,) MSE of the U-Net's prediction against the target, weighted as the plan says (P9).

    The training loss without the prior-loss weight; the style probe calls it with fixed draws.
    """
    plan, device, base = run.plan, run.accelerator.device, run.base
    noisy = run.noise_scheduler.add_noise(latents, noise, timesteps)
    height, width = latents.shape[-2] * 8, latents.shape[-1] * 8
    train_te = plan.optimizer.train_text_encoder
    with run.accelerator.autocast(), torch.set_grad_enabled(torch.is_grad_enabled() and train_te):
        text = encode_text(base.text_encoders, base.tokenizers, captions, device)
    with run.accelerator.autocast():
        added = {
            "text_embeds": text.pooled,
            "time_ids": time_ids(
                [e.original_size for e in entries],
                [e.crop_top_left for e in entries],
                (height, width),
                device,
            ),
        }
        prediction = base.unet(noisy, timesteps, text.hidden_states, added_cond_kwargs=added).sample
    target = training_target(run.noise_scheduler, latents, noise, timesteps)
    losses = torch.nn.functional.mse_loss(prediction.float(), target.float(), reduction="none").mean(
        dim=(1, 2, 3)
    )
    return losses * loss_weights(run.loss_snr, timesteps, plan.loss)


def optimizer_step(run: TrainingRun) -> None:
    """Sum gradients over processes, clip (unscaled), step the optimizer and the LR schedule."""
    accelerator = run.accelerator
    parameters = [p for group in run.optimizer.param_groups for p in group["params"]]
    if accelerator.num_processes > 1:
        _sum_gradients(accelerator, parameters)
    if run.plan.optimizer.max_grad_norm > 0:
        accelerator.clip_grad_norm_(parameters, run.plan.optimizer.max_grad_norm)
    run.optimizer.step()
    run.lr_scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)


def _sum_gradients(accelerator, parameters: list[torch.nn.Parameter]) -> None:
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
    flat = accelerator.reduce(torch.cat([g.flatten() for g in grads]), reduction="sum")
    offset = 0
    for parameter, grad in zip(parameters, grads, strict=True):
        parameter.grad = flat[offset : offset + grad.numel()].view_as(grad).clone()
        offset += grad.numel()


def _agree(run: TrainingRun, loss_sum: float, nonfinite: bool, stop: bool) -> tuple[float, bool]:
    """The step's loss summed over processes (NaN if any had one) and whether any process must stop."""
    if run.accelerator.num_processes == 1:
        return (math.nan if nonfinite else loss_sum), stop
    values = torch.tensor([loss_sum, float(nonfinite), float(stop)], device=run.accelerator.device)
    values = run.accelerator.reduce(values, reduction="sum")
    return (math.nan if values[1] > 0 else values[0].item()), bool(values[2] > 0)


def _generator(seed: int, step: int, micro_batch: int, device: torch.device) -> torch.Generator:
    """The noise and timesteps of a micro-batch depend only on (seed, step, micro-batch): resumable."""
    digest = hashlib.sha256(f"{seed}:{step}:{micro_batch}".encode()).digest()
    return torch.Generator(device=device).manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def diverged_error(error: Diverged, plan: Plan, last_saved: str | None) -> GafuError:
    """The one-line message for a NaN/inf loss: the step, the likely causes, the files kept."""
    causes = [f"a learning rate too high (unet_lr {plan.optimizer.unet_lr:g})"]
    if plan.run.mixed_precision == "fp16":
        causes.insert(0, 'fp16 overflow (try [train] mixed_precision = "bf16" on a GPU that has it)')
    if plan.model.vae:
        causes.append(f"the VAE {plan.model.vae} (an fp16 VAE gives NaN latents; use an fp32 or fixed one)")
    kept = f"the last good LoKr is {last_saved}" if last_saved else "no LoKr had been saved yet"
    return GafuError(
        f"the loss became NaN/inf at step {error.step} (epoch {error.epoch}); likely cause: "
        f"{' or '.join(causes)}; {kept}",
        hint="lower [train] unet_lr and start over with `gafu train --restart`",
    )
