import dataclasses
import errno
import tomllib

import pytest

from gafu.errors import GafuError
from gafu.kohya.export import export_kohya, kohya_training_config
from gafu.plan import resolve_plan

# Option names transcribed from kohya-ss/sd-scripts: the argparse options sdxl_train_network.py
# gets from train_util.add_sd_models_arguments / add_dataset_arguments / add_training_arguments /
# add_optimizer_arguments, config_util.add_config_arguments, custom_train_functions,
# sdxl_train_util.add_sdxl_training_arguments and train_network.setup_parser (only those gafu may write).
SD_SCRIPTS_TRAINING_OPTIONS = {
    "pretrained_model_name_or_path", "vae", "v_parameterization",
    "network_module", "network_dim", "network_alpha", "network_args", "network_train_unet_only",
    "unet_lr", "text_encoder_lr", "save_model_as", "training_comment", "no_half_vae",
    "optimizer_type", "learning_rate", "max_grad_norm", "lr_scheduler", "lr_warmup_steps",
    "lr_scheduler_num_cycles", "optimizer_args",
    "output_dir", "output_name", "save_precision", "save_every_n_epochs", "save_state",
    "save_last_n_epochs_state", "train_batch_size", "sdpa", "xformers", "max_train_epochs", "seed",
    "gradient_checkpointing", "gradient_accumulation_steps", "mixed_precision", "logging_dir", "log_with",
    "noise_offset", "multires_noise_iterations", "multires_noise_discount", "zero_terminal_snr",
    "sample_every_n_epochs", "sample_prompts", "sample_sampler", "prior_loss_weight",
    "cache_latents", "cache_latents_to_disk", "min_snr_gamma", "scale_v_pred_loss_like_noise_pred",
    "dataset_config", "cache_text_encoder_outputs",
}  # fmt: skip
# config_util.ConfigSanitizer's schema
_SUBSET_ASCENDABLE = {
    "color_aug", "face_crop_aug_range", "flip_aug", "num_repeats", "random_crop", "shuffle_caption",
    "keep_tokens", "keep_tokens_separator", "secondary_separator", "enable_wildcard", "token_warmup_min",
    "token_warmup_step", "caption_prefix", "caption_suffix",
    "caption_dropout_every_n_epochs", "caption_dropout_rate", "caption_tag_dropout_rate",  # DO_
    "caption_extension", "class_tokens", "cache_info",  # DB_
}  # fmt: skip
_DATASET_ASCENDABLE = {
    "batch_size", "bucket_no_upscale", "bucket_reso_steps", "enable_bucket", "max_bucket_reso",
    "min_bucket_reso", "resolution", "network_multiplier",
}  # fmt: skip
GENERAL_KEYS = _SUBSET_ASCENDABLE | _DATASET_ASCENDABLE
DATASET_KEYS = GENERAL_KEYS | {"subsets"}
SUBSET_KEYS = _SUBSET_ASCENDABLE | {"image_dir", "is_reg"}
SAMPLE_SAMPLERS = {
    "ddim",
    "pndm",
    "lms",
    "euler",
    "euler_a",
    "heun",
    "dpm_2",
    "dpm_2_a",
    "dpmsolver",
    "dpmsolver++",
}


def _exported(project, folder, vram=24.0):
    plan = resolve_plan(project, vram, describe=lambda s: None)
    result = export_kohya(plan, project.root, folder)
    dataset = tomllib.loads((folder / "dataset.toml").read_text(encoding="utf-8"))
    training = tomllib.loads((folder / "config.toml").read_text(encoding="utf-8"))
    return plan, result, dataset, training


def _flat(config):
    """sd-scripts' read_config_from_file: every table's keys become one flat namespace."""
    flat = {}
    for key, value in config.items():
        flat.update(value if isinstance(value, dict) else {key: value})
    return flat


