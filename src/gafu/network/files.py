"""LoKr files: `.safetensors` with kohya/LyCORIS tensor names and the metadata UIs and trainers read.

The metadata follows kohya's sd-scripts (`train_network.py`, `library/sai_model_spec.py`):
`ss_network_module = lycoris.kohya` with `ss_network_args` tells every UI to read the file as a
LyCORIS network; `ss_base_model_version = sdxl_base_v1-0` is how AUTOMATIC1111/Forge list it as
SDXL; `sshs_model_hash` is the hash they would otherwise compute. gafu adds its plan as JSON,
with local paths reduced to file names (`shareable_plan`), as sd-scripts writes the model's.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gafu import __version__, recipe
from gafu.errors import GafuError
from gafu.families import ModelFamily
from gafu.fsio import atomic_path
from gafu.models.checkpoint import read_header
from gafu.network.lokr import LokrNetwork, default_module_class, make_lokr_module, quiet_lycoris
from gafu.network.settings import LokrSettings
from gafu.network.targets import Target, named_layers

NETWORK_MODULE = "lycoris.kohya"
SAVE_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
LOKR_TENSORS = ("lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2", "alpha")
MODELSPEC_IMPLEMENTATION = "https://github.com/Stability-AI/generative-models"  # sd-scripts: SDXL LoRAs
PLAN_KEY = "gafu_plan"


# --- metadata -------------------------------------------------------------------------------------
def _number(value: float) -> str:
    """`64` for 64.0 (as a kohya command line writes it), `0.5` for 0.5."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def network_args(settings: LokrSettings) -> dict[str, str]:
    """kohya's `--network_args` for this LoKr (as `ss_network_args` stores them: strings)."""
    return {
        "algo": recipe.NETWORK_ALGO,
        "conv_dim": _number(settings.conv_dim),
        "conv_alpha": _number(settings.conv_alpha),
        "factor": _number(settings.factor),
        "preset": settings.preset,
    }


def lokr_metadata(
    settings: LokrSettings,
    family: ModelFamily,
    *,
    output_name: str,
    resolution: int | tuple[int, int],
    num_epochs: int,
    epoch: int | None = None,
    steps: int | None = None,
    tag_frequency: Mapping[str, Mapping[str, int]] | None = None,
    trigger: str = "",
    plan: Mapping[str, Any] | str | None = None,
    base_model: str = "",
    training_started_at: float | None = None,
) -> dict[str, str]:
    """The metadata of a saved LoKr (all values strings, as safetensors requires).

    `tag_frequency` is `{concept folder: {tag: count}}` (kohya's `ss_tag_frequency`); `plan` is
    the resolved plan, stored as JSON under `gafu_plan`.
    """
    width, height = (resolution, resolution) if isinstance(resolution, int) else resolution
    now = _dt.datetime.now()
    metadata = {
        "ss_network_module": NETWORK_MODULE,
        "ss_network_dim": str(settings.dim),
        "ss_network_alpha": str(float(settings.alpha)),  # kohya parses --network_alpha as a float
        "ss_network_args": json.dumps(network_args(settings)),
        "ss_base_model_version": family.base_model_version,
        "ss_v2": "False",
        "ss_zero_terminal_snr": str(bool(family.zero_terminal_snr)),
        "ss_resolution": str((width, height)),
        "ss_num_epochs": str(num_epochs),
        "ss_output_name": output_name,
        "ss_tag_frequency": json.dumps(tag_frequency or {}, ensure_ascii=False),
        "ss_training_started_at": str(
            training_started_at if training_started_at is not None else now.timestamp()
        ),
        "ss_training_finished_at": str(now.timestamp()),
    }
    if epoch is not None:
        metadata["ss_epoch"] = str(epoch)
    if steps is not None:
        metadata["ss_steps"] = str(steps)
    if base_model:
        metadata["ss_sd_model_name"] = base_model
    metadata.update(
        {
            "modelspec.sai_model_spec": "1.0.1",
            "modelspec.architecture": f"{family.modelspec_architecture}/lora",
            "modelspec.implementation": MODELSPEC_IMPLEMENTATION,
            "modelspec.implementation_version": f"gafu/{__version__}",
            "modelspec.title": output_name,
            "modelspec.resolution": f"{width}x{height}",
            "modelspec.date": now.replace(microsecond=0).isoformat(),
            "modelspec.prediction_type": "v" if family.is_v_prediction else "epsilon",
        }
    )
    if trigger:
        metadata["modelspec.trigger_phrase"] = trigger
    if plan is not None:
        metadata[PLAN_KEY] = plan if isinstance(plan, str) else json.dumps(plan, ensure_ascii=False)
    metadata["gafu_version"] = __version__
    return metadata


