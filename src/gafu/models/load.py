"""Load an SDXL-family base model from a single-file checkpoint, a diffusers folder or a hub repo id.

Single files (how Illustrious-XL and NoobAI-XL are published) go through diffusers' own
single-file conversion, with the SDXL configs gafu ships, so nothing is fetched from the network.
Each component is read from the file on its own and cast as it is read, so the weights are never
held twice: the U-Net in the training dtype, the VAE in fp32 (SDXL's VAE overflows in fp16).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from gafu.errors import GafuError
from gafu.families import ModelFamily, get_family
from gafu.models.checkpoint import SDXL_COMPONENTS, inspect_checkpoint, require_sdxl
from gafu.models.configs import sdxl_config_dir
from gafu.models.memory import MemoryReport, PeakMemory
from gafu.models.tokenizers import load_tokenizers

COMPONENTS = ("unet", "vae", "text_encoder", "text_encoder_2")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(/[^\\:]+\.safetensors)?$")


@dataclass
class ModelSource:
    """Where the base model's weights come from."""

    kind: Literal["single-file", "diffusers"]
    path: Path  # the local file or folder (a hub model's is in the hub cache)
    given: str  # as the user wrote it
    hub_repo: str | None = None


@dataclass
class BaseModel:
    """A loaded SDXL-family model: the parts training and sampling use."""

    unet: Any  # diffusers UNet2DConditionModel
    vae: Any  # diffusers AutoencoderKL
    text_encoder: Any  # transformers CLIPTextModel (CLIP ViT-L)
    text_encoder_2: Any  # transformers CLIPTextModelWithProjection (OpenCLIP bigG)
    tokenizer: Any
    tokenizer_2: Any
    scheduler_config: dict  # the model's noise-schedule config (diffusers scheduler_config.json)
    source: ModelSource
    config_dir: Path  # the architecture configs used
    marks_v_prediction: bool = False  # the checkpoint says it is v-prediction (a `v_pred` key)
    tokenizers_source: str = ""  # the tokenizer folder, or how the tokenizers were built
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what gafu supplied or assumed (e.g. tokenizer settings)
    memory: MemoryReport = field(default_factory=MemoryReport)

    @property
    def text_encoders(self) -> tuple[Any, Any]:
        """Both text encoders, in SDXL's order."""
        return self.text_encoder, self.text_encoder_2

    @property
    def tokenizers(self) -> tuple[Any, Any]:
        """Both tokenizers, in SDXL's order."""
        return self.tokenizer, self.tokenizer_2

    def to_dict(self) -> dict:
        """What was loaded, for reports."""
        return {
            "source": {"kind": self.source.kind, "path": str(self.source.path), "given": self.source.given},
            "config_dir": str(self.config_dir),
            "dtypes": {name: str(getattr(self, name).dtype).removeprefix("torch.") for name in COMPONENTS},
            "marks_v_prediction": self.marks_v_prediction,
            "tokenizers": self.tokenizers_source,
            "memory": self.memory.to_dict(),
            "warnings": list(self.warnings),
            "notes": list(self.notes),
        }