def test_dataset_toml_parsed_back(prepared_project, tmp_path):
    project = prepared_project(n_target=40, n_reg=40)
    plan, _, dataset, _ = _exported(project, tmp_path / "kohya")
    assert set(dataset) == {"general", "datasets"}
    assert set(dataset["general"]) <= GENERAL_KEYS
    assert dataset["general"]["caption_dropout_rate"] == 0
    assert dataset["general"]["caption_tag_dropout_rate"] == 0
    assert dataset["general"]["caption_dropout_every_n_epochs"] == 0
    [entry] = dataset["datasets"]
    assert set(entry) <= DATASET_KEYS
    assert entry["resolution"] == plan.dataset.resolution == 1536
    assert entry["batch_size"] == plan.batch.batch_size
    assert entry["enable_bucket"] is True and entry["bucket_no_upscale"] is True
    assert entry["bucket_reso_steps"] == 64
    assert entry["max_bucket_reso"] >= entry["resolution"]  # sd-scripts asserts this
    target, reg = entry["subsets"]
    for subset in (target, reg):
        assert set(subset) <= SUBSET_KEYS
        assert subset["caption_extension"] == ".txt"
        assert subset["keep_tokens"] == 1 and subset["shuffle_caption"] is True
        assert subset["num_repeats"] == 2
    assert target["is_reg"] is False and reg["is_reg"] is True
    assert target["image_dir"] == project.concept_dir("target").resolve().as_posix()
    assert reg["image_dir"] == project.concept_dir("reg").resolve().as_posix()


def test_training_toml_parsed_back(prepared_project, tmp_path):
    project = prepared_project(n_target=40, n_reg=40)
    plan, result, _, training = _exported(project, tmp_path / "kohya")
    flat = _flat(training)
    assert set(flat) <= SD_SCRIPTS_TRAINING_OPTIONS
    assert len(flat) == sum(len(v) for v in training.values())  # no option in two tables
    assert flat["network_module"] == "lycoris.kohya"
    assert flat["network_args"] == ["algo=lokr", "conv_dim=64", "conv_alpha=64", "factor=8", "preset=full"]
    assert (flat["network_dim"], flat["network_alpha"]) == (128, 128)
    assert flat["unet_lr"] == flat["learning_rate"] == pytest.approx(1.3e-3)
    assert flat["text_encoder_lr"] == pytest.approx(6.5e-4)
    assert flat["lr_scheduler"] == "cosine_with_restarts"
    assert flat["lr_scheduler_num_cycles"] == 4  # cycles, not restarts (P5)
    assert flat["max_train_epochs"] == 200
    assert flat["train_batch_size"] == plan.batch.batch_size
    assert flat["gradient_accumulation_steps"] == plan.batch.gradient_accumulation
    assert flat["train_batch_size"] * flat["gradient_accumulation_steps"] == 80  # P2: an exact pair fits
    assert flat["optimizer_type"] == "AdamW" and flat["mixed_precision"] == "bf16"
    assert flat["multires_noise_iterations"] == 6 and flat["multires_noise_discount"] == pytest.approx(0.3)
    assert flat["v_parameterization"] is False and flat["zero_terminal_snr"] is False
    assert flat["prior_loss_weight"] == 1.0 and flat["cache_latents"] is True
    # gafu encodes latents with an fp32 VAE; sd-scripts casts the VAE to the mixed precision
    # unless --no_half_vae (train_network.py line 599), and SDXL's VAE overflows in fp16.
    assert flat["no_half_vae"] is True
    assert flat["save_every_n_epochs"] == 10 and flat["save_precision"] == "fp16"
    assert flat["output_name"] == "mzh_style"
    assert "network_train_unet_only" not in flat
    command = (tmp_path / "kohya" / "command.txt").read_text(encoding="utf-8")
    assert result.command in command and "sdxl_train_network.py" in result.command
    assert "--config_file" in result.command and "--dataset_config" in result.command


def test_v_prediction_family_sets_the_p9_flags(prepared_project, tmp_path):
    project = prepared_project(n_target=4, n_reg=4, size=(512, 512), family="noob-vpred")
    _, _, _, training = _exported(project, tmp_path / "kohya")
    flat = _flat(training)
    assert flat["v_parameterization"] is True
    assert flat["zero_terminal_snr"] is True
    assert flat["scale_v_pred_loss_like_noise_pred"] is True


