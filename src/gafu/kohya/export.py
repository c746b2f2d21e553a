"""`gafu plan --export kohya DIR`: the same training as kohya's sd-scripts configuration files.

Writes `DIR/dataset.toml` (sd-scripts' `--dataset_config`), `DIR/config.toml` (its
`--config_file` for `sdxl_train_network.py`, with LyCORIS's `lycoris.kohya` network module),
`DIR/command.txt` with the command to run from the sd-scripts folder, and
`DIR/sample-prompts.txt` when the plan samples during training. Every option name is one of
sd-scripts' own (`library/train_util.py`, `library/config_util.py`, `train_network.py`,
`library/sdxl_train_util.py`, `library/custom_train_functions.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from gafu.errors import GafuError
from gafu.fsio import write_text_atomic
from gafu.layout import parse_concept_folder
from gafu.plan.model import Plan, SetPlan

OPTIMIZER_TYPES = {"adamw": "AdamW", "adamw8bit": "AdamW8bit"}
SAVE_PRECISIONS = {"fp16": "fp16", "bf16": "bf16", "fp32": "float"}
# gafu scheduler names → sd-scripts' `--sample_sampler` choices
SAMPLE_SAMPLERS = {
    "euler_a": "euler_a",
    "euler": "euler",
    "ddim": "ddim",
    "dpmpp_2m": "dpmsolver++",
    "heun": "heun",
    "lms": "lms",
    "pndm": "pndm",
    "dpm_2": "dpm_2",
    "dpm_2_a": "dpm_2_a",
}
LYCORIS_NETWORK_MODULE = "lycoris.kohya"


@dataclass
class KohyaExport:
    """What `export_kohya` wrote."""

    folder: Path
    files: list[Path] = field(default_factory=list)
    command: str = ""
    notes: list[str] = field(default_factory=list)


def export_kohya(plan: Plan, project_root: Path, folder: Path) -> KohyaExport:
    """Write the kohya sd-scripts dataset config, training config and command for `plan` into `folder`."""
    folder = Path(folder).resolve()
    if folder.exists() and not folder.is_dir():
        raise GafuError(f"{folder} is a file, not a folder", path=folder, hint="give a folder to export into")
    result = KohyaExport(folder=folder)
    if not plan.model.path:
        result.notes.append(
            "no base model in gafu.toml [model] path: set pretrained_model_name_or_path in config.toml"
        )
    if plan.eval.held_out:
        held = len(plan.eval.target) + len(plan.eval.reg)
        result.notes.append(
            f"sd-scripts trains on every picture of the folders: the {held} pictures gafu holds out for "
            "its style probe ([eval] holdout) are trained there too"
        )
    header = f"# kohya sd-scripts {{}} written by `gafu plan --export kohya` (gafu {plan.gafu_version})\n"
    dataset_path, config_path = folder / "dataset.toml", folder / "config.toml"
    _write(result, dataset_path, header.format("dataset config"), kohya_dataset_config(plan, project_root))
    training = kohya_training_config(plan, project_root, folder)
    prompts = kohya_sample_prompts(plan)
    if prompts:
        prompts_path = folder / "sample-prompts.txt"
        write_text_atomic(prompts_path, prompts)
        result.files.append(prompts_path)
        training["sampling"] = {
            "sample_prompts": prompts_path.as_posix(),
            "sample_every_n_epochs": plan.run.sample_every_epochs,
            "sample_sampler": SAMPLE_SAMPLERS.get(plan.sample.scheduler, "euler_a"),
        }
    elif plan.run.sample_every_epochs:
        result.notes.append(
            "no sample prompts in gafu.toml [sample] prompts: sampling during training is off"
        )
    _write(result, config_path, header.format("training config"), training)
    result.command = kohya_command(config_path, dataset_path)
    command_path = folder / "command.txt"
    write_text_atomic(
        command_path,
        "# run from your sd-scripts folder, in its virtual environment (with lycoris-lora installed)\n"
        f"{result.command}\n",
    )
    result.files.append(command_path)
    return result


def kohya_dataset_config(plan: Plan, project_root: Path) -> dict[str, Any]:
    """sd-scripts' dataset config: one DreamBooth-style subset per concept folder (D5)."""
    dataset = plan.dataset
    largest_side = max(max(int(v) for v in key.split("x")) for key in _all_buckets(plan))
    subsets = [
        _subset(plan, project_root, folder, set_plan)
        for set_plan in filter(None, (dataset.target, dataset.reg))
        for folder in set_plan.concept_folders
    ]
    return {
        "general": {
            # P7: every kind of caption dropout stays off
            "caption_dropout_rate": dataset.caption_dropout_rate,
            "caption_tag_dropout_rate": dataset.caption_tag_dropout_rate,
            "caption_dropout_every_n_epochs": dataset.caption_dropout_every_n_epochs,
        },
        "datasets": [
            {
                "resolution": dataset.resolution,
                "batch_size": plan.batch.batch_size,
                "enable_bucket": True,
                "bucket_reso_steps": dataset.bucket_step,
                "bucket_no_upscale": dataset.bucket_no_upscale,
                # sd-scripts requires max_bucket_reso ≥ resolution
                "max_bucket_reso": max(dataset.resolution, largest_side),
                "subsets": subsets,
            }
        ],
    }


def _subset(plan: Plan, project_root: Path, folder: str, set_plan: SetPlan) -> dict[str, Any]:
    parsed = parse_concept_folder(Path(folder).name)
    return {
        "image_dir": (project_root / folder).resolve().as_posix(),
        "num_repeats": parsed[0] if parsed else set_plan.repeats,
        "is_reg": set_plan.name == "reg",
        "caption_extension": plan.dataset.caption_extension,
        "keep_tokens": plan.dataset.keep_tokens,  # P7: the trigger stays first
        "shuffle_caption": plan.dataset.shuffle_caption,
    }


