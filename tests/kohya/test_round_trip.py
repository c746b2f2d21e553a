"""Round trip: kohya files → `gafu init --from-kohya` → prep → plan → `--export kohya` gives back the
kohya options gafu knows, on several configs (flat and sectioned TOML, the GUI's JSON, gafu's own export).

Where files live is not compared (image_dir, output_dir, caption_extension, sample_prompts: the
export points at gafu's prepared dataset, whose captions are `.txt`); every training value is.
"""

import json
import tomllib
from pathlib import Path

import pytest

from gafu.kohya import init_from_kohya
from gafu.kohya.export import export_kohya
from gafu.plan import resolve_plan
from gafu.prep.prepare import prepare
from gafu.project import Project
from tests.kohya import kohya_files

# sd-scripts options gafu maps to gafu.toml, compared as the export writes them.
TRAINING_OPTIONS = (
    "pretrained_model_name_or_path",
    "network_module",
    "network_dim",
    "network_alpha",
    "network_train_unet_only",
    "optimizer_type",
    "lr_scheduler",
    "lr_scheduler_num_cycles",
    "max_grad_norm",
    "max_train_epochs",
    "train_batch_size",
    "gradient_accumulation_steps",
    "mixed_precision",
    "no_half_vae",
    "gradient_checkpointing",
    "seed",
    "multires_noise_iterations",
    "multires_noise_discount",
    "noise_offset",
    "min_snr_gamma",
    "v_parameterization",
    "zero_terminal_snr",
    "scale_v_pred_loss_like_noise_pred",
    "save_every_n_epochs",
    "save_precision",
    "save_state",
    "save_last_n_epochs_state",
    "save_model_as",
    "output_name",
    "sample_every_n_epochs",
    "sample_sampler",
    "cache_latents",
    "cache_latents_to_disk",
    "sdpa",
    "prior_loss_weight",
)
LOKR_ARGS = ("algo", "conv_dim", "conv_alpha", "factor", "preset")
DATASET_OPTIONS = ("resolution", "batch_size", "enable_bucket", "bucket_reso_steps", "bucket_no_upscale")
SUBSET_OPTIONS = (
    "keep_tokens",
    "shuffle_caption",
    "caption_dropout_rate",
    "caption_tag_dropout_rate",
    "caption_dropout_every_n_epochs",
)


def _flat(config):
    """sd-scripts' read_config_from_file: every table's keys in one namespace."""
    flat = {}
    for key, value in config.items():
        flat.update(value if isinstance(value, dict) else {key: value})
    return flat


def _normal(name, value):
    """A value as sd-scripts reads it (case of the optimizer, `1024,1024` resolutions, ints as floats)."""
    if name == "optimizer_type":
        return str(value).lower()
    if name == "resolution":
        sides = [int(v) for v in (value if isinstance(value, list) else str(value).split(","))]
        return (sides[0], sides[-1])
    if isinstance(value, int | float) and not isinstance(value, bool):
        return pytest.approx(float(value), rel=1e-9)
    return value


def _lokr_args(flat):
    pairs = (item.split("=", 1) for item in flat.get("network_args", []))
    return {
        k: _normal(k, float(v) if k != "algo" and k != "preset" else v) for k, v in pairs if k in LOKR_ARGS
    }


def _learning_rates(flat):
    """What each part trains at in sd-scripts: its own rate, else learning_rate."""
    base = flat.get("learning_rate")
    unet = flat.get("unet_lr") or base
    text = flat.get("text_encoder_lr")
    text = (text[0] if isinstance(text, list) else text) if text not in (None, []) else base
    return _normal("lr", unet), None if flat.get("network_train_unet_only") else _normal("lr", text)


def _subsets(dataset, data_dirs=None):
    """(is_reg, num_repeats, pictures) of each subset, from a dataset TOML or DreamBooth folders."""
    from gafu.images import list_source_pictures
    from gafu.layout import parse_concept_folder

    found = []
    if dataset is not None:
        for entry in dataset["datasets"]:
            for subset in entry["subsets"]:
                folder = subset["image_dir"]
                count = len(list_source_pictures(Path(folder)))
                found.append((subset.get("is_reg", False), subset.get("num_repeats", 1), count))
    for is_reg, outer in (data_dirs or {}).items():
        for folder in sorted(outer.iterdir()):
            if parsed := parse_concept_folder(folder.name):
                found.append((is_reg, parsed[0], len(list_source_pictures(folder))))
    return sorted(found)


