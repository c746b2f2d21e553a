"""Seconds per training step, samples/s and peak memory of the recipe's LoKr on an SDXL-architecture
U-Net (random weights), with the baseline measured in the same run:

    PYTHONPATH=src python bench/train_step.py              # small U-Net, 256 px, batch 2, CPU
    PYTHONPATH=src python bench/train_step.py --arch tiny --resolution 64
    PYTHONPATH=src python bench/train_step.py --arch sdxl --resolution 1024 --batch 1 \
        --device cuda --dtype bf16

Rows, each timed over `--steps` steps after one warm-up step, in `--rounds` rounds in which the rows
take turns (each figure is the median round):
- baseline: the same step with the frozen U-Net and no adapter — forward, and backward to the input
  latents (the gradient products every layer needs when anything before it trains);
- frozen forward: the U-Net's forward alone under no_grad, for reference — the least any step costs;
- lokr/lycoris: a training step (forward, backward, AdamW step) with the recipe's LoKr (P6: linear
  dim 128, conv dim 64, factor 8, alpha = dim, LyCORIS's "full" preset) using LyCORIS's forward;
- lokr/gafu: the same step with gafu's LoKr forward (`[train] lokr_kernel = "gafu"`).
The text encoders are not run (their outputs are random tensors of the right shapes): this is the
U-Net side of a step, which dominates it. Peak memory is the GPU's peak allocation on CUDA; on the
CPU the process's peak RAM, which includes what the allocator keeps from the rows before, so
compare memory on CUDA.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from gafu import recipe
from gafu.models.configs import sdxl_config_dir
from gafu.models.memory import PeakMemory
from gafu.models.tiny import UNET_CONFIG
from gafu.network.fast_lokr import lokr_module_class
from gafu.network.lokr import build_network
from gafu.network.settings import LokrSettings

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def unet_config(arch: str) -> dict:
    """The U-Net config of an architecture size: tiny (gafu's test model), small (SDXL at 1/5 width), sdxl."""
    if arch == "tiny":
        return dict(UNET_CONFIG)
    config = json.loads((sdxl_config_dir() / "unet" / "config.json").read_text("utf-8"))
    config = {k: v for k, v in config.items() if not k.startswith("_")}
    if arch == "small":  # SDXL's blocks at a fifth of its widths (head width 32), attention depth 1-1-2
        config.update(
            block_out_channels=[64, 128, 256],
            attention_head_dim=[2, 4, 8],
            transformer_layers_per_block=[1, 1, 2],
        )
    return config


def build(arch: str, device: str, dtype: torch.dtype):
    """A frozen U-Net with random weights, in `dtype` on `device`."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config(unet_config(arch)).to(device, dtype)
    unet.requires_grad_(False)
    unet.enable_gradient_checkpointing()
    return unet.train()


def inputs(unet, batch: int, resolution: int, device: str, dtype: torch.dtype) -> dict:
    """Random latents, timesteps, text states, pooled embedding and time ids of the right shapes."""
    config = unet.config
    side = resolution // 8
    pooled = config.projection_class_embeddings_input_dim - 6 * config.addition_time_embed_dim
    return {
        "sample": torch.randn(batch, 4, side, side, device=device, dtype=dtype),
        "timestep": torch.randint(0, 1000, (batch,), device=device),
        "encoder_hidden_states": torch.randn(
            batch, 77, config.cross_attention_dim, device=device, dtype=dtype
        ),
        "added_cond_kwargs": {
            "text_embeds": torch.randn(batch, pooled, device=device, dtype=dtype),
            "time_ids": torch.tensor(
                [[resolution, resolution, 0, 0, resolution, resolution]] * batch, device=device, dtype=dtype
            ),
        },
    }


def timed(step, steps: int, device: str) -> tuple[float, float]:
    """Mean seconds per call after a warm-up call, and peak memory in MB."""
    step()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    with PeakMemory() as memory:
        started = time.perf_counter()
        for _ in range(steps):
            step()
        if device == "cuda":
            torch.cuda.synchronize()
        seconds = (time.perf_counter() - started) / steps
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else memory.peak_bytes
    return seconds, peak / 1e6


def arguments(description: str) -> argparse.Namespace:
    """The command line of the U-Net benchmarks: architecture, size, batch, rounds, device, dtype."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--arch", choices=["tiny", "small", "sdxl"], default="small")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per row and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of all rows, taking turns")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=DTYPES, default="fp32")
    return parser.parse_args()


