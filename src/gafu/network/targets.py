"""Which layers get a LoKr module, and the kohya/LyCORIS name each one is saved under.

kohya's sd-scripts trains SDXL on its own U-Net with the original SGM module names, and applies
LyCORIS's preset rules there (`lycoris.kohya.LycorisNetworkKohya`): every Linear and Conv layer
inside a module of a target class, plus modules whose *name* matches a target name. gafu runs
the diffusers U-Net, so it walks the diffusers modules under their SGM names and applies the same
rules to those names; the set it adapts is then the one kohya + LyCORIS adapts. (LyCORIS's
default preset also names `conv_in`, `conv_out` and `time_embedding.linear_1/2`: diffusers names
that SGM does not have, so neither kohya nor gafu adapts those layers on SDXL.)

Text encoders are named as in the transformers versions kohya uses (`text_model.encoder.…`).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from torch import nn

from gafu.errors import GafuError
from gafu.models.sgm import sgm_block, sgm_unet_path
from gafu.network.settings import LokrSettings

Component = Literal["unet", "te1", "te2"]
ModuleKind = Literal["linear", "conv1x1", "conv3x3"]

UNET_PREFIX = "lora_unet"
TEXT_ENCODER_PREFIXES = ("lora_te1", "lora_te2")  # SDXL: two text encoders, numbered from 1
# Where the diffusers U-Net's classes differ from kohya's SGM U-Net (sdxl_original_unet.py). The
# time and label embeddings are plain Sequentials there: LyCORIS's "TimestepEmbedding" target
# (meant for other models) must not take them.
_SGM_CLASS_NAMES = {"Attention": "CrossAttention", "TimestepEmbedding": "Sequential"}


@dataclass(frozen=True)
class Target:
    """One base-model layer and the name of the LoKr module on it."""

    name: str  # lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q
    component: Component
    path: str  # the layer's path in gafu's model (diffusers / transformers names)
    kohya_path: str  # its path in kohya's model (SGM names; `text_model.` for text encoders)
    module: nn.Module

    @property
    def kind(self) -> ModuleKind:
        """linear, conv1x1 or conv3x3 (any kernel larger than 1)."""
        return layer_kind(self.module)

    @property
    def block(self) -> str:
        """The U-Net block (`input_blocks.4`, `middle_block` …) or the text encoder (`te1`, `te2`)."""
        if self.component == "unet":
            return sgm_block(self.kohya_path)
        return self.component


@dataclass(frozen=True)
class Preset:
    """A LyCORIS preset: target classes and names for the U-Net and the text encoders."""

    enable_conv: bool
    unet_modules: tuple[str, ...]
    unet_names: tuple[str, ...]
    text_encoder_modules: tuple[str, ...]
    text_encoder_names: tuple[str, ...]
    exclude_names: tuple[str, ...] = ()
    use_fnmatch: bool = False

    def matches(self, pattern: str, name: str) -> bool:
        """LyCORIS's name matching: regular expression from the start, or shell pattern."""
        return fnmatch.fnmatch(name, pattern) if self.use_fnmatch else re.match(pattern, name) is not None


def resolve_preset(name: str) -> Preset:
    """A built-in LyCORIS preset by name (`full` …) or a LyCORIS preset `.toml` file."""
    from lycoris.config import PRESET

    raw = PRESET[name] if name in PRESET else _read_preset_file(Path(name), list(PRESET))
    if raw.get("module_algo_map") or raw.get("name_algo_map"):
        raise GafuError(
            f"LyCORIS preset {name!r} switches algorithms per module; gafu builds LoKr everywhere",
            hint="use a preset without module_algo_map/name_algo_map (the recipe uses 'full')",
        )
    full = PRESET["full"]  # keys a preset leaves out keep LyCORIS's defaults (those of 'full')
    merged = {**full, **raw}
    return Preset(
        enable_conv=bool(merged["enable_conv"]),
        unet_modules=tuple(merged["unet_target_module"]),
        unet_names=tuple(merged["unet_target_name"]),
        text_encoder_modules=tuple(merged["text_encoder_target_module"]),
        text_encoder_names=tuple(merged["text_encoder_target_name"]),
        exclude_names=tuple(merged.get("exclude_name", ())),
        use_fnmatch=bool(merged.get("use_fnmatch", False)),
    )


def _read_preset_file(path: Path, builtin: list[str]) -> dict:
    from lycoris.utils.preset import read_preset

    if path.suffix.lower() != ".toml" or not path.is_file():
        raise GafuError(
            f"unknown LyCORIS preset {str(path)!r}",
            hint=f"use one of: {', '.join(builtin)}, or the path of a LyCORIS preset .toml file",
        )
    raw = read_preset(str(path))
    if raw is None:
        raise GafuError(f"{path} is not a valid LyCORIS preset", path=path, hint="fix the file")
    return raw


def layer_kind(module: nn.Module) -> ModuleKind:
    """linear, conv1x1 or conv3x3 (any convolution with a kernel larger than 1)."""
    if isinstance(module, nn.Conv2d):
        return "conv1x1" if module.kernel_size[0] == 1 else "conv3x3"
    return "linear"


def adaptable(module: nn.Module) -> bool:
    """A layer LyCORIS can put a module on (Linear or Conv2d)."""
    return isinstance(module, nn.Linear | nn.Conv2d)