def load_base_model(
    model: str | Path,
    *,
    family: ModelFamily | str | None = None,
    dtype: torch.dtype = torch.bfloat16,
    text_encoder_dtype: torch.dtype | None = None,
    vae_dtype: torch.dtype = torch.float32,
    config_dir: Path | None = None,
    tokenizers: Path | None = None,
    vae: Path | None = None,
    device: str | torch.device | None = None,
) -> BaseModel:
    """Load a base model; `model` is a `.safetensors` file, a diffusers folder or a hub repo id.

    The U-Net loads in `dtype`, the text encoders in `text_encoder_dtype` (default: `dtype`), the
    VAE in `vae_dtype`. `config_dir` replaces the shipped SDXL configs for a single file;
    `tokenizers` is a folder holding `tokenizer/` and `tokenizer_2/`; `vae` a separate VAE file or
    folder. With `device`, each component moves there as soon as it is loaded. Peak RAM while
    loading is in `memory` of the result.
    """
    family = get_family(family) if isinstance(family, str) else family
    dtypes = {"unet": dtype, "vae": vae_dtype, "text_encoder": text_encoder_dtype or dtype}
    dtypes["text_encoder_2"] = dtypes["text_encoder"]
    warnings: list[str] = []
    with PeakMemory() as memory:
        source = resolve_model_source(model, prefer_fp16=dtype != torch.float32)
        if source.kind == "single-file":
            config_dir = require_config_dir(Path(config_dir) if config_dir else sdxl_config_dir())
            parts, marks_v = _load_single_file(
                source.path, config_dir, dtypes, device, skip_vae=vae is not None
            )
        else:
            config_dir = source.path
            parts, marks_v = _load_diffusers_folder(source.path, dtypes, device, skip_vae=vae is not None)
        if vae is not None:
            parts["vae"] = _place(_load_vae(Path(vae), config_dir, vae_dtype), device)
        found = load_tokenizers(
            explicit=tokenizers,
            candidates=[source.path, config_dir],
            text_encoders=(parts["text_encoder"], parts["text_encoder_2"]),
        )
    if marks_v and family is not None and not family.is_v_prediction:
        warnings.append(
            f"{source.given} marks itself as v-prediction (a `v_pred` key, as NoobAI-XL v-pred has) "
            f"but the model family is {family.name!r} ({family.prediction_type}); if it is a v-pred model, "
            'set [project] family = "noob-vpred", or training will learn the wrong target'
        )
    return BaseModel(
        **parts,
        tokenizer=found.tokenizer,
        tokenizer_2=found.tokenizer_2,
        scheduler_config=_scheduler_config(config_dir),
        source=source,
        config_dir=config_dir,
        marks_v_prediction=marks_v,
        tokenizers_source=found.source,
        warnings=warnings,
        notes=found.notes,
        memory=memory,
    )


def load_project_model(
    project, *, dtype: torch.dtype = torch.bfloat16, device=None, section=None, family=None
) -> BaseModel:
    """Load the base model a project's `[model]` section names (paths relative to the project).

    `section` replaces `[model]` with anything holding the same four paths (e.g. a plan's `model`).
    """
    section = section or project.config.model
    if not section.path:
        raise GafuError(
            f"no base model is set in {project.config_path}",
            path=project.config_path,
            hint="set [model] path to an SDXL-family .safetensors file, a diffusers folder or a hub repo id",
        )
    local = project.resolve(section.path)
    return load_base_model(
        local if local.exists() else section.path,
        family=family or project.family,
        dtype=dtype,
        config_dir=project.resolve(section.config) if section.config else None,
        tokenizers=project.resolve(section.tokenizers) if section.tokenizers else None,
        vae=project.resolve(section.vae) if section.vae else None,
        device=device,
    )


def project_config_dir(project) -> Path | None:
    """The config folder describing a project's model architecture, without loading any weights.

    `[model] config` when set, the model itself when it is a local diffusers folder, else None
    (SDXL base, whose configs gafu ships). For `describe_network(config_dir=…)`.
    """
    section = project.config.model
    if section.config:
        return project.resolve(section.config)
    local = project.resolve(section.path) if section.path else None
    if local is not None and (local / "model_index.json").is_file():
        return local
    return None


