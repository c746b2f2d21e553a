"""Samplers by name, configured for the model's family (P9) from the plan.

A v-prediction model trained with zero terminal SNR (NoobAI-XL v-pred) must be sampled with the
same noise schedule: `prediction_type="v_prediction"`, `rescale_betas_zero_snr=True` (the last
timestep is pure noise) and "trailing" timesteps (sampling starts at that last timestep). CFG
rescale (`guidance_rescale`, passed to the pipeline) keeps such pictures from over-saturating.
Epsilon families sample as their model config says.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

from gafu.errors import GafuError


@dataclass(frozen=True)
class SamplerChoice:
    """A diffusers scheduler class and the settings that make it the named sampler."""

    class_name: str
    settings: dict[str, Any] = field(default_factory=dict)


# Names as kohya's sd-scripts and the web UIs call them.
SAMPLERS: dict[str, SamplerChoice] = {
    "euler_a": SamplerChoice("EulerAncestralDiscreteScheduler"),
    "euler": SamplerChoice("EulerDiscreteScheduler"),
    "euler_karras": SamplerChoice("EulerDiscreteScheduler", {"use_karras_sigmas": True}),
    "dpmpp_2m": SamplerChoice(
        "DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}
    ),
    "dpmpp_2m_karras": SamplerChoice(
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True},
    ),
    "dpmpp_2m_sde": SamplerChoice("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
    "dpmpp_2m_sde_karras": SamplerChoice(
        "DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True}
    ),
    "ddim": SamplerChoice("DDIMScheduler"),
    "unipc": SamplerChoice("UniPCMultistepScheduler"),
    "heun": SamplerChoice("HeunDiscreteScheduler"),
    "lms": SamplerChoice("LMSDiscreteScheduler"),
    "dpm_2": SamplerChoice("KDPM2DiscreteScheduler"),
    "dpm_2_a": SamplerChoice("KDPM2AncestralDiscreteScheduler"),
    "deis": SamplerChoice("DEISMultistepScheduler"),
    "pndm": SamplerChoice("PNDMScheduler"),
}
# Other spellings found in kohya prompt files and configs.
ALIASES = {
    "k_euler_a": "euler_a",
    "euler_ancestral": "euler_a",
    "k_euler": "euler",
    "dpmsolver++": "dpmpp_2m",
    "k_dpm_2": "dpm_2",
    "k_dpm_2_a": "dpm_2_a",
    "k_lms": "lms",
}


@dataclass(frozen=True)
class NoiseSchedule:
    """What the model was trained to predict, over which noise schedule (P9)."""

    v_prediction: bool
    zero_terminal_snr: bool
    timestep_spacing: str  # "leading" (SDXL's) or "trailing" (zero terminal SNR)

    @classmethod
    def of_plan(cls, plan) -> NoiseSchedule:
        """The plan's: the model's prediction type, the run's zero terminal SNR, the preset's spacing."""
        return cls(
            v_prediction=plan.model.prediction_type == "v_prediction",
            zero_terminal_snr=plan.loss.zero_terminal_snr,
            timestep_spacing=plan.sample.timestep_spacing,
        )


def sampler_choice(name: str) -> SamplerChoice:
    """The named sampler: a gafu name (`euler_a`, `dpmpp_2m` …) or any diffusers scheduler class name."""
    key = ALIASES.get(name.lower(), name.lower())
    if key in SAMPLERS:
        return SAMPLERS[key]
    import diffusers

    cls = getattr(diffusers, name, None)
    if isinstance(cls, type) and issubclass(cls, diffusers.SchedulerMixin):
        return SamplerChoice(name)
    raise GafuError(
        f"unknown sampler {name!r}",
        hint=f"use one of {', '.join(SAMPLERS)}, or a diffusers scheduler class name",
    )


def build_scheduler(name: str, model_config: dict[str, Any], schedule: NoiseSchedule):
    """A diffusers scheduler: the model's noise-schedule config, the sampler's settings, the family's (P9)."""
    import diffusers

    choice = sampler_choice(name)
    cls = getattr(diffusers, choice.class_name)
    accepted = set(inspect.signature(cls.__init__).parameters)
    family = {
        "prediction_type": "v_prediction" if schedule.v_prediction else "epsilon",
        "timestep_spacing": schedule.timestep_spacing,
        "rescale_betas_zero_snr": schedule.zero_terminal_snr,
    }
    if schedule.zero_terminal_snr and "rescale_betas_zero_snr" not in accepted:
        usable = [n for n, c in SAMPLERS.items() if _accepts_zero_snr(c)]
        raise GafuError(
            f"sampler {name!r} cannot sample a zero-terminal-SNR model (P9): diffusers' {choice.class_name} "
            "has no rescaled betas",
            hint=f"use one of {', '.join(usable)}",
        )
    config = {k: v for k, v in model_config.items() if not k.startswith("_")}
    config.update({k: v for k, v in {**family, **choice.settings}.items() if k in accepted})
    return cls.from_config({k: v for k, v in config.items() if k in accepted})


def _accepts_zero_snr(choice: SamplerChoice) -> bool:
    import diffusers

    return (
        "rescale_betas_zero_snr"
        in inspect.signature(getattr(diffusers, choice.class_name).__init__).parameters
    )
