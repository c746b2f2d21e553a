"""Noise, timesteps, targets and loss weights (P8, P9; optional noise offset and min-SNR gamma).

The noise schedule is diffusers' DDPMScheduler built from the model's own scheduler config, with
the family's prediction type and, for v-prediction families, zero-terminal-SNR rescaled betas
(P9). The pure functions below take tensors and return tensors; the loop decides when.
"""

from __future__ import annotations

import torch

from gafu.plan.model import LossPlan


def noise_scheduler(scheduler_config: dict, loss: LossPlan):
    """The training noise schedule: the model's betas, the family's target, ZTSNR when the plan says (P9)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler.from_config(
        {k: v for k, v in scheduler_config.items() if not k.startswith("_")},
        prediction_type="v_prediction" if loss.v_parameterization else "epsilon",
        rescale_betas_zero_snr=loss.zero_terminal_snr,
        clip_sample=False,
    )


def pyramid_noise(
    shape: torch.Size, generator: torch.Generator, *, iterations: int, discount: float, device, dtype
) -> torch.Tensor:
    """Multi-resolution (pyramid) noise (P8), as sd-scripts' `pyramid_noise_like`.

    White noise plus `iterations` layers (level i drawn at 1/r^i of the size, r random in [2, 4),
    weighted by `discount ** i`, upsampled bilinearly; level 0 is full size), summed and rescaled
    to unit standard deviation. The low-frequency layers let the model change overall
    brightness and colour, which plain noise barely reaches.
    """
    batch, channels, height, width = shape
    noise = torch.randn(shape, generator=generator, device=device, dtype=torch.float32)
    upsample = torch.nn.Upsample(size=(height, width), mode="bilinear")
    for level in range(iterations):
        factor = 2 + 2 * torch.rand((), generator=generator, device=device).item()
        coarse_h, coarse_w = max(1, int(height / factor**level)), max(1, int(width / factor**level))
        coarse = torch.randn((batch, channels, coarse_h, coarse_w), generator=generator, device=device)
        noise += upsample(coarse) * discount**level
        if coarse_h == 1 or coarse_w == 1:
            break  # the coarsest level is one pixel wide
    return (noise / noise.std()).to(dtype)


def training_noise(latents: torch.Tensor, generator: torch.Generator, loss: LossPlan) -> torch.Tensor:
    """Noise for `latents`: multires when the plan asks (P8), plus the optional noise offset."""
    if loss.multires_noise_iterations > 0:
        noise = pyramid_noise(
            latents.shape,
            generator,
            iterations=loss.multires_noise_iterations,
            discount=loss.multires_noise_discount,
            device=latents.device,
            dtype=latents.dtype,
        )
    else:
        noise = torch.randn(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
    if loss.noise_offset:
        offset = torch.randn((*latents.shape[:2], 1, 1), generator=generator, device=latents.device)
        noise = noise + loss.noise_offset * offset.to(latents.dtype)
    return noise


def training_target(scheduler, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor):
    """What the U-Net learns to predict: the noise (epsilon) or the velocity (v-prediction, P9)."""
    if scheduler.config.prediction_type == "v_prediction":
        return scheduler.get_velocity(latents, noise, timesteps)
    return noise


def signal_to_noise(scheduler, timesteps: torch.Tensor) -> torch.Tensor:
    """SNR(t) = ᾱ_t / (1 − ᾱ_t) of each timestep (0 at the last step under zero terminal SNR)."""
    alphas_cumprod = scheduler.alphas_cumprod.to(timesteps.device)[timesteps].float()
    return alphas_cumprod / (1.0 - alphas_cumprod).clamp(min=1e-12)


def loss_weights(scheduler, timesteps: torch.Tensor, loss: LossPlan) -> torch.Tensor:
    """Per-sample weights of the MSE: min-SNR gamma and v-pred-like-noise-pred scaling, as sd-scripts."""
    weights = torch.ones_like(timesteps, dtype=torch.float32)
    if not (loss.min_snr_gamma or loss.scale_v_pred_loss_like_noise_pred):
        return weights
    snr = signal_to_noise(scheduler, timesteps)
    if loss.min_snr_gamma:
        gamma = torch.full_like(snr, loss.min_snr_gamma)
        if loss.v_parameterization:
            weights = weights * torch.minimum(snr, gamma) / (snr + 1)
        else:  # min(snr, γ) / snr, written so SNR 0 gives 1 rather than 0/0
            weights = weights * torch.where(snr < gamma, torch.ones_like(snr), gamma / snr.clamp(min=1e-12))
    if loss.scale_v_pred_loss_like_noise_pred:
        # P9: v-pred loss = SNR/(SNR+1) × ε-loss-equivalent; scaling by it weighs timesteps as ε-pred does.
        snr = snr.clamp(max=1000)
        weights = weights * snr / (snr + 1)
    return weights
