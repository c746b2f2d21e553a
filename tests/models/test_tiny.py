"""The tiny SDXL-architecture model tests and `gafu demo` use."""

from __future__ import annotations

import torch

from gafu.models.tiny import TINY_WORDS, build_tiny_components


def test_tiny_model_has_sdxls_structure(tiny_base):
    unet, te1, te2 = tiny_base.unet, tiny_base.text_encoder, tiny_base.text_encoder_2
    assert unet.config.addition_embed_type == "text_time"
    assert unet.config.cross_attention_dim == te1.config.hidden_size + te2.config.hidden_size
    assert unet.config.down_block_types == ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"]
    assert any(name.endswith("transformer_blocks.0.attn2") for name, _ in unet.named_modules())
    assert type(te2).__name__ == "CLIPTextModelWithProjection" and type(te1).__name__ == "CLIPTextModel"
    assert 2 ** (len(tiny_base.vae.config.block_out_channels) - 1) == 8  # latents are 1/8 of the picture


def test_tiny_model_is_deterministic_by_seed():
    first, again, other = build_tiny_components(1), build_tiny_components(1), build_tiny_components(2)
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        a, b, c = (parts[name].state_dict() for parts in (first, again, other))
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert not all(torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point() and a[k].std() > 0)


def test_tiny_tokenizers_know_a_few_words_and_every_character(tiny_base):
    tokenizer = tiny_base.tokenizer
    ids = tokenizer(" ".join(TINY_WORDS)).input_ids
    assert len(ids) == len(TINY_WORDS) + 2  # each word one token, plus start and end
    assert tokenizer.decode(tokenizer("ßtyle 画風").input_ids, skip_special_tokens=True) == "ßtyle 画風"
    assert ids[-1] == max(tokenizer.get_vocab().values())  # <|endoftext|> has the highest id, as in CLIP


def test_tiny_files_are_small(tiny_model):
    assert tiny_model.single_file.stat().st_size < 20_000_000
    assert (tiny_model.diffusers_dir / "model_index.json").is_file()
    assert not any(tiny_model.config_dir.rglob("*.safetensors"))  # configs only
