import dataclasses

import pytest

from gafu.plan.memory import GIB, MemoryModel, TrainingShape, estimate_memory

RECIPE_SHAPE = TrainingShape(
    mixed_precision="bf16",
    gradient_checkpointing=True,
    train_text_encoder=True,
    optimizer="adamw",
    cache_latents=True,
    lokr_parameters=50_000_000,
    largest_bucket=(1024, 1024),
)


def test_reproduces_sd_scripts_documented_sdxl_lora_figure():
    # sd-scripts' README: SDXL LoRA training "can be done with 8GB GPU memory (10GB recommended)"
    # with U-Net-only training, gradient checkpointing, cached latents and text-encoder outputs,
    # an 8-bit optimizer and a low dim (4 to 8: ~25 M parameters), batch 1 at 1024².
    shape = dataclasses.replace(
        RECIPE_SHAPE,
        train_text_encoder=False,
        optimizer="adamw8bit",
        lokr_parameters=25_000_000,
        cache_text_encoder_outputs=True,
    )
    estimate = estimate_memory(shape)
    assert 6.5 < estimate.at(1) <= 8.0
    assert estimate.max_batch_size(10.0 - MemoryModel().headroom_gib) >= 1


def test_each_memory_saving_option_saves_memory():
    base = estimate_memory(RECIPE_SHAPE).at(1)
    for change in (
        {"optimizer": "adamw8bit"},
        {"train_text_encoder": False},
        {"largest_bucket": (768, 768)},
        {"mixed_precision": "fp16"},  # same as bf16
    ):
        cheaper = estimate_memory(dataclasses.replace(RECIPE_SHAPE, **change)).at(1)
        assert cheaper <= base, change
    for change in (
        {"gradient_checkpointing": False},
        {"cache_latents": False},
        {"mixed_precision": "no"},
        {"largest_bucket": (1536, 1536)},
        {"lokr_parameters": 100_000_000},
    ):
        dearer = estimate_memory(dataclasses.replace(RECIPE_SHAPE, **change)).at(1)
        assert dearer > base, change


def test_optimizer_state_is_16_or_10_bytes_per_lokr_parameter():
    adamw = estimate_memory(RECIPE_SHAPE).components["LoKr weights, gradients, optimizer state"]
    eight_bit = estimate_memory(dataclasses.replace(RECIPE_SHAPE, optimizer="adamw8bit")).components[
        "LoKr weights, gradients, optimizer state"
    ]
    assert adamw == pytest.approx(50_000_000 * 16 / GIB)
    assert eight_bit == pytest.approx(50_000_000 * 10 / GIB)


def test_activations_scale_with_the_largest_bucket_area():
    small = estimate_memory(RECIPE_SHAPE)
    large = estimate_memory(dataclasses.replace(RECIPE_SHAPE, largest_bucket=(1536, 1536)))
    key = "U-Net activations per sample"
    assert large.components[key] == pytest.approx(small.components[key] * 2.25)


def test_max_batch_size_and_breakdown_agree():
    estimate = estimate_memory(RECIPE_SHAPE)
    for usable in (4.0, 11.3, 15.3, 23.3, 79.3):
        batch = estimate.max_batch_size(usable)
        if batch:
            assert estimate.at(batch) <= usable < estimate.at(batch + 1)
        else:
            assert estimate.at(1) > usable
        shown = max(batch, 1)
        assert sum(estimate.breakdown(shown).values()) == pytest.approx(estimate.at(shown), abs=0.05)


def test_calibration_reproduces_two_measurements():
    shape = dataclasses.replace(RECIPE_SHAPE, largest_bucket=(1536, 1536))
    refitted = MemoryModel().calibrated(shape, batch1_gib=13.0, batch2_gib=16.2, gpu="RTX 4090")
    estimate = estimate_memory(shape, refitted)
    assert estimate.at(1) == pytest.approx(13.0)
    assert estimate.at(2) == pytest.approx(16.2)
    assert refitted.measured_on == "RTX 4090"
    # the per-sample figure is stored per 1024² sample, so other sizes scale from it
    assert refitted.sample_gib_checkpointed == pytest.approx((3.2 - 0.1) / 2.25)


def test_model_for_another_architecture_counts_its_weights_and_scales_activations():
    sdxl = MemoryModel()
    small = sdxl.for_architecture(sdxl.unet_parameters // 4, sdxl.text_encoder_parameters // 2)
    assert small.unet_parameters * 4 == sdxl.unet_parameters
    assert small.sample_gib_checkpointed == pytest.approx(sdxl.sample_gib_checkpointed / 4, rel=1e-6)
    assert small.text_encoder_sample_gib == pytest.approx(sdxl.text_encoder_sample_gib / 2, rel=1e-6)
    assert small.context_gib == sdxl.context_gib  # the CUDA context does not shrink with the model
