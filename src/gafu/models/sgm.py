"""Names in the original SGM (Stability's `generative-models`) layout of an SDXL checkpoint.

SDXL-family models are published as one `.safetensors` file in SGM layout, and kohya's
sd-scripts trains on its own SGM-named U-Net, so LoRA/LoKr files name U-Net modules by SGM path
(`lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q`). gafu runs the diffusers U-Net;
this module maps its module paths to SGM ones. Loading goes the other way through diffusers' own
single-file conversion, so a checkpoint written here and read back there checks this mapping.

The writers (U-Net, VAE, both text encoders) exist so gafu can save a model in the form users
have (the tiny test model, and a base model with a LoKr merged in).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_L_PREFIX = "conditioner.embedders.0.transformer."
OPEN_CLIP_PREFIX = "conditioner.embedders.1.model."

# diffusers U-Net modules outside the down/mid/up blocks → SGM modules.
_UNET_TOP_LEVEL = {
    "conv_in": "input_blocks.0.0",
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "time_embedding": "time_embed",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
    "add_embedding": "label_emb.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}
# Inside a ResnetBlock2D: diffusers child → SGM child.
_RESNET_CHILDREN = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}


def _config_value(config: Any, name: str) -> Any:
    return config[name] if isinstance(config, Mapping) else getattr(config, name)


def sgm_unet_path(path: str, config: Any) -> str | None:
    """The SGM module path of a diffusers U-Net module path (None where SGM has no such module).

    `config` is the U-Net's config (`unet.config` or its dict): block indices depend on
    `layers_per_block` and on which up blocks have attentions.
    """
    if not path:
        return ""
    for diffusers_name, sgm_name in _UNET_TOP_LEVEL.items():
        if path == diffusers_name or path.startswith(diffusers_name + "."):
            return sgm_name + path[len(diffusers_name) :]
    parts = path.split(".")
    per_block = int(_config_value(config, "layers_per_block")) + 1  # resnets + the down/upsampler
    if parts[0] == "down_blocks" and len(parts) >= 4:
        block, kind, index, rest = int(parts[1]), parts[2], int(parts[3]), parts[4:]
        if kind == "resnets":
            return _join(f"input_blocks.{1 + block * per_block + index}.0", _resnet_child(rest))
        if kind == "attentions":
            return _join(f"input_blocks.{1 + block * per_block + index}.1", rest)
        if kind == "downsamplers" and index == 0:
            rest = ["op", *rest[1:]] if rest[:1] == ["conv"] else rest
            return _join(f"input_blocks.{(block + 1) * per_block}.0", rest)
        return None
    if parts[0] == "mid_block" and len(parts) >= 3:
        kind, index, rest = parts[1], int(parts[2]), parts[3:]
        if kind == "resnets":  # middle_block = resnet, attention, resnet
            return _join(f"middle_block.{2 * index}", _resnet_child(rest))
        if kind == "attentions":
            return _join(f"middle_block.{2 * index + 1}", rest)
        return None
    if parts[0] == "up_blocks" and len(parts) >= 4:
        block, kind, index, rest = int(parts[1]), parts[2], int(parts[3]), parts[4:]
        if kind == "resnets":
            return _join(f"output_blocks.{block * per_block + index}.0", _resnet_child(rest))
        if kind == "attentions":
            return _join(f"output_blocks.{block * per_block + index}.1", rest)
        if kind == "upsamplers" and index == 0:
            has_attention = str(_config_value(config, "up_block_types")[block]).startswith("CrossAttn")
            position = 2 if has_attention else 1  # after the resnet (and the attention)
            return _join(f"output_blocks.{block * per_block + per_block - 1}.{position}", rest)
        return None
    return None


def _resnet_child(rest: list[str]) -> list[str]:
    if rest and rest[0] in _RESNET_CHILDREN:
        return [*_RESNET_CHILDREN[rest[0]].split("."), *rest[1:]]
    return rest


def _join(head: str, rest: list[str]) -> str:
    return ".".join([head, *rest])


def sgm_block(sgm_path: str) -> str:
    """The SGM block a U-Net module belongs to: `input_blocks.4`, `middle_block`, `output_blocks.2` …"""
    parts = sgm_path.split(".")
    if parts[0] in ("input_blocks", "output_blocks") and len(parts) > 1:
        return f"{parts[0]}.{parts[1]}"
    return parts[0]


# --- writers: diffusers state dicts → SGM checkpoint keys ------------------------------------------
def _split_param(key: str) -> tuple[str, str]:
    module, _, leaf = key.rpartition(".")
    return module, leaf


def unet_to_sgm(state_dict: Mapping[str, torch.Tensor], config: Any) -> dict[str, torch.Tensor]:
    """A diffusers U-Net state dict under SGM keys (`model.diffusion_model.…`)."""
    converted = {}
    for key, tensor in state_dict.items():
        module, leaf = _split_param(key)
        sgm = sgm_unet_path(module, config)
        if sgm is None:
            raise ValueError(f"U-Net parameter {key} has no SGM name")
        converted[f"{UNET_PREFIX}{sgm}.{leaf}"] = tensor
    return converted


_VAE_FIXED = {"conv_norm_out": "norm_out"}
_VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def vae_to_ldm(state_dict: Mapping[str, torch.Tensor], config: Any) -> dict[str, torch.Tensor]:
    """A diffusers AutoencoderKL state dict under LDM keys (`first_stage_model.…`)."""
    up_blocks = len(_config_value(config, "up_block_types"))
    converted = {}
    for key, tensor in state_dict.items():
        side, _, rest = key.partition(".")  # encoder / decoder / quant_conv / post_quant_conv
        if side not in ("encoder", "decoder"):
            converted[VAE_PREFIX + key] = tensor
            continue
        parts = rest.split(".")
        if parts[0] in _VAE_FIXED:
            name = ".".join([_VAE_FIXED[parts[0]], *parts[1:]])
        elif parts[0] in ("down_blocks", "up_blocks"):
            block = int(parts[1])
            ldm_block = block if parts[0] == "down_blocks" else up_blocks - 1 - block  # decoder runs reversed
            head = f"{'down' if parts[0] == 'down_blocks' else 'up'}.{ldm_block}"
            if parts[2] == "resnets":
                tail = ".".join(parts[4:]).replace("conv_shortcut", "nin_shortcut")
                name = f"{head}.block.{parts[3]}.{tail}"
            else:  # downsamplers.0.conv / upsamplers.0.conv
                name = f"{head}.{'downsample' if parts[2] == 'downsamplers' else 'upsample'}.conv.{parts[-1]}"
        elif parts[0] == "mid_block" and parts[1] == "resnets":
            tail = ".".join(parts[3:]).replace("conv_shortcut", "nin_shortcut")
            name = f"mid.block_{int(parts[2]) + 1}.{tail}"
        elif parts[0] == "mid_block" and parts[1] == "attentions":
            module, leaf = _split_param(".".join(parts[3:]))
            name = f"mid.attn_1.{_VAE_ATTENTION[module]}.{leaf}"
            if module != "group_norm" and leaf == "weight":
                tensor = tensor[:, :, None, None]  # LDM stores the attention projections as 1x1 convs
        else:
            name = rest
        converted[f"{VAE_PREFIX}{side}.{name}"] = tensor
    return converted


def clip_l_to_sgm(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The first text encoder (CLIP ViT-L, Hugging Face layout) under SGM keys."""
    converted = {}
    for key, tensor in state_dict.items():
        name = key if key.startswith("text_model.") else "text_model." + key
        converted[CLIP_L_PREFIX + name] = tensor
    return converted


