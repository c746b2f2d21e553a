"""The plan's batch section (P1–P3): epochs, batch size × gradient accumulation, steps per epoch.

The effective batch is repeats × target pictures (P2); with regularization an epoch is two
optimizer steps (P3). The batch size is the largest the memory model fits that makes a good
pair with an accumulation count; buckets are batched apart, so an epoch's batches are counted
per bucket (`gafu.plan.dataset.micro_batches`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from gafu.config import Config
from gafu.plan.dataset import micro_batches
from gafu.plan.model import BatchPlan, DatasetPlan
from gafu.plan.sources import Sources

# gafu's choice: an exact batch × accumulation pair (P2) is taken when its batch is at least this
# share of the largest batch that fits; below it, each step would take many more passes.
EXACT_BATCH_REACH = 0.5
# gafu's choice: otherwise the pair may miss the effective batch (P2) by this much (the plan says so).
EFFECTIVE_BATCH_TOLERANCE = 0.05


def batch_plan(
    config: Config,
    dataset: DatasetPlan,
    max_batch: int,
    sources: Sources,
    warnings: list[str],
    notes: list[str],
) -> BatchPlan:
    """The batch section: the batch × accumulation pair, the epoch's batches and steps (P1–P3)."""
    epochs = sources.config("batch.epochs", "train", "epochs")
    target = dataset.target
    effective = sources.set(
        "batch.effective_batch",
        target.samples_per_epoch,
        f"recipe P2: repeats {target.repeats} × {target.pictures} target pictures"
        if target.samples_per_epoch == target.repeats * target.pictures
        else f"recipe P2: each of {target.pictures} target pictures × its folder's repeats",
    )
    reg_samples = dataset.reg.samples_per_epoch if dataset.reg else 0
    samples = sources.set(
        "batch.samples_per_epoch",
        dataset.target.samples_per_epoch + reg_samples,
        "recipe P3: 2 × repeats × N with regularization" if dataset.reg else "recipe P3: repeats × N",
    )
    steps_target = samples // effective  # P3: 2 with regularization, 1 without
    pairs = BatchPairs(
        effective, steps_target, lambda batch: micro_batches(dataset.target, dataset.reg, batch)
    )
    batch_size, accumulation = _batch_pair(config, pairs, max_batch, sources, warnings, notes)
    micro = sources.set(
        "batch.micro_batches_per_epoch",
        pairs.micro_batches(batch_size),
        "derived: samples per bucket / batch size, rounded up",
    )
    steps = sources.set(
        "batch.steps_per_epoch", math.ceil(micro / accumulation), "derived: micro-batches / accumulation"
    )
    if steps != steps_target:
        warnings.append(
            f"{steps} optimizer steps per epoch, not the recipe's {steps_target} (P3): "
            f"batch size {batch_size} × accumulation {accumulation} does not fit the epoch's {micro} batches"
        )
    return BatchPlan(
        epochs=epochs,
        effective_batch=effective,
        batch_size=batch_size,
        gradient_accumulation=accumulation,
        samples_per_epoch=samples,
        micro_batches_per_epoch=micro,
        steps_per_epoch=steps,
        total_steps=sources.set("batch.total_steps", steps * epochs, "derived: steps per epoch × epochs"),
    )


@dataclass(frozen=True)
class BatchPairs:
    """The batch × accumulation pairs for an epoch of `steps_per_epoch` optimizer steps (P2, P3)."""

    effective: int  # P2: repeats × target pictures
    steps_per_epoch: int  # P3: 2 with regularization, 1 without
    micro_batches: Callable[[int], int]  # batch size → batches in one epoch (buckets round up)

    def accumulation(self, batch: int) -> int:
        """Accumulation that makes an epoch `steps_per_epoch` steps (a step's last batch may be short)."""
        return math.ceil(self.micro_batches(batch) / self.steps_per_epoch)

    def deviation(self, batch: int) -> float:
        """How far batch × accumulation is from the effective batch, as a fraction of it."""
        return (batch * self.accumulation(batch) - self.effective) / self.effective


