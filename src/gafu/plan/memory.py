"""How much GPU memory SDXL LoKr training needs, and so which batch size fits (P2).

ESTIMATES. No figure here was measured by gafu on a GPU yet; each states where it comes from.
All figures are GiB (1024³ bytes; a card sold as "12 GB" has 12 GiB). The model is

    estimate = fixed + batch_size × per_sample        (must stay within vram − headroom)

fixed:
- base weights in the compute dtype (2 bytes a parameter under bf16/fp16, 4 under "no"):
  the U-Net always, both text encoders always (their outputs cannot be cached while they train
  or while captions are shuffled, P7); the VAE only when latents are not cached. Parameter
  counts are SDXL's own (checked against diffusers/transformers models built on the meta
  device in the tests).
- the LoKr's training state per trainable parameter: fp32 weight (4) + fp32 gradient (4) +
  AdamW's two fp32 moments (8) = 16 bytes; 8-bit AdamW keeps the moments in 1 byte each
  (bitsandbytes), 10 bytes. The parameter count comes from the network summary; without one,
  `FALLBACK_LOKR_PARAMETERS` (the recipe's ~200 MB fp16 file at factor 4, P6: an upper bound
  for factor 8).
- LoKr rebuild memory: LyCORIS's LoKr forward rebuilds each layer's weight (W + w1 ⊗ w2) and
  autograd keeps that copy until backward. Without gradient checkpointing that is a second copy
  of every adapted weight; with it, only the block being recomputed holds one
  (`lokr_rebuild_checkpointed_gib`).
- CUDA context, cuBLAS/cuDNN workspaces and allocator slack (`context_gib`).

per_sample: activations of one 1024² sample (a 128² latent) kept for backward, scaled by the
largest bucket's area (memory-efficient attention keeps this linear in pixels), plus the text
encoders' activations when they train. Community reports for SDXL LoRA training put one extra
1024² sample at roughly 1.5 GiB with gradient checkpointing, several times that without; and
sd-scripts documents SDXL LoRA training in 8 GB (10 GB recommended) with U-Net-only training,
gradient checkpointing, cached latents and text-encoder outputs, an 8-bit optimizer and batch 1
— which this model reproduces (see tests/plan/test_memory.py).

Recalibrating: measure `torch.cuda.max_memory_allocated()` of a real run at batch 1 and batch 2
with the same settings and pass both to `MemoryModel().calibrated(shape, …)`; then replace the
defaults below with the refitted figures and note the GPU and date here.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

GIB = 1024**3

# gafu's choice: with no GPU to detect and no [train] vram_gb or --vram, plan for the most
# common card among the recipe's users (RECIPE: 12–24 GB typical, 8 GB common).
DEFAULT_VRAM_GB = 12.0

# The recipe's ~200 MB fp16 file at factor 4 (P6) is ~100 M parameters; factor 8 is smaller.
FALLBACK_LOKR_PARAMETERS = 100_000_000

BYTES_PER_VALUE = {"bf16": 2, "fp16": 2, "no": 4}
OPTIMIZER_BYTES_PER_PARAMETER = {"adamw": 16, "adamw8bit": 10}


@dataclass(frozen=True)
class MemoryModel:
    """The figures of the memory model (see the module docstring for each one's source)."""

    unet_parameters: int = 2_567_463_684  # SDXL U-Net
    text_encoder_parameters: int = 123_060_480 + 694_659_840  # CLIP ViT-L + OpenCLIP bigG (with projection)
    vae_parameters: int = 83_653_863
    context_gib: float = 0.8  # CUDA context, library workspaces, allocator slack
    headroom_gib: float = 0.7  # kept free: the desktop on the same GPU, fragmentation peaks
    sample_gib_checkpointed: float = 1.5  # one 1024² sample's activations, gradient checkpointing on
    sample_gib_full: float = 9.0  # the same without gradient checkpointing
    text_encoder_sample_gib: float = 0.1  # both text encoders' activations, 77 tokens each
    lokr_rebuild_checkpointed_gib: float = 0.3  # rebuilt weights of the block being recomputed
    vae_encode_sample_gib: float = 3.0  # VAE encoding a 1024² picture, when latents are not cached
    measured_on: str = ""  # the GPU a calibration came from ("" = estimates only)

    def for_architecture(self, unet_parameters: int, text_encoder_parameters: int) -> MemoryModel:
        """This model for another architecture: its own weights, activations scaled by U-Net size.

        The scaling is a rough estimate (activations grow with width, not parameter count); it
        keeps plans for small or unusual architectures from claiming SDXL's memory.
        """
        unet = unet_parameters / self.unet_parameters
        text = text_encoder_parameters / self.text_encoder_parameters
        return dataclasses.replace(
            self,
            unet_parameters=unet_parameters,
            text_encoder_parameters=text_encoder_parameters,
            sample_gib_checkpointed=self.sample_gib_checkpointed * unet,
            sample_gib_full=self.sample_gib_full * unet,
            lokr_rebuild_checkpointed_gib=self.lokr_rebuild_checkpointed_gib * unet,
            text_encoder_sample_gib=self.text_encoder_sample_gib * text,
        )

    def calibrated(
        self, shape: TrainingShape, batch1_gib: float, batch2_gib: float, *, gpu: str
    ) -> MemoryModel:
        """This model refitted to two measured peaks of one training shape (batch 1 and batch 2).

        The second sample's cost becomes the per-sample activation figure (scaled back to 1024²);
        what batch 1 shows beyond the modelled fixed components goes into `context_gib`. The
        refitted model reproduces both measurements for `shape`.
        """
        scale = _activation_scale(shape)
        text = self.text_encoder_sample_gib if shape.train_text_encoder else 0.0
        activations = (batch2_gib - batch1_gib - text) / scale
        field_name = "sample_gib_checkpointed" if shape.gradient_checkpointing else "sample_gib_full"
        refitted = dataclasses.replace(self, **{field_name: activations}, measured_on=gpu)
        unexplained = batch1_gib - estimate_memory(shape, refitted).at(1)
        return dataclasses.replace(refitted, context_gib=refitted.context_gib + unexplained)


@dataclass(frozen=True)
class TrainingShape:
    """What the memory depends on, as the plan resolved it."""

    mixed_precision: str  # "bf16", "fp16" or "no"
    gradient_checkpointing: bool
    train_text_encoder: bool
    optimizer: str  # "adamw" or "adamw8bit"
    cache_latents: bool
    lokr_parameters: int
    largest_bucket: tuple[int, int]  # (width, height) of the largest training size
    # Text-encoder outputs computed once and the encoders moved off the GPU: impossible while they
    # train or captions are shuffled (P7), so gafu's plans never do it; kept for kohya's figures.
    cache_text_encoder_outputs: bool = False


@dataclass(frozen=True)
class MemoryEstimate:
    """Fixed and per-sample memory, with the components that make them up."""

    fixed_gib: float
    per_sample_gib: float
    components: dict[str, float]  # fixed components by name; per-sample ones end in "per sample"

    def at(self, batch_size: int) -> float:
        """Estimated peak GiB at `batch_size`."""
        return self.fixed_gib + batch_size * self.per_sample_gib

    def max_batch_size(self, usable_gib: float) -> int:
        """The largest batch whose estimate fits in `usable_gib` (0 when not even one fits)."""
        room = usable_gib - self.fixed_gib
        return max(0, math.floor(room / self.per_sample_gib + 1e-9)) if self.per_sample_gib > 0 else 0

    def breakdown(self, batch_size: int) -> dict[str, float]:
        """GiB per component at `batch_size`, adding up to `at(batch_size)`."""
        parts = {}
        for name, gib in self.components.items():
            if name.endswith("per sample"):
                samples = f"{batch_size} sample" + ("s" if batch_size != 1 else "")
                parts[f"{name.removesuffix(' per sample')} ({samples})"] = gib * batch_size
            else:
                parts[name] = gib
        return {name: round(gib, 2) for name, gib in parts.items()}


def estimate_memory(shape: TrainingShape, model: MemoryModel | None = None) -> MemoryEstimate:
    """The memory estimate for one training shape."""
    model = model or MemoryModel()
    weight_bytes = BYTES_PER_VALUE[shape.mixed_precision]
    fixed = {
        "U-Net weights": model.unet_parameters * weight_bytes / GIB,
        "text encoder weights": 0.0
        if shape.cache_text_encoder_outputs
        else model.text_encoder_parameters * weight_bytes / GIB,
        "LoKr weights, gradients, optimizer state": shape.lokr_parameters
        * OPTIMIZER_BYTES_PER_PARAMETER[shape.optimizer]
        / GIB,
        "LoKr rebuilt weights": _rebuild_gib(shape, model, weight_bytes),
        "CUDA context and workspaces": model.context_gib,
    }
    if not shape.cache_latents:
        fixed["VAE weights"] = model.vae_parameters * weight_bytes / GIB
    activations = model.sample_gib_checkpointed if shape.gradient_checkpointing else model.sample_gib_full
    per_sample = {"U-Net activations per sample": activations * _activation_scale(shape)}
    if shape.train_text_encoder:
        per_sample["text encoder activations per sample"] = model.text_encoder_sample_gib
    if not shape.cache_latents:
        per_sample["VAE encoding per sample"] = model.vae_encode_sample_gib * _area(shape)
    return MemoryEstimate(
        fixed_gib=sum(fixed.values()),
        per_sample_gib=sum(per_sample.values()),
        components={**fixed, **per_sample},
    )


def _area(shape: TrainingShape) -> float:
    """The largest bucket's area in units of 1024²."""
    return shape.largest_bucket[0] * shape.largest_bucket[1] / (1024 * 1024)


def _activation_scale(shape: TrainingShape) -> float:
    """Activations relative to one 1024² sample in a 2-byte compute dtype."""
    return _area(shape) * BYTES_PER_VALUE[shape.mixed_precision] / 2


def _rebuild_gib(shape: TrainingShape, model: MemoryModel, weight_bytes: int) -> float:
    if shape.gradient_checkpointing:
        return model.lokr_rebuild_checkpointed_gib
    adapted = model.unet_parameters + (model.text_encoder_parameters if shape.train_text_encoder else 0)
    return adapted * weight_bytes / GIB


@dataclass(frozen=True)
class GpuInfo:
    """The GPU a plan is made for."""

    name: str
    total_gib: float
    bf16: bool  # supports bfloat16 (Ampere / RTX 30 and newer)


def detect_gpu() -> GpuInfo | None:
    """The first CUDA GPU, or None where there is none (imports torch: about a second)."""
    import torch

    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    return GpuInfo(props.name, props.total_memory / GIB, bool(torch.cuda.is_bf16_supported()))
