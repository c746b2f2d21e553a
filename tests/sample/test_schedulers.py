"""Samplers by name, configured for the family from the plan (P9)."""

from __future__ import annotations

import pytest

from gafu.errors import GafuError
from gafu.fsio import read_json
from gafu.models.configs import sdxl_config_dir
from gafu.sample.schedulers import SAMPLERS, NoiseSchedule, build_scheduler

SDXL_SCHEDULE = read_json(sdxl_config_dir() / "scheduler" / "scheduler_config.json")
EPS = NoiseSchedule(v_prediction=False, zero_terminal_snr=False, timestep_spacing="leading")


def plan_for(project, family: str):
    from gafu.plan import resolve_plan

    project.config.project.family = family
    return resolve_plan(project, 12.0, describe=lambda *a, **k: None)


def test_noob_vpred_samples_with_v_prediction_zero_snr_and_trailing_timesteps(prepared_project):
    plan = plan_for(prepared_project(n_target=2, n_reg=2, size=(256, 256)), "noob-vpred")
    schedule = NoiseSchedule.of_plan(plan)
    scheduler = build_scheduler(plan.sample.scheduler, SDXL_SCHEDULE, schedule)
    config = scheduler.config
    assert config.prediction_type == "v_prediction"
    assert config.rescale_betas_zero_snr is True
    assert config.timestep_spacing == "trailing"
    assert plan.sample.guidance_rescale > 0  # passed to the pipeline for every picture
    # zero terminal SNR: sampling starts from (almost) pure noise at the last timestep
    scheduler.set_timesteps(plan.sample.steps)
    assert int(scheduler.timesteps[0]) == 999
    assert float(scheduler.alphas_cumprod[-1]) < 1e-6


def test_eps_families_keep_the_models_schedule(prepared_project):
    plan = plan_for(prepared_project(n_target=2, n_reg=2, size=(256, 256)), "illustrious")
    scheduler = build_scheduler(plan.sample.scheduler, SDXL_SCHEDULE, NoiseSchedule.of_plan(plan))
    assert type(scheduler).__name__ == "EulerAncestralDiscreteScheduler"
    assert scheduler.config.prediction_type == "epsilon"
    assert scheduler.config.rescale_betas_zero_snr is False
    assert scheduler.config.timestep_spacing == "leading"
    assert scheduler.config.beta_end == SDXL_SCHEDULE["beta_end"]


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_named_sampler_builds_and_steps(name):
    import torch

    scheduler = build_scheduler(name, SDXL_SCHEDULE, EPS)
    scheduler.set_timesteps(4)
    sample = torch.zeros(1, 4, 8, 8)
    out = scheduler.step(torch.zeros_like(sample), scheduler.timesteps[0], sample, return_dict=False)[0]
    assert out.shape == sample.shape


def test_sampler_settings_and_class_names():
    karras = build_scheduler("dpmpp_2m_karras", SDXL_SCHEDULE, EPS)
    assert karras.config.use_karras_sigmas is True and karras.config.algorithm_type == "dpmsolver++"
    assert (
        type(build_scheduler("k_euler_a", SDXL_SCHEDULE, EPS)).__name__ == "EulerAncestralDiscreteScheduler"
    )
    assert type(build_scheduler("TCDScheduler", SDXL_SCHEDULE, EPS)).__name__ == "TCDScheduler"


def test_unknown_samplers_and_samplers_without_zero_snr_are_refused():
    with pytest.raises(GafuError, match="unknown sampler 'nope'"):
        build_scheduler("nope", SDXL_SCHEDULE, EPS)
    zero_snr = NoiseSchedule(v_prediction=True, zero_terminal_snr=True, timestep_spacing="trailing")
    with pytest.raises(
        GafuError, match=r"'heun' cannot sample a zero-terminal-SNR model .*use one of .*euler_a"
    ):
        build_scheduler("heun", SDXL_SCHEDULE, zero_snr)