def recipe_settings() -> LokrSettings:
    """The recipe's LoKr (P6) on the U-Net alone."""
    return LokrSettings(
        dim=recipe.LINEAR_DIM,
        alpha=recipe.LINEAR_DIM,
        conv_dim=recipe.CONV_DIM,
        conv_alpha=recipe.CONV_DIM,
        factor=recipe.FACTOR,
        preset=recipe.LYCORIS_PRESET,
        train_text_encoder=False,
    )


def main() -> None:
    """Run the rows and print them as ratios against the baseline."""
    args = arguments(__doc__)
    dtype = DTYPES[args.dtype]
    settings = recipe_settings()
    unet = build(args.arch, args.device, dtype)
    batch = inputs(unet, args.batch, args.resolution, args.device, dtype)

    def frozen_step():
        sample = batch["sample"].detach().requires_grad_(True)
        with torch.autocast(args.device, dtype=dtype, enabled=dtype != torch.float32):
            prediction = unet(**{**batch, "sample": sample}).sample
        torch.nn.functional.mse_loss(prediction.float(), batch["sample"].float()).backward()

    @torch.no_grad()
    def frozen_forward():
        with torch.autocast(args.device, dtype=dtype, enabled=dtype != torch.float32):
            unet(**batch)

    # Both networks are built before either is applied: each LoKr module keeps the base layer's
    # own forward, which it would not see under the other network's hooks.
    networks = {
        kernel: build_network(unet, None, settings, module_class=lokr_module_class(kernel, args.device))
        for kernel in ("lycoris", "gafu")
    }
    steps = {
        "baseline: frozen U-Net step, no adapter": (None, frozen_step),
        "frozen forward only (no_grad)": (None, frozen_forward),
    }
    for kernel, network in networks.items():
        network.to(args.device, torch.float32)
        optimizer = torch.optim.AdamW(network.parameters(), lr=1e-4)

        def train_step(optimizer=optimizer):
            with torch.autocast(args.device, dtype=dtype, enabled=dtype != torch.float32):
                prediction = unet(**batch).sample
            torch.nn.functional.mse_loss(prediction.float(), batch["sample"].float()).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        steps[f"lokr/{kernel}: forward + backward + AdamW step"] = (network, train_step)

    # The rows take turns, round after round, so a slow spell of a shared machine hits all alike.
    measured: dict[str, list[tuple[float, float]]] = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, (network, step) in steps.items():
            if network is not None:
                network.apply_to()
            measured[name].append(timed(step, args.steps, args.device))
            if network is not None:
                network.restore()
    rows = {
        name: (statistics.median(s for s, _ in runs), max(peak for _, peak in runs))
        for name, runs in measured.items()
    }
    base_seconds = next(iter(rows.values()))[0]
    print(
        f"{args.arch} U-Net, {args.resolution} px, batch {args.batch}, {args.dtype} on {args.device}, "
        f"LoKr dim {settings.dim}/conv {settings.conv_dim}/factor {settings.factor}"
    )
    print(f"{'row':52} {'s/step':>8} {'samples/s':>10} {'peak MB':>8} {'× baseline':>10}")
    for name, (seconds, peak) in rows.items():
        print(
            f"{name:52} {seconds:8.3f} {args.batch / seconds:10.2f} {peak:8.0f} "
            f"{seconds / base_seconds:10.2f}"
        )


if __name__ == "__main__":
    main()
