"""sd-scripts options → `gafu.toml` values, and the options gafu does not use, each with why.

Only what the kohya files set is mapped: an option they leave out keeps the recipe's value
(sd-scripts' own defaults are often off where the recipe is on: no multires noise, keep_tokens
0). A value gafu cannot train with is not imported; it is listed with the reason, never dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from gafu import recipe
from gafu.config import toml_value
from gafu.kohya.export import OPTIMIZER_TYPES, SAVE_PRECISIONS
from gafu.sample.schedulers import ALIASES, SAMPLERS

LOKR_ARGS = ("conv_dim", "conv_alpha", "factor", "preset")  # network_args gafu maps (P6)
# Options whose values gafu's own behaviour already has; any other value is listed as unused.
SAME_AS_GAFU = {
    "cache_latents": (True, "gafu always caches latents"),
    "cache_latents_to_disk": (True, "gafu always caches latents on disk (.gafu/cache)"),
    "sdpa": (True, "gafu always uses PyTorch's SDPA attention"),
    "no_half_vae": (True, "gafu's VAE always runs in fp32"),
    "bucket_reso_steps": (recipe.BUCKET_STEP, f"gafu's buckets are multiples of {recipe.BUCKET_STEP} (D4b)"),
    "bucket_no_upscale": (True, "gafu's buckets never upscale (D4)"),
    "prior_loss_weight": (recipe.PRIOR_LOSS_WEIGHT, "the recipe weighs regularization like target (P3)"),
    "save_model_as": ("safetensors", "gafu saves .safetensors"),
    "max_token_length": (75, "gafu reads CLIP's 75 tokens, as kohya's default"),
    "caption_separator": (",", "gafu's tags are separated by commas"),
    "lr_warmup_steps": (0, "the recipe has no warmup (P5)"),
}
# Why gafu does not use an option (the default reason is "gafu does not use it").
REASONS = {
    "xformers": "gafu uses PyTorch's SDPA attention",
    "mem_eff_attn": "gafu uses PyTorch's SDPA attention",
    "clip_skip": "SDXL training ignores clip_skip (sd-scripts does too)",
    "min_bucket_reso": "gafu sets buckets from the prepared pictures (D4)",
    "max_bucket_reso": "gafu sets buckets from the prepared pictures (D4)",
    "output_dir": "gafu writes into the project's output/",
    "logging_dir": "gafu logs into output/logs",
    "max_train_steps": "gafu trains by epochs (P1)",
    "flip_aug": "flipped pictures are not the artist's style; gafu does not flip",
    "optimizer_args": "gafu's AdamW uses its own defaults",
    "full_bf16": "gafu trains with mixed precision",
    "full_fp16": "gafu trains with mixed precision",
    "save_every_n_steps": "gafu saves every N epochs (P1)",
    "save_last_n_epochs": "gafu keeps every saved LoKr",
    "sample_every_n_steps": "gafu samples every N epochs (P10)",
    "network_dropout": "the recipe uses no dropout (P7)",
    "v_pred_like_loss": "gafu scales v-pred loss like noise prediction instead (P9)",
}
SAMPLE_SAMPLER_NAMES = {**{name: name for name in SAMPLERS}, **ALIASES}


@dataclass
class Unused:
    """A kohya option gafu does not use, and why."""

    option: str
    value: Any
    reason: str
    where: str = ""  # where a dataset TOML sets it (`datasets[0].subsets[1]`); "" = the training config

    def line(self) -> str:
        """`name = value` (prefixed with its place in the dataset TOML)."""
        prefix = f"{self.where}." if self.where else ""
        return f"{prefix}{self.option} = {toml_text(self.value)}"


@dataclass
class Mapped:
    """What the options say in gafu.toml terms."""

    values: dict[str, Any] = field(default_factory=dict)  # "train.unet_lr" → value
    origin: dict[str, str] = field(default_factory=dict)  # "train.unet_lr" → "unet_lr"
    unused: list[Unused] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    used: set[str] = field(default_factory=set)  # options handled (mapped, or listed with a reason)

    def set(self, key: str, value: Any, *options: str) -> None:
        """Set gafu.toml's `key` from kohya's `options`."""
        self.values[key] = value
        self.origin[key] = ", ".join(options)

    def skip(self, option: str, value: Any, reason: str) -> None:
        """List `option` as not used."""
        self.used.add(option)
        self.unused.append(Unused(option, value, reason))


def toml_text(value: Any) -> str:
    """A value as TOML writes it (for `name = value` lines)."""
    try:
        return toml_value(value)
    except TypeError:
        return repr(value)


class Options:
    """The options, read once each: `take` marks an option as handled."""

    def __init__(self, options: dict[str, Any], mapped: Mapped):
        self.options, self.mapped = options, mapped

    def take(self, name: str) -> Any:
        """The option's value (None when unset), marked as handled."""
        self.mapped.used.add(name)
        value = self.options.get(name)
        return None if value in ("", []) else value

    def whole(self, name: str, key: str, *, minimum: int = 0) -> None:
        """Map a whole-number option to gafu.toml's `key`."""
        value = self.take(name)
        if value is None:
            return
        number = _whole(value)
        if number is None or number < minimum:
            self.mapped.skip(name, value, f"not a whole number ≥ {minimum}")
        else:
            self.mapped.set(key, number, name)

    def number(self, name: str, key: str) -> None:
        """Map a number option to gafu.toml's `key`."""
        value = self.take(name)
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.mapped.skip(name, value, "not a number")
        else:
            self.mapped.set(key, float(value), name)

    def flag(self, name: str, key: str) -> None:
        """Map a true/false option to gafu.toml's `key`."""
        value = self.take(name)
        if value is not None:
            self.mapped.set(key, _flag(value), name)