def test_overrides_reach_the_export(prepared_project, tmp_path):
    project = prepared_project(n_target=4, n_reg=0, size=(512, 512), family="sdxl")
    config = project.config
    train = dataclasses.replace(
        config.train, optimizer="adamw8bit", train_text_encoder=False, save_dtype="fp32", noise_offset=0.05
    )
    network = dataclasses.replace(config.network, factor=4, conv_dim=32)
    model = dataclasses.replace(config.model, path="OnomaAIResearch/Illustrious-xl")
    project = dataclasses.replace(
        project, config=dataclasses.replace(config, train=train, network=network, model=model)
    )
    _, _, dataset, training = _exported(project, tmp_path / "kohya")
    flat = _flat(training)
    assert flat["optimizer_type"] == "AdamW8bit"
    assert flat["network_train_unet_only"] is True and "text_encoder_lr" not in flat
    assert "factor=4" in flat["network_args"] and "conv_dim=32" in flat["network_args"]
    assert flat["save_precision"] == "float" and flat["noise_offset"] == pytest.approx(0.05)
    assert flat["pretrained_model_name_or_path"] == "OnomaAIResearch/Illustrious-xl"
    assert [s["is_reg"] for s in dataset["datasets"][0]["subsets"]] == [False]
    assert dataset["datasets"][0]["resolution"] == 1024


def test_local_model_path_is_made_absolute(prepared_project, tmp_path):
    project = prepared_project(n_target=2, n_reg=2, size=(256, 256))
    (project.root / "models").mkdir()
    (project.root / "models" / "base.safetensors").write_bytes(b"")
    model = dataclasses.replace(project.config.model, path="models/base.safetensors")
    project = dataclasses.replace(project, config=dataclasses.replace(project.config, model=model))
    plan = resolve_plan(project, 12.0, describe=lambda s: None)
    config = kohya_training_config(plan, project.root, tmp_path / "kohya")
    assert (
        config["model"]["pretrained_model_name_or_path"]
        == (project.root / "models/base.safetensors").as_posix()
    )


def test_sample_prompts_file(prepared_project, tmp_path):
    project = prepared_project(n_target=2, n_reg=2, size=(256, 256), family="noob-vpred")
    sample = dataclasses.replace(project.config.sample, prompts=["1girl, smile", "landscape"])
    train = dataclasses.replace(project.config.train, sample_every_epochs=25)
    project = dataclasses.replace(
        project, config=dataclasses.replace(project.config, sample=sample, train=train)
    )
    plan, _, _, training = _exported(project, tmp_path / "kohya")
    flat = _flat(training)
    assert flat["sample_every_n_epochs"] == 25 and flat["sample_sampler"] in SAMPLE_SAMPLERS
    lines = (tmp_path / "kohya" / "sample-prompts.txt").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("mzh_style, 1girl, smile --n ")
    assert f"--w {plan.sample.width} --h {plan.sample.height} --d {plan.sample.seed}" in lines[0]
    assert f"--l {plan.sample.cfg:g} --s {plan.sample.steps}" in lines[0]
    assert flat["sample_prompts"].endswith("sample-prompts.txt")


def test_sampling_without_prompts_is_noted(prepared_project, tmp_path):
    project = prepared_project(n_target=2, n_reg=2, size=(256, 256))
    for caption in project.concept_dir("target").glob("*.txt"):  # no captions: no default prompts
        caption.unlink()
    train = dataclasses.replace(project.config.train, sample_every_epochs=25)
    project = dataclasses.replace(project, config=dataclasses.replace(project.config, train=train))
    _, result, _, training = _exported(project, tmp_path / "kohya")
    assert "sample_prompts" not in _flat(training)
    assert any("sampling during training is off" in n for n in result.notes)
    assert any("no base model" in n for n in result.notes)


def test_export_into_a_file_is_an_error(prepared_project, tmp_path):
    project = prepared_project(n_target=2, n_reg=2, size=(256, 256))
    target = tmp_path / "a-file"
    target.write_text("x", encoding="utf-8")
    with pytest.raises(GafuError, match="is a file, not a folder"):
        _exported(project, target)


def test_export_on_a_full_disk_is_a_clear_error(prepared_project, tmp_path, write_failure):
    project = prepared_project(n_target=2, n_reg=2, size=(256, 256))
    folder = tmp_path / "kohya"
    write_failure.under(folder, errno.ENOSPC, after=1)
    with pytest.raises(GafuError, match=r"disk full while trying to write .*config\.toml"):
        _exported(project, folder)
    assert sorted(p.name for p in folder.iterdir()) == ["dataset.toml"]  # nothing half-written
