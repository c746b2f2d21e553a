"""Multires noise statistics (P8), prediction targets and ZTSNR (P9), loss weights.

The expected loss weights and the noise-offset order are sd-scripts' formulas (kohya-ss/sd-scripts
at 48d368f), written out here with the file and lines they come from.
"""

import dataclasses

import pytest
import torch

from gafu.plan.model import LossPlan
from gafu.train.noise import (
    loss_snr_table,
    loss_weights,
    noise_scheduler,
    pyramid_noise,
    training_noise,
    training_target,
)

SDXL_SCHEDULE = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
}
EPS = LossPlan(False, False, False, 6, 0.3, 0.0, 0.0)
VPRED = LossPlan(True, True, True, 6, 0.3, 0.0, 0.0)


def _neighbour_correlation(noise: torch.Tensor) -> float:
    a, b = noise[..., :, :-1].flatten(), noise[..., :, 1:].flatten()
    return torch.corrcoef(torch.stack([a, b]))[0, 1].item()


def test_multires_noise_is_unit_variance_zero_mean_and_spatially_correlated():
    generator = torch.Generator().manual_seed(0)
    shape = torch.Size((8, 4, 64, 64))

    def pyramid(discount):
        return pyramid_noise(
            torch.randn(shape, generator=generator), generator, iterations=6, discount=discount
        )

    noise = pyramid(0.3)
    white = torch.randn(shape, generator=generator)
    assert noise.shape == shape
    assert noise.std().item() == pytest.approx(1.0, abs=1e-5)  # rescaled to unit variance
    assert abs(noise.mean().item()) < 0.15
    assert abs(_neighbour_correlation(white)) < 0.01
    assert _neighbour_correlation(noise) > 0.02  # low-frequency layers correlate neighbours
    flat, stronger = pyramid(0.0), pyramid(0.8)
    assert abs(_neighbour_correlation(flat)) < 0.01  # discount 0: white noise only
    assert _neighbour_correlation(stronger) > _neighbour_correlation(noise) + 0.1


def test_multires_noise_is_reproducible_from_the_generator():
    def draw():
        generator = torch.Generator().manual_seed(3)
        return pyramid_noise(
            torch.randn((2, 4, 16, 16), generator=generator), generator, iterations=4, discount=0.3
        )

    assert torch.equal(draw(), draw())


def test_v_prediction_target_is_the_velocity_and_zero_terminal_snr_holds():
    scheduler = noise_scheduler(SDXL_SCHEDULE, VPRED)
    assert scheduler.config.prediction_type == "v_prediction"
    assert scheduler.alphas_cumprod[-1].item() == pytest.approx(0.0, abs=1e-7)  # P9: zero terminal SNR
    latents, noise = torch.randn(3, 4, 8, 8), torch.randn(3, 4, 8, 8)
    timesteps = torch.tensor([0, 500, 999])
    alpha_bar = scheduler.alphas_cumprod[timesteps].view(-1, 1, 1, 1)
    velocity = alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * latents
    assert torch.allclose(training_target(scheduler, latents, noise, timesteps), velocity, atol=1e-6)
    assert torch.allclose(training_target(scheduler, latents, noise, timesteps)[2], -latents[2], atol=1e-6)


def test_epsilon_target_is_the_noise_and_the_schedule_is_the_models():
    scheduler = noise_scheduler(SDXL_SCHEDULE, EPS)
    latents, noise = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    assert training_target(scheduler, latents, noise, torch.tensor([10, 900])) is noise
    assert scheduler.alphas_cumprod[-1].item() > 0.001  # no ZTSNR: SDXL's own last step


def _kohya_snr_table() -> torch.Tensor:
    """sd-scripts' `all_snr`, built before the ZTSNR fix (train_network.py lines 246-251).

    Its scheduler: DDPMScheduler(beta_start=0.00085, beta_end=0.012, "scaled_linear", 1000)
    (train_network.py line 246), whose betas are linspace(√0.00085, √0.012, 1000)²; then
    `prepare_scheduler_for_custom_training` (custom_train_functions.py lines 16-26):
    all_snr = (√ᾱ / √(1 − ᾱ))², and only after that `fix_noise_scheduler_betas_for_zero_terminal_snr`.
    """
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float32) ** 2
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    return (torch.sqrt(alphas_cumprod) / torch.sqrt(1.0 - alphas_cumprod)) ** 2