def map_options(options: dict[str, Any], *, family_side: int) -> Mapped:
    """The gafu.toml values the options set, and the options gafu does not use."""
    mapped = Mapped(used={"dataset_config", "train_data_dir", "reg_data_dir"})  # read by gafu.kohya.files
    read = Options(options, mapped)
    for part in (_network, _optimizer, _epochs_and_batch, _captions, _noise_and_loss, _saving, _sampling):
        part(read, mapped)
    _resolution(read, mapped, family_side)
    _buckets(read, mapped)
    _same_as_gafu(read, mapped)
    for name, value in options.items():
        if name not in mapped.used and _is_set(value):
            mapped.unused.append(Unused(name, value, REASONS.get(name, "gafu does not use it")))
    return mapped


# --- network (P6) ------------------------------------------------------------------------------


def _network(read: Options, mapped: Mapped) -> None:
    if _flag(read.take("network_train_unet_only")):  # P4: the text encoders stay frozen
        mapped.set("train.train_text_encoder", False, "network_train_unet_only")
    module = read.take("network_module")
    args = network_args(read.take("network_args"))
    algo = str(args.pop("algo", "lora")).lower()
    if module is None and not args:
        read.whole("network_dim", "network.dim", minimum=1)
        return
    if module != "lycoris.kohya" or algo != "lokr":
        kind = "LoRA" if module in (None, "networks.lora") else f"{module} ({algo})"
        mapped.warnings.append(
            f"a {kind} config: the recipe trains LoKr (P6), so its network settings are not imported "
            f"and gafu uses the recipe's LoKr (dim {recipe.LINEAR_DIM}, conv dim {recipe.CONV_DIM}, "
            f"factor {recipe.FACTOR}); LoRA learning rates are usually far below LoKr's (P4)"
        )
        for name in ("network_dim", "network_alpha"):
            if read.take(name) is not None:
                mapped.skip(name, read.options[name], f"a {kind} setting (the recipe trains LoKr)")
        mapped.skip("network_module", module or "networks.lora", "the recipe trains LoKr (P6)")
        for key, value in args.items():
            mapped.unused.append(Unused(f"network_args {key}", value, f"a {kind} setting"))
        return
    read.whole("network_dim", "network.dim", minimum=1)
    alpha, dim = read.take("network_alpha"), mapped.values.get("network.dim", recipe.LINEAR_DIM)
    if alpha is not None and float(alpha) != dim:
        mapped.set("network.alpha", float(alpha), "network_alpha")
    for key in LOKR_ARGS:
        if key in args:
            _lokr_arg(mapped, key, args.pop(key))
    for key, value in args.items():
        if _is_set(value) and str(value).lower() not in ("false", "0", "0.0", "none"):
            mapped.unused.append(Unused(f"network_args {key}", value, "a LyCORIS option gafu does not use"))


