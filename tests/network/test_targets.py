"""Which layers a LoKr adapts and under which names: kohya + LyCORIS's set, with kohya's names."""

from __future__ import annotations

import pytest
from accelerate import init_empty_weights

from gafu.errors import GafuError
from gafu.network.settings import LokrSettings
from gafu.network.targets import select_targets

# SDXL's U-Net by its structure (sd-scripts' sdxl_original_unet.py): transformer blocks per
# Transformer2DModel (input_blocks 4,5: 2; 7,8: 10; middle: 10; output 0-2: 10; 3-5: 2).
SDXL_TRANSFORMER_BLOCKS = 2 * 2 + 2 * 10 + 10 + 3 * 10 + 3 * 2  # 70
SDXL_TRANSFORMER_MODELS = 4 + 1 + 6  # 11, each with proj_in and proj_out
SDXL_RESNETS = 6 + 2 + 9  # 17: in_layers.2, emb_layers.1, out_layers.3 each
SDXL_SKIP_CONNECTIONS = 2 + 9  # input_blocks.4.0, 7.0 and every output resnet change width
SDXL_UNET_MODULES = (
    SDXL_TRANSFORMER_BLOCKS * 10  # attn1 q/k/v/out, attn2 q/k/v/out, ff.net.0.proj, ff.net.2
    + SDXL_TRANSFORMER_MODELS * 2
    + SDXL_RESNETS * 3
    + SDXL_SKIP_CONNECTIONS
    + 2  # Downsample2D op
    + 2  # Upsample2D conv
)
TE1_MODULES = 12 * 6  # 12 layers: q, k, v, out_proj, fc1, fc2
TE2_MODULES = 32 * 6


def test_full_sdxl_adapts_kohya_lycoris_module_set(sdxl_meta):
    unet, te1, te2 = sdxl_meta
    targets = select_targets(unet, (te1, te2), LokrSettings())
    by_component = {c: [t for t in targets if t.component == c] for c in ("unet", "te1", "te2")}
    assert len(by_component["unet"]) == SDXL_UNET_MODULES == 788
    assert len(by_component["te1"]) == TE1_MODULES and len(by_component["te2"]) == TE2_MODULES
    names = {t.name for t in targets}
    assert "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q" in names
    assert "lora_unet_middle_block_1_transformer_blocks_9_ff_net_0_proj" in names
    assert "lora_unet_output_blocks_2_2_conv" in names  # the Upsample2D after output_blocks.2's attention
    assert "lora_unet_input_blocks_3_0_op" in names
    assert "lora_te1_text_model_encoder_layers_11_self_attn_q_proj" in names
    assert "lora_te2_text_model_encoder_layers_31_mlp_fc2" in names
    # LyCORIS's "full" preset names these diffusers layers; kohya's SGM U-Net has no such names.
    for sgm_only in ("input_blocks_0_0", "out_2", "time_embed_0", "time_embed_2", "label_emb_0_0"):
        assert f"lora_unet_{sgm_only}" not in names


@pytest.mark.parametrize("where", ["tiny", "sdxl"])
def test_every_name_maps_to_the_adapted_layer_through_diffusers_converter(
    where, sdxl_meta, tiny_base, diffusers_converter
):
    unet, te1, te2 = sdxl_meta if where == "sdxl" else (tiny_base.unet, *tiny_base.text_encoders)
    targets = select_targets(unet, (te1, te2), LokrSettings())
    found = diffusers_converter([t.name for t in targets], unet, te1, te2)
    assert len(found) == len(targets)
    wrong = [t.name for t in targets if found[t.name] is not t.module]
    assert wrong == []


@pytest.mark.parametrize(
    "settings",
    [
        LokrSettings(),
        LokrSettings(dim=4, conv_dim=4, alpha=2.0, conv_alpha=1.0, factor=4),
        LokrSettings(preset="attn-only"),
        LokrSettings(preset="full-lin", dim=8),
    ],
    ids=["recipe", "low-rank", "attn-only", "full-lin"],
)
def test_same_layers_and_module_shapes_as_lycoris_kohya_network(
    tmp_path, tiny_parts, settings, lycoris_network
):
    from gafu.network.lokr import build_network

    unet, te1, te2 = tiny_parts
    ours = build_network(unet, (te1, te2), settings)
    theirs = lycoris_network(unet, te1, te2, settings, tmp_path)
    their_modules = {id(m.org_module[0]): m for m in theirs.loras}
    our_modules = {id(ours.target(m.lora_name).module): m for m in ours.lokr_modules()}
    assert our_modules.keys() == their_modules.keys()
    for key, module in our_modules.items():
        mine = {
            k: (tuple(v.shape), float(v) if k == "alpha" else None) for k, v in module.state_dict().items()
        }
        other = {
            k: (tuple(v.shape), float(v) if k == "alpha" else None)
            for k, v in their_modules[key].state_dict().items()
        }
        assert mine == other, module.lora_name


def test_full_sdxl_module_shapes_match_lycoris_kohya_network(tmp_path, sdxl_meta, lycoris_network):
    from gafu.network.lokr import build_network

    unet, te1, te2 = sdxl_meta
    settings = LokrSettings()
    with init_empty_weights():
        ours = build_network(unet, (te1, te2), settings)
        theirs = lycoris_network(unet, te1, te2, settings, tmp_path)
    their_shapes = {
        id(m.org_module[0]): {k: tuple(v.shape) for k, v in m.state_dict().items()} for m in theirs.loras
    }
    assert len(their_shapes) == len(ours.names)
    for module in ours.lokr_modules():
        layer = ours.target(module.lora_name).module
        assert {k: tuple(v.shape) for k, v in module.state_dict().items()} == their_shapes[id(layer)]


def test_presets_and_settings_change_the_selection(tiny_base):
    unet, te1, te2 = tiny_base.unet, *tiny_base.text_encoders
    attn_only = select_targets(unet, (te1, te2), LokrSettings(preset="attn-only"))
    assert attn_only and all("attn" in t.name for t in attn_only)  # kohya's CrossAttention class
    no_conv = select_targets(unet, (te1, te2), LokrSettings(preset="full-lin"))
    assert {t.kind for t in no_conv} == {"linear", "conv1x1"}
    unet_only = select_targets(unet, (te1, te2), LokrSettings(train_text_encoder=False))
    assert {t.component for t in unet_only} == {"unet"}
    assert {t.component for t in select_targets(unet, (te1, te2), LokrSettings())} == {"unet", "te1", "te2"}


def test_unknown_preset_is_a_clear_error(tiny_base):
    with pytest.raises(GafuError, match=r"unknown LyCORIS preset 'fulll'.*full"):
        select_targets(tiny_base.unet, tiny_base.text_encoders, LokrSettings(preset="fulll"))
