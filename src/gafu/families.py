"""SDXL-family base models as data (DESIGN: "adding a family is adding a record, not a branch")."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from gafu.errors import ConfigError


@dataclass(frozen=True)
class SamplerPreset:
    """A family's recommended sampling settings (from its model card)."""

    scheduler: str  # a name in gafu.sample's scheduler table: euler_a, euler, dpmpp_2m …
    steps: int
    cfg: float
    guidance_rescale: float = 0.0
    timestep_spacing: str = "leading"


@dataclass(frozen=True)
class ModelFamily:
    """What gafu needs to know about one SDXL-family base model."""

    name: str
    title: str
    prediction_type: str  # "epsilon" or "v_prediction" (P9)
    zero_terminal_snr: bool  # P9
    training_side: int  # D4: the side of the square training area
    sampler: SamplerPreset
    base_model_version: str = "sdxl_base_v1-0"  # AUTOMATIC1111 lists a LoRA as SDXL by this prefix
    modelspec_architecture: str = "stable-diffusion-xl-v1-base"

    @property
    def is_v_prediction(self) -> bool:
        """True for v-prediction families (P9)."""
        return self.prediction_type == "v_prediction"

    def to_dict(self) -> dict:
        """Plain data, for plans and reports."""
        return asdict(self)


FAMILIES: dict[str, ModelFamily] = {
    family.name: family
    for family in (
        ModelFamily(
            name="sdxl",
            title="SDXL 1.0",
            prediction_type="epsilon",
            zero_terminal_snr=False,
            training_side=1024,  # D4: SDXL's training size
            sampler=SamplerPreset("euler_a", steps=28, cfg=7.0),
        ),
        ModelFamily(
            name="illustrious",
            title="Illustrious-XL",
            prediction_type="epsilon",
            zero_terminal_snr=False,
            training_side=1536,  # D4: Illustrious' training size
            sampler=SamplerPreset("euler_a", steps=28, cfg=6.0),
        ),
        ModelFamily(
            name="noob-eps",
            title="NoobAI-XL (epsilon)",
            prediction_type="epsilon",
            zero_terminal_snr=False,
            # D4 leaves NoobAI between 1024 and 1536; its card recommends ~1024² areas.
            training_side=1024,
            sampler=SamplerPreset("euler_a", steps=28, cfg=5.0),
        ),
        ModelFamily(
            name="noob-vpred",
            title="NoobAI-XL (v-prediction)",
            prediction_type="v_prediction",  # P9
            zero_terminal_snr=True,  # P9
            training_side=1024,
            # v-pred with zero terminal SNR samples with trailing timesteps and CFG rescale.
            sampler=SamplerPreset(
                "euler", steps=32, cfg=4.5, guidance_rescale=0.7, timestep_spacing="trailing"
            ),
        ),
    )
}

DEFAULT_FAMILY = "illustrious"


def get_family(name: str) -> ModelFamily:
    """The family record for `name`, or a ConfigError listing the valid names."""
    try:
        return FAMILIES[name]
    except KeyError:
        valid = ", ".join(FAMILIES)
        raise ConfigError(f"unknown model family {name!r}", hint=f"use one of: {valid}") from None