def settings_from_metadata(metadata: Mapping[str, str], module_names: list[str]) -> LokrSettings | None:
    """The LoKr settings a file was made with (kohya/LyCORIS metadata), or None if it does not say.

    Whether the text encoders were trained shows in the file's module names.
    """
    try:
        args = json.loads(metadata.get("ss_network_args", "{}"))
        if str(args.get("algo", "")).lower() != recipe.NETWORK_ALGO or "ss_network_dim" not in metadata:
            return None
        dim = int(float(metadata["ss_network_dim"]))
        alpha = float(metadata.get("ss_network_alpha") or dim)
        conv_dim = int(float(args.get("conv_dim", dim)))
        return LokrSettings(
            dim=dim,
            alpha=alpha,
            conv_dim=conv_dim,
            conv_alpha=float(args.get("conv_alpha", alpha)),
            factor=int(float(args.get("factor", -1))),
            preset=str(args.get("preset", recipe.LYCORIS_PRESET)),
            train_text_encoder=any(name.startswith("lora_te") for name in module_names),
        )
    except (ValueError, TypeError, AttributeError):
        return None


# --- hashes (sd-scripts' `precalculate_safetensors_hashes`) ---------------------------------------
LEGACY_HASH_AT, LEGACY_HASH_BYTES = 0x100000, 0x10000  # AUTOMATIC1111's old model hash: 64 KiB at 1 MiB


def model_hashes(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> tuple[str, str | None]:
    """`sshs_model_hash` and `sshs_legacy_hash` as sd-scripts computes them and their readers check them.

    The first is the SHA-256 of the file's tensor bytes: what AUTOMATIC1111 computes for a LoRA
    (`hashes.addnet_hash_safetensors`). The legacy one is what sd-webui-additional-networks, its
    only reader, computes (`legacy_hash_file`): 64 KiB at 1 MiB of the file saved with `ss_*`
    metadata only (AUTOMATIC1111's old `sd_models.model_hash`). None for a file shorter than
    1 MiB, where that would be the hash of no bytes at all (`e3b0c442`), the same for every file.
    """
    from safetensors.torch import save

    data = io.BytesIO(save(dict(tensors), {k: v for k, v in metadata.items() if k.startswith("ss_")}))
    header_length = int.from_bytes(data.read(8), "little")
    data.seek(8 + header_length)
    model_hash = hashlib.sha256(data.read()).hexdigest()
    data.seek(LEGACY_HASH_AT)
    legacy = data.read(LEGACY_HASH_BYTES)
    return model_hash, (hashlib.sha256(legacy).hexdigest()[:8] if legacy else None)


# --- save -----------------------------------------------------------------------------------------
def save_network(
    network: LokrNetwork, path: Path, *, metadata: Mapping[str, str], dtype: str = recipe.SAVE_DTYPE
) -> Path:
    """Write the network's tensors in `dtype` (fp16, bf16 or fp32) with `metadata`, atomically."""
    from safetensors.torch import save_file

    if dtype not in SAVE_DTYPES:
        raise GafuError(f"unknown save dtype {dtype!r}", hint=f"use one of: {', '.join(SAVE_DTYPES)}")
    tensors = {
        key: value.detach().to("cpu", SAVE_DTYPES[dtype]).contiguous()
        for key, value in network.state_dict().items()
    }
    full = {str(k): str(v) for k, v in metadata.items()}
    full["sshs_model_hash"], legacy_hash = model_hashes(tensors, full)
    if legacy_hash is not None:
        full["sshs_legacy_hash"] = legacy_hash
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=full)
    return path


# --- load -----------------------------------------------------------------------------------------
@dataclass
class LokrFile:
    """A LoKr file's tensors and metadata."""

    path: Path
    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def module_names(self) -> list[str]:
        """Module names, in file order."""
        return list(dict.fromkeys(key.split(".", 1)[0] for key in self.tensors))

    def module_tensors(self, name: str) -> dict[str, torch.Tensor]:
        """One module's tensors, by LyCORIS name (`lokr_w1`, `alpha` …)."""
        prefix = name + "."
        return {k[len(prefix) :]: v for k, v in self.tensors.items() if k.startswith(prefix)}