def _lokr_arg(mapped: Mapped, key: str, value: Any) -> None:
    option = f"network_args {key}"
    if key == "preset":
        mapped.set("network.preset", str(value), option)
        return
    number = _whole(value) if key != "conv_alpha" else _real(value)
    if number is None:
        mapped.unused.append(Unused(option, value, "not a number"))
        return
    if key == "conv_alpha":
        conv_dim = mapped.values.get("network.conv_dim", recipe.CONV_DIM)
        if number != conv_dim:
            mapped.set("network.conv_alpha", float(number), option)
        return
    mapped.set(f"network.{key}", number, option)


def network_args(value: Any) -> dict[str, Any]:
    """`["algo=lokr", "factor=8"]` → `{"algo": "lokr", "factor": "8"}` (a string is split on spaces)."""
    items = value.split() if isinstance(value, str) else list(value or [])
    pairs = (str(item).split("=", 1) for item in items)
    return {pair[0].strip(): (pair[1].strip() if len(pair) > 1 else True) for pair in pairs}


# --- optimizer and schedule (P4, P5) -----------------------------------------------------------


def _optimizer(read: Options, mapped: Mapped) -> None:
    kind = read.take("optimizer_type")
    if read.take("use_8bit_adam") and not kind:
        kind = "AdamW8bit"
    names = {value.lower(): key for key, value in OPTIMIZER_TYPES.items()}
    if kind and str(kind).lower() not in names:
        mapped.skip("optimizer_type", kind, "the recipe uses AdamW or 8-bit AdamW (P5)")
        mapped.warnings.append(
            f"optimizer {kind}: the recipe uses AdamW (P5), so its learning rates are not imported either"
        )
        for name in ("learning_rate", "unet_lr", "text_encoder_lr"):
            if read.take(name) is not None:
                mapped.skip(name, read.options[name], f"a learning rate for {kind}, not for AdamW")
        _schedule(read, mapped)
        return
    if kind:
        mapped.set("train.optimizer", names[str(kind).lower()], "optimizer_type")
    _learning_rates(read, mapped)
    _schedule(read, mapped)


def _learning_rates(read: Options, mapped: Mapped) -> None:
    """sd-scripts: the U-Net and the text encoders each use learning_rate unless given their own."""
    base = read.take("learning_rate")
    unet = _first(read.take("unet_lr")) or None  # 0 is unset, as kohya_ss saves it
    text = read.take("text_encoder_lr")
    texts = [float(v) for v in (text if isinstance(text, list) else [text] if text is not None else [])]
    if len(set(texts)) > 1:
        mapped.notes.append(
            f"text_encoder_lr = {texts}: gafu trains both text encoders at one rate, the first"
        )
    unet = unet if unet is not None else base
    te = texts[0] if texts else base
    if unet is not None:
        mapped.set(
            "train.unet_lr", float(unet), "unet_lr" if read.options.get("unet_lr") else "learning_rate"
        )
    if te is None or not unet or mapped.values.get("train.train_text_encoder") is False:
        return
    te_option = "text_encoder_lr" if texts else "learning_rate"
    if te == 0:
        mapped.set("train.train_text_encoder", False, te_option)
    else:
        mapped.set("train.text_encoder_lr_ratio", float(f"{te / unet:.12g}"), te_option, "unet_lr")


