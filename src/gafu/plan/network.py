"""The plan's side of the LoKr network (P6): its settings, its summary, and what LyCORIS does with them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from gafu.config import NetworkSection
from gafu.network.settings import LokrSettings
from gafu.network.summary import NetworkSummary, describe_network

NetworkDescriber = Callable[[LokrSettings], "NetworkSummary | None"]

# Input and output widths of every layer LyCORIS's "full" preset adapts in SDXL as kohya's
# sd-scripts loads it (ResnetBlock2D, Transformer2DModel, Downsample2D, Upsample2D; CLIP
# attention and MLP). The factor is checked against these before any network is built; the
# tests derive the same sets from the real architectures on the meta device.
SDXL_UNET_WIDTHS = frozenset({320, 640, 960, 1280, 1920, 2560, 2048, 5120, 10240})
SDXL_TEXT_ENCODER_WIDTHS = frozenset({768, 3072, 1280, 5120})


def lokr_settings(network: NetworkSection, *, train_text_encoder: bool) -> LokrSettings:
    """The LyCORIS arguments for `[network]`: an unset alpha is the dim (scale 1)."""
    return LokrSettings(
        dim=network.dim,
        conv_dim=network.conv_dim,
        factor=network.factor,
        alpha=float(network.dim if network.alpha is None else network.alpha),
        conv_alpha=float(network.conv_dim if network.conv_alpha is None else network.conv_alpha),
        preset=network.preset,
        train_text_encoder=train_text_encoder,
    )


def describe_lokr_network(settings: LokrSettings, config_dir: Path | None = None) -> NetworkSummary:
    """The network summary for `settings` on the architecture in `config_dir` (default SDXL).

    This is the one place the plan calls the network builder (`gafu.network.summary`): the
    network is built on the meta device, so no weights are read.
    """
    return describe_network(settings, config_dir=config_dir)


def layer_widths(*, train_text_encoder: bool) -> frozenset[int]:
    """In/out widths of the SDXL layers the LoKr adapts (the text encoders' only when they train)."""
    return SDXL_UNET_WIDTHS | (SDXL_TEXT_ENCODER_WIDTHS if train_text_encoder else frozenset())


def factor_problem(factor: int, widths: Iterable[int]) -> str | None:
    """Why `factor` cannot be used with these layer widths, or None.

    LyCORIS's `factorization(dimension, factor)` splits each width into factor × width/factor
    only when the factor divides it; otherwise it silently picks another divisor (320 with
    factor 6 becomes 5 × 64), so the network is not the one asked for. -1 is LyCORIS's own
    choice (the most balanced split).
    """
    if factor == -1:
        return None
    if factor < 1:
        return f"factor must be a whole number ≥ 1 (or -1 for LyCORIS's balanced split), not {factor}"
    misfits = sorted(w for w in set(widths) if w % factor)
    if not misfits:
        return None
    shown = ", ".join(str(w) for w in misfits[:5]) + (" …" if len(misfits) > 5 else "")
    return (
        f"factor {factor} does not divide the widths of SDXL layers it would adapt ({shown}); "
        "LyCORIS would silently split those layers another way"
    )


def alpha_note(settings: LokrSettings, summary: NetworkSummary | None) -> str:
    """What the alpha does: LyCORIS forces scale 1 on modules stored as full matrices."""
    if summary is None:
        where = "on every module stored as a full matrix (most SDXL layers at dim 128, factor 8)"
    else:
        full = sum(m.full_matrix for m in summary.modules)
        where = f"on the {full} of {len(summary.modules)} modules stored as full matrices"
    return (
        f"alpha {settings.alpha:g} with dim {settings.dim}: LyCORIS ignores alpha and uses scale 1 {where}; "
        f"the low-rank modules train at alpha/dim = {settings.alpha / settings.dim:g}"
    )
