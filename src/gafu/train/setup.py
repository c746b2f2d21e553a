"""Setting a run up, one named phase each: accelerator → models → network → optimizer → schedules.

Every value comes from the plan (P2, P4, P5, P6, P9); these functions only turn it into torch,
diffusers and accelerate objects.
"""

from __future__ import annotations

import torch

from gafu.errors import GafuError
from gafu.models.load import BaseModel, load_project_model
from gafu.network.fast_lokr import lokr_module_class
from gafu.network.lokr import LokrNetwork, build_network
from gafu.plan.model import Plan
from gafu.project import Project

WEIGHT_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "no": torch.float32}


def training_precision(plan: Plan) -> str:
    """The plan's mixed precision; on a CPU without native bf16, fp32 ("no") instead of bf16.

    The plan says bf16 when it finds no GPU (it may be made for one); a CPU that only emulates
    bf16 would run about 90× slower than in fp32, at half the memory.
    """
    from gafu.cpu import native_bf16

    if plan.run.mixed_precision == "bf16" and _no_gpu() and not native_bf16():
        return "no"
    return plan.run.mixed_precision


def make_accelerator(plan: Plan):
    """accelerate's Accelerator for the run's mixed precision (one process, or one per GPU when launched)."""
    from accelerate import Accelerator

    # Without a GPU, say so: accelerate then runs several launched processes over gloo on the CPU.
    return Accelerator(mixed_precision=training_precision(plan), cpu=_no_gpu())


def _no_gpu() -> bool:
    return not torch.cuda.is_available() and not torch.backends.mps.is_available()


def load_models(project: Project, plan: Plan, device: torch.device) -> BaseModel:
    """The plan's base model: frozen U-Net and text encoders in the training dtype, VAE in fp32."""
    base = load_project_model(
        project,
        dtype=WEIGHT_DTYPES[training_precision(plan)],
        device=device,
        section=plan.model,
        family=plan.model.family,
    )
    for part in (base.unet, base.vae, *base.text_encoders):
        part.requires_grad_(False)
    base.unet.set_attn_processor(_sdpa_processor())  # PyTorch SDPA attention
    return base


def _sdpa_processor():
    from diffusers.models.attention_processor import AttnProcessor2_0

    return AttnProcessor2_0()


def attach_network(base: BaseModel, plan: Plan, device: torch.device) -> LokrNetwork:
    """The LoKr (P6) on the U-Net (and text encoders, P4), hooked in, fp32, seeded by the plan."""
    torch.manual_seed(plan.run.seed)  # the same initial LoKr in every process and every run
    text_encoders = base.text_encoders if plan.network.settings.train_text_encoder else None
    network = build_network(
        base.unet,
        text_encoders,
        plan.network.settings,
        module_class=lokr_module_class(plan.run.lokr_kernel, device),
    )
    network.to(device, torch.float32)
    network.apply_to()
    network.requires_grad_(True)
    if plan.run.gradient_checkpointing:
        base.unet.enable_gradient_checkpointing()
        if text_encoders is not None:
            for encoder in text_encoders:
                _checkpoint_text_encoder(encoder)
    base.unet.train()
    for encoder in base.text_encoders:
        encoder.train(text_encoders is not None)
    return network


def _checkpoint_text_encoder(encoder) -> None:
    # transformers 5 renamed gradient checkpointing to activation checkpointing.
    if hasattr(encoder, "activation_checkpointing_enable"):
        encoder.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def make_optimizer(network: LokrNetwork, plan: Plan, device: torch.device) -> torch.optim.Optimizer:
    """AdamW or 8-bit AdamW (P5) with the U-Net and text-encoder learning rates as two groups (P4)."""
    groups = network.parameter_groups(plan.optimizer.unet_lr, plan.optimizer.text_encoder_lr)
    if plan.optimizer.optimizer == "adamw8bit":
        return _adamw_8bit(groups, device)
    return torch.optim.AdamW(groups)


def _adamw_8bit(groups, device: torch.device) -> torch.optim.Optimizer:
    hint = 'set [train] optimizer = "adamw" in gafu.toml (it needs more memory)'
    if device.type != "cuda":
        raise GafuError(
            f"8-bit AdamW needs a CUDA GPU (bitsandbytes); this run is on {device.type}", hint=hint
        )
    try:
        import bitsandbytes
    except ImportError as exc:
        raise GafuError(
            "8-bit AdamW needs bitsandbytes, which is not installed or cannot load",
            hint=f"`pip install bitsandbytes` (or gafu[gpu]), or {hint}",
        ) from exc
    return bitsandbytes.optim.AdamW8bit(groups)


def make_lr_scheduler(optimizer: torch.optim.Optimizer, plan: Plan):
    """Cosine with hard restarts over the run, the plan's cycles and warm-up (P5)."""
    from diffusers.optimization import get_cosine_with_hard_restarts_schedule_with_warmup

    return get_cosine_with_hard_restarts_schedule_with_warmup(
        optimizer,
        num_warmup_steps=plan.optimizer.warmup_steps,
        num_training_steps=plan.batch.total_steps,
        num_cycles=plan.optimizer.num_cycles,
    )
