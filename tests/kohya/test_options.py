"""sd-scripts options → gafu.toml values; what gafu does not use is listed with the reason."""

import pytest

from gafu.kohya.options import map_options, network_args


def _mapped(**options):
    return map_options(options, family_side=1024)


def _unused(mapped):
    return {u.option: u.reason for u in mapped.unused}


def test_a_lokr_network():
    mapped = _mapped(
        network_module="lycoris.kohya",
        network_dim=32,
        network_alpha=32,
        network_args=[
            "algo=lokr",
            "conv_dim=16",
            "conv_alpha=4",
            "factor=-1",
            "preset=attn-mlp",
            "dropout=0.1",
        ],
    )
    assert mapped.values == {
        "network.dim": 32,
        "network.conv_dim": 16,
        "network.conv_alpha": 4.0,
        "network.factor": -1,
        "network.preset": "attn-mlp",
    }  # alpha = dim is gafu's default (unset), not set again
    assert "a LyCORIS option" in _unused(mapped)["network_args dropout"]


@pytest.mark.parametrize(
    ("options", "kind"),
    [
        ({"network_module": "networks.lora", "network_dim": 32, "network_alpha": 16}, "LoRA"),
        ({"network_module": "lycoris.kohya", "network_args": ["algo=locon", "conv_dim=8"]}, "(locon)"),
    ],
)
def test_other_networks_warn_that_the_recipe_trains_lokr(options, kind):
    mapped = _mapped(**options, unet_lr=1e-4)
    assert not any(key.startswith("network.") for key in mapped.values)
    assert any(kind in w and "the recipe trains LoKr (P6)" in w for w in mapped.warnings)
    assert "network_module" in _unused(mapped)
    assert mapped.values["train.unet_lr"] == 1e-4  # the rest is imported


def test_learning_rates_fall_back_to_learning_rate_as_in_sd_scripts():
    assert _mapped(learning_rate=1e-3).values == {"train.unet_lr": 1e-3, "train.text_encoder_lr_ratio": 1.0}
    mapped = _mapped(learning_rate=5e-4, unet_lr=1e-3, text_encoder_lr=[1e-4, 2e-4])
    assert mapped.values["train.unet_lr"] == 1e-3 and mapped.values["train.text_encoder_lr_ratio"] == 0.1
    assert any("one rate" in n for n in mapped.notes)
    assert _mapped(unet_lr=1e-3, text_encoder_lr=0.0).values["train.train_text_encoder"] is False


def test_an_optimizer_outside_the_recipe_takes_its_learning_rates_with_it():
    mapped = _mapped(optimizer_type="Prodigy", learning_rate=1.0, unet_lr=1.0)
    assert "train.unet_lr" not in mapped.values and "train.optimizer" not in mapped.values
    assert _unused(mapped)["learning_rate"] == "a learning rate for Prodigy, not for AdamW"
    assert _mapped(optimizer_type="adamw8bit").values["train.optimizer"] == "adamw8bit"
    assert _mapped(use_8bit_adam=True).values["train.optimizer"] == "adamw8bit"


@pytest.mark.parametrize(
    ("options", "restart"),
    [
        ({"lr_scheduler": "cosine_with_restarts", "lr_scheduler_num_cycles": 4}, 50),
        ({"lr_scheduler": "cosine_with_restarts", "lr_scheduler_num_cycles": 3, "max_train_epochs": 100}, 33),
        ({"lr_scheduler": "cosine_with_restarts"}, 200),  # sd-scripts' default: one cycle
        ({"lr_scheduler": "cosine", "max_train_epochs": 60}, 60),
    ],
)
def test_cosine_schedules_become_the_restart_period(options, restart):
    assert _mapped(**options).values["train.restart_every_epochs"] == restart


def test_other_schedules_and_warmup_are_listed():
    mapped = _mapped(lr_scheduler="constant", lr_warmup_steps=100)
    assert "train.restart_every_epochs" not in mapped.values
    assert "cosine_with_restarts (P5)" in _unused(mapped)["lr_scheduler"]
    assert "no warmup" in _unused(mapped)["lr_warmup_steps"]
    assert "lr_warmup_steps" not in _unused(_mapped(lr_warmup_steps=0))


def test_steps_without_epochs_warn_and_epochs_win_over_steps():
    mapped = _mapped(max_train_steps=1600)
    assert "train.epochs" not in mapped.values and any("trains by epochs" in w for w in mapped.warnings)
    mapped = _mapped(max_train_steps=1600, max_train_epochs=20)
    assert mapped.values["train.epochs"] == 20 and not mapped.warnings


@pytest.mark.parametrize(
    ("resolution", "expected"), [("1024,1024", None), (1536, 1536), ([1024, 1536], 1280), ("768", 768)]
)
def test_resolutions(resolution, expected):
    mapped = _mapped(resolution=resolution)
    assert mapped.values.get("train.resolution") == expected  # 1024 is the family's side here
    if isinstance(resolution, list):
        assert any("same area" in n for n in mapped.notes)


def test_buckets_choose_the_prep_mode_and_values_gafu_has_are_not_listed():
    assert _mapped(enable_bucket=False).values["prep.mode"] == "pad"
    mapped = _mapped(
        enable_bucket=True, bucket_reso_steps=64, bucket_no_upscale=True, cache_latents=True, sdpa=True
    )
    assert mapped.values == {"prep.mode": "bucket"} and mapped.unused == []
    mapped = _mapped(bucket_reso_steps=32, bucket_no_upscale=False, cache_latents=False, xformers=True)
    assert set(_unused(mapped)) == {"bucket_reso_steps", "bucket_no_upscale", "cache_latents", "xformers"}


def test_saving_and_states():
    mapped = _mapped(save_precision="float", save_state=True, save_last_n_epochs_state=4, output_name=123)
    assert mapped.values["train.save_dtype"] == "fp32" and mapped.values["train.keep_states"] == 4
    assert mapped.values["train.output_name"] == "123"
    assert _mapped(save_state=False).values["train.keep_states"] == 0


def test_unset_values_say_nothing_and_set_ones_are_listed():
    mapped = _mapped(flip_aug=False, wandb_api_key="", lowram=True, max_token_length=225, clip_skip=2)
    assert set(_unused(mapped)) == {"lowram", "max_token_length", "clip_skip"}


def test_samplers_map_to_gafus_names():
    assert _mapped(sample_sampler="k_euler_a").values["sample.sampler"] == "euler_a"
    assert _mapped(sample_sampler="dpmsolver++").values["sample.sampler"] == "dpmpp_2m"
    assert "sample_sampler" in _unused(_mapped(sample_sampler="dpmsingle"))


def test_network_args_parse_lists_and_strings():
    assert network_args(["algo=lokr", "factor=8"]) == {"algo": "lokr", "factor": "8"}
    assert network_args("algo=lokr use_cp") == {"algo": "lokr", "use_cp": True}
