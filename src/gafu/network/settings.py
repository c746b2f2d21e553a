"""The LoKr arguments the plan resolves and the network is built with (P6)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from gafu import recipe


@dataclass(frozen=True)
class LokrSettings:
    """LyCORIS LoKr arguments (as kohya's `network_args` would carry them)."""

    dim: int = recipe.LINEAR_DIM  # P6
    conv_dim: int = recipe.CONV_DIM  # P6
    factor: int = recipe.FACTOR  # P6
    alpha: float = float(recipe.LINEAR_DIM)  # = dim (see recipe.ALPHA_EQUALS_DIM)
    conv_alpha: float = float(recipe.CONV_DIM)  # = conv_dim
    preset: str = recipe.LYCORIS_PRESET
    train_text_encoder: bool = True  # P4

    def to_dict(self) -> dict:
        """Plain data."""
        return asdict(self)