_OPEN_CLIP_FIXED = {
    "embeddings.token_embedding.weight": "token_embedding.weight",
    "embeddings.position_embedding.weight": "positional_embedding",
    "final_layer_norm.weight": "ln_final.weight",
    "final_layer_norm.bias": "ln_final.bias",
}
_OPEN_CLIP_LAYER = {
    "self_attn.out_proj": "attn.out_proj",
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
}


def open_clip_to_sgm(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The second text encoder (OpenCLIP bigG with projection) under SGM (OpenCLIP) keys."""
    converted: dict[str, torch.Tensor] = {}
    fused: dict[str, dict[str, torch.Tensor]] = {}  # resblock → q/k/v parts of in_proj
    for key, tensor in state_dict.items():
        if key == "text_projection.weight":
            converted[OPEN_CLIP_PREFIX + "text_projection"] = tensor.T.contiguous()  # (hidden, projection)
            continue
        name = key.removeprefix("text_model.")
        if name in _OPEN_CLIP_FIXED:
            converted[OPEN_CLIP_PREFIX + _OPEN_CLIP_FIXED[name]] = tensor
            continue
        if not name.startswith("encoder.layers."):
            continue  # position_ids and the like: not weights
        _, _, index, inner = name.split(".", 3)
        module, leaf = _split_param(inner)
        block = f"{OPEN_CLIP_PREFIX}transformer.resblocks.{index}"
        if module in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"):
            projection = module.rsplit(".", 1)[1][0]  # q, k or v
            fused.setdefault(f"{block}.attn.in_proj_{leaf}", {})[projection] = tensor
        else:
            converted[f"{block}.{_OPEN_CLIP_LAYER[module]}.{leaf}"] = tensor
    for key, parts in fused.items():
        converted[key] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return converted


def non_weights(positions: int = 77, *, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Entries a published SDXL single file carries besides the weights (loaders must ignore them)."""
    return {
        CLIP_L_PREFIX + "text_model.embeddings.position_ids": torch.arange(positions, device=device)[None],
        OPEN_CLIP_PREFIX + "logit_scale": torch.tensor(4.6052, device=device),
    }
