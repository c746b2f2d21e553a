"""Checks on the values a plan is resolved from: errors stop the plan, warnings are printed with it."""

from __future__ import annotations

from collections.abc import Iterable

from gafu import recipe
from gafu.config import NetworkSection, TrainSection
from gafu.errors import ConfigError
from gafu.families import ModelFamily
from gafu.plan.network import factor_problem


def check_train(train: TrainSection, source: str, native_side: int = recipe.PAD_SIDE_RANGE[0]) -> list[str]:
    """Raise a ConfigError for an unusable `[train]` value; return warnings for off-recipe ones.

    `native_side`: the model's own side; a resolution below it (or below SDXL's) is warned about.
    """
    _require(train.epochs >= 1, source, f"[train] epochs = {train.epochs}: train at least 1 epoch (P1: 200)")
    _require(train.unet_lr > 0, source, f"[train] unet_lr = {train.unet_lr:g}: a learning rate must be > 0")
    _require(
        train.text_encoder_lr_ratio > 0 or not train.train_text_encoder,
        source,
        f"[train] text_encoder_lr_ratio = {train.text_encoder_lr_ratio:g}: the text-encoder learning "
        "rate must be > 0 (set train_text_encoder = false to freeze them)",
    )
    for name in ("restart_every_epochs", "save_every_epochs"):
        value = getattr(train, name)
        _require(value >= 1, source, f"[train] {name} = {value}: must be at least 1 epoch")
    for name in ("batch_size", "gradient_accumulation", "keep_states", "keep_tokens", "sample_every_epochs"):
        value = getattr(train, name)
        _require(value >= 0, source, f"[train] {name} = {value}: must not be negative")
    _require(train.vram_gb >= 0, source, f"[train] vram_gb = {train.vram_gb:g}: must not be negative")
    for name in ("caption_dropout_rate", "caption_tag_dropout_rate", "caption_dropout_every_n_epochs"):
        value = getattr(train, name)
        _require(
            value == 0,
            source,
            f"[train] {name} = {value:g}: caption and tag dropout must stay off (P7) — a dropped "
            "caption or trigger lets the style leak into the other tags instead of the trigger",
        )
    _require(
        train.multires_noise_iterations >= 0 and 0 <= train.multires_noise_discount <= 1,
        source,
        "[train] multires_noise_iterations must be ≥ 0 and multires_noise_discount between 0 and 1 (P8)",
    )
    _require(
        train.resolution == 0
        or (train.resolution >= recipe.MIN_TRAINING_SIDE and train.resolution % recipe.BUCKET_STEP == 0),
        source,
        f"[train] resolution = {train.resolution}: use 0 (the family's) or a multiple of "
        f"{recipe.BUCKET_STEP} of at least {recipe.MIN_TRAINING_SIDE} (D4)",
    )
    return list(_train_warnings(train, native_side))


def _train_warnings(train: TrainSection, native_side: int) -> Iterable[str]:
    low, high = recipe.UNET_LR_RANGE
    if not low <= train.unet_lr <= high:
        yield f"U-Net learning rate {train.unet_lr:g} is outside the recipe's range {low:g}–{high:g} (P4)"
    if train.text_encoder_lr_ratio > 1:
        yield (
            f"text-encoder learning rate is {train.text_encoder_lr_ratio:g} × the U-Net's; the recipe "
            "uses one half or one tenth (P4)"
        )
    if train.keep_tokens != recipe.KEEP_TOKENS:
        yield f"keep_tokens = {train.keep_tokens}: the recipe keeps exactly the trigger first (P7: 1)"
    if not train.shuffle_caption:
        yield "shuffle_caption is off: the recipe shuffles tags behind the trigger (P7)"
    if 0 < train.resolution < min(native_side, recipe.PAD_SIDE_RANGE[0]):
        yield (
            f"[train] resolution = {train.resolution} is below the model's {native_side}: "
            "SDXL-family models trained this small make blurry, broken pictures (D4); 0 = the family's side"
        )
    if train.restart_every_epochs > train.epochs:
        yield (
            f"restart_every_epochs {train.restart_every_epochs} > epochs {train.epochs}: "
            "one cosine cycle, no restart"
        )
    if train.save_every_epochs > train.epochs:
        yield (
            f"save_every_epochs {train.save_every_epochs} > epochs {train.epochs}: "
            "only the final LoKr is saved (P1)"
        )
    if train.mixed_precision == "no":
        yield 'mixed_precision = "no" trains in fp32: twice the weight memory and much slower'


def check_network(network: NetworkSection, widths: Iterable[int], source: str) -> list[str]:
    """Raise a ConfigError for unusable `[network]` values; return warnings (P6)."""
    _require(network.dim >= 1, source, f"[network] dim = {network.dim}: must be at least 1 (P6: 128)")
    _require(network.conv_dim >= 0, source, f"[network] conv_dim = {network.conv_dim}: must not be negative")
    for name in ("alpha", "conv_alpha"):
        value = getattr(network, name)
        _require(
            value is None or value > 0, source, f"[network] {name} = {value}: must be > 0 (or unset = dim)"
        )
    problem = factor_problem(network.factor, widths)
    _require(problem is None, source, f"[network] {problem}; use 4 or 8 (P6) or another power of two ≤ 64")
    warnings = []
    if network.conv_dim > recipe.CONV_DIM_MAX:
        warnings.append(
            f"conv_dim {network.conv_dim} is above {recipe.CONV_DIM_MAX}: the LyCORIS author advises "
            f"no more than {recipe.CONV_DIM_MAX} for convolutions (P6); it mostly adds file size"
        )
    return warnings


def check_prediction(
    family: ModelFamily,
    *,
    v_parameterization: bool,
    zero_terminal_snr: bool,
    scale_v_pred_loss: bool,
    source: str,
) -> list[str]:
    """Raise for P9 flags that contradict the family; return warnings for off-recipe ones."""
    if not family.is_v_prediction:
        for name, on in (
            ("v_parameterization", v_parameterization),
            ("zero_terminal_snr", zero_terminal_snr),
        ):
            _require(
                not on,
                source,
                f"[train] {name} = true, but {family.title} is an epsilon-prediction model (P9: "
                'v-prediction families only); set [project] family = "noob-vpred" for a v-prediction model',
            )
    _require(
        v_parameterization or not family.is_v_prediction,
        source,
        f"[train] v_parameterization = false, but {family.title} predicts v (P9): training it on "
        "noise prediction breaks the model",
    )
    _require(
        v_parameterization or not scale_v_pred_loss,
        source,
        "[train] scale_v_pred_loss_like_noise_pred = true needs v_parameterization (P9)",
    )
    warnings = []
    if family.is_v_prediction and not zero_terminal_snr:
        warnings.append(f"zero_terminal_snr is off for {family.title}, which was trained with it (P9)")
    if family.is_v_prediction and not scale_v_pred_loss:
        warnings.append("v-pred loss is not scaled like noise-prediction loss (P9)")
    return warnings


def _require(condition: bool, source: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{source}: {message}")
