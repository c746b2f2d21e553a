"""gafu's diffusers → SGM names, checked against diffusers' own single-file (SGM → diffusers) conversion."""

from __future__ import annotations

import pytest
import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKL
from diffusers.loaders.single_file_utils import (
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
    convert_open_clip_checkpoint,
)

from gafu.models import sgm
from gafu.models.configs import sdxl_config_dir


def test_full_sdxl_unet_names_invert_diffusers_conversion(sdxl_meta):
    unet = sdxl_meta[0]
    state = unet.state_dict()
    back = convert_ldm_unet_checkpoint(sgm.unet_to_sgm(state, unet.config), dict(unet.config))
    assert back.keys() == state.keys()
    assert all(back[k] is state[k] for k in state)  # each SGM key led back to its own tensor


def test_full_sdxl_vae_names_invert_diffusers_conversion():
    with init_empty_weights():
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(sdxl_config_dir(), subfolder="vae"))
    state = vae.state_dict()
    back = convert_ldm_vae_checkpoint(sgm.vae_to_ldm(state, vae.config), dict(vae.config))
    assert back.keys() == state.keys()
    assert all(back[k].shape == state[k].shape for k in state)


def test_tiny_model_round_trips_through_sgm_exactly(tiny_base):
    unet, vae, te2 = tiny_base.unet, tiny_base.vae, tiny_base.text_encoder_2
    for model, to_sgm, from_sgm in (
        (
            unet,
            lambda s: sgm.unet_to_sgm(s, unet.config),
            lambda c: convert_ldm_unet_checkpoint(c, dict(unet.config)),
        ),
        (
            vae,
            lambda s: sgm.vae_to_ldm(s, vae.config),
            lambda c: convert_ldm_vae_checkpoint(c, dict(vae.config)),
        ),
        (
            te2,
            sgm.open_clip_to_sgm,
            lambda c: convert_open_clip_checkpoint(te2, c, prefix=sgm.OPEN_CLIP_PREFIX),
        ),
    ):
        state = model.state_dict()
        back = from_sgm(to_sgm(state))
        assert back.keys() == state.keys()
        assert all(torch.equal(back[k], state[k]) for k in state)


# Expected SGM paths read off sd-scripts' library/sdxl_original_unet.py (input_blocks 0: conv_in;
# 1-2 level 0 resnets; 3 downsample; 4-5 level 1; 6 downsample; 7-8 level 2; output_blocks 0-2
# level 2 with the upsampler at 2.2; 3-5 level 1 with 5.2; 6-8 level 0).
@pytest.mark.parametrize(
    ("diffusers", "expected"),
    [
        ("conv_in", "input_blocks.0.0"),
        ("down_blocks.0.resnets.1.conv1", "input_blocks.2.0.in_layers.2"),
        ("down_blocks.0.downsamplers.0.conv", "input_blocks.3.0.op"),
        ("down_blocks.1.resnets.0.conv_shortcut", "input_blocks.4.0.skip_connection"),
        (
            "down_blocks.1.attentions.1.transformer_blocks.1.attn2.to_k",
            "input_blocks.5.1.transformer_blocks.1.attn2.to_k",
        ),
        ("down_blocks.2.resnets.0.time_emb_proj", "input_blocks.7.0.emb_layers.1"),
        ("mid_block.resnets.0.conv2", "middle_block.0.out_layers.3"),
        ("mid_block.attentions.0.proj_in", "middle_block.1.proj_in"),
        ("mid_block.resnets.1.norm1", "middle_block.2.in_layers.0"),
        (
            "up_blocks.0.attentions.2.transformer_blocks.9.ff.net.2",
            "output_blocks.2.1.transformer_blocks.9.ff.net.2",
        ),
        ("up_blocks.0.upsamplers.0.conv", "output_blocks.2.2.conv"),
        ("up_blocks.1.resnets.0.conv_shortcut", "output_blocks.3.0.skip_connection"),
        ("up_blocks.1.upsamplers.0.conv", "output_blocks.5.2.conv"),
        ("up_blocks.2.resnets.2.conv2", "output_blocks.8.0.out_layers.3"),
        ("time_embedding.linear_2", "time_embed.2"),
        ("add_embedding.linear_1", "label_emb.0.0"),
        ("conv_out", "out.2"),
    ],
)
def test_sgm_paths_of_sdxl_layers(sdxl_meta, diffusers, expected):
    unet = sdxl_meta[0]
    unet.get_submodule(diffusers)  # the diffusers path exists
    assert sgm.sgm_unet_path(diffusers, unet.config) == expected


def test_containers_without_an_sgm_counterpart(sdxl_meta):
    config = sdxl_meta[0].config
    assert sgm.sgm_unet_path("down_blocks.1", config) is None
    assert sgm.sgm_unet_path("up_blocks.0.attentions", config) is None
    assert sgm.sgm_block("input_blocks.4.1.proj_in") == "input_blocks.4"
    assert sgm.sgm_block("middle_block.1.proj_in") == "middle_block"