# --- kohya names ----------------------------------------------------------------------------------
def kohya_paths(component: Component, root: nn.Module) -> Iterator[tuple[str, str, nn.Module]]:
    """`(gafu path, kohya path, module)` for every module of a component that kohya's model also has."""
    unet_config = root.config if component == "unet" else None
    # transformers ≥ 5.6 flattened CLIPTextModel; kohya's (4.x) names start with `text_model.`.
    flattened = component != "unet" and not hasattr(root, "text_model")
    for path, module in root.named_modules():
        if component == "unet":
            kohya = sgm_unet_path(path, unet_config)
        else:
            kohya = f"text_model.{path}" if flattened and path else path
        if kohya is not None:
            yield path, kohya, module


def lora_name(component: Component, kohya_path: str) -> str:
    """The kohya/LyCORIS module name: prefix + path with dots as underscores."""
    prefix = UNET_PREFIX if component == "unet" else TEXT_ENCODER_PREFIXES[component == "te2"]
    return f"{prefix}_{kohya_path}".replace(".", "_")


def named_layers(unet: nn.Module, text_encoders: tuple[nn.Module, nn.Module]) -> dict[str, Target]:
    """Every adaptable layer of the model under its kohya name (what a LoKr file may refer to)."""
    layers = {}
    for component, root in _components(unet, text_encoders):
        for path, kohya, module in kohya_paths(component, root):
            if adaptable(module):
                name = lora_name(component, kohya)
                layers[name] = Target(name, component, path, kohya, module)
    return layers


def _components(unet, text_encoders) -> list[tuple[Component, nn.Module]]:
    parts: list[tuple[Component, nn.Module]] = [("unet", unet)] if unet is not None else []
    if text_encoders:
        parts = [("te1", text_encoders[0]), ("te2", text_encoders[1]), *parts]  # kohya: TE modules first
    return parts


# --- selection ------------------------------------------------------------------------------------
def select_targets(
    unet: nn.Module, text_encoders: tuple[nn.Module, nn.Module] | None, settings: LokrSettings
) -> list[Target]:
    """The layers kohya + LyCORIS would adapt with these settings, in LyCORIS's order.

    Text encoders are left out when `settings.train_text_encoder` is false (or none are given).
    """
    preset = resolve_preset(settings.preset)
    conv_dim = settings.conv_dim if preset.enable_conv else 0
    targets: list[Target] = []
    encoders = text_encoders if settings.train_text_encoder else None
    for component, root in _components(unet, encoders):
        classes, names = (
            (preset.unet_modules, preset.unet_names)
            if component == "unet"
            else (preset.text_encoder_modules, preset.text_encoder_names)
        )
        targets += _select_in(component, root, preset, classes, names, conv_dim, settings.dim)
    seen: set[str] = set()
    for target in targets:
        if target.name in seen:  # LyCORIS asserts the same
            raise ValueError(f"duplicated LoKr module name {target.name}")
        seen.add(target.name)
    return targets


def _select_in(component, root, preset: Preset, classes, names, conv_dim: int, dim: int) -> list[Target]:
    """LyCORIS's walk (`LycorisNetworkKohya.create_modules`) over one component, on kohya's names."""
    by_path = {path: (kohya, module) for path, kohya, module in kohya_paths(component, root)}
    chosen: dict[str, Target] = {}
    for path, (kohya, module) in by_path.items():
        if preset.exclude_names and _excluded(preset, kohya):
            continue
        class_name = _kohya_class_name(component, module)
        name_matches = kohya in names or any(preset.matches(t, kohya) for t in names)
        if class_name in classes and not any(preset.matches(t, kohya) for t in names):
            layers = [
                (f"{path}.{sub}" if sub else path, child) for sub, child in module.named_modules()
            ]  # the module and everything in it
        elif name_matches:
            layers = [(path, module)]
        else:
            continue
        for layer_path, layer in layers:
            if layer_path not in by_path or not _gets_module(layer, conv_dim, dim):
                continue
            layer_kohya = by_path[layer_path][0]
            if preset.exclude_names and _excluded(preset, layer_kohya):
                continue
            name = lora_name(component, layer_kohya)
            chosen.setdefault(name, Target(name, component, layer_path, layer_kohya, layer))
    return list(chosen.values())


def _kohya_class_name(component: Component, module: nn.Module) -> str:
    name = type(module).__name__
    return _SGM_CLASS_NAMES.get(name, name) if component == "unet" else name


def _excluded(preset: Preset, kohya_path: str) -> bool:
    return kohya_path in preset.exclude_names or any(
        preset.matches(t, kohya_path) for t in preset.exclude_names
    )


def _gets_module(layer: nn.Module, conv_dim: int, dim: int) -> bool:
    """LyCORIS's rule: Linear and 1x1 conv take the linear dim; larger kernels need a conv dim."""
    if isinstance(layer, nn.Linear):
        return dim > 0
    if isinstance(layer, nn.Conv2d):
        return dim > 0 if layer.kernel_size[0] == 1 else conv_dim > 0
    return False


def dim_and_alpha(target: Target, settings: LokrSettings) -> tuple[int, float]:
    """The dim and alpha LyCORIS gives a layer: conv dim/alpha for kernels > 1, else linear ones."""
    if target.kind == "conv3x3":
        return settings.conv_dim, settings.conv_alpha
    return settings.dim, settings.alpha
