import dataclasses

import pytest

from gafu import recipe
from gafu.config import NetworkSection, TrainSection
from gafu.errors import ConfigError
from gafu.families import get_family
from gafu.plan import resolve_plan
from gafu.plan.network import SDXL_TEXT_ENCODER_WIDTHS, SDXL_UNET_WIDTHS, factor_problem, layer_widths
from gafu.plan.validate import check_network, check_prediction, check_train

WIDTHS = layer_widths(train_text_encoder=True)


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"unet_lr": 0.0}, "unet_lr = 0: a learning rate must be > 0"),
        ({"unet_lr": -1e-3}, "learning rate must be > 0"),
        ({"text_encoder_lr_ratio": 0.0}, "text-encoder learning rate must be > 0"),
        ({"epochs": 0}, "epochs = 0: train at least 1 epoch"),
        ({"restart_every_epochs": 0}, "restart_every_epochs = 0"),
        ({"save_every_epochs": 0}, "save_every_epochs = 0"),
        ({"batch_size": -2}, "batch_size = -2: must not be negative"),
        (
            {"caption_dropout_rate": 0.1},
            r"caption_dropout_rate = 0.1: caption and tag dropout must stay off \(P7\)",
        ),
        ({"caption_tag_dropout_rate": 0.05}, "caption_tag_dropout_rate = 0.05: .*trigger"),
        ({"caption_dropout_every_n_epochs": 3}, r"caption_dropout_every_n_epochs = 3: .*\(P7\)"),
        ({"multires_noise_discount": 1.5}, "multires_noise_discount between 0 and 1"),
        ({"resolution": 1000}, "resolution = 1000: use 0 .* multiple of 64"),
        ({"vram_gb": -1.0}, "vram_gb = -1"),
    ],
)
def test_train_errors(values, needle):
    with pytest.raises(ConfigError, match=needle) as caught:
        check_train(dataclasses.replace(TrainSection(), **values), "p/gafu.toml")
    assert str(caught.value).startswith("p/gafu.toml: [train]")
    assert "\n" not in str(caught.value)


def test_frozen_text_encoders_need_no_ratio():
    assert check_train(TrainSection(train_text_encoder=False, text_encoder_lr_ratio=0.0), "x") == []


def test_recipe_defaults_pass_without_warnings():
    assert check_train(TrainSection(), "x") == []
    assert check_network(NetworkSection(), WIDTHS, "x") == []


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"unet_lr": 3e-3}, "outside the recipe's range 0.001–0.0015 (P4)"),
        ({"text_encoder_lr_ratio": 2.0}, "one half or one tenth (P4)"),
        ({"keep_tokens": 0}, "keep_tokens = 0"),
        ({"shuffle_caption": False}, "shuffle_caption is off"),
        ({"restart_every_epochs": 300}, "one cosine cycle"),
        ({"save_every_epochs": 500}, "only the final LoKr"),
        ({"mixed_precision": "no"}, "fp32"),
    ],
)
def test_train_warnings(values, needle):
    warnings = check_train(dataclasses.replace(TrainSection(), **values), "x")
    assert any(needle in w for w in warnings), warnings


@pytest.mark.parametrize("factor", [1, 2, 4, 8, 16, 32, 64, -1])
def test_factors_that_divide_every_sdxl_width(factor):
    assert factor_problem(factor, WIDTHS) is None


@pytest.mark.parametrize("factor", [3, 5, 6, 7, 12, 128])
def test_factor_that_does_not_divide_is_an_error(factor):
    with pytest.raises(ConfigError, match=f"factor {factor} does not divide") as caught:
        check_network(NetworkSection(factor=factor), WIDTHS, "p/gafu.toml")
    assert "[network]" in str(caught.value) and "use 4 or 8" in str(caught.value)


def test_factor_misfits_are_the_widths_lycoris_would_split_another_way():
    from lycoris.functional import factorization

    problem = factor_problem(6, WIDTHS)
    named = {int(w) for w in problem.split("(")[1].split(")")[0].replace(" …", "").split(", ")}
    for width in named:
        assert width % 6 and 6 not in factorization(width, 6)  # LyCORIS silently picks another split
    assert factor_problem(0, WIDTHS).startswith("factor must be")


def test_text_encoder_widths_only_count_when_they_train():
    assert layer_widths(train_text_encoder=False) == SDXL_UNET_WIDTHS
    assert layer_widths(train_text_encoder=True) == SDXL_UNET_WIDTHS | SDXL_TEXT_ENCODER_WIDTHS