def read_lokr_file(path: Path) -> LokrFile:
    """Read a LoKr file, refusing one that is not a (whole) LoKr `.safetensors`."""
    from safetensors import safe_open

    header, _ = read_header(Path(path))
    metadata = {str(k): str(v) for k, v in (header.get("__metadata__") or {}).items()}
    with safe_open(str(path), framework="pt") as f:
        tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    kinds = {key.split(".", 1)[1] if "." in key else key for key in tensors}
    if not tensors or not kinds <= set(LOKR_TENSORS):
        found = sorted(kinds - set(LOKR_TENSORS))[:3] or ["no tensors"]
        raise GafuError(
            f"{path} is not a LoKr file (it holds {', '.join(found)})",
            path=path,
            hint="gafu applies LoKr files (lokr_w1/lokr_w2 tensors), such as the ones it trains",
        )
    return LokrFile(Path(path), tensors, metadata)


def load_network(
    path: Path,
    unet: torch.nn.Module,
    text_encoders: tuple[torch.nn.Module, torch.nn.Module] | None,
    *,
    multiplier: float = 1.0,
    module_class: type | None = None,
) -> LokrNetwork:
    """Rebuild a saved LoKr on a model, exactly as it was saved (not yet applied).

    Files with kohya/LyCORIS metadata are rebuilt with their settings, so saving again gives the
    same tensors and training can continue; files without are rebuilt by LyCORIS from the tensors.
    A file for another architecture (names or shapes the model does not have) is refused.
    """
    lokr = read_lokr_file(path)
    layers = named_layers(unet, text_encoders)
    unknown = [name for name in lokr.module_names if name not in layers]
    if unknown:
        raise _other_architecture(lokr, unknown, len(lokr.module_names), text_encoders is None)
    settings = settings_from_metadata(lokr.metadata, lokr.module_names)
    modules, targets = [], []
    order = {name: i for i, name in enumerate(layers)}  # model order, as `build_network` builds
    with quiet_lycoris():
        for name in sorted(lokr.module_names, key=order.__getitem__):
            target = layers[name]
            module = _rebuild_module(lokr, target, settings, module_class)
            module.multiplier = multiplier
            modules.append(module)
            targets.append(target)
    network = LokrNetwork(modules, targets, settings or _settings_of(lokr))
    network.file_metadata = dict(lokr.metadata)
    return network


def _rebuild_module(lokr: LokrFile, target: Target, settings: LokrSettings | None, module_class):
    tensors = lokr.module_tensors(target.name)
    alpha = float(tensors["alpha"]) if "alpha" in tensors else None
    if settings is not None:
        # alpha from the file: LyCORIS derives the module's scale from the constructor's alpha.
        module = make_lokr_module(target, _with_alpha(settings, target, alpha), module_class=module_class)
        expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
        if expected == {k: tuple(v.shape) for k, v in tensors.items()}:
            module.load_state_dict({k: v.to(torch.float32) for k, v in tensors.items()})
            return module
    from lycoris.modules import make_module

    try:  # no (matching) settings: LyCORIS infers the module from its tensors
        cls = default_module_class()
        module = make_module(
            cls, tuple(cls.extract_state_dict(lokr.tensors, target.name)), target.name, target.module
        )
        module.get_weight(module.shape)  # the Kronecker product must have the layer's shape
    except (RuntimeError, ValueError, TypeError, AttributeError) as exc:
        raise _shape_mismatch(lokr, target, tensors) from exc
    return module.float()


def _with_alpha(settings: LokrSettings, target: Target, alpha: float | None) -> LokrSettings:
    from dataclasses import replace

    if alpha is None:
        return settings
    return replace(settings, conv_alpha=alpha) if target.kind == "conv3x3" else replace(settings, alpha=alpha)


def _settings_of(lokr: LokrFile) -> LokrSettings:
    """Settings for a file without metadata: gafu's, except what its names show (text encoders or not)."""
    return LokrSettings(train_text_encoder=any(n.startswith("lora_te") for n in lokr.module_names))


def _other_architecture(lokr: LokrFile, unknown: list[str], total: int, no_text_encoders: bool) -> GafuError:
    example = unknown[0]
    if no_text_encoders and all(n.startswith("lora_te") for n in unknown):
        return GafuError(f"{lokr.path} adapts the text encoders; load it with them", path=lokr.path)
    return GafuError(
        f"{lokr.path} is not a LoKr for SDXL: {len(unknown)} of its {total} modules (e.g. {example}) "
        "name layers an SDXL model does not have",
        path=lokr.path,
        hint="it was made for another model architecture (SD 1.5, SD3, Flux …); use it with that model",
    )


def _shape_mismatch(lokr: LokrFile, target: Target, tensors: Mapping[str, torch.Tensor]) -> GafuError:
    shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in tensors.items() if k != "alpha")
    return GafuError(
        f"{lokr.path} does not fit this model: module {target.name} ({shapes}) cannot adapt a layer "
        f"of shape {tuple(target.module.weight.shape)}",
        path=lokr.path,
        hint="it was made for a model of another architecture or size",
    )
