"""gafu's LoKr files in diffusers: what `load_lora_weights` does with them, and the way that works.

diffusers reads LoKr only through PEFT and only for models whose files already use diffusers'
module names; for SDXL its loader converts kohya LoRA keys (`lora_down`/`lora_up`) alone. The
README says so, and these tests keep it true.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gafu.network.files import load_network, read_lokr_file


@pytest.fixture
def tiny_pipeline(tiny_model):
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline.from_pretrained(tiny_model.diffusers_dir, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _picture(pipe) -> np.ndarray:
    out = pipe(
        "mzh_style, 1girl",
        num_inference_steps=2,
        width=64,
        height=64,
        generator=torch.Generator().manual_seed(0),
        output_type="np",
    )
    return out.images[0].astype(np.float32)


def test_diffusers_sdxl_lora_loader_refuses_a_kohya_lycoris_lokr(tiny_pipeline, tiny_lokr_files):
    """`load_lora_weights` first reads the file with the pipeline's `lora_state_dict`, which converts
    kohya keys for SDXL and rejects every LoKr key. (With peft installed, as `load_lora_weights`
    requires, it stops there with this error; without peft it stops before, asking for peft.)"""
    with pytest.raises(ValueError, match="have not been correctly renamed") as error:
        tiny_pipeline.lora_state_dict(str(tiny_lokr_files[0]), unet_config=tiny_pipeline.unet.config)
    assert "lokr_w1" in str(error.value) and "lora_unet_" in str(error.value)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gafus_loader_applies_a_lokr_to_a_diffusers_pipeline(tiny_pipeline, tiny_lokr_files, dtype):
    """What the README shows for diffusers: `load_network` on the pipeline's own modules, then `apply_to`."""
    pipe = tiny_pipeline.to(dtype=dtype)
    base = _picture(pipe)
    lokr = load_network(tiny_lokr_files[0], pipe.unet, (pipe.text_encoder, pipe.text_encoder_2))
    lokr.to(dtype=dtype)
    assert lokr.names and sorted(lokr.names) == sorted(read_lokr_file(tiny_lokr_files[0]).module_names)
    assert any(name.startswith("lora_te2_") for name in lokr.names)
    lokr.apply_to()
    styled = _picture(pipe)
    lokr.multiplier = 0.5
    half = _picture(pipe)
    lokr.restore()
    assert np.abs(styled - base).mean() > 0.01  # the LoKr changes the picture
    assert np.abs(half - base).mean() < np.abs(styled - base).mean()  # less at a lower weight
    assert np.array_equal(_picture(pipe), base)  # and the base model is untouched after restore()