def _dataset_values(dataset):
    """The first target subset's values over its dataset's over [general] (sd-scripts' fallbacks)."""
    general = dataset.get("general", {})
    entry = dataset["datasets"][0]
    subset = next(s for s in entry["subsets"] if not s.get("is_reg"))
    return {**general, **{k: v for k, v in entry.items() if k != "subsets"}, **subset}


def _import_and_export(tmp_path, config, dataset=None, **kwargs):
    result = init_from_kohya(tmp_path / "project", config, dataset, **kwargs)
    project = Project.open(tmp_path / "project")
    summary = prepare(project, workers=1)
    assert summary.exit_code == 0 and summary.captions_carried  # the captions came along
    plan = resolve_plan(project, 24.0, describe=lambda settings: None)
    export_kohya(plan, project.root, tmp_path / "export")
    training = _flat(tomllib.loads((tmp_path / "export" / "config.toml").read_text(encoding="utf-8")))
    exported = tomllib.loads((tmp_path / "export" / "dataset.toml").read_text(encoding="utf-8"))
    return result, training, exported


def _assert_round_trip(source, source_dataset_values, source_subsets, training, exported):
    """Every option gafu knows that the source sets comes back with the same value."""
    compared = []
    for name in TRAINING_OPTIONS:
        if name in source:
            assert name in training, f"{name} missing from the export"
            assert _normal(name, training[name]) == _normal(name, source[name]), name
            compared.append(name)
    if "network_args" in source:
        exported_args = _lokr_args(training)
        for key, value in _lokr_args(source).items():
            assert exported_args.get(key) == value, f"network_args {key}"
        compared.append("network_args")
    if any(k in source for k in ("learning_rate", "unet_lr", "text_encoder_lr")):
        assert _learning_rates(training) == _learning_rates(source)
        compared.append("learning rates")
    entry = exported["datasets"][0]
    exported_values = {**exported["general"], **entry, **entry["subsets"][0]}
    for name in DATASET_OPTIONS + SUBSET_OPTIONS:
        if name in source_dataset_values:
            assert _normal(name, exported_values[name]) == _normal(name, source_dataset_values[name]), name
            compared.append(name)
    assert _subsets(exported) == source_subsets
    return compared


def test_a_flat_config_and_its_dataset_toml(tmp_path):
    config, dataset_path = kohya_files.write_flat_config(tmp_path / "kohya")
    source = tomllib.loads(config.read_text(encoding="utf-8"))
    dataset = tomllib.loads(dataset_path.read_text(encoding="utf-8"))
    result, training, exported = _import_and_export(tmp_path, config)
    compared = _assert_round_trip(source, _dataset_values(dataset), _subsets(dataset), training, exported)
    assert len(compared) >= 35  # nearly every option of the fixture is one gafu knows
    assert result.config.project.family == "illustrious" and result.config.train.resolution == 1024


def test_a_sectioned_v_prediction_config_over_dreambooth_folders(tmp_path):
    config = kohya_files.write_sectioned_vpred_config(tmp_path / "kohya")
    source = _flat(tomllib.loads(config.read_text(encoding="utf-8")))
    result, training, exported = _import_and_export(tmp_path, config)
    folders = {False: tmp_path / "kohya" / "img", True: tmp_path / "kohya" / "reg"}
    compared = _assert_round_trip(source, source, _subsets(None, folders), training, exported)
    assert {"v_parameterization", "zero_terminal_snr", "network_train_unet_only", "resolution"} <= set(
        compared
    )
    assert result.config.project.family == "noob-vpred"
    assert result.config.prep.caption_extensions == [".caption"]  # carried from .caption files


