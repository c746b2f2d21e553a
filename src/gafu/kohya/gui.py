"""kohya_ss's saved JSON → sd-scripts options.

Most of the GUI's keys are sd-scripts' option names. The rest are translated here the way
kohya_ss builds its command line (`kohya_gui/lora_gui.py`): `LoRA_type` and the LyCORIS fields
become `network_module` and `network_args`, `epoch` is `max_train_epochs`, `max_resolution` is
`resolution`, `optimizer` is `optimizer_type`, `noise_offset_type` picks multires or plain
noise offset, `additional_parameters` are parsed as command-line options. Empty fields ("")
are unset, as the GUI treats them; numbers saved as text are numbers.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

# LyCORIS fields of the GUI that kohya_ss writes into network_args (for LyCORIS network types).
LYCORIS_FIELDS = (
    "conv_dim",
    "conv_alpha",
    "factor",
    "use_tucker",
    "use_cp",
    "use_scalar",
    "rank_dropout",
    "module_dropout",
    "decompose_both",
    "bypass_mode",
    "dora_wd",
    "train_norm",
    "rank_dropout_scale",
    "train_on_input",
    "constrain",
    "rescaled",
    "unit",
)
# LoRA types the GUI trains with sd-scripts' own modules (anything else "LyCORIS/<algo>" is lycoris.kohya).
KOHYA_NETWORKS = {
    "Standard": "networks.lora",
    "Kohya LoCon": "networks.lora",
    "Kohya DyLoRA": "networks.dylora",
    "LoRA-FA": "networks.lora_fa",
}
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def gui_options(data: dict[str, Any]) -> dict[str, Any]:
    """sd-scripts options for a kohya_ss JSON config (GUI-only fields translated)."""
    gui = {key: _value(value) for key, value in data.items()}
    options = {k: v for k, v in gui.items() if k not in LYCORIS_FIELDS and k != "LyCORIS_preset"}
    _network(gui, options)
    if options.get("max_train_epochs") in (None, 0) and "epoch" in options:
        options["max_train_epochs"] = options.pop("epoch")
    else:
        options.pop("epoch", None)
    _rename(options, "max_resolution", "resolution")
    _rename(options, "optimizer", "optimizer_type")
    if isinstance(options.get("optimizer_args"), str):
        options["optimizer_args"] = options["optimizer_args"].replace('"', "").split()
    if options.get("lr_scheduler_num_cycles") is None and options.get("max_train_epochs"):
        options["lr_scheduler_num_cycles"] = options["max_train_epochs"]  # the GUI's default: one per epoch
    _learning_rates(options)
    _attention(options)
    _sdxl(options)
    _noise(options)
    if isinstance(options.get("sample_prompts"), str):
        options["sample_prompts_text"] = options.pop("sample_prompts")  # the prompts, not a file
    extra = options.pop("additional_parameters", None)
    if extra:
        options.update(command_line_options(str(extra)))
    return {k: v for k, v in options.items() if v is not None}


def command_line_options(text: str) -> dict[str, Any]:
    """`--name value …` options as typed in the GUI's additional parameters (flags are True)."""
    options: dict[str, Any] = {}
    name = None
    for word in shlex.split(text):
        if word.startswith("--"):
            name = word[2:]
            options[name] = True
        elif name is not None:
            value = _value(word)
            current = options[name]
            options[name] = value if current is True else [*_as_list(current), value]
    return options


def _network(gui: dict[str, Any], options: dict[str, Any]) -> None:
    kind = options.pop("LoRA_type", None)
    if kind is None:
        return
    if kind in KOHYA_NETWORKS:
        options["network_module"] = KOHYA_NETWORKS[kind]
        if kind == "Kohya LoCon":
            options["network_args"] = [
                f"conv_dim={gui.get('conv_dim')}",
                f"conv_alpha={gui.get('conv_alpha')}",
            ]
        return
    algo = kind.split("/", 1)[-1].lower().replace(" ", "-")
    options["network_module"] = "lycoris.kohya"
    args = [f"algo={algo}"]
    if gui.get("LyCORIS_preset") is not None:
        args.append(f"preset={gui['LyCORIS_preset']}")
    args += [f"{name}={gui[name]}" for name in LYCORIS_FIELDS if gui.get(name) is not None]
    options["network_args"] = args


def _learning_rates(options: dict[str, Any]) -> None:
    """The GUI: a learning rate of 0 is unset; text-encoder rate 0 with a U-Net rate trains the U-Net only."""
    text, unet = options.get("text_encoder_lr"), options.get("unet_lr")
    if text == 0 and unet:
        options["network_train_unet_only"] = True
    for name in ("text_encoder_lr", "unet_lr"):
        if options.get(name) == 0:
            del options[name]


def _attention(options: dict[str, Any]) -> None:
    """The GUI's `xformers` field is a choice: "xformers", "sdpa" or "none" (a bool in older files)."""
    choice = options.pop("xformers", None)
    if choice in ("sdpa",):
        options["sdpa"] = True
    elif choice in ("xformers", True):
        options["xformers"] = True


def _sdxl(options: dict[str, Any]) -> None:
    """The GUI's SDXL fields: `sdxl` picks the script; the others are sd-scripts options behind it."""
    sdxl = options.get("sdxl")
    no_half_vae = options.pop("sdxl_no_half_vae", None)
    cache_te = options.pop("sdxl_cache_text_encoder_outputs", None)
    if sdxl:
        options.pop("sdxl")
        if no_half_vae:
            options["no_half_vae"] = True
        if cache_te:
            options["cache_text_encoder_outputs"] = True


def _noise(options: dict[str, Any]) -> None:
    """`noise_offset_type`: the GUI passes multires noise or the plain noise offset, not both."""
    kind = options.pop("noise_offset_type", None)
    if kind == "Multires":
        for name in ("noise_offset", "adaptive_noise_scale", "noise_offset_random_strength"):
            options.pop(name, None)
    elif kind == "Original":
        for name in ("multires_noise_iterations", "multires_noise_discount"):
            options.pop(name, None)


def _rename(options: dict[str, Any], old: str, new: str) -> None:
    if old in options:
        value = options.pop(old)
        options.setdefault(new, value)


def _value(value: Any) -> Any:
    """A GUI field as sd-scripts reads it: "" unset, numbers saved as text are numbers."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if _NUMBER.match(text):
            number = float(text)
            return (
                int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number
            )
    return value


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
