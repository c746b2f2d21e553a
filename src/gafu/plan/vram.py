"""The plan's memory section: the GPU memory it plans for, the memory model, what the batch needs.

The figures come from `gafu.plan.memory` (an estimate); this module picks the memory to plan
for (--vram, `[train] vram_gb`, the detected GPU, or the default), fits SDXL's model to the
project's own architecture, and records the estimate for the chosen batch.
"""

from __future__ import annotations

from pathlib import Path

from gafu.config import Config
from gafu.errors import GafuError
from gafu.models.load import meta_model
from gafu.plan.dataset import parse_size_key
from gafu.plan.memory import (
    DEFAULT_VRAM_GB,
    FALLBACK_LOKR_PARAMETERS,
    GpuInfo,
    MemoryEstimate,
    MemoryModel,
    TrainingShape,
)
from gafu.plan.model import DatasetPlan, MemoryPlan, NetworkPlan, RunPlan
from gafu.plan.sources import Sources


def planned_vram(
    vram_gb: float | None, config: Config, gpu: GpuInfo | None, sources: Sources, notes: list[str]
) -> tuple[float, str]:
    """`(GB, GPU name)`: `vram_gb` (from --vram) over `[train] vram_gb` over `gpu` over 12 GB."""
    gpu_name = gpu.name if gpu else ""
    sources.set("memory.gpu", None, "detected" if gpu else "no GPU detected")
    if vram_gb is not None:
        if vram_gb <= 0:
            raise GafuError(f"--vram {vram_gb:g}: give the GPU's memory in GB, e.g. --vram 12")
        return sources.set("memory.vram_gb", float(vram_gb), "--vram"), gpu_name
    if config.train.vram_gb > 0:
        return sources.set("memory.vram_gb", config.train.vram_gb, "gafu.toml [train] vram_gb"), gpu_name
    if gpu is not None:
        return sources.set("memory.vram_gb", round(gpu.total_gib, 1), f"detected: {gpu.name}"), gpu_name
    notes.append(f"no GPU detected: planned for {DEFAULT_VRAM_GB:g} GB; pass --vram GB for your card")
    return sources.set("memory.vram_gb", DEFAULT_VRAM_GB, "gafu default (no GPU detected)"), gpu_name


def memory_model_for(config_dir: Path | None, notes: list[str]) -> MemoryModel:
    """SDXL's memory model, or one scaled to the project's own architecture where it differs."""
    model = MemoryModel()
    if config_dir is None:
        return model
    unet, te1, te2 = meta_model(config_dir)
    unet_parameters = sum(p.numel() for p in unet.parameters())
    text_parameters = sum(p.numel() for te in (te1, te2) for p in te.parameters())
    if (unet_parameters, text_parameters) == (model.unet_parameters, model.text_encoder_parameters):
        return model
    notes.append(
        f"memory model: the architecture in {config_dir} has a {unet_parameters / 1e6:.1f} M-parameter "
        f"U-Net (SDXL: {model.unet_parameters / 1e6:.0f} M); SDXL's figures are scaled to it (rough estimate)"
    )
    return model.for_architecture(unet_parameters, text_parameters)


def training_shape(
    config: Config, run: RunPlan, network: NetworkPlan, dataset: DatasetPlan, notes: list[str]
) -> TrainingShape:
    """What the memory model needs to know about this run."""
    return TrainingShape(
        mixed_precision=run.mixed_precision,
        gradient_checkpointing=run.gradient_checkpointing,
        train_text_encoder=network.settings.train_text_encoder,
        optimizer=config.train.optimizer,
        cache_latents=dataset.cache_latents,
        lokr_parameters=_lokr_parameters(network, notes),
        largest_bucket=parse_size_key(dataset.largest_bucket),
    )


def _lokr_parameters(network: NetworkPlan, notes: list[str]) -> int:
    if network.summary is not None:
        return network.summary.trainable_parameters
    notes.append(
        "memory model: no network summary, so the LoKr is assumed to have "
        f"{FALLBACK_LOKR_PARAMETERS / 1e6:.0f} M trainable parameters (the recipe's ~200 MB file at factor 4)"
    )
    return FALLBACK_LOKR_PARAMETERS


def memory_plan(
    estimate: MemoryEstimate, vram: float, gpu_name: str, usable: float, batch_size: int, sources: Sources
) -> MemoryPlan:
    """The memory section for the chosen batch size."""
    for key in (
        "usable_gb",
        "fixed_gb",
        "per_sample_gb",
        "estimate_gb",
        "max_batch_size",
        "fits",
        "breakdown",
    ):
        sources.set(f"memory.{key}", None, "memory model (estimate)")
    return MemoryPlan(
        vram_gb=vram,
        gpu=gpu_name,
        usable_gb=round(usable, 2),
        fixed_gb=round(estimate.fixed_gib, 2),
        per_sample_gb=round(estimate.per_sample_gib, 2),
        estimate_gb=round(estimate.at(batch_size), 2),
        max_batch_size=max(1, estimate.max_batch_size(usable)),
        fits=estimate.at(batch_size) <= usable,
        breakdown=estimate.breakdown(batch_size),
    )


def memory_warning(memory: MemoryPlan, batch_size: int, config: Config) -> str:
    """What to change in `[train]` when the batch does not fit the memory."""
    tips = []
    if config.train.optimizer != "adamw8bit":
        tips.append('optimizer = "adamw8bit"')
    if not config.train.gradient_checkpointing:
        tips.append("gradient_checkpointing = true")
    if config.train.train_text_encoder:
        tips.append("train_text_encoder = false")
    tips.append("a smaller [train] resolution")
    return (
        f"batch size {batch_size} needs about {memory.estimate_gb:g} GB (estimate) but {memory.vram_gb:g} GB "
        f"leaves {memory.usable_gb:g} GB usable; to save memory try, in [train]: {', '.join(tips)}"
    )