def _schedule(read: Options, mapped: Mapped) -> None:
    scheduler = read.take("lr_scheduler")
    cycles = _whole(read.take("lr_scheduler_num_cycles"))
    epochs = _whole(read.options.get("max_train_epochs")) or recipe.EPOCHS
    if scheduler is None:
        return
    if scheduler == "cosine":  # one half-cosine over the run: cosine with restarts in one cycle
        mapped.set("train.restart_every_epochs", epochs, "lr_scheduler")
        mapped.notes.append(
            f'lr_scheduler = "cosine" is cosine with restarts in one cycle of {epochs} epochs'
        )
        return
    if scheduler != recipe.SCHEDULER:
        mapped.skip("lr_scheduler", scheduler, f"the recipe uses {recipe.SCHEDULER} (P5)")
        mapped.warnings.append(f"lr_scheduler {scheduler}: the recipe uses {recipe.SCHEDULER} (P5)")
        return
    cycles = cycles or 1  # sd-scripts' default
    period = max(1, round(epochs / cycles))
    if max(1, round(epochs / period)) != cycles:  # gafu counts cycles as epochs / period
        mapped.skip("lr_scheduler_num_cycles", cycles, f"{epochs} epochs do not split into {cycles} cycles")
        return
    mapped.set("train.restart_every_epochs", period, "lr_scheduler_num_cycles", "max_train_epochs")


# --- epochs, batch, precision (P1, P2) ---------------------------------------------------------


def _epochs_and_batch(read: Options, mapped: Mapped) -> None:
    read.whole("max_train_epochs", "train.epochs", minimum=1)
    steps = read.take("max_train_steps")
    if steps is not None and "train.epochs" not in mapped.values:
        mapped.skip("max_train_steps", steps, REASONS["max_train_steps"])
        mapped.warnings.append(
            f"max_train_steps = {steps} without max_train_epochs: gafu trains by epochs (P1: {recipe.EPOCHS})"
        )
    batch = "batch_size" if read.options.get("batch_size") is not None else "train_batch_size"
    read.take("train_batch_size")
    read.whole(batch, "train.batch_size", minimum=1)
    read.whole("gradient_accumulation_steps", "train.gradient_accumulation", minimum=1)
    precision = read.take("mixed_precision")
    if precision is not None:
        if precision in ("no", "fp16", "bf16"):
            mapped.set("train.mixed_precision", precision, "mixed_precision")
        else:
            mapped.skip("mixed_precision", precision, "gafu trains in bf16, fp16 or fp32 (no)")
    read.flag("gradient_checkpointing", "train.gradient_checkpointing")
    read.whole("seed", "train.seed")
    read.number("max_grad_norm", "train.max_grad_norm")


# --- captions (D5, P7) -------------------------------------------------------------------------


def _captions(read: Options, mapped: Mapped) -> None:
    read.whole("keep_tokens", "train.keep_tokens")
    read.flag("shuffle_caption", "train.shuffle_caption")
    read.number("caption_dropout_rate", "train.caption_dropout_rate")
    read.number("caption_tag_dropout_rate", "train.caption_tag_dropout_rate")
    read.whole("caption_dropout_every_n_epochs", "train.caption_dropout_every_n_epochs")
    extension = read.take("caption_extension")
    if extension is not None:
        mapped.set("prep.caption_extensions", [str(extension)], "caption_extension")


# --- noise, v-prediction (P8, P9) --------------------------------------------------------------


def _noise_and_loss(read: Options, mapped: Mapped) -> None:
    read.whole("multires_noise_iterations", "train.multires_noise_iterations")
    read.number("multires_noise_discount", "train.multires_noise_discount")
    read.number("noise_offset", "train.noise_offset")
    read.number("min_snr_gamma", "train.min_snr_gamma")
    for name in ("v_parameterization", "zero_terminal_snr", "scale_v_pred_loss_like_noise_pred"):
        read.flag(name, f"train.{name}")  # the importer keeps only what differs from the family