def test_loss_weights_read_the_snr_before_the_zero_terminal_snr_rescale_as_sd_scripts():
    timesteps = torch.arange(1000)
    snr = _kohya_snr_table()
    table = loss_snr_table(SDXL_SCHEDULE)
    assert torch.allclose(table, snr, rtol=1e-5)
    # get_snr_scale (custom_train_functions.py lines 85-92): min(snr, 1000) / (min(snr, 1000) + 1)
    capped = torch.minimum(snr, torch.full_like(snr, 1000.0))
    assert torch.allclose(loss_weights(table, timesteps, VPRED), capped / (capped + 1), rtol=1e-5)
    weights = loss_weights(table, torch.tensor([500, 900, 999]), VPRED)
    assert weights.tolist() == pytest.approx([0.2763, 0.0142, 0.0047], abs=1e-4)  # not 0.241, 0.0030, 0
    # apply_snr_weight (custom_train_functions.py lines 68-76): min(snr, γ) / (snr + 1) for
    # v-prediction, min(snr, γ) / snr for epsilon
    gamma = torch.full_like(snr, 5.0)
    v_min_snr = dataclasses.replace(VPRED, min_snr_gamma=5.0, scale_v_pred_loss_like_noise_pred=False)
    assert torch.allclose(
        loss_weights(table, timesteps, v_min_snr), torch.minimum(snr, gamma) / (snr + 1), rtol=1e-5
    )
    eps_min_snr = dataclasses.replace(EPS, min_snr_gamma=5.0)
    assert torch.allclose(
        loss_weights(table, timesteps, eps_min_snr), torch.minimum(snr, gamma) / snr, rtol=1e-5
    )
    both = dataclasses.replace(VPRED, min_snr_gamma=5.0)  # post_process_loss applies both, in turn
    expected = torch.minimum(snr, gamma) / (snr + 1) * capped / (capped + 1)
    assert torch.allclose(loss_weights(table, timesteps, both), expected, rtol=1e-5)
    assert torch.equal(loss_weights(table, timesteps, EPS), torch.ones(1000))
    # the noise itself is added on the rescaled schedule (P9): zero SNR at the last step
    assert noise_scheduler(SDXL_SCHEDULE, VPRED).alphas_cumprod[-1].item() == pytest.approx(0.0, abs=1e-7)


def test_noise_offset_is_added_before_the_multires_layers_as_sd_scripts():
    latents = torch.zeros(2, 4, 16, 16)
    loss = dataclasses.replace(EPS, noise_offset=0.5)
    noise = training_noise(latents, torch.Generator().manual_seed(7), loss)
    # train_util.get_noise_noisy_latents_and_timesteps (train_util.py lines 6075-6085): white
    # noise, + offset × randn(B, C, 1, 1) (apply_noise_offset, custom_train_functions.py line 483),
    # then pyramid_noise_like on that sum (lines 458-467): each level i adds
    # upsample(randn(H / r^i, W / r^i)) × discount^i, r in [2, 4), and the whole is divided by its std.
    generator = torch.Generator().manual_seed(7)
    expected = torch.randn(latents.shape, generator=generator)
    expected = expected + 0.5 * torch.randn((2, 4, 1, 1), generator=generator)
    upsample = torch.nn.Upsample(size=(16, 16), mode="bilinear")
    for level in range(loss.multires_noise_iterations):
        r = 2 + 2 * torch.rand((), generator=generator).item()
        h, w = max(1, int(16 / r**level)), max(1, int(16 / r**level))
        expected += (
            upsample(torch.randn((2, 4, h, w), generator=generator)) * loss.multires_noise_discount**level
        )
        if h == 1 or w == 1:
            break
    expected = expected / expected.std()
    assert torch.allclose(noise, expected, atol=1e-6)
    assert noise.std().item() == pytest.approx(1.0, abs=1e-5)  # the offset is inside the rescale
    without_multires = dataclasses.replace(loss, multires_noise_iterations=0)
    plain = training_noise(latents, torch.Generator().manual_seed(7), without_multires)
    generator = torch.Generator().manual_seed(7)
    white = torch.randn(latents.shape, generator=generator)
    assert torch.allclose(plain, white + 0.5 * torch.randn((2, 4, 1, 1), generator=generator))