# --- where the model is ---------------------------------------------------------------------------
def resolve_model_source(model: str | Path, *, prefer_fp16: bool = True) -> ModelSource:
    """A local file or folder as it is; a hub repo id resolved to files in the hub cache."""
    given = str(model)
    path = Path(model).expanduser()
    if path.is_file():
        return ModelSource("single-file", path, given)
    if path.is_dir():
        if (path / "model_index.json").is_file():
            return ModelSource("diffusers", path, given)
        raise GafuError(
            f"{path} is a folder but not a diffusers model (it has no model_index.json)",
            path=path,
            hint="point at the .safetensors checkpoint inside it, or at a diffusers model folder",
        )
    if not _HUB_ID.match(given):  # not a path that exists, and not `owner/name[/file.safetensors]`
        raise GafuError(f"no such file or folder: {given}", path=path, hint="check the path")
    owner, name, *rest = given.split("/")
    return _resolve_hub(f"{owner}/{name}", "/".join(rest) or None, given, prefer_fp16)


def _resolve_hub(repo_id: str, filename: str | None, given: str, prefer_fp16: bool) -> ModelSource:
    """Files of a hub model, from the hub cache (fetched first when online)."""
    from huggingface_hub import hf_hub_download, snapshot_download

    try:
        if filename:
            return ModelSource("single-file", Path(hf_hub_download(repo_id, filename)), given, repo_id)
        files = _hub_files(repo_id)
        if "model_index.json" in files:
            wanted = ["model_index.json", "scheduler/*", "tokenizer/*", "tokenizer_2/*"]
            for component in COMPONENTS:
                names = [f.split("/", 1)[1] for f in files if f.startswith(component + "/")]
                variant = pick_variant(names, prefer_fp16)
                wanted += [
                    f"{component}/{n}" for n in names if n == "config.json" or _variant_of(n) == variant
                ]
            folder = Path(snapshot_download(repo_id, allow_patterns=wanted))
            return ModelSource("diffusers", folder, given, repo_id)
        singles = sorted(f for f in files if "/" not in f and f.endswith(".safetensors"))
        if len(singles) == 1:
            return ModelSource("single-file", Path(hf_hub_download(repo_id, singles[0])), given, repo_id)
    except Exception as exc:  # huggingface_hub raises many kinds; all mean "not available"
        if isinstance(exc, GafuError):
            raise
        raise GafuError(
            f"{given} is neither a local file or folder nor a hub model gafu can get ({type(exc).__name__})",
            hint="check the path or repo id; offline (HF_HUB_OFFLINE=1) only models already in the hub "
            "cache load: download it once with `hf download " + repo_id + "`",
        ) from exc
    listing = ", ".join(singles) if singles else "none"
    raise GafuError(
        f"hub repo {repo_id} has no diffusers model (model_index.json) and not exactly one "
        f".safetensors file at its top level (found: {listing})",
        hint=f"name the file: {repo_id}/<file>.safetensors",
    )


