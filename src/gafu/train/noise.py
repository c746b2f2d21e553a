"""Noise, timesteps, targets and loss weights (P8, P9; optional noise offset and min-SNR gamma).

The noise schedule is diffusers' DDPMScheduler built from the model's own scheduler config, with
the family's prediction type and, for v-prediction families, zero-terminal-SNR rescaled betas
(P9). The loss weights read the SNR of the betas *before* that rescale, as sd-scripts does. The
pure functions below take tensors and return tensors; the loop decides when.
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


def training_noise(latents: torch.Tensor, generator: torch.Generator, loss: LossPlan) -> torch.Tensor:
    """Noise for `latents`: white noise, the optional noise offset, then multires layers (P8).

    The order is sd-scripts' (`train_util.get_noise_noisy_latents_and_timesteps`, lines 6075-6085
    at 48d368f): the offset is added to the white noise first, and the multires layers are added
    to that sum before the whole is rescaled to unit standard deviation.
    """
    noise = torch.randn(latents.shape, generator=generator, device=latents.device, dtype=torch.float32)
    if loss.noise_offset:
        offset = torch.randn((*latents.shape[:2], 1, 1), generator=generator, device=latents.device)
        noise = noise + loss.noise_offset * offset
    if loss.multires_noise_iterations > 0:
        noise = pyramid_noise(
            noise, generator, iterations=loss.multires_noise_iterations, discount=loss.multires_noise_discount
        )
    return noise.to(latents.dtype)


def pyramid_noise(
    noise: torch.Tensor, generator: torch.Generator, *, iterations: int, discount: float
) -> torch.Tensor:
    """`noise` plus multi-resolution (pyramid) layers (P8), as sd-scripts' `pyramid_noise_like`.

    `iterations` layers (level i drawn at 1/r^i of the size, r random in [2, 4), weighted by
    `discount ** i`, upsampled bilinearly; level 0 is full size) are added to `noise`, and the sum
    is rescaled to unit standard deviation. The low-frequency layers let the model change overall
    brightness and colour, which plain noise barely reaches.
    """
    batch, channels, height, width = noise.shape
    noise = noise.float().clone()
    upsample = torch.nn.Upsample(size=(height, width), mode="bilinear")
    for level in range(iterations):
        factor = 2 + 2 * torch.rand((), generator=generator, device=noise.device).item()
        coarse_h, coarse_w = max(1, int(height / factor**level)), max(1, int(width / factor**level))
        coarse = torch.randn((batch, channels, coarse_h, coarse_w), generator=generator, device=noise.device)
        noise += upsample(coarse) * discount**level
        if coarse_h == 1 or coarse_w == 1:
            break  # the coarsest level is one pixel wide
    return noise / noise.std()


def training_target(scheduler, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor):
    """What the U-Net learns to predict: the noise (epsilon) or the velocity (v-prediction, P9)."""
    if scheduler.config.prediction_type == "v_prediction":
        return scheduler.get_velocity(latents, noise, timesteps)
    return noise


def loss_snr_table(scheduler_config: dict) -> torch.Tensor:
    """(T,) SNR(t) = ᾱ_t / (1 − ᾱ_t) that the loss weights read: the model's betas before any ZTSNR rescale.

    sd-scripts builds this table (`all_snr`, `custom_train_functions.prepare_scheduler_for_custom_training`)
    before `fix_noise_scheduler_betas_for_zero_terminal_snr` rescales the betas (train_network.py
    lines 246-251 at 48d368f), so under ZTSNR min-SNR and the v-pred scaling still weigh the last
    steps by the original schedule (t=999: 0.0047, not 0). The recipe's results were made that way.
    """
    from diffusers import DDPMScheduler

    config = {k: v for k, v in scheduler_config.items() if not k.startswith("_")}
    alphas_cumprod = DDPMScheduler.from_config(config, rescale_betas_zero_snr=False).alphas_cumprod.float()
    return alphas_cumprod / (1.0 - alphas_cumprod)


def loss_weights(snr_table: torch.Tensor, timesteps: torch.Tensor, loss: LossPlan) -> torch.Tensor:
    """Per-sample weights of the MSE: min-SNR gamma and v-pred-like-noise-pred scaling, as sd-scripts.

    `snr_table` is `loss_snr_table`'s; the formulas are `apply_snr_weight` and
    `scale_v_prediction_loss_like_noise_prediction` in sd-scripts' `library/custom_train_functions.py`.
    """
    weights = torch.ones_like(timesteps, dtype=torch.float32)
    if not (loss.min_snr_gamma or loss.scale_v_pred_loss_like_noise_pred):
        return weights
    snr = snr_table.to(timesteps.device)[timesteps]
    if loss.min_snr_gamma:
        clipped = torch.minimum(snr, torch.full_like(snr, loss.min_snr_gamma))
        weights = weights * (clipped / (snr + 1) if loss.v_parameterization else clipped / snr)
    if loss.scale_v_pred_loss_like_noise_pred:
        # P9: v-pred loss = SNR/(SNR+1) × ε-loss-equivalent; scaling by it weighs timesteps as ε-pred does.
        snr = snr.clamp(max=1000)
        weights = weights * snr / (snr + 1)
    return weights
