"""A tiny model with SDXL's architecture, for tests and `gafu demo`.

Same structure as SDXL base — a U-Net with SDXL's three levels, cross-attention transformer blocks
and `text_time` added conditioning, two CLIP text encoders (the second with a projection) whose
hidden sizes add up to the U-Net's cross-attention width, a VAE that downsamples 8x, and CLIP
tokenizers — with tiny widths, so it builds in well under a second and works on 64 px pictures.
It is saved in both forms users have: a diffusers folder and a single-file SGM checkpoint.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from gafu.fsio import atomic_path
from gafu.models import sgm
from gafu.models.configs import sdxl_config_dir
from gafu.models.tokenizers import byte_characters, write_sdxl_tokenizers

TINY_SIDE = 64  # pixels; the latent side is 8
TINY_HIDDEN = 32  # text encoder width; the U-Net's cross-attention is 2 × this, like SDXL's 768 + 1280
TINY_TIME_EMBED = 8  # SDXL: 256
# A few words become whole BPE tokens; every other text falls back to single characters.
TINY_WORDS = ("girl", "style", "dress", "white", "black", "hair", "smile", "solo", "the", "a")

UNET_CONFIG = {
    "sample_size": TINY_SIDE // 8,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "block_out_channels": [32, 64, 64],
    "layers_per_block": 2,  # as SDXL: the SGM block numbers (input_blocks.4 …) are SDXL's
    "attention_head_dim": [2, 4, 4],  # SDXL's config names the head count so (5, 10, 20)
    "transformer_layers_per_block": [1, 1, 2],  # SDXL: [1, 2, 10]
    "cross_attention_dim": 2 * TINY_HIDDEN,
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": TINY_TIME_EMBED,
    # pooled text embedding + 6 size/crop numbers, each embedded in TINY_TIME_EMBED
    "projection_class_embeddings_input_dim": TINY_HIDDEN + 6 * TINY_TIME_EMBED,
    "norm_num_groups": 32,
}
VAE_CONFIG = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,  # 3 downsamples: 8x, as SDXL
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [8, 16, 16, 16],
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "latent_channels": 4,
    "sample_size": TINY_SIDE,
    "scaling_factor": 0.13025,  # SDXL's
    "force_upcast": True,
}


def _text_config(hidden_act: str, architecture: str, vocab_size: int) -> dict:
    # Token ids 0/1/2 and `eos_token_id == 2` are SDXL's own (legacy) values: pooling then takes
    # the highest token id, which is <|endoftext|> in CLIP's vocabulary and in the tiny one.
    return {
        "architectures": [architecture],
        "hidden_size": TINY_HIDDEN,
        "intermediate_size": 2 * TINY_HIDDEN,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": 77,
        "projection_dim": TINY_HIDDEN,
        "hidden_act": hidden_act,
        "vocab_size": vocab_size,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "pad_token_id": 1,
    }


@dataclass
class TinyModel:
    """Where a saved tiny model lives."""

    root: Path
    diffusers_dir: Path  # a full diffusers folder, tokenizers included
    single_file: Path  # the same weights in one SGM-layout .safetensors
    config_dir: Path  # the architecture configs alone, for loading `single_file` offline


def build_tiny_components(
    seed: int = 0, *, words: Sequence[str] = TINY_WORDS, unet: dict = UNET_CONFIG, vae: dict = VAE_CONFIG
) -> dict:
    """The tiny model's components in memory (deterministic by `seed`), keyed as in a pipeline.

    `words` are the tokenizers' whole-word tokens; `unet` and `vae` the two architectures' configs.
    """
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    vocab, _ = tiny_vocabulary(words)
    torch.manual_seed(seed)
    te1_config = CLIPTextConfig(**_text_config("quick_gelu", "CLIPTextModel", len(vocab)))
    te2_config = CLIPTextConfig(**_text_config("gelu", "CLIPTextModelWithProjection", len(vocab)))
    scheduler_config = json.loads(
        (sdxl_config_dir() / "scheduler" / "scheduler_config.json").read_text("utf-8")
    )
    return {
        "unet": UNet2DConditionModel(**unet).eval(),
        "vae": AutoencoderKL(**vae).eval(),
        "text_encoder": CLIPTextModel(te1_config).eval(),
        "text_encoder_2": CLIPTextModelWithProjection(te2_config).eval(),
        "scheduler": EulerDiscreteScheduler.from_config(scheduler_config),
    }


def save_tiny_model(
    root: Path, *, seed: int = 0, dtype: torch.dtype = torch.float32, v_pred: bool = False
) -> TinyModel:
    """Build the tiny model and save it as a diffusers folder, a single SGM file and a config folder.

    `v_pred` adds the `v_pred` marker key NoobAI-XL v-prediction checkpoints carry.
    """
    root = Path(root)
    model = TinyModel(
        root=root,
        diffusers_dir=root / "diffusers",
        single_file=root / ("tiny-sdxl-vpred.safetensors" if v_pred else "tiny-sdxl.safetensors"),
        config_dir=root / "config",
    )
    components = build_tiny_components(seed)
    if dtype != torch.float32:
        for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
            components[name].to(dtype)
    write_folder(model.diffusers_dir, lambda folder: _save_diffusers(components, folder))
    write_folder(model.config_dir, lambda folder: save_configs(components, folder))
    save_sgm_checkpoint(components, model.single_file, dtype=dtype, v_pred=v_pred)
    return model


def save_sgm_checkpoint(
    components: dict, path: Path, *, dtype: torch.dtype = torch.float16, v_pred: bool = False
) -> None:
    """Write U-Net, VAE and both text encoders as one SGM-layout `.safetensors` (atomically)."""
    from safetensors.torch import save_file

    unet, vae = components["unet"], components["vae"]
    tensors = {
        **sgm.unet_to_sgm(unet.state_dict(), unet.config),
        **sgm.vae_to_ldm(vae.state_dict(), vae.config),
        **sgm.clip_l_to_sgm(components["text_encoder"].state_dict()),
        **sgm.open_clip_to_sgm(components["text_encoder_2"].state_dict()),
    }
    tensors.update(sgm.non_weights())  # real SDXL checkpoints carry these too
    if v_pred:
        tensors["v_pred"] = torch.tensor([])  # NoobAI-XL v-pred's marker
    tensors = {
        key: (t.to(dtype) if t.is_floating_point() and key != "v_pred" else t).contiguous()
        for key, t in tensors.items()
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})


def write_folder(folder: Path, write) -> None:
    """Write a folder beside its final place and rename it there, so it is whole or absent."""
    staging = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    write(staging)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(staging, folder)


def _save_diffusers(components: dict, folder: Path) -> None:
    from transformers.utils import logging as transformers_logging

    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        transformers_logging.disable_progress_bar()  # a progress bar per one-shard tiny file is noise
        try:
            components[name].save_pretrained(folder / name)
        finally:
            transformers_logging.enable_progress_bar()
    components["scheduler"].save_pretrained(folder / "scheduler")
    write_tiny_tokenizers(folder)
    shutil.copy(sdxl_config_dir() / "model_index.json", folder / "model_index.json")


def save_configs(components: dict, folder: Path) -> None:
    """Write the architecture configs alone (what `[model] config` names for a single file)."""
    for name in ("unet", "vae"):
        components[name].save_config(folder / name)
    for name in ("text_encoder", "text_encoder_2"):
        components[name].config.save_pretrained(folder / name)
    components["scheduler"].save_pretrained(folder / "scheduler")
    shutil.copy(sdxl_config_dir() / "model_index.json", folder / "model_index.json")


# --- tokenizers ---------------------------------------------------------------------------------
def tiny_vocabulary(words: Sequence[str] = TINY_WORDS) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A small CLIP-style BPE vocabulary: every byte (alone and word-final), `words` whole, specials.

    Each word gets merges until BPE, applying every merge so far by rank, reads it as one token;
    a merge added later never changes how an earlier word reads, so every word stays whole.
    """
    characters = byte_characters()
    vocab = {c: i for i, c in enumerate(characters)}
    vocab.update({c + "</w>": len(characters) + i for i, c in enumerate(characters)})
    merges: list[tuple[str, str]] = []
    ranks: dict[tuple[str, str], int] = {}
    for word in words:
        while len(symbols := bpe_symbols(word, ranks)) > 1:
            pair = (symbols[0], symbols[1])
            ranks[pair] = len(merges)
            merges.append(pair)
            vocab.setdefault(pair[0] + pair[1], len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)  # the highest id, as in CLIP (pooling relies on it)
    return vocab, merges


def bpe_symbols(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """`word` split as CLIP's BPE splits it: merge the best-ranked adjacent pair until none is known."""
    symbols = [*word[:-1], word[-1] + "</w>"]
    while len(symbols) > 1:
        best = min(itertools.pairwise(symbols), key=lambda pair: ranks.get(pair, len(ranks)))
        if best not in ranks:
            break
        merged, i = [], 0
        while i < len(symbols):
            if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                merged.append(symbols[i] + symbols[i + 1])
                i += 2
            else:
                merged.append(symbols[i])
                i += 1
        symbols = merged
    return symbols


def write_tiny_tokenizers(folder: Path, words: Sequence[str] = TINY_WORDS) -> None:
    """Write `tokenizer/` and `tokenizer_2/` with SDXL's settings (the second pads with "!")."""
    vocab, merges = tiny_vocabulary(words)
    write_sdxl_tokenizers(folder, sorted(vocab, key=vocab.__getitem__), merges)