def test_the_json_kohya_ss_saves(tmp_path):
    path = kohya_files.write_gui_config(tmp_path / "kohya")
    gui = json.loads(path.read_text(encoding="utf-8"))
    # The GUI's fields under sd-scripts' names, as kohya_ss passes them (kohya_gui/lora_gui.py).
    source = {
        "pretrained_model_name_or_path": gui["pretrained_model_name_or_path"],
        "network_module": "lycoris.kohya",
        "network_dim": gui["network_dim"],
        "network_alpha": gui["network_alpha"],
        "network_args": [
            "algo=lokr",
            f"preset={gui['LyCORIS_preset']}",
            f"conv_dim={gui['conv_dim']}",
            f"conv_alpha={gui['conv_alpha']}",
            f"factor={gui['factor']}",
        ],
        "optimizer_type": gui["optimizer"],
        "learning_rate": gui["learning_rate"],
        "unet_lr": gui["unet_lr"],
        "text_encoder_lr": gui["text_encoder_lr"],
        "lr_scheduler": gui["lr_scheduler"],
        "lr_scheduler_num_cycles": int(gui["lr_scheduler_num_cycles"]),
        "max_train_epochs": gui["epoch"],
        "train_batch_size": gui["train_batch_size"],
        "gradient_accumulation_steps": gui["gradient_accumulation_steps"],
        "mixed_precision": gui["mixed_precision"],
        "gradient_checkpointing": gui["gradient_checkpointing"],
        "seed": int(gui["seed"]),
        "multires_noise_iterations": gui["multires_noise_iterations"],
        "multires_noise_discount": gui["multires_noise_discount"],
        "save_every_n_epochs": gui["save_every_n_epochs"],
        "save_precision": gui["save_precision"],
        "save_state": gui["save_state"],
        "save_model_as": gui["save_model_as"],
        "output_name": gui["output_name"],
        "cache_latents": gui["cache_latents"],
        "cache_latents_to_disk": gui["cache_latents_to_disk"],
        "sdpa": True,  # "xformers": "sdpa"
        "prior_loss_weight": gui["prior_loss_weight"],
        "v_parameterization": gui["v_parameterization"],
        "scale_v_pred_loss_like_noise_pred": gui["scale_v_pred_loss_like_noise_pred"],
    }
    dataset_values = {
        "resolution": gui["max_resolution"],
        "enable_bucket": gui["enable_bucket"],
        "bucket_reso_steps": gui["bucket_reso_steps"],
        "bucket_no_upscale": gui["bucket_no_upscale"],
        "keep_tokens": int(gui["keep_tokens"]),
        "shuffle_caption": gui["shuffle_caption"],
        "caption_dropout_rate": gui["caption_dropout_rate"],
        "caption_dropout_every_n_epochs": gui["caption_dropout_every_n_epochs"],
    }
    result, training, exported = _import_and_export(tmp_path, path)
    folders = {False: tmp_path / "kohya" / "img", True: tmp_path / "kohya" / "reg"}
    compared = _assert_round_trip(source, dataset_values, _subsets(None, folders), training, exported)
    assert len(compared) >= 30
    assert result.config.project.family == "sdxl"
    assert "noise_offset" not in training  # the GUI passes it only with noise_offset_type "Original"


def test_gafus_own_export_comes_back_as_it_was(tmp_path, make_project):
    import dataclasses

    from gafu.config import save_config

    project = make_project(n_target=3, n_reg=3, family="noob-vpred", repeats=3)
    for which in ("target", "reg"):  # captions beside the originals, so prep carries them
        for picture in project.source_dir(which).glob("*.png"):
            first = "mzh_style, " if which == "target" else ""
            picture.with_suffix(".txt").write_text(f"{first}1girl, smile", encoding="utf-8")
    config = project.config
    config = dataclasses.replace(
        config,
        train=dataclasses.replace(
            config.train,
            epochs=120,
            unet_lr=1.1e-3,
            text_encoder_lr_ratio=0.1,
            restart_every_epochs=30,
            batch_size=2,
            gradient_accumulation=3,
            noise_offset=0.03,
            min_snr_gamma=5.0,
            seed=7,
            save_every_epochs=15,
            keep_states=1,
            optimizer="adamw8bit",
            save_dtype="bf16",
        ),
        network=dataclasses.replace(config.network, dim=96, factor=4, conv_dim=48, alpha=48.0),
        model=dataclasses.replace(config.model, path="Laxhar/noobai-XL-Vpred-1.0"),
    )
    save_config(config, project.config_path)
    project = Project.open(project.root)
    prepare(project, workers=1)
    first = tmp_path / "first"
    export_kohya(resolve_plan(project, 24.0, describe=lambda s: None), project.root, first)
    source = _flat(tomllib.loads((first / "config.toml").read_text(encoding="utf-8")))
    dataset = tomllib.loads((first / "dataset.toml").read_text(encoding="utf-8"))

    result, training, exported = _import_and_export(
        tmp_path / "again", first / "config.toml", first / "dataset.toml"
    )
    compared = _assert_round_trip(source, _dataset_values(dataset), _subsets(dataset), training, exported)
    assert len(compared) >= 38
    # the same gafu.toml values, but for those the export resolved: "auto" precision, the trigger as name
    imported = result.config.train
    assert (imported.mixed_precision, imported.output_name) == ("bf16", "mzh_style")
    assert dataclasses.replace(imported, mixed_precision="auto", output_name="") == config.train
    assert result.config.network == config.network
    assert result.config.project.family == "noob-vpred"
