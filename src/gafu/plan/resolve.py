"""`resolve_plan`: gafu.toml + the prepared dataset + GPU memory → the Plan (P1–P10).

A pure function of its inputs: the GPU is passed in (the CLI detects it), so the same project,
dataset and memory give the same plan. Every value is recorded with its source (`Sources`): a
recipe rule (read from the config field's own doc, so no recipe number is restated here), a
family preset, a `gafu.toml` override, the dataset, or the memory model.

The sections are built in the order a run needs them: model and loss (P9) and network (P6)
here; the dataset (`gafu.plan.dataset`), the memory it is planned for (`gafu.plan.vram`), the
batch (`gafu.plan.batch`); then optimizer, run and sampling here again.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any

from gafu import __version__, recipe
from gafu.captions.typical import dataset_prompts
from gafu.config import Config
from gafu.families import ModelFamily
from gafu.models.configs import native_side
from gafu.models.load import project_config_dir
from gafu.plan.batch import batch_plan
from gafu.plan.dataset import dataset_plan
from gafu.plan.memory import GpuInfo, MemoryModel, estimate_memory
from gafu.plan.model import (
    PLAN_VERSION,
    BatchPlan,
    LossPlan,
    ModelPlan,
    NetworkPlan,
    OptimizerPlan,
    Plan,
    RunPlan,
    SamplePlan,
)
from gafu.plan.network import NetworkDescriber, alpha_note, describe_lokr_network, layer_widths, lokr_settings
from gafu.plan.probe import resolve_eval
from gafu.plan.sources import Sources
from gafu.plan.validate import check_network, check_prediction, check_train
from gafu.plan.vram import memory_model_for, memory_plan, memory_warning, planned_vram, training_shape
from gafu.project import Project


def resolve_plan(
    project: Project,
    vram_gb: float | None = None,
    *,
    gpu: GpuInfo | None = None,
    describe: NetworkDescriber | None = None,
    memory_model: MemoryModel | None = None,
) -> Plan:
    """The plan for `project`: `vram_gb` (from --vram) over `[train] vram_gb` over `gpu` over 12 GB.

    `describe` gives the network summary (default: built from the project's architecture).
    """
    config_dir = project_config_dir(project)
    if describe is None:
        describe = partial(describe_lokr_network, config_dir=config_dir)
    config, family, source = project.config, project.family, str(project.config_path)
    sources, notes = Sources(config), []
    warnings = check_train(config.train, source, native_side(config_dir))
    model = _model_plan(config, family, sources, warnings)
    loss = _loss_plan(config, family, sources, warnings, source)
    network = _network_plan(config, sources, warnings, notes, describe, source)
    evaluation = resolve_eval(project, config.train.resolution or family.training_side, sources)
    dataset = dataset_plan(project, family, sources, warnings, notes, evaluation.held_out_pictures)
    run = _run_plan(project, gpu, sources)
    memory_model = memory_model or memory_model_for(config_dir, notes)
    estimate = estimate_memory(training_shape(config, run, network, dataset, notes), memory_model)
    vram, gpu_name = planned_vram(vram_gb, config, gpu, sources, notes)
    usable = vram - memory_model.headroom_gib
    batch = batch_plan(config, dataset, estimate.max_batch_size(usable), sources, warnings, notes)
    memory = memory_plan(estimate, vram, gpu_name, usable, batch.batch_size, sources)
    if not memory.fits:
        warnings.append(memory_warning(memory, batch.batch_size, config))
    plan = Plan(
        version=PLAN_VERSION,
        gafu_version=__version__,
        trigger=sources.config("trigger", "project", "trigger"),
        model=model,
        dataset=dataset,
        network=network,
        batch=batch,
        optimizer=_optimizer_plan(config, batch, network, sources, notes),
        loss=loss,
        run=run,
        memory=memory,
        sample=_sample_plan(project, family, sources),
        eval=evaluation,
        notes=notes,
        warnings=warnings,
    )
    return dataclasses.replace(plan, sources=sources.ordered(plan))


# --- model and family (P9) ---------------------------------------------------------------------


def _model_plan(config: Config, family: ModelFamily, sources: Sources, warnings: list[str]) -> ModelPlan:
    for key in ("path", "config", "tokenizers", "vae"):
        sources.config(f"model.{key}", "model", key, default_source="not set")
    if not config.model.path:
        warnings.append("no base model: set [model] path in gafu.toml before `gafu train`")
    sources.config("model.family", "project", "family", default_source="gafu default")
    preset = f"family {family.name}"
    for key in ("family_title", "prediction_type", "base_model_version", "modelspec_architecture"):
        sources.set(f"model.{key}", None, preset)
    return ModelPlan(
        path=config.model.path,
        config=config.model.config,
        tokenizers=config.model.tokenizers,
        vae=config.model.vae,
        family=family.name,
        family_title=family.title,
        prediction_type=family.prediction_type,
        base_model_version=family.base_model_version,
        modelspec_architecture=family.modelspec_architecture,
    )


def _loss_plan(
    config: Config, family: ModelFamily, sources: Sources, warnings: list[str], source: str
) -> LossPlan:
    train = config.train
    flags = {}
    for name, from_family in (
        ("v_parameterization", family.is_v_prediction),
        ("zero_terminal_snr", family.zero_terminal_snr),
        ("scale_v_pred_loss_like_noise_pred", family.is_v_prediction),
    ):
        given = getattr(train, name)
        preset = f"family {family.name} (P9)"
        origin = (
            sources.override("train", name, f"{preset}: {str(from_family).lower()}")
            if given is not None
            else preset
        )
        flags[name] = sources.set(f"loss.{name}", from_family if given is None else given, origin)
    warnings.extend(
        check_prediction(
            family,
            v_parameterization=flags["v_parameterization"],
            zero_terminal_snr=flags["zero_terminal_snr"],
            scale_v_pred_loss=flags["scale_v_pred_loss_like_noise_pred"],
            source=source,
        )
    )
    return LossPlan(
        **flags,
        multires_noise_iterations=sources.config(
            "loss.multires_noise_iterations", "train", "multires_noise_iterations"
        ),
        multires_noise_discount=sources.config(
            "loss.multires_noise_discount", "train", "multires_noise_discount"
        ),
        noise_offset=sources.config("loss.noise_offset", "train", "noise_offset"),
        min_snr_gamma=sources.config("loss.min_snr_gamma", "train", "min_snr_gamma"),
    )


# --- network (P6) --------------------------------------------------------------------------------


def _network_plan(
    config: Config,
    sources: Sources,
    warnings: list[str],
    notes: list[str],
    describe: NetworkDescriber,
    source: str,
) -> NetworkPlan:
    train_te = sources.config("network.settings.train_text_encoder", "train", "train_text_encoder")
    settings = lokr_settings(config.network, train_text_encoder=train_te)
    for key in ("dim", "conv_dim", "factor", "preset"):
        sources.config(f"network.settings.{key}", "network", key)
    for key, of in (("alpha", "dim"), ("conv_alpha", "conv_dim")):
        if getattr(config.network, key) is None:
            sources.set(f"network.settings.{key}", None, f"gafu default: = {of} (scale 1)")
        else:
            sources.config(f"network.settings.{key}", "network", key)
    # Checked before the network is built: a bad factor is the user's error, not the builder's.
    warnings.extend(check_network(config.network, layer_widths(train_text_encoder=train_te), source))
    summary = describe(settings)
    notes.append(alpha_note(settings, summary))
    sources.set("network.algo", None, "recipe P6")
    sources.set("network.settings", None, "LyCORIS arguments (P6)")
    sources.set("network.summary", None, "gafu network builder (meta device)" if summary else "not available")
    return NetworkPlan(algo=recipe.NETWORK_ALGO, settings=settings, summary=summary)


# --- optimizer, run, sampling (P1, P4, P5, P10) --------------------------------------------------------


def _optimizer_plan(
    config: Config, batch: BatchPlan, network: NetworkPlan, sources: Sources, notes: list[str]
) -> OptimizerPlan:
    unet_lr = sources.config("optimizer.unet_lr", "train", "unet_lr")
    ratio = sources.config("optimizer.text_encoder_lr_ratio", "train", "text_encoder_lr_ratio")
    train_te = sources.set(
        "optimizer.train_text_encoder",
        network.settings.train_text_encoder,
        sources.by_name["network.settings.train_text_encoder"],
    )
    te_lr = unet_lr * ratio if train_te else 0.0
    sources.set(
        "optimizer.text_encoder_lr",
        None,
        "recipe P4: U-Net LR × ratio" if train_te else "text encoders frozen",
    )
    restart = sources.config("optimizer.restart_every_epochs", "train", "restart_every_epochs")
    cycles = max(1, round(batch.epochs / restart))
    if batch.epochs % restart:
        notes.append(
            f"{batch.epochs} epochs is not a multiple of the {restart}-epoch restart period (P5): "
            f"{cycles} cosine cycle(s) of {batch.epochs / cycles:g} epochs"
        )
    sources.set("optimizer.num_cycles", None, "recipe P5: epochs / restart period (cycles, not restarts)")
    sources.set("optimizer.steps_per_cycle", None, "derived: total steps / cycles")
    return OptimizerPlan(
        optimizer=sources.config("optimizer.optimizer", "train", "optimizer"),
        unet_lr=unet_lr,
        text_encoder_lr=te_lr,
        text_encoder_lr_ratio=ratio,
        train_text_encoder=train_te,
        lr_scheduler=sources.set("optimizer.lr_scheduler", recipe.SCHEDULER, "recipe P5"),
        restart_every_epochs=restart,
        num_cycles=cycles,
        steps_per_cycle=batch.total_steps // cycles,
        warmup_steps=sources.set("optimizer.warmup_steps", 0, "gafu default: the recipe has no warmup"),
        max_grad_norm=sources.config("optimizer.max_grad_norm", "train", "max_grad_norm"),
    )


def _run_plan(project: Project, gpu: GpuInfo | None, sources: Sources) -> RunPlan:
    train = project.config.train
    precision = train.mixed_precision
    if precision == "auto":
        if gpu is not None:
            precision = "bf16" if gpu.bf16 else "fp16"
            sources.set(
                "run.mixed_precision", None, f"auto: {gpu.name} {'supports' if gpu.bf16 else 'lacks'} bf16"
            )
        else:
            precision = "bf16"
            sources.set(
                "run.mixed_precision",
                None,
                'auto: bf16 assumed (set [train] mixed_precision = "fp16" for GPUs before RTX 30)',
            )
    else:
        sources.set(
            "run.mixed_precision",
            None,
            sources.override("train", "mixed_precision", "gafu default: auto = bf16 where supported"),
        )
    output_source = (
        sources.override("train", "output_name", "gafu default: the trigger word")
        if train.output_name
        else "the trigger word"
    )
    return RunPlan(
        mixed_precision=precision,
        gradient_checkpointing=sources.config(
            "run.gradient_checkpointing", "train", "gradient_checkpointing"
        ),
        seed=sources.config("run.seed", "train", "seed"),
        save_every_epochs=sources.config("run.save_every_epochs", "train", "save_every_epochs"),
        save_dtype=sources.config("run.save_dtype", "train", "save_dtype", default_source="gafu default"),
        keep_states=sources.config("run.keep_states", "train", "keep_states"),
        sample_every_epochs=sources.config("run.sample_every_epochs", "train", "sample_every_epochs"),
        output_name=sources.set("run.output_name", project.output_name, output_source),
        lokr_kernel=sources.config("run.lokr_kernel", "train", "lokr_kernel"),
    )


def _sample_plan(project: Project, family: ModelFamily, sources: Sources) -> SamplePlan:
    sample = project.config.sample
    preset = f"family {family.name} sampler preset"

    def override_or(name: str, key: str, fallback: Any, origin: str = preset) -> Any:
        given = getattr(sample, key)  # 0 / "" = not overridden
        return sources.set(
            f"sample.{name}", given or fallback, sources.override("sample", key, origin) if given else origin
        )

    side = f"family {family.name} training side (D4)"
    return SamplePlan(
        prompts=(
            sources.config("sample.prompts", "sample", "prompts")
            if sample.prompts
            else sources.set(
                "sample.prompts", dataset_prompts(project), "gafu default: the most typical target captions"
            )
        ),
        negative=sources.config("sample.negative", "sample", "negative"),
        weights=sources.config("sample.weights", "sample", "weights"),
        seed=sources.config("sample.seed", "sample", "seed"),
        scheduler=override_or("scheduler", "sampler", family.sampler.scheduler),
        steps=override_or("steps", "steps", family.sampler.steps),
        cfg=override_or("cfg", "cfg", family.sampler.cfg),
        guidance_rescale=sources.set("sample.guidance_rescale", family.sampler.guidance_rescale, preset),
        timestep_spacing=sources.set("sample.timestep_spacing", family.sampler.timestep_spacing, preset),
        width=override_or("width", "width", family.training_side, side),
        height=override_or("height", "height", family.training_side, side),
    )
