"""The network summary `gafu plan` shows: built by the network's own code, on the meta device."""

from __future__ import annotations

import pytest
from accelerate import init_empty_weights

from gafu.network.files import lokr_metadata, save_network
from gafu.network.lokr import build_network
from gafu.network.settings import LokrSettings
from gafu.network.summary import describe_network, summarize_network


@pytest.fixture(scope="module")
def sdxl_recipe_summary():
    return describe_network()


def test_full_sdxl_summary_counts_what_lycoris_kohya_builds(
    tmp_path, sdxl_meta, sdxl_recipe_summary, lycoris_network
):
    summary = sdxl_recipe_summary
    unet, te1, te2 = sdxl_meta
    with init_empty_weights():  # LyCORIS's own kohya network on the same architecture
        lycoris = lycoris_network(unet, te1, te2, LokrSettings(), tmp_path)
    assert len(summary.modules) == len(lycoris.loras) == 788 + 72 + 192
    assert summary.trainable_parameters == sum(p.numel() for m in lycoris.loras for p in m.parameters())
    modules = {m.name: m for m in summary.modules}
    q = modules["lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q"]
    assert (q.component, q.block, q.kind, q.weight_shape, q.full_matrix) == (
        "unet",
        "input_blocks.4",
        "linear",
        (640, 640),
        True,
    )
    ff = modules["lora_unet_middle_block_1_transformer_blocks_0_ff_net_0_proj"]
    assert (ff.weight_shape, ff.full_matrix) == ((10240, 1280), False)  # the big feed-forward goes low-rank
    assert modules["lora_unet_input_blocks_1_0_in_layers_2"].kind == "conv3x3"
    assert modules["lora_unet_output_blocks_0_0_skip_connection"].kind == "conv1x1"
    assert modules["lora_te2_text_model_encoder_layers_0_mlp_fc1"].block == "te2"
    blocks = list(summary.by_block())
    assert blocks[:3] == ["te1", "te2", "input_blocks.1"] and "middle_block" in blocks
    assert sum(count for count, _ in summary.by_block().values()) == len(summary.modules)


def test_factor_4_file_is_larger_about_200_mb(sdxl_recipe_summary):
    factor_8 = sdxl_recipe_summary.file_bytes("fp16")
    factor_4 = describe_network(LokrSettings(factor=4)).file_bytes("fp16")
    assert 2 * factor_8 < factor_4  # P6: factor 4 gives a larger file with more detail
    assert 150e6 < factor_4 < 300e6  # P6: "about 200 MB"
    assert sdxl_recipe_summary.to_dict()["file_mb"]["fp32"] == pytest.approx(2 * factor_8 / 1e6, rel=1e-3)


def test_summary_of_a_config_equals_the_built_network_and_its_file(tmp_path, tiny_model, tiny_parts):
    settings = LokrSettings(dim=4, conv_dim=4, factor=4)
    described = describe_network(settings, config_dir=tiny_model.config_dir)
    network = build_network(tiny_parts[0], tiny_parts[1:], settings)
    assert described == summarize_network(network)
    from gafu.families import get_family

    metadata = lokr_metadata(settings, get_family("sdxl"), output_name="x", resolution=64, num_epochs=1)
    path = save_network(network, tmp_path / "x.safetensors", metadata=metadata, dtype="fp16")
    size = path.stat().st_size
    assert described.file_bytes("fp16") < size < described.file_bytes("fp16") + 200_000  # + the header
