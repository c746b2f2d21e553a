"""LoKr files: kohya/LyCORIS names and metadata, exact round trips, and refusing other files."""

from __future__ import annotations

import hashlib
import json
import struct

import pytest
import torch
from diffusers import UNet2DConditionModel
from safetensors import safe_open
from safetensors.torch import save_file

from gafu import recipe
from gafu.errors import GafuError
from gafu.families import get_family
from gafu.models.tiny import UNET_CONFIG
from gafu.network.files import load_network, lokr_metadata, model_hashes, read_lokr_file, save_network
from gafu.network.lokr import build_network
from gafu.network.settings import LokrSettings

LOW_RANK = LokrSettings(dim=4, conv_dim=4, alpha=2.0, conv_alpha=1.0, factor=4)
PLAN = {"version": 1, "train": {"epochs": 200, "unet_lr": 0.0013}, "trigger": "mzh_style"}
TAGS = {"2_mzh_style": {"mzh_style": 40, "1girl": 31, "white dress": 9}}


def metadata_for(settings: LokrSettings, family: str = "illustrious") -> dict[str, str]:
    return lokr_metadata(
        settings,
        get_family(family),
        output_name="mzh_style",
        resolution=1024,
        num_epochs=200,
        epoch=50,
        steps=100,
        tag_frequency=TAGS,
        trigger="mzh_style",
        plan=PLAN,
    )


def trained_network(parts, settings: LokrSettings, seed: int = 3):
    """A network whose tensors all have values, as after training."""
    network = build_network(parts[0], parts[1:], settings)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
    return network


@torch.no_grad()
def unet_output(unet) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    config = unet.config
    return unet(
        torch.randn(1, 4, 8, 8, generator=generator),
        torch.tensor([300]),
        torch.randn(1, 77, config.cross_attention_dim, generator=generator),
        added_cond_kwargs={
            "text_embeds": torch.randn(
                1,
                config.projection_class_embeddings_input_dim - 6 * config.addition_time_embed_dim,
                generator=generator,
            ),
            "time_ids": torch.tensor([[64.0, 64, 0, 0, 64, 64]]),
        },
    ).sample


def file_metadata(path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata())


# --- round trips ---------------------------------------------------------------------------------
@pytest.mark.parametrize("settings", [LokrSettings(), LOW_RANK], ids=["recipe", "low-rank"])
def test_save_then_load_restores_identical_tensors_and_metadata(tmp_path, tiny_parts, tiny_base, settings):
    network = trained_network(tiny_parts, settings)
    metadata = metadata_for(settings)
    path = save_network(network, tmp_path / "style.safetensors", metadata=metadata, dtype="fp32")
    saved = file_metadata(path)
    assert {k: saved[k] for k in metadata} == metadata
    assert "sshs_model_hash" in saved

    fresh = tiny_base.unet, tiny_base.text_encoders  # untouched by `trained_network`
    loaded = load_network(path, *fresh)
    assert loaded.settings == settings
    assert loaded.names == network.names
    original, restored = network.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    assert all(torch.equal(original[k], restored[k]) for k in original)
    assert loaded.file_metadata == saved
    # Saving the loaded network again (training continues from it) writes the same tensors.
    again = read_lokr_file(
        save_network(loaded, tmp_path / "again.safetensors", metadata=metadata, dtype="fp32")
    )
    first = read_lokr_file(path)
    assert again.metadata == first.metadata  # sshs_model_hash included: the tensor bytes are the same
    assert again.tensors.keys() == first.tensors.keys()
    assert all(torch.equal(again.tensors[k], first.tensors[k]) for k in first.tensors)


def test_default_save_dtype_and_loaded_network_gives_the_same_output(tmp_path, tiny_parts, tiny_base):
    network = trained_network(tiny_parts, LOW_RANK)
    path = save_network(network, tmp_path / "style.safetensors", metadata=metadata_for(LOW_RANK))
    lokr = read_lokr_file(path)
    assert {t.dtype for t in lokr.tensors.values()} == {
        getattr(torch, {"fp16": "float16", "bf16": "bfloat16"}[recipe.SAVE_DTYPE])
    }
    unet = tiny_parts[0]
    network.apply_to()
    expected = unet_output(unet)
    network.restore()
    loaded = load_network(path, unet, tiny_parts[1:], multiplier=1.0)
    loaded.apply_to()
    # The file holds the tensors rounded to fp16; the outputs differ by that rounding only.
    assert torch.allclose(unet_output(unet), expected, atol=2e-3 * expected.abs().max())
    loaded.restore()


def test_a_lokr_without_metadata_is_rebuilt_by_lycoris(tmp_path, tiny_parts):
    network = trained_network(tiny_parts, LOW_RANK)
    bare = tmp_path / "bare.safetensors"
    save_file({k: v.contiguous() for k, v in network.state_dict().items()}, str(bare))  # no metadata at all
    unet = tiny_parts[0]
    network.apply_to()
    network.multiplier = 0.8
    expected = unet_output(unet)
    network.restore()
    loaded = load_network(bare, unet, tiny_parts[1:], multiplier=0.8)
    loaded.apply_to()
    assert torch.allclose(unet_output(unet), expected, atol=1e-5 * expected.abs().max())