def test_conv_dim_above_64_warns_with_the_lycoris_authors_advice():
    warnings = check_network(NetworkSection(conv_dim=128), WIDTHS, "x")
    assert len(warnings) == 1
    assert "LyCORIS author advises no more than 64" in warnings[0] and "P6" in warnings[0]
    assert recipe.CONV_DIM_MAX == 64


@pytest.mark.parametrize(
    ("values", "needle"),
    [({"dim": 0}, "dim = 0"), ({"conv_dim": -1}, "conv_dim = -1"), ({"alpha": 0.0}, "alpha")],
)
def test_network_errors(values, needle):
    with pytest.raises(ConfigError, match=needle):
        check_network(dataclasses.replace(NetworkSection(), **values), WIDTHS, "x")


@pytest.mark.parametrize("family_name", ["sdxl", "illustrious", "noob-eps"])
@pytest.mark.parametrize("flag", ["v_parameterization", "zero_terminal_snr"])
def test_v_prediction_flags_on_an_epsilon_family_are_errors(family_name, flag):
    flags = {"v_parameterization": False, "zero_terminal_snr": False, "scale_v_pred_loss": False, flag: True}
    with pytest.raises(ConfigError, match=f"{flag} = true, but .* epsilon-prediction model"):
        check_prediction(get_family(family_name), source="x", **flags)


@pytest.mark.parametrize(
    ("family_name", "v_parameterization", "scale_v_pred_loss", "needle"),
    [
        ("sdxl", False, True, "scale_v_pred_loss_like_noise_pred = true needs v_parameterization"),
        ("noob-vpred", False, False, r"v_parameterization = false, but .* predicts v"),
    ],
)
def test_v_prediction_contradictions_are_errors(family_name, v_parameterization, scale_v_pred_loss, needle):
    with pytest.raises(ConfigError, match=needle):
        check_prediction(
            get_family(family_name),
            v_parameterization=v_parameterization,
            zero_terminal_snr=False,
            scale_v_pred_loss=scale_v_pred_loss,
            source="x",
        )


def test_v_prediction_family_off_recipe_flags_warn():
    warnings = check_prediction(
        get_family("noob-vpred"),
        v_parameterization=True,
        zero_terminal_snr=False,
        scale_v_pred_loss=False,
        source="x",
    )
    assert len(warnings) == 2 and all("P9" in w for w in warnings)


def test_resolve_applies_the_checks_with_the_config_file_named(prepared_project):
    project = prepared_project(n_target=2, n_reg=2, size=(256, 256), family="illustrious")
    train = dataclasses.replace(project.config.train, v_parameterization=True)
    bad = dataclasses.replace(project, config=dataclasses.replace(project.config, train=train))
    with pytest.raises(ConfigError, match=r"gafu\.toml: \[train\] v_parameterization = true"):
        resolve_plan(bad, 12.0, describe=lambda s: None)
    network = dataclasses.replace(project.config.network, factor=6)
    bad = dataclasses.replace(project, config=dataclasses.replace(project.config, network=network))
    called = []
    with pytest.raises(ConfigError, match="factor 6 does not divide"):
        resolve_plan(bad, 12.0, describe=lambda s: called.append(s))
    assert called == []  # the network is not built from settings that fail validation


def test_a_model_trains_at_its_own_side_and_real_models_warn_below_theirs(prepared_project, tiny_model):
    project = prepared_project(n_target=4, n_reg=4, size=(256, 256))
    config = project.config
    # The tiny model's own side is 64 px (its U-Net's sample size 8 × 8): no warning there.
    config.model = dataclasses.replace(config.model, config=tiny_model.config_dir.as_posix())
    config.train = dataclasses.replace(config.train, resolution=64)
    plan = resolve_plan(dataclasses.replace(project, config=config), 12.0, describe=lambda s: None)
    assert plan.dataset.resolution == 64
    assert not any("below the model's" in w for w in plan.warnings)
    # A real SDXL-family model (the shipped SDXL configs: 1024) warns at 256.
    config.model = dataclasses.replace(config.model, config=None)
    config.train = dataclasses.replace(config.train, resolution=256)
    plan = resolve_plan(dataclasses.replace(project, config=config), 12.0, describe=lambda s: None)
    assert any("below the model's 1024" in w for w in plan.warnings)
    config.train = dataclasses.replace(config.train, resolution=32)
    with pytest.raises(ConfigError, match="at least 64"):
        resolve_plan(dataclasses.replace(project, config=config), 12.0, describe=lambda s: None)
