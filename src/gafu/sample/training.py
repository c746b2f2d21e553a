"""Sample grids during training (P10): the same sheets `gafu sample` renders, with the network being
trained, leaving the model, the network and torch's random state exactly as it found them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import torch

from gafu.sample.grid import write_index
from gafu.sample.prompts import plan_prompts
from gafu.sample.render import SampleRenderer
from gafu.sample.schedulers import NoiseSchedule
from gafu.sample.sheet import render_sheet, weight_rows


def render_training_samples(base, network, plan, epoch: int, out_dir: Path, *, figures=()) -> list[Path]:
    """Render the plan's grids (weights × prompts, with and without trigger) into `out_dir`.

    Writes the single pictures, one grid per prompt and `out_dir/index.html` (with `figures`, the
    style probe's `(label, StyleFigures)` rows of this epoch, beside the grids); returns the grids.
    """
    out_dir = Path(out_dir)
    with preserved_state(base, network):
        renderer = renderer_for(base, plan)
        sheet = render_sheet(
            renderer,
            weight_rows(plan.sample.weights),
            plan_prompts(plan.sample, plan.trigger),
            out_dir,
            trigger=plan.trigger,
            network=network,
            reuse=False,  # the network changes every epoch; its pictures are always new
        )
    from gafu.eval.figures import figures_html

    notes = {".": figures_html(list(figures))} if figures else None
    write_index(out_dir, f"{plan.run.output_name}: samples at epoch {epoch}", notes)
    return sheet.grids


def renderer_for(base, plan) -> SampleRenderer:
    """A renderer with the plan's sampler settings (P9, P10)."""
    return SampleRenderer(
        base,
        NoiseSchedule.of_plan(plan),
        sampler=plan.sample.scheduler,
        guidance_rescale=plan.sample.guidance_rescale,
    )


@contextlib.contextmanager
def preserved_state(base, network, *, vae: bool = True) -> Iterator[None]:
    """Eval mode and one device for sampling; afterwards every module's mode and device and torch's
    random state are as they were (the network's weight and hooks: see `network_at`).

    `vae=False` leaves the VAE where it is (the style probe works on cached latents).
    """
    parts = [base.unet, base.text_encoder, base.text_encoder_2, *([base.vae] if vae else [])]
    modules = [m for part in [*parts, network] if part is not None for m in part.modules()]
    modes = [(m, m.training) for m in modules]
    device = base.unet.device
    devices = [(part, _device_of(part)) for part in parts[1:]]
    rng = torch.random.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    try:
        for part in parts:
            part.eval()
        if network is not None:
            network.eval()
        for part, was in devices:  # e.g. a VAE kept off the GPU while latents are cached
            if was != device:
                part.to(device)
        yield
    finally:
        for part, was in devices:
            if _device_of(part) != was:
                part.to(was)
        for module, training in modes:
            module.training = training
        torch.random.set_rng_state(rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)


def _device_of(module) -> torch.device:
    return next(module.parameters()).device
