"""A single-file checkpoint of an SDXL architecture (full size or any other), with random weights.

No real weights can be downloaded where gafu's tests run, yet the path users take — a 7 GB
`.safetensors` in SGM layout, fp16 or bf16 — must be exercised as it is. This writes such a file
tensor by tensor, never holding the model in memory: the keys, shapes, dtypes and extra entries
of a published SDXL checkpoint, with random values that keep activations at a sane scale (each
weight matrix normal with std 1/√fan-in, norms at 1, biases at 0), so a forward pass, a training
step and a sampler run give finite, varied numbers.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import torch

from gafu.fsio import atomic_path
from gafu.models import sgm

# Random values come from one pool per scale, read from a random offset for each tensor: writing
# 3.5 billion fresh normal values would take minutes; copying bytes takes as long as the disk.
POOL_VALUES = 4_194_301  # a prime, so a pool's period never lines up with a row length
SAFETENSORS_DTYPES = {torch.float16: "F16", torch.bfloat16: "BF16", torch.float32: "F32", torch.int64: "I64"}


def sgm_meta_tensors(config_dir: Path | None = None) -> dict[str, torch.Tensor]:
    """Every tensor of the architecture's single file under its SGM key, on the meta device (no memory).

    `config_dir` is a config or diffusers folder (default: SDXL's shipped configs). Includes the
    non-weights published SDXL files carry (CLIP-L's position ids, OpenCLIP's logit scale).
    """
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL

    from gafu.models.configs import sdxl_config_dir
    from gafu.models.load import meta_model

    folder = Path(config_dir) if config_dir else sdxl_config_dir()
    unet, te1, te2 = meta_model(folder)
    with init_empty_weights():
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(folder, subfolder="vae"))
    return {
        **sgm.unet_to_sgm(unet.state_dict(), unet.config),
        **sgm.vae_to_ldm(vae.state_dict(), vae.config),
        **sgm.clip_l_to_sgm(te1.state_dict()),
        **sgm.open_clip_to_sgm(te2.state_dict()),
        **sgm.non_weights(te1.config.max_position_embeddings, device="meta"),
    }


def write_synthetic_checkpoint(
    path: Path,
    config_dir: Path | None = None,
    *,
    dtype: torch.dtype = torch.float16,
    fill: str = "random",
    seed: int = 0,
) -> int:
    """Write a single SGM-layout `.safetensors` of the architecture in `config_dir`; returns its size.

    `fill` is "random" (see the module docstring) or "zeros". Written atomically, streamed.
    """
    if fill not in ("random", "zeros"):
        raise ValueError(f"fill must be 'random' or 'zeros', not {fill!r}")
    tensors = sgm_meta_tensors(config_dir)
    header, offset = {}, 0
    for key, meta in tensors.items():
        stored = dtype if meta.is_floating_point() else meta.dtype
        size = meta.numel() * stored.itemsize
        header[key] = {
            "dtype": SAFETENSORS_DTYPES[stored],
            "shape": list(meta.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    header["__metadata__"] = {"format": "pt"}
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    pools = _Pools(dtype, seed)
    extras = sgm.non_weights(tensors[sgm.CLIP_L_PREFIX + "text_model.embeddings.position_ids"].shape[1])
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)) + raw)
        for key, meta in tensors.items():
            if key in extras:
                value = extras[key].to(dtype if meta.is_floating_point() else meta.dtype)
                fh.write(_bytes_of(value))
            elif fill == "zeros" or meta.dim() <= 1:  # biases 0, norms 1
                value = 1.0 if fill == "random" and _scale(key, meta) == 1.0 else 0.0
                _write_constant(fh, meta.numel(), value, dtype)
            else:
                pools.write(fh, meta.numel(), _scale(key, meta))
    return path.stat().st_size


def _scale(key: str, meta: torch.Tensor) -> float:
    """The std of a tensor's random values: 1/√fan-in for weights, 1 for norms (1-D weights), 0 for biases."""
    if key.endswith("bias") or meta.dim() == 0:
        return 0.0
    if meta.dim() == 1:
        return 1.0  # a norm's weight (every 1-D weight of SDXL is one)
    return float(meta[0].numel()) ** -0.5


@torch.no_grad()
def randomize_(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Fill a module's parameters in place as `write_synthetic_checkpoint` fills a file (on its device).

    For a model made with `to_empty` from the meta device: buffers named `position_ids` (CLIP's)
    become 0, 1, 2 …; norms 1 and biases 0 are written exactly, weights are normal with their scale.
    """
    generator = torch.Generator(device=next(module.parameters()).device).manual_seed(seed)
    for name, parameter in module.named_parameters():
        scale = _scale(name, parameter)
        if scale == 0.0 or parameter.dim() == 1:
            parameter.fill_(scale)
        else:
            parameter.normal_(0.0, scale, generator=generator)
    for name, buffer in module.named_buffers():
        if name.endswith("position_ids"):
            buffer.copy_(torch.arange(buffer.shape[-1], device=buffer.device).expand_as(buffer))
    return module


class _Pools:
    """Normal values per scale, written from a random offset of a fixed pool (cheap and random enough)."""

    def __init__(self, dtype: torch.dtype, seed: int):
        self.dtype = dtype
        self.generator = torch.Generator().manual_seed(seed)
        self.unit = torch.randn(POOL_VALUES, generator=self.generator)
        self.pools: dict[float, memoryview] = {}

    def write(self, fh, count: int, scale: float) -> None:
        if scale not in self.pools:
            self.pools[scale] = memoryview(_bytes_of((self.unit * scale).to(self.dtype)))
        pool, width = self.pools[scale], self.dtype.itemsize
        start = int(torch.randint(POOL_VALUES, (1,), generator=self.generator))
        while count > 0:
            take = min(count, POOL_VALUES - start)
            fh.write(pool[start * width : (start + take) * width])
            count -= take
            start = 0


def _bytes_of(tensor: torch.Tensor) -> bytes:
    return tensor.contiguous().flatten().view(torch.uint8).numpy().tobytes()


def _write_constant(fh, count: int, value: float, dtype: torch.dtype, chunk: int = 16 << 20) -> None:
    block = _bytes_of(torch.full((min(chunk, count),), value, dtype=dtype))
    while count > 0:
        take = min(chunk, count)
        fh.write(memoryview(block)[: take * dtype.itemsize])
        count -= take