def _resolution(read: Options, mapped: Mapped, family_side: int) -> None:
    value = read.take("resolution")
    if value is None:
        return
    sides = _sides(value)
    if sides is None:
        mapped.skip("resolution", value, "not a size (`1024` or `1024,1024`)")
        return
    width, height = sides
    side = (
        width
        if width == height
        else round(math.sqrt(width * height) / recipe.BUCKET_STEP) * recipe.BUCKET_STEP
    )
    if width != height:
        mapped.notes.append(
            f"resolution {width}×{height}: gafu trains a square area, {side}² (the same area)"
        )
    if side != family_side:
        mapped.set("train.resolution", side, "resolution")


def _buckets(read: Options, mapped: Mapped) -> None:
    """Bucketed training keeps each picture's aspect ratio (D4b); without buckets, pad to squares (D4a)."""
    enable = read.take("enable_bucket")
    if enable is not None:
        mapped.set("prep.mode", "bucket" if _flag(enable) else "pad", "enable_bucket")


# --- saving and sampling (P1, P10) -------------------------------------------------------------


def _saving(read: Options, mapped: Mapped) -> None:
    read.whole("save_every_n_epochs", "train.save_every_epochs", minimum=1)
    precision = read.take("save_precision")
    if precision is not None:
        dtypes = {value: key for key, value in SAVE_PRECISIONS.items()}
        if precision in dtypes:
            mapped.set("train.save_dtype", dtypes[precision], "save_precision")
        else:
            mapped.skip("save_precision", precision, "gafu saves fp16, bf16 or float")
    state, last = read.take("save_state"), _whole(read.take("save_last_n_epochs_state"))
    if state is not None and not _flag(state):
        mapped.set("train.keep_states", 0, "save_state")
    elif state is not None and last:
        mapped.set("train.keep_states", last, "save_state", "save_last_n_epochs_state")
    elif state is not None:
        mapped.notes.append(
            f"save_state without save_last_n_epochs_state: gafu keeps the last {recipe.KEEP_STATES}"
        )
    name = read.take("output_name")
    if name is not None:
        mapped.set("train.output_name", str(name), "output_name")
    for option, key in (("pretrained_model_name_or_path", "model.path"), ("vae", "model.vae")):
        value = read.take(option)
        if value is not None:
            mapped.set(key, str(value), option)


def _sampling(read: Options, mapped: Mapped) -> None:
    read.whole("sample_every_n_epochs", "train.sample_every_epochs")
    for name in ("sample_prompts", "sample_prompts_text"):  # a file, or the GUI's text: read by the importer
        value = read.take(name)
        if value is not None:
            mapped.set("sample.prompts", str(value), name)
    sampler = read.take("sample_sampler")
    if sampler is not None:
        name = SAMPLE_SAMPLER_NAMES.get(str(sampler).lower())
        if name is None:
            mapped.skip("sample_sampler", sampler, "no gafu sampler of that name")
        else:
            mapped.set("sample.sampler", name, "sample_sampler")


def _same_as_gafu(read: Options, mapped: Mapped) -> None:
    for name, (value, reason) in SAME_AS_GAFU.items():
        given = read.options.get(name)
        if name in mapped.used or given is None:
            continue
        mapped.used.add(name)
        if given != value:
            mapped.unused.append(Unused(name, given, reason))


# --- values ------------------------------------------------------------------------------------


def _is_set(value: Any) -> bool:
    """An option that says something: not empty, off or zero (how kohya_ss saves unset fields)."""
    return value not in (None, "", [], False, 0)


def _whole(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = _real(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, int) else None


def _real(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else value


def _sides(value: Any) -> tuple[int, int] | None:
    """sd-scripts' resolution: `1024`, `"1024"`, `"1024,1024"` or `[1024, 1024]`."""
    parts = value if isinstance(value, list) else str(value).split(",")
    numbers = [_whole(p.strip() if isinstance(p, str) else p) for p in parts]
    if not 1 <= len(numbers) <= 2 or any(n is None or n <= 0 for n in numbers):
        return None
    return (numbers[0], numbers[-1])  # type: ignore[return-value]
