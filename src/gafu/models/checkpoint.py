"""What a single-file checkpoint is, read from its safetensors header alone (no weights loaded).

The header says which model family the keys belong to, whether the file is whole, and whether
it marks itself as v-prediction; gafu refuses anything but an SDXL-family base model before it
spends minutes loading one.
"""

from __future__ import annotations

import json
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from gafu.errors import GafuError, os_error_message
from gafu.models import sgm

HEADER_LIMIT = 100 * 1024 * 1024  # safetensors' own limit on the JSON header
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")

# Key prefixes of the four parts of an SGM-layout SDXL checkpoint.
SDXL_COMPONENTS = {
    "unet": sgm.UNET_PREFIX,
    "vae": sgm.VAE_PREFIX,
    "text_encoder": sgm.CLIP_L_PREFIX,
    "text_encoder_2": sgm.OPEN_CLIP_PREFIX,
}


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's entry in a safetensors header."""

    dtype: str  # safetensors' name: F16, BF16, F32 …
    shape: tuple[int, ...]


@dataclass
class CheckpointInfo:
    """A checkpoint's header: tensors, metadata and what kind of model they make."""

    path: Path
    tensors: dict[str, TensorInfo]
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """`sdxl`, or a description of the other model the keys belong to."""
        return classify_keys(self.tensors)

    @property
    def marks_v_prediction(self) -> bool:
        """True when the file says it is v-prediction (NoobAI-XL v-pred carries a `v_pred` key)."""
        prediction = self.metadata.get("modelspec.prediction_type", "").lower()
        return "v_pred" in self.tensors or prediction in ("v", "v_prediction")

    @property
    def weight_dtype(self) -> str:
        """The most common floating-point dtype of the tensors (F16, BF16, F32)."""
        counts = Counter(t.dtype for t in self.tensors.values() if t.dtype.startswith(("F", "BF")))
        return counts.most_common(1)[0][0] if counts else "?"

    def has_component(self, name: str) -> bool:
        """Whether the file holds weights of one SDXL component (`unet`, `vae` …)."""
        prefix = SDXL_COMPONENTS[name]
        return any(key.startswith(prefix) for key in self.tensors)


def read_header(path: Path) -> tuple[dict, int]:
    """The JSON header of a `.safetensors` file and the byte count it promises, or a clear error."""
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise GafuError(
            f"{path} is a pickle checkpoint ({path.suffix}); gafu reads .safetensors only "
            "(pickle files can run code when loaded)",
            path=path,
            hint="download the .safetensors version of the model, or convert it once with a trusted tool",
        )
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            length = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
            if not 2 <= length <= min(HEADER_LIMIT, size - 8):
                raise _not_safetensors(path)
            raw = fh.read(length)
    except OSError as exc:
        raise os_error_message(exc, path, "read") from exc
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _not_safetensors(path) from None
    if not isinstance(header, dict):
        raise _not_safetensors(path)
    ends = [entry.get("data_offsets", [0, 0])[1] for key, entry in header.items() if key != "__metadata__"]
    promised = 8 + length + max(ends, default=0)
    if promised > size:
        raise GafuError(
            f"{path} is truncated: its header promises {promised:,} bytes but the file has {size:,}",
            path=path,
            hint="the download or copy did not finish; fetch the file again",
        )
    return header, promised


def _not_safetensors(path: Path) -> GafuError:
    return GafuError(
        f"{path} is not a model checkpoint (not a .safetensors file)",
        path=path,
        hint="set [model] path to an SDXL-family .safetensors file, a diffusers folder or a hub repo id",
    )


def inspect_checkpoint(path: Path) -> CheckpointInfo:
    """Read a checkpoint's header: tensor names, dtypes, shapes and metadata."""
    header, _ = read_header(path)
    metadata = header.pop("__metadata__", None) or {}
    try:
        tensors = {key: TensorInfo(entry["dtype"], tuple(entry["shape"])) for key, entry in header.items()}
    except (KeyError, TypeError):
        raise _not_safetensors(Path(path)) from None
    return CheckpointInfo(Path(path), tensors, {str(k): str(v) for k, v in metadata.items()})


def classify_keys(tensors: dict[str, TensorInfo]) -> str:
    """`sdxl` for an SDXL-family base model, else what the keys look like (for the error message)."""
    keys = tensors.keys()

    def any_prefix(*prefixes: str) -> bool:
        return any(key.startswith(prefixes) for key in keys)

    if any_prefix("model.diffusion_model.joint_blocks.", "joint_blocks."):
        return "a Stable Diffusion 3 model"
    if any_prefix("model.diffusion_model.double_blocks.", "double_blocks."):
        return "a Flux model"
    if any_prefix("lora_unet_", "lora_te", "lycoris_"):
        return "a LoRA/LoKr adapter, not a base model"
    if any_prefix(sgm.OPEN_CLIP_PREFIX) and any_prefix(sgm.CLIP_L_PREFIX):
        conv_in = tensors.get(sgm.UNET_PREFIX + "input_blocks.0.0.weight")
        if conv_in is not None and len(conv_in.shape) == 4 and conv_in.shape[1] != 4:
            return "an SDXL inpainting model"
        return "sdxl"
    if any_prefix("conditioner.embedders.0.model."):
        return "the SDXL refiner"
    if any_prefix("cond_stage_model.transformer."):
        return "a Stable Diffusion 1.x model"
    if any_prefix("cond_stage_model.model."):
        return "a Stable Diffusion 2.x model"
    if any_prefix("down_blocks.", "up_blocks.", "text_model.", "encoder.down."):
        return "a single model component (U-Net, VAE or text encoder), not a whole checkpoint"
    if any_prefix(sgm.UNET_PREFIX):
        return "a model of an unknown architecture"
    return "not a Stable Diffusion checkpoint"


def require_sdxl(info: CheckpointInfo, *, separate_vae: bool = False) -> None:
    """Refuse a checkpoint that is not a whole SDXL-family base model."""
    kind = info.kind
    if kind != "sdxl":
        raise GafuError(
            f"{info.path} is not an SDXL-family model: it looks like {kind}",
            path=info.path,
            hint="gafu trains on SDXL 1.0, Illustrious-XL and NoobAI-XL checkpoints",
        )
    needed = [name for name in SDXL_COMPONENTS if not (name == "vae" and separate_vae)]
    missing = [name for name in needed if not info.has_component(name)]
    if missing:
        hint = "set [model] vae to an SDXL VAE file" if missing == ["vae"] else "use a complete checkpoint"
        raise GafuError(f"{info.path} has no {' or '.join(missing)} weights", path=info.path, hint=hint)