# --- what the file says to other tools -------------------------------------------------------------------
def test_every_saved_key_names_the_adapted_layer_by_diffusers_converter(
    tmp_path, tiny_parts, diffusers_converter
):
    network = trained_network(tiny_parts, LOW_RANK)
    path = save_network(network, tmp_path / "style.safetensors", metadata=metadata_for(LOW_RANK))
    lokr = read_lokr_file(path)
    found = diffusers_converter(lokr.module_names, *tiny_parts)
    assert all(found[name] is network.target(name).module for name in lokr.module_names)
    for name in lokr.module_names:
        tensors = set(lokr.module_tensors(name))
        assert "alpha" in tensors and "lokr_w1" in tensors
        assert tensors - {"alpha", "lokr_w1"} in ({"lokr_w2"}, {"lokr_w2_a", "lokr_w2_b"})
    assert any(n.startswith("lora_te1_text_model_encoder_layers_") for n in lokr.module_names)
    assert any(n.startswith("lora_te2_text_model_encoder_layers_") for n in lokr.module_names)
    assert "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q" in lokr.module_names


def test_unet_names_are_comfyuis_names_for_the_checkpoint_keys(tmp_path, tiny_model, tiny_parts):
    # ComfyUI (comfy/lora.py, model_lora_keys_unet) names U-Net layers "lora_unet_" + the SGM
    # checkpoint key without ".weight", dots as underscores; the tiny SGM file's keys are checked
    # against diffusers' single-file loader in test_models_load.
    with safe_open(str(tiny_model.single_file), framework="pt") as f:
        comfy_names = {
            "lora_unet_"
            + key.removeprefix("model.diffusion_model.").removesuffix(".weight").replace(".", "_")
            for key in f.keys()  # noqa: SIM118 (safe_open is not a dict)
            if key.startswith("model.diffusion_model.") and key.endswith(".weight")
        }
    network = trained_network(tiny_parts, LOW_RANK)
    unet_names = [n for n in network.names if n.startswith("lora_unet_")]
    assert unet_names and set(unet_names) <= comfy_names


@pytest.mark.parametrize(("family", "prediction"), [("illustrious", "epsilon"), ("noob-vpred", "v")])
def test_metadata_follows_kohya_and_modelspec(tmp_path, tiny_parts, family, prediction):
    network = trained_network(tiny_parts, LokrSettings())
    path = save_network(
        network, tmp_path / "style.safetensors", metadata=metadata_for(LokrSettings(), family)
    )
    meta = file_metadata(path)
    assert meta["ss_network_module"] == "lycoris.kohya"
    assert json.loads(meta["ss_network_args"]) == {
        "algo": "lokr",
        "conv_dim": "64",
        "conv_alpha": "64",
        "factor": "8",
        "preset": "full",
    }
    assert (meta["ss_network_dim"], float(meta["ss_network_alpha"])) == ("128", 128.0)
    assert meta["ss_base_model_version"] == "sdxl_base_v1-0"  # A1111/Forge list SDXL LoRAs by this prefix
    assert meta["modelspec.architecture"] == "stable-diffusion-xl-v1-base/lora"
    assert meta["modelspec.prediction_type"] == prediction
    assert meta["modelspec.resolution"] == "1024x1024" and meta["ss_resolution"] == "(1024, 1024)"
    assert (meta["ss_num_epochs"], meta["ss_epoch"], meta["ss_output_name"]) == ("200", "50", "mzh_style")
    assert json.loads(meta["ss_tag_frequency"]) == TAGS
    assert json.loads(meta["gafu_plan"]) == PLAN
    assert meta["modelspec.trigger_phrase"] == "mzh_style"
    # sshs_model_hash is the SHA-256 of the tensor bytes, which AUTOMATIC1111 computes itself.
    data = path.read_bytes()
    header_length = struct.unpack("<Q", data[:8])[0]
    assert meta["sshs_model_hash"] == hashlib.sha256(data[8 + header_length :]).hexdigest()


# --- refusing other files ------------------------------------------------------------------------------
def test_a_lokr_for_another_architecture_is_refused_by_its_names(tmp_path, tiny_base):
    sd15_names = [
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q",
        "lora_te_text_model_encoder_layers_0_self_attn_q_proj",
    ]
    path = tmp_path / "sd15.safetensors"
    tensors = {}
    for name in sd15_names:
        tensors.update(
            {
                f"{name}.lokr_w1": torch.zeros(8, 8),
                f"{name}.lokr_w2": torch.zeros(40, 96),
                f"{name}.alpha": torch.tensor(128.0),
            }
        )
    save_file(tensors, str(path))
    with pytest.raises(
        GafuError, match=r"not a LoKr for SDXL: 2 of its 2 modules .*another model architecture"
    ):
        load_network(path, tiny_base.unet, tiny_base.text_encoders)


