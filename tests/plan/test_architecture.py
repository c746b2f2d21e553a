"""The SDXL facts the plan keeps as data, checked against the real architectures on the meta device."""

import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from gafu.plan.memory import MemoryModel
from gafu.plan.network import SDXL_TEXT_ENCODER_WIDTHS, SDXL_UNET_WIDTHS

# stabilityai/stable-diffusion-xl-base-1.0 unet/config.json (the values that shape the layers)
SDXL_UNET = {
    "sample_size": 128,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "block_out_channels": (320, 640, 1280),
    "layers_per_block": 2,
    "transformer_layers_per_block": (1, 2, 10),
    "attention_head_dim": (5, 10, 20),
    "cross_attention_dim": 2048,
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
}
# text_encoder/config.json (CLIP ViT-L/14) and text_encoder_2/config.json (OpenCLIP ViT-bigG/14)
SDXL_TE1 = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12}
SDXL_TE2 = {
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 20,
    "projection_dim": 1280,
    "hidden_act": "gelu",
}
SDXL_VAE = {
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "latent_channels": 4,
    "layers_per_block": 2,
    "sample_size": 1024,
}
# LyCORIS "full" preset target classes, as named in both diffusers and sd-scripts' SDXL U-Net
UNET_TARGETS = ("ResnetBlock2D", "Transformer2DModel", "Downsample2D", "Upsample2D")
TEXT_ENCODER_TARGETS = ("CLIPAttention", "CLIPSdpaAttention", "CLIPMLP")


def _widths(model: torch.nn.Module, targets: tuple[str, ...]) -> set[int]:
    widths = set()
    for module in model.modules():
        if type(module).__name__ not in targets:
            continue
        for layer in module.modules():
            if isinstance(layer, torch.nn.Linear):
                widths |= {layer.in_features, layer.out_features}
            elif isinstance(layer, torch.nn.Conv2d):
                widths |= {layer.in_channels, layer.out_channels}
    return widths


@pytest.fixture(scope="module")
def sdxl_models():
    with torch.device("meta"):
        return {
            "unet": UNet2DConditionModel(**SDXL_UNET),
            "te1": CLIPTextModel(CLIPTextConfig(**SDXL_TE1)),
            "te2": CLIPTextModelWithProjection(CLIPTextConfig(**SDXL_TE2)),
            "vae": AutoencoderKL(**SDXL_VAE),
        }


def test_sdxl_widths_are_the_adapted_layers_widths(sdxl_models):
    assert _widths(sdxl_models["unet"], UNET_TARGETS) == SDXL_UNET_WIDTHS
    te_widths = _widths(sdxl_models["te1"], TEXT_ENCODER_TARGETS) | _widths(
        sdxl_models["te2"], TEXT_ENCODER_TARGETS
    )
    assert te_widths == SDXL_TEXT_ENCODER_WIDTHS


def test_memory_model_parameter_counts_are_sdxls(sdxl_models):
    def count(name):
        return sum(p.numel() for p in sdxl_models[name].parameters())

    model = MemoryModel()
    assert count("unet") == model.unet_parameters
    assert count("te1") + count("te2") == model.text_encoder_parameters
    assert count("vae") == model.vae_parameters