def _batch_pair(
    config: Config,
    pairs: BatchPairs,
    max_batch: int,
    sources: Sources,
    warnings: list[str],
    notes: list[str],
) -> tuple[int, int]:
    """Batch size and gradient accumulation (P2), from overrides or the memory model."""
    given_batch, given_accumulation = config.train.batch_size, config.train.gradient_accumulation
    if given_batch:
        batch_size = sources.set(
            "batch.batch_size",
            given_batch,
            sources.override("train", "batch_size", "gafu default: the largest the memory fits"),
        )
        if given_batch > max(1, max_batch):
            warnings.append(
                f"batch size {given_batch} is above the {max(1, max_batch)} the memory model fits (estimate)"
            )
    elif given_accumulation:
        fitted = max(1, min(max_batch, round(pairs.effective / given_accumulation)))
        batch_size = sources.set(
            "batch.batch_size", fitted, "derived: effective batch / gradient_accumulation"
        )
    else:
        batch_size, why = choose_batch(pairs, max_batch)
        sources.set("batch.batch_size", batch_size, "memory model (estimate)")
        notes.append(why)
    if given_accumulation:
        accumulation = sources.set(
            "batch.gradient_accumulation",
            given_accumulation,
            sources.override("train", "gradient_accumulation", "recipe P2: effective batch / batch size"),
        )
    else:
        accumulation = sources.set(
            "batch.gradient_accumulation",
            pairs.accumulation(batch_size),
            "recipe P2/P3: the epoch's batches / steps per epoch",
        )
    if abs(batch_size * accumulation - pairs.effective) > EFFECTIVE_BATCH_TOLERANCE * pairs.effective:
        warnings.append(
            f"batch size {batch_size} × accumulation {accumulation} = {batch_size * accumulation} "
            f"is far from the effective batch {pairs.effective} (P2: repeats × target pictures)"
        )
    return batch_size, accumulation


def choose_batch(pairs: BatchPairs, max_batch: int) -> tuple[int, str]:
    """A batch size ≤ max_batch for the effective batch (P2), and the sentence that says why.

    An exact pair (batch × accumulation = the effective batch, as P2 asks and a kohya user sets
    it) wins when its batch is within reach: the largest exact batch that fits, if it is at
    least EXACT_BATCH_REACH of the largest batch that fits (a much smaller batch would make
    every step many more passes). Otherwise the fewest accumulation steps win among the batch
    sizes whose product lands within EFFECTIVE_BATCH_TOLERANCE of the effective batch; ties go to
    the nearest product, then the larger batch.
    """
    effective = pairs.effective
    ceiling = max(1, min(max_batch, effective))
    exact = [b for b in range(1, ceiling + 1) if pairs.deviation(b) == 0]
    if max_batch < 1:
        limit = "even batch 1 is over the memory estimate: see the warnings"
    elif max_batch > effective:
        limit = f"no batch needs to exceed the effective batch {effective}"
    else:
        limit = f"the memory estimate fits batches up to {max_batch}"
    if exact and max(exact) >= EXACT_BATCH_REACH * ceiling:
        batch = max(exact)
        return batch, (
            f"batch size {batch} × accumulation {pairs.accumulation(batch)} = effective batch {effective} "
            f"(P2; {limit})"
        )
    candidates = [b for b in range(1, ceiling + 1) if abs(pairs.deviation(b)) <= EFFECTIVE_BATCH_TOLERANCE]
    batch = min(candidates or [1], key=lambda b: (pairs.accumulation(b), abs(pairs.deviation(b)), -b))
    accumulation = pairs.accumulation(batch)
    product = batch * accumulation
    if exact:
        why_not_exact = (
            f"the largest exact pair, {max(exact)} × {pairs.accumulation(max(exact))}, is under "
            f"{EXACT_BATCH_REACH:.0%} of the batch that fits: set [train] batch_size = {max(exact)} "
            "to prefer it"
        )
    else:
        why_not_exact = "no batch size that fits makes the epoch's batches an exact product"
    return batch, (
        f"batch size {batch} ({limit}) × accumulation {accumulation} = {product}, "
        f"{(product - effective) / effective:+.1%} from the effective batch {effective} (P2), "
        f"the nearest with {accumulation} passes per step; {why_not_exact}"
    )