def kohya_training_config(plan: Plan, project_root: Path, folder: Path) -> dict[str, Any]:
    """sd-scripts' `--config_file` for `sdxl_train_network.py` (sections are for reading only)."""
    settings, optimizer, loss, run = plan.network.settings, plan.optimizer, plan.loss, plan.run
    model: dict[str, Any] = {
        "pretrained_model_name_or_path": _model_path(plan.model.path, project_root),
        # gafu encodes latents with the VAE in fp32 (`gafu.train.latents`); without this sd-scripts
        # casts it to the mixed precision, and SDXL's VAE overflows in fp16 (NaN latents).
        "no_half_vae": True,
    }
    if plan.model.vae:
        model["vae"] = _model_path(plan.model.vae, project_root)
    network: dict[str, Any] = {
        "network_module": LYCORIS_NETWORK_MODULE,
        "network_dim": settings.dim,
        "network_alpha": settings.alpha,
        "network_args": [
            f"algo={plan.network.algo}",
            f"conv_dim={settings.conv_dim}",
            f"conv_alpha={settings.conv_alpha:g}",
            f"factor={settings.factor}",
            f"preset={settings.preset}",
        ],
    }
    optimizer_section: dict[str, Any] = {
        "optimizer_type": OPTIMIZER_TYPES[optimizer.optimizer],
        "learning_rate": optimizer.unet_lr,
        "unet_lr": optimizer.unet_lr,
        "lr_scheduler": optimizer.lr_scheduler,
        "lr_scheduler_num_cycles": optimizer.num_cycles,  # cosine cycles over the run (P5)
        "lr_warmup_steps": optimizer.warmup_steps,
        "max_grad_norm": optimizer.max_grad_norm,
    }
    if optimizer.train_text_encoder:
        optimizer_section["text_encoder_lr"] = optimizer.text_encoder_lr
    else:
        network["network_train_unet_only"] = True
    training: dict[str, Any] = {
        "max_train_epochs": plan.batch.epochs,
        "train_batch_size": plan.batch.batch_size,
        "gradient_accumulation_steps": plan.batch.gradient_accumulation,
        "mixed_precision": run.mixed_precision,
        "gradient_checkpointing": run.gradient_checkpointing,
        "sdpa": True,
        "seed": run.seed,
        "cache_latents": plan.dataset.cache_latents,
        "cache_latents_to_disk": plan.dataset.cache_latents,
        "prior_loss_weight": plan.dataset.prior_loss_weight,
        "v_parameterization": loss.v_parameterization,  # P9
        "zero_terminal_snr": loss.zero_terminal_snr,
        "scale_v_pred_loss_like_noise_pred": loss.scale_v_pred_loss_like_noise_pred,
    }
    training.update(_noise_options(plan))
    saving = {
        "output_dir": (folder / "output").as_posix(),
        "output_name": run.output_name,
        "save_model_as": "safetensors",
        "save_precision": SAVE_PRECISIONS[run.save_dtype],
        "save_every_n_epochs": run.save_every_epochs,
        "save_state": run.keep_states > 0,
        "logging_dir": (folder / "logs").as_posix(),
        "log_with": "tensorboard",
        "training_comment": f"gafu plan: trigger {plan.trigger}, family {plan.model.family}",
    }
    if run.keep_states > 0:
        saving["save_last_n_epochs_state"] = run.keep_states
    return {
        "model": model,
        "network": network,
        "optimizer": optimizer_section,
        "training": training,
        "saving": saving,
    }


def _noise_options(plan: Plan) -> dict[str, Any]:
    """P8 multires noise and the optional noise offset / min-SNR (sd-scripts treats unset as off)."""
    loss, options = plan.loss, {}
    if loss.multires_noise_iterations:
        options["multires_noise_iterations"] = loss.multires_noise_iterations
        options["multires_noise_discount"] = loss.multires_noise_discount
    if loss.noise_offset:
        options["noise_offset"] = loss.noise_offset
    if loss.min_snr_gamma:
        options["min_snr_gamma"] = loss.min_snr_gamma
    return options


def kohya_sample_prompts(plan: Plan) -> str:
    """sd-scripts' prompt file: one `prompt --n negative --w --h --d seed --l cfg --s steps` per line."""
    sample = plan.sample
    if not (plan.run.sample_every_epochs and sample.prompts):
        return ""
    options = (
        f" --n {sample.negative} --w {sample.width} --h {sample.height} --d {sample.seed}"
        f" --l {sample.cfg:g} --s {sample.steps}"
    )
    return "".join(f"{plan.trigger}, {prompt}{options}\n" for prompt in sample.prompts)


def kohya_command(config_path: Path, dataset_path: Path) -> str:
    """The command line, run from the sd-scripts folder (the same on Windows and Linux)."""
    return (
        "accelerate launch --num_cpu_threads_per_process 1 sdxl_train_network.py "
        f'--config_file "{config_path.as_posix()}" --dataset_config "{dataset_path.as_posix()}"'
    )


def _model_path(value: str, project_root: Path) -> str:
    """A local path made absolute (relative ones are relative to the project); a hub id as written."""
    if not value:
        return ""
    path = Path(value).expanduser()
    local = path if path.is_absolute() else project_root / path
    return local.resolve().as_posix() if local.exists() else value


def _all_buckets(plan: Plan) -> list[str]:
    return [key for s in (plan.dataset.target, plan.dataset.reg) if s is not None for key in s.buckets]


def _write(result: KohyaExport, path: Path, header: str, data: dict[str, Any]) -> None:
    write_text_atomic(path, header + tomli_w.dumps(data))
    result.files.append(path)