def _hub_files(repo_id: str) -> list[str]:
    """Every file of a hub repo (offline: of its cached snapshot)."""
    from huggingface_hub import HfApi, constants, snapshot_download

    if constants.HF_HUB_OFFLINE:
        folder = Path(snapshot_download(repo_id, local_files_only=True))
        return [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    return list(HfApi().list_repo_files(repo_id))


def _variant_of(file_name: str) -> str | None:
    """`fp16` for `diffusion_pytorch_model.fp16.safetensors` (and its shards), else None."""
    stem = file_name.split("-0000")[0]  # shards: name-00001-of-00002.fp16.safetensors
    parts = stem.removesuffix(".index.json").removesuffix(".safetensors").split(".")
    if file_name.endswith((".safetensors", ".safetensors.index.json")) and len(parts) > 1:
        return parts[-1]
    return None


def pick_variant(file_names: list[str], prefer_fp16: bool) -> str | None:
    """The weight variant to load from a component's files: `fp16` when wanted and present, else plain."""
    variants = {_variant_of(n) for n in file_names if n.endswith(".safetensors")}
    if prefer_fp16 and "fp16" in variants:
        return "fp16"
    if None in variants or not variants:
        return None
    return sorted(v for v in variants if v)[0]


def require_config_dir(folder: Path) -> Path:
    """A folder of diffusers-format configs for U-Net, VAE and both text encoders."""
    missing = [f"{name}/config.json" for name in COMPONENTS if not (folder / name / "config.json").is_file()]
    if missing:
        raise GafuError(
            f"{folder} is not a model config folder: {', '.join(missing)} not found",
            path=folder,
            hint="set [model] config to a diffusers-format folder of the model (its configs are enough)",
        )
    return folder


# --- loading --------------------------------------------------------------------------------------
def _load_single_file(
    path: Path, config_dir: Path, dtypes: dict, device, *, skip_vae: bool
) -> tuple[dict[str, Any], bool]:
    from safetensors import safe_open

    info = inspect_checkpoint(path)
    require_sdxl(info, separate_vae=skip_vae)
    parts: dict[str, Any] = {}
    with safe_open(str(path), framework="pt") as checkpoint:
        for name in COMPONENTS:
            if name == "vae" and skip_vae:
                continue
            state = _read_component(checkpoint, info.tensors, SDXL_COMPONENTS[name], dtypes[name])
            try:
                module = _from_sgm(name, state, config_dir, dtypes[name])
            except (ValueError, KeyError, RuntimeError, OSError) as exc:
                raise _mismatch(path, name, config_dir, exc) from exc
            del state
            parts[name] = _place(_require_loaded(module, name, path, config_dir), device)
    return parts, info.marks_v_prediction


def _from_sgm(name: str, state: dict[str, torch.Tensor], config_dir: Path, dtype: torch.dtype):
    """One component from its SGM-named tensors, by diffusers' own single-file conversion."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    if name in ("unet", "vae"):  # the tensors are already in `dtype`, so its cast copies nothing
        _hide_empty_fp32_warning()
        cls = UNet2DConditionModel if name == "unet" else AutoencoderKL
        return cls.from_single_file(
            state, config=str(config_dir), subfolder=name, torch_dtype=dtype, local_files_only=True
        )
    cls = CLIPTextModel if name == "text_encoder" else CLIPTextModelWithProjection
    return create_diffusers_clip_model_from_ldm(
        cls, state, subfolder=name, config=str(config_dir), torch_dtype=dtype, local_files_only=True
    )


class _EmptyFp32Warning(logging.Filter):
    """Drops diffusers' "modules that should be kept in float32: []" — about an empty list, on every cast."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "should be kept in float32: []" not in record.getMessage()


def _hide_empty_fp32_warning() -> None:
    logger = logging.getLogger("diffusers.models.modeling_utils")
    if not any(isinstance(f, _EmptyFp32Warning) for f in logger.filters):
        logger.addFilter(_EmptyFp32Warning())


def _read_component(checkpoint, tensors: dict, prefix: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """One component's tensors, each cast as soon as it is read (so the file's dtype is never held whole)."""
    state = {}
    for key in tensors:
        if key.startswith(prefix):
            tensor = checkpoint.get_tensor(key)
            state[key] = tensor.to(dtype) if tensor.is_floating_point() else tensor
    return state


def _mismatch(path: Path, name: str, config_dir: Path, exc: Exception) -> GafuError:
    reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
    return GafuError(
        f"the {name} weights in {path} do not fit the architecture in {config_dir} ({reason})",
        path=path,
        hint="if the model is not a standard SDXL size, set [model] config to its own config folder",
    )


def _require_loaded(module, name: str, path: Path, config_dir: Path):
    """Refuse a component some of whose weights were not in the checkpoint (left on the meta device)."""
    missing = [n for n, p in module.named_parameters() if p.is_meta]
    if missing:
        raise GafuError(
            f"{path} lacks {len(missing)} {name} weights the architecture in {config_dir} needs "
            f"(e.g. {missing[0]})",
            path=path,
            hint="the file is incomplete or of another architecture",
        )
    return module.eval()


def _place(module, device):
    return module.to(device) if device is not None else module


def _load_diffusers_folder(
    folder: Path, dtypes: dict, device, *, skip_vae: bool
) -> tuple[dict[str, Any], bool]:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    require_sdxl_folder(folder)
    classes = {
        "unet": UNet2DConditionModel,
        "vae": AutoencoderKL,
        "text_encoder": CLIPTextModel,
        "text_encoder_2": CLIPTextModelWithProjection,
    }
    parts: dict[str, Any] = {}
    for name, cls in classes.items():
        if name == "vae" and skip_vae:
            continue
        names = [p.name for p in (folder / name).iterdir()]
        variant = pick_variant(names, prefer_fp16=dtypes["unet"] != torch.float32)
        dtype_arg = {"torch_dtype" if name in ("unet", "vae") else "dtype": dtypes[name]}
        try:
            module = cls.from_pretrained(
                folder, subfolder=name, variant=variant, local_files_only=True, **dtype_arg
            )
        except (OSError, ValueError, RuntimeError) as exc:
            raise GafuError(
                f"cannot load {name} from {folder / name}: {str(exc).splitlines()[0][:300]}",
                path=folder / name,
                hint="the folder is incomplete; download the model again",
            ) from exc
        parts[name] = _place(module.eval(), device)
    return parts, False


def require_sdxl_folder(folder: Path) -> None:
    """Refuse a diffusers folder that is not an SDXL-family base model."""
    index = _read_json(folder / "model_index.json")
    unet_config = folder / "unet" / "config.json"
    text_time = unet_config.is_file() and _read_json(unet_config).get("addition_embed_type") == "text_time"
    if "text_encoder_2" not in index or "text_encoder" not in index or not text_time:
        raise GafuError(
            f"{folder} is not an SDXL-family model (model_index.json: {index.get('_class_name', '?')})",
            path=folder,
            hint="gafu trains on SDXL 1.0, Illustrious-XL and NoobAI-XL",
        )


def _load_vae(vae: Path, config_dir: Path, dtype: torch.dtype):
    """A separate VAE: a single file (LDM or diffusers keys) or a diffusers folder."""
    from diffusers import AutoencoderKL
    from safetensors.torch import load_file

    try:
        if vae.is_dir():
            sub = "vae" if (vae / "vae" / "config.json").is_file() else None
            return AutoencoderKL.from_pretrained(
                vae, subfolder=sub, torch_dtype=dtype, local_files_only=True
            ).eval()
        inspect_checkpoint(vae)  # clear errors for a bad file first
        state = {k: t.to(dtype) for k, t in load_file(str(vae)).items() if t.is_floating_point()}
        module = _from_sgm("vae", state, config_dir, dtype)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise _mismatch(vae, "vae", config_dir, exc) from exc
    return _require_loaded(module, "vae", vae, config_dir)


def _scheduler_config(config_dir: Path) -> dict:
    """The model's noise-schedule config; SDXL's when its config folder has none."""
    path = config_dir / "scheduler" / "scheduler_config.json"
    return _read_json(path if path.is_file() else sdxl_config_dir() / "scheduler" / "scheduler_config.json")


def _read_json(path: Path) -> dict:
    from gafu.fsio import read_json

    data = read_json(path, what="model config")
    if not isinstance(data, dict):
        raise GafuError(f"{path} is not a JSON object", path=path)
    return data


def meta_model(config_dir: Path | None = None) -> tuple[Any, Any, Any]:
    """U-Net and both text encoders of an architecture, on the meta device (shapes only, no weights).

    `config_dir` is a config or diffusers folder (default: SDXL's shipped configs).
    """
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    folder = require_config_dir(Path(config_dir) if config_dir else sdxl_config_dir())
    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(folder, subfolder="unet"))
        te1 = CLIPTextModel(CLIPTextConfig.from_pretrained(folder, subfolder="text_encoder"))
        te2 = CLIPTextModelWithProjection(CLIPTextConfig.from_pretrained(folder, subfolder="text_encoder_2"))
    return unet, te1, te2