def test_a_lokr_for_another_size_is_refused_by_its_shapes(tmp_path, tiny_base):
    other = UNet2DConditionModel(
        **{**UNET_CONFIG, "block_out_channels": [32, 32, 32]}
    )  # same names, narrower
    network = build_network(other, None, LokrSettings(train_text_encoder=False))
    path = save_network(network, tmp_path / "narrow.safetensors", metadata=metadata_for(LokrSettings()))
    with pytest.raises(
        GafuError, match=r"does not fit this model: module lora_unet_\w+ .*cannot adapt a layer"
    ):
        load_network(path, tiny_base.unet, tiny_base.text_encoders)


def test_a_lora_is_not_a_lokr(tmp_path, tiny_base):
    path = tmp_path / "lora.safetensors"
    name = "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q"
    save_file(
        {
            f"{name}.lora_down.weight": torch.zeros(4, 64),
            f"{name}.lora_up.weight": torch.zeros(64, 4),
            f"{name}.alpha": torch.tensor(4.0),
        },
        str(path),
    )
    with pytest.raises(GafuError, match=r"not a LoKr file \(it holds lora_down.weight"):
        load_network(path, tiny_base.unet, tiny_base.text_encoders)


def test_text_encoder_modules_need_the_text_encoders(tmp_path, tiny_parts, tiny_base):
    network = trained_network(tiny_parts, LokrSettings())
    path = save_network(network, tmp_path / "style.safetensors", metadata=metadata_for(LokrSettings()))
    with pytest.raises(GafuError, match="adapts the text encoders"):
        load_network(path, tiny_base.unet, None)


def test_broken_files_are_refused(tmp_path, tiny_parts, tiny_base):
    network = trained_network(tiny_parts, LokrSettings())
    path = save_network(network, tmp_path / "style.safetensors", metadata=metadata_for(LokrSettings()))
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(GafuError, match="truncated"):
        load_network(cut, tiny_base.unet, tiny_base.text_encoders)
    text = tmp_path / "notes.safetensors"
    text.write_text("not a model", encoding="utf-8")
    with pytest.raises(GafuError, match="not a model checkpoint"):
        load_network(text, tiny_base.unet, tiny_base.text_encoders)


def test_saving_is_atomic_on_a_full_disk(tmp_path, tiny_parts, write_failure):
    import errno

    network = trained_network(tiny_parts, LokrSettings())
    path = save_network(network, tmp_path / "style.safetensors", metadata=metadata_for(LokrSettings()))
    before = path.read_bytes()
    write_failure.under(tmp_path, errno.ENOSPC)
    with pytest.raises(GafuError, match="disk full"):
        save_network(
            trained_network(tiny_parts, LokrSettings(), seed=9), path, metadata=metadata_for(LokrSettings())
        )
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["style.safetensors"]


def addnet_legacy_hash(path) -> str:
    """sd-webui-additional-networks' `legacy_hash_file`, the reader of `sshs_legacy_hash`: the file
    saved again with its `ss_*` metadata only, SHA-256 of 64 KiB at 1 MiB (AUTOMATIC1111's old
    `sd_models.model_hash`)."""
    from safetensors.torch import load_file, save

    metadata = {k: v for k, v in file_metadata(path).items() if k.startswith("ss_")}
    data = save(load_file(str(path)), metadata)
    return hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8]


def test_the_legacy_hash_is_the_one_its_reader_computes_and_left_out_when_it_would_hash_nothing(
    tmp_path, tiny_parts
):
    small = save_network(
        trained_network(tiny_parts, LOW_RANK), tmp_path / "small.safetensors", metadata=metadata_for(LOW_RANK)
    )
    assert small.stat().st_size < 0x100000
    # Under 1 MiB there is nothing at 1 MiB to hash: the value would be SHA-256 of no bytes.
    assert "sshs_legacy_hash" not in file_metadata(small)
    assert addnet_legacy_hash(small) == hashlib.sha256(b"").hexdigest()[:8]
    # A file over 1 MiB (the tiny model's LoKr files are not): the value its reader computes.
    from safetensors.torch import save_file

    tensors = {"lora_unet_a.lokr_w1": torch.randn(8, 8), "lora_unet_a.lokr_w2": torch.randn(640, 640)}
    metadata = {**metadata_for(LOW_RANK), "gafu_plan": json.dumps(PLAN)}
    _, legacy = model_hashes(tensors, metadata)
    save_file(tensors, str(tmp_path / "large.safetensors"), metadata=metadata)
    assert legacy == addnet_legacy_hash(tmp_path / "large.safetensors") != hashlib.sha256(b"").hexdigest()[:8]
