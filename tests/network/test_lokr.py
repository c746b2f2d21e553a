"""The LoKr network on a model: attached at a weight, merged at a weight, zero at the start."""

from __future__ import annotations

import copy

import pytest
import torch
from lycoris.modules.lokr import LokrModule

from gafu.network.lokr import build_network
from gafu.network.settings import LokrSettings

RECIPE = LokrSettings()  # dim 128, factor 8: every tiny layer goes full-matrix
LOW_RANK = LokrSettings(dim=4, conv_dim=4, alpha=2.0, conv_alpha=1.0, factor=4)  # alpha ≠ dim: scale 0.5/0.25
# Largest difference allowed between "attached" and "merged", relative to the output's size.
TOLERANCE = {torch.float32: 1e-5, torch.float16: 5e-3, torch.bfloat16: 3e-2}


def unet_inputs(unet, seed: int = 0) -> dict:
    """A batch for the tiny U-Net: latents, a timestep, text states and SDXL's added conditions."""
    generator = torch.Generator().manual_seed(seed)
    dtype, config = unet.dtype, unet.config
    text_embeds = config.projection_class_embeddings_input_dim - 6 * config.addition_time_embed_dim
    return {
        "sample": torch.randn(2, 4, 8, 8, generator=generator).to(dtype),
        "timestep": torch.tensor([10, 700]),
        "encoder_hidden_states": torch.randn(2, 77, config.cross_attention_dim, generator=generator).to(
            dtype
        ),
        "added_cond_kwargs": {
            "text_embeds": torch.randn(2, text_embeds, generator=generator).to(dtype),
            "time_ids": torch.tensor([[64, 64, 0, 0, 64, 64]] * 2).to(dtype),
        },
    }


@torch.no_grad()
def outputs(unet, te1, te2, tokenizer) -> list[torch.Tensor]:
    ids = tokenizer(
        ["a girl in a white dress", "black hair"], padding="max_length", return_tensors="pt"
    ).input_ids
    return [
        unet(**unet_inputs(unet)).sample.float(),
        te1(ids).last_hidden_state.float(),
        te2(ids).text_embeds.float(),
    ]


def randomize(network, seed: int = 1) -> None:
    """Give every LoKr tensor a value (a fresh network changes nothing: its w2 starts at zero)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)


@pytest.mark.parametrize("settings", [RECIPE, LOW_RANK], ids=["recipe", "low-rank"])
def test_zero_initialised_lokr_leaves_outputs_unchanged(tiny_parts, tiny_base, settings):
    unet, te1, te2 = tiny_parts
    before = outputs(unet, te1, te2, tiny_base.tokenizer)
    network = build_network(unet, (te1, te2), settings)
    network.apply_to()
    after = outputs(unet, te1, te2, tiny_base.tokenizer)
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert network.trainable_parameter_count() > 0


@pytest.mark.parametrize(
    ("dtype", "settings", "multiplier"),
    [
        (torch.float32, RECIPE, 1.0),
        (torch.float32, RECIPE, 0.5),
        (torch.float32, LOW_RANK, 1.7),
        (torch.float16, LOW_RANK, 0.7),
        (torch.bfloat16, RECIPE, 0.7),
        (torch.bfloat16, LOW_RANK, 1.0),
    ],
    ids=[
        "fp32-recipe-1.0",
        "fp32-recipe-0.5",
        "fp32-low-rank-1.7",
        "fp16-low-rank-0.7",
        "bf16-recipe-0.7",
        "bf16-low-rank-1.0",
    ],
)
def test_attached_at_a_weight_equals_merged_at_that_weight(
    tiny_parts, tiny_base, dtype, settings, multiplier
):
    unet, te1, te2 = (part.to(dtype) for part in tiny_parts)
    base = outputs(unet, te1, te2, tiny_base.tokenizer)
    network = build_network(unet, (te1, te2), settings)
    randomize(network)
    network.multiplier = multiplier
    network.apply_to()
    attached = outputs(unet, te1, te2, tiny_base.tokenizer)
    network.merge_into_base(multiplier)
    assert not network.applied
    merged = outputs(unet, te1, te2, tiny_base.tokenizer)
    for before, a, m in zip(base, attached, merged, strict=True):
        scale = a.abs().max()
        assert (a - before).abs().max() > 0.01 * scale  # the LoKr does change the output
        assert (a - m).abs().max() <= TOLERANCE[dtype] * scale, (a - m).abs().max() / scale


def test_multiplier_zero_and_restore_give_the_base_model_back(tiny_parts, tiny_base):
    unet, te1, te2 = tiny_parts
    base = outputs(unet, te1, te2, tiny_base.tokenizer)
    network = build_network(unet, (te1, te2), LOW_RANK)
    randomize(network)
    network.apply_to()
    network.multiplier = 0.0
    assert all(
        torch.allclose(a, b, atol=1e-6)
        for a, b in zip(base, outputs(unet, te1, te2, tiny_base.tokenizer), strict=True)
    )
    network.multiplier = 1.0
    assert not torch.allclose(base[0], outputs(unet, te1, te2, tiny_base.tokenizer)[0])
    network.restore()
    assert all(
        torch.equal(a, b) for a, b in zip(base, outputs(unet, te1, te2, tiny_base.tokenizer), strict=True)
    )


def test_apply_and_restore_leave_the_layers_as_they_were(tiny_parts):
    unet, te1, te2 = tiny_parts
    network = build_network(unet, (te1, te2), LOW_RANK)
    layers = [network.target(name).module for name in network.names]
    before = [sorted(layer.__dict__) for layer in layers]
    for _ in range(3):
        network.apply_to()
        assert all("forward" in layer.__dict__ for layer in layers)
        network.restore()
    assert [sorted(layer.__dict__) for layer in layers] == before  # no forward left on the instance


def test_module_class_can_be_replaced(tiny_parts):
    class FasterLokr(LokrModule):
        """Stands for another implementation with LokrModule's constructor and state."""

    unet, te1, te2 = tiny_parts
    network = build_network(unet, (te1, te2), RECIPE, module_class=FasterLokr)
    default = build_network(*copy.deepcopy(tiny_parts)[:1], copy.deepcopy(tiny_parts)[1:], RECIPE)
    assert {type(m) for m in network.lokr_modules()} == {FasterLokr}
    assert network.names == default.names
    shapes = {k: v.shape for k, v in network.state_dict().items()}
    assert shapes == {k: v.shape for k, v in default.state_dict().items()}


def test_parameter_groups_split_unet_and_text_encoders(tiny_parts):
    network = build_network(tiny_parts[0], tiny_parts[1:], RECIPE)
    groups = {g["name"]: g for g in network.parameter_groups(unet_lr=1e-3, text_encoder_lr=5e-4)}
    assert groups["unet"]["lr"] == 1e-3 and groups["text_encoder"]["lr"] == 5e-4
    counted = sum(p.numel() for g in groups.values() for p in g["params"])
    assert counted == network.trainable_parameter_count()
    unet_only = build_network(tiny_parts[0], tiny_parts[1:], LokrSettings(train_text_encoder=False))
    assert [g["name"] for g in unet_only.parameter_groups(1e-3, 5e-4)] == ["unet"]
