"""Synthetic single files: the SGM layout of a published checkpoint, random weights at a sane scale."""

from __future__ import annotations

import pytest
import torch

from gafu.models.checkpoint import inspect_checkpoint
from gafu.models.load import load_base_model, meta_model
from gafu.models.synthetic import randomize_, write_synthetic_checkpoint


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_a_synthetic_file_loads_as_a_published_one_with_random_weights(tmp_path, tiny_model, dtype):
    path = tmp_path / "synthetic.safetensors"
    size = write_synthetic_checkpoint(path, tiny_model.config_dir, dtype=dtype, seed=1)
    info = inspect_checkpoint(path)
    assert size == path.stat().st_size and info.kind == "sdxl"
    assert info.weight_dtype == {torch.float16: "F16", torch.bfloat16: "BF16"}[dtype]
    assert set(info.tensors) == set(inspect_checkpoint(tiny_model.single_file).tensors)  # same keys
    base = load_base_model(
        path, config_dir=tiny_model.config_dir, tokenizers=tiny_model.diffusers_dir, dtype=torch.float32
    )
    weights = dict(base.unet.named_parameters())
    conv = weights["down_blocks.1.resnets.0.conv1.weight"]  # (64, 32, 3, 3): fan-in 288
    assert conv.std().item() == pytest.approx(288**-0.5, rel=0.15)
    assert torch.all(weights["down_blocks.1.resnets.0.norm1.weight"] == 1)
    assert torch.all(weights["down_blocks.1.resnets.0.conv1.bias"] == 0)
    with torch.no_grad():  # finite, varied numbers through the U-Net
        out = base.unet(
            torch.randn(1, 4, 8, 8),
            torch.tensor([500]),
            torch.randn(1, 77, base.unet.config.cross_attention_dim),
            added_cond_kwargs={"text_embeds": torch.randn(1, 32), "time_ids": torch.ones(1, 6) * 64},
        ).sample
    assert torch.isfinite(out).all() and out.std() > 0


def test_zeros_and_a_module_randomized_in_place(tmp_path, tiny_model):
    path = tmp_path / "zeros.safetensors"
    write_synthetic_checkpoint(path, tiny_model.config_dir, fill="zeros")
    base = load_base_model(path, config_dir=tiny_model.config_dir, tokenizers=tiny_model.diffusers_dir)
    assert all(not p.any() for p in base.text_encoder.parameters())
    _, te1, _ = meta_model(tiny_model.config_dir)
    te1 = randomize_(te1.to_empty(device="cpu"), seed=3)
    [ids] = [b for name, b in te1.named_buffers() if name.endswith("position_ids")]  # CLIP's
    assert ids.flatten().tolist() == list(range(77))
    assert all(torch.isfinite(p).all() for p in te1.parameters())
