"""What the style probe costs at every save, against the training it measures (the recipe's settings):

    PYTHONPATH=src python bench/style_probe.py                      # small U-Net, 256 px, batch 2, CPU
    PYTHONPATH=src python bench/style_probe.py --arch tiny --resolution 64
    PYTHONPATH=src python bench/style_probe.py --arch sdxl --resolution 1024 --batch 2 \
        --device cuda --dtype bf16

Two rows, each timed over `--steps` calls after a warm-up, taking turns for `--rounds` rounds
(each figure is the median round), on an SDXL-architecture U-Net with random weights and the
recipe's LoKr (P6: dim 128, conv dim 64, factor 8), gradient checkpointing on:
- baseline: a training step per sample — forward, backward, AdamW step (what the probe competes with);
- probe: the probe's forward per sample — no_grad, the LoKr applied, the same batch.
The text encoders are not run on either side (their cost is small beside the U-Net's on SDXL).

From the two it projects the probe's share of the training time between saves for the recipe:
every `save_every` (10) epochs of 2 × repeats (2) × N samples (P1–P3), the probe scores
`timesteps` (8) × (2 × target + reg) pictures (4 + 4: with and without the trigger, and the
regularization pictures); the run's first save measures the base model too (twice the rows).
"""

from __future__ import annotations

import statistics

import torch

from gafu import recipe
from gafu.network.fast_lokr import lokr_module_class
from gafu.network.lokr import build_network
from train_step import DTYPES, arguments, build, inputs, recipe_settings, timed


def main() -> None:
    """Time both rows and print the projection."""
    args = arguments(__doc__)
    dtype = DTYPES[args.dtype]
    settings = recipe_settings()
    unet = build(args.arch, args.device, dtype)  # frozen, gradient checkpointing, train mode
    batch = inputs(unet, args.batch, args.resolution, args.device, dtype)
    network = build_network(unet, None, settings, module_class=lokr_module_class("gafu", args.device))
    network.to(args.device, torch.float32)
    network.apply_to()
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-4)
    autocast = torch.autocast(args.device, dtype=dtype, enabled=dtype != torch.float32)

    def train_step():
        unet.train()
        with autocast:
            prediction = unet(**batch).sample
        torch.nn.functional.mse_loss(prediction.float(), batch["sample"].float()).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    @torch.no_grad()
    def probe_forward():
        unet.eval()  # as the probe runs it (gradient checkpointing is inactive without gradients)
        with autocast:
            prediction = unet(**batch).sample
        torch.nn.functional.mse_loss(prediction.float(), batch["sample"].float(), reduction="none")

    rows = {"baseline: training step": train_step, "probe: forward": probe_forward}
    measured: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(args.rounds):
        for name, step in rows.items():
            measured[name].append(timed(step, args.steps, args.device)[0] / args.batch)
    per_sample = {name: statistics.median(times) for name, times in measured.items()}
    train_s, probe_s = per_sample.values()
    print(
        f"{args.arch} U-Net, {args.resolution} px, batch {args.batch}, {args.dtype} on {args.device}, "
        f"LoKr dim {settings.dim}/conv {settings.conv_dim}/factor {settings.factor}"
    )
    print(f"{'row':28} {'s/sample':>9} {'× baseline':>10}")
    for name, seconds in per_sample.items():
        print(f"{name:28} {seconds:9.4f} {seconds / train_s:10.3f}")
    rows_per_save = recipe.PROBE_TIMESTEPS * 3 * recipe.PROBE_PICTURES  # 2 × target + reg
    print(
        f"\nprobe at a save: {rows_per_save} rows ({recipe.PROBE_TIMESTEPS} timesteps × "
        f"({recipe.PROBE_PICTURES} target × 2 + {recipe.PROBE_PICTURES} reg)); training between saves: "
        f"{recipe.SAVE_EVERY_EPOCHS} epochs × 2 × {recipe.REPEATS} × N samples"
    )
    print(f"{'target pictures N':>18} {'samples between saves':>22} {'probe share':>12} {'first save':>11}")
    for pictures in (20, 40, 100):
        samples = recipe.SAVE_EVERY_EPOCHS * 2 * recipe.REPEATS * pictures
        share = rows_per_save * probe_s / (samples * train_s)
        print(f"{pictures:>18} {samples:>22} {share:>11.2%} {2 * share:>10.2%}")


if __name__ == "__main__":
    main()
