"""Multires noise statistics (P8), prediction targets and ZTSNR (P9), loss weights."""

import dataclasses

import pytest
import torch

from gafu.plan.model import LossPlan
from gafu.train.noise import loss_weights, noise_scheduler, pyramid_noise, signal_to_noise, training_target

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
    noise = pyramid_noise(shape, generator, iterations=6, discount=0.3, device="cpu", dtype=torch.float32)
    white = torch.randn(shape, generator=generator)
    assert noise.shape == shape
    assert noise.std().item() == pytest.approx(1.0, abs=1e-5)  # rescaled to unit variance
    assert abs(noise.mean().item()) < 0.15
    assert abs(_neighbour_correlation(white)) < 0.01
    assert _neighbour_correlation(noise) > 0.02  # low-frequency layers correlate neighbours
    flat = pyramid_noise(shape, generator, iterations=6, discount=0.0, device="cpu", dtype=torch.float32)
    stronger = pyramid_noise(shape, generator, iterations=6, discount=0.8, device="cpu", dtype=torch.float32)
    assert abs(_neighbour_correlation(flat)) < 0.01  # discount 0: white noise only
    assert _neighbour_correlation(stronger) > _neighbour_correlation(noise) + 0.1


def test_multires_noise_is_reproducible_from_the_generator():
    def draw():
        return pyramid_noise(
            torch.Size((2, 4, 16, 16)),
            torch.Generator().manual_seed(3),
            iterations=4,
            discount=0.3,
            device="cpu",
            dtype=torch.float32,
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


def test_loss_weights_min_snr_and_v_pred_scaling():
    timesteps = torch.tensor([0, 300, 999])
    eps = noise_scheduler(SDXL_SCHEDULE, EPS)
    assert torch.equal(loss_weights(eps, timesteps, EPS), torch.ones(3))
    snr = signal_to_noise(eps, timesteps)
    gamma = dataclasses.replace(EPS, min_snr_gamma=5.0)
    assert torch.allclose(loss_weights(eps, timesteps, gamma), torch.clamp(5.0 / snr, max=1.0))
    vpred = noise_scheduler(SDXL_SCHEDULE, VPRED)
    snr = signal_to_noise(vpred, timesteps).clamp(max=1000)
    weights = loss_weights(vpred, timesteps, VPRED)
    assert torch.allclose(weights, snr / (snr + 1))
    assert weights[-1].item() == 0.0  # SNR 0 at the last step under ZTSNR
    assert torch.isfinite(loss_weights(vpred, timesteps, dataclasses.replace(VPRED, min_snr_gamma=5.0))).all()
