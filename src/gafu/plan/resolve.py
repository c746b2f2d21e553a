"""`resolve_plan`: gafu.toml + the prepared dataset + GPU memory → the Plan (P1–P10).

A pure function of its inputs: the GPU is passed in (the CLI detects it), so the same project,
dataset and memory give the same plan. Every value is recorded with its source: a recipe rule
(read from the config field's own doc, so no recipe number is restated here), a family preset,
a `gafu.toml` override, the dataset, or the memory model.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from gafu import __version__, recipe
from gafu.captions.typical import dataset_prompts
from gafu.config import Config
from gafu.errors import GafuError
from gafu.families import ModelFamily
from gafu.layout import CAPTION_SUFFIX, DatasetPicture
from gafu.models.load import meta_model, project_config_dir
from gafu.plan.dataset import (
    describe_set,
    largest_bucket,
    micro_batches,
    size_key,
    target_samples,
)
from gafu.plan.memory import (
    DEFAULT_VRAM_GB,
    FALLBACK_LOKR_PARAMETERS,
    GpuInfo,
    MemoryEstimate,
    MemoryModel,
    TrainingShape,
    estimate_memory,
)
from gafu.plan.model import (
    PLAN_VERSION,
    BatchPlan,
    DatasetPlan,
    LossPlan,
    MemoryPlan,
    ModelPlan,
    NetworkPlan,
    OptimizerPlan,
    Plan,
    RunPlan,
    SamplePlan,
    SetPlan,
    value_names,
)
from gafu.plan.network import NetworkDescriber, alpha_note, describe_lokr_network, layer_widths, lokr_settings
from gafu.plan.probe import resolve_eval
from gafu.plan.validate import check_network, check_prediction, check_train
from gafu.project import Project

# gafu's choice: a batch × accumulation pair may miss the effective batch (P2) by this much
# when the exact pair would need a smaller, slower batch; the plan says so when it does.
EFFECTIVE_BATCH_TOLERANCE = 0.05

_RULE = re.compile(r"^([DTP]\d+(?:/[DTP]\d+)*)\b")


class _Sources:
    """Records where each plan value came from, keyed by its dotted name in the plan."""

    def __init__(self, config: Config):
        self._config = config
        self.by_name: dict[str, str] = {}

    def set(self, name: str, value: Any, source: str) -> Any:
        """Record `source` for `name` and return `value`."""
        self.by_name[name] = source
        return value

    def config(self, name: str, section: str, key: str, *, default_source: str | None = None) -> Any:
        """A value from `[section] key`: an override when it differs from the default, else its rule."""
        section_obj = getattr(self._config, section)
        value = getattr(section_obj, key)
        if value != getattr(type(section_obj)(), key):
            return self.set(name, value, f"gafu.toml [{section}] {key}")
        return self.set(name, value, default_source or _rule_of(type(section_obj), key))


def _rule_of(section_cls: type, key: str) -> str:
    """`recipe P4` from a config field's doc (`"P4: …"`), else `gafu default`."""
    doc = next(f.metadata.get("doc", "") for f in dataclasses.fields(section_cls) if f.name == key)
    match = _RULE.match(doc)
    return f"recipe {match.group(1)}" if match else "gafu default"


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
    sources, notes = _Sources(config), []
    warnings = check_train(config.train, source)
    model = _model_plan(config, family, sources, warnings)
    loss = _loss_plan(config, family, sources, warnings, source)
    network = _network_plan(config, sources, warnings, notes, describe, source)
    evaluation = resolve_eval(project, config.train.resolution or family.training_side, sources)
    dataset = _dataset_plan(project, family, sources, warnings, notes, evaluation.held_out_pictures)
    run = _run_plan(project, gpu, sources)
    memory_model = memory_model or _memory_model_for(config_dir, notes)
    estimate = estimate_memory(_training_shape(config, run, network, dataset, notes), memory_model)
    vram, gpu_name = _vram(vram_gb, config, gpu, sources, notes)
    usable = vram - memory_model.headroom_gib
    batch = _batch_plan(config, dataset, estimate.max_batch_size(usable), sources, warnings, notes)
    memory = _memory_plan(estimate, vram, gpu_name, usable, batch.batch_size, sources)
    if not memory.fits:
        warnings.append(_memory_warning(memory, batch.batch_size, config))
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
    return dataclasses.replace(plan, sources=_ordered(sources.by_name, plan))


# --- model and family (P9) ---------------------------------------------------------------------


def _model_plan(config: Config, family: ModelFamily, sources: _Sources, warnings: list[str]) -> ModelPlan:
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
    config: Config, family: ModelFamily, sources: _Sources, warnings: list[str], source: str
) -> LossPlan:
    train = config.train
    flags = {}
    for name, from_family in (
        ("v_parameterization", family.is_v_prediction),
        ("zero_terminal_snr", family.zero_terminal_snr),
        ("scale_v_pred_loss_like_noise_pred", family.is_v_prediction),
    ):
        given = getattr(train, name)
        origin = f"gafu.toml [train] {name}" if given is not None else f"family {family.name} (P9)"
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


def _memory_model_for(config_dir, notes: list[str]) -> MemoryModel:
    """SDXL's memory model, or one scaled to the project's own architecture where it differs."""
    model = MemoryModel()
    if config_dir is None:
        return model
    unet, te1, te2 = meta_model(config_dir)
    unet_parameters = sum(p.numel() for p in unet.parameters())
    text_parameters = sum(p.numel() for te in (te1, te2) for p in te.parameters())
    if (unet_parameters, text_parameters) == (model.unet_parameters, model.text_encoder_parameters):
        return model
    notes.append(
        f"memory model: the architecture in {config_dir} has a {unet_parameters / 1e6:.1f} M-parameter "
        f"U-Net (SDXL: {model.unet_parameters / 1e6:.0f} M); SDXL's figures are scaled to it (rough estimate)"
    )
    return model.for_architecture(unet_parameters, text_parameters)


def _network_plan(
    config: Config,
    sources: _Sources,
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


def _lokr_parameters(network: NetworkPlan, notes: list[str]) -> int:
    if network.summary is not None:
        return network.summary.trainable_parameters
    notes.append(
        "memory model: no network summary, so the LoKr is assumed to have "
        f"{FALLBACK_LOKR_PARAMETERS / 1e6:.0f} M trainable parameters (the recipe's ~200 MB file at factor 4)"
    )
    return FALLBACK_LOKR_PARAMETERS


# --- dataset (D4, D5, P3, P7) ---------------------------------------------------------------------


def _dataset_plan(
    project: Project,
    family: ModelFamily,
    sources: _Sources,
    warnings: list[str],
    notes: list[str],
    held_out: frozenset[str],
) -> DatasetPlan:
    config = project.config
    resolution = config.train.resolution or family.training_side
    sources.set(
        "dataset.resolution",
        None,
        "gafu.toml [train] resolution" if config.train.resolution else f"family {family.name} (D4)",
    )
    target_pictures, reg_pictures = _prepared_pictures(project, warnings, held_out)
    effective = target_samples(target_pictures)
    target = describe_set(project.root, "target", target_pictures, resolution, samples_per_epoch=effective)
    reg = (
        describe_set(project.root, "reg", reg_pictures, resolution, samples_per_epoch=effective)
        if reg_pictures
        else None
    )
    _dataset_remarks(project, target, reg, resolution, warnings, notes)
    for name in ("target", "reg"):
        sources.set(
            f"dataset.{name}", None, f"dataset ({project.set_dir(name).relative_to(project.root).as_posix()})"
        )
    if not config.train.regularization:
        sources.set("dataset.reg", None, "gafu.toml [train] regularization = false")
    sources.set("dataset.bucket_step", None, "recipe D4b")
    sources.set("dataset.bucket_no_upscale", None, "gafu default: pictures are prepared at their size (D4)")
    sources.set("dataset.largest_bucket", None, "dataset")
    sources.set("dataset.caption_extension", None, "recipe D5")
    sources.set("dataset.cache_latents", None, "gafu default: latents cached once, VAE off the GPU")
    return DatasetPlan(
        target=target,
        reg=reg,
        resolution=resolution,
        bucket_step=recipe.BUCKET_STEP,
        bucket_no_upscale=True,
        largest_bucket=size_key(largest_bucket(target, reg)),
        caption_extension=CAPTION_SUFFIX,
        keep_tokens=sources.config("dataset.keep_tokens", "train", "keep_tokens"),
        shuffle_caption=sources.config("dataset.shuffle_caption", "train", "shuffle_caption"),
        caption_dropout_rate=sources.config("dataset.caption_dropout_rate", "train", "caption_dropout_rate"),
        caption_tag_dropout_rate=sources.config(
            "dataset.caption_tag_dropout_rate", "train", "caption_tag_dropout_rate"
        ),
        caption_dropout_every_n_epochs=sources.config(
            "dataset.caption_dropout_every_n_epochs", "train", "caption_dropout_every_n_epochs"
        ),
        prior_loss_weight=sources.set("dataset.prior_loss_weight", recipe.PRIOR_LOSS_WEIGHT, "recipe P3"),
        cache_latents=True,
    )


def _prepared_pictures(
    project: Project, warnings: list[str], held_out: frozenset[str]
) -> tuple[list[DatasetPicture], list[DatasetPicture]]:
    """The pictures training uses: the held-out probe pictures left out (`[eval] holdout`)."""

    def trained(which) -> list[DatasetPicture]:
        pictures = project.pictures(which)
        return [p for p in pictures if p.path.relative_to(project.root).as_posix() not in held_out]

    target = trained("target")
    if not target:
        raise GafuError(
            f"no prepared pictures in {project.set_dir('target')}",
            path=project.set_dir("target"),
            hint="run `gafu prep` first",
        )
    if not project.config.train.regularization:
        return target, []  # D2 left out on purpose (a run to compare with, `gafu eval --compare`)
    reg = trained("reg")
    if project.config.sources.reg and not reg:
        raise GafuError(
            f"gafu.toml names a regularization folder but {project.set_dir('reg')} "
            "holds no prepared pictures",
            path=project.set_dir("reg"),
            hint="run `gafu prep` first (or empty [sources] reg to train without regularization)",
        )
    if reg and not project.config.sources.reg:
        warnings.append(
            f"{project.set_dir('reg')} has {len(reg)} pictures though gafu.toml names no regularization "
            "folder; they are used (remove the folder to train without them)"
        )
    return target, reg


def _dataset_remarks(
    project: Project,
    target: SetPlan,
    reg: SetPlan | None,
    resolution: int,
    warnings: list[str],
    notes: list[str],
) -> None:
    config_repeats = project.config.project.repeats
    if target.repeats != config_repeats:
        warnings.append(
            f"gafu.toml says repeats = {config_repeats} but the dataset's folders use {target.repeats}; "
            "the plan follows the dataset (run `gafu prep` again to apply the new repeats)"
        )
    if reg is None:
        off = " ([train] regularization = false)" if not project.config.train.regularization else ""
        warnings.append(
            f"no regularization set{off}: the style will leak into every tag of the target set (D2)"
        )
    for plan in filter(None, (target, reg)):
        if plan.captions_missing:
            warnings.append(
                f"{plan.captions_missing} {plan.name} pictures have no caption yet: run `gafu tag`"
            )
    area = resolution * resolution
    for plan in filter(None, (target, reg)):
        sizes = [_parse_size(s) for s in plan.sizes]
        if any(w * h > area for w, h in sizes):
            notes.append(
                f"some {plan.name} pictures are larger than {resolution}² and are scaled down to that area"
            )
        if any(w * h < area for w, h in sizes):
            notes.append(
                f"some {plan.name} pictures are smaller than {resolution}²: they train at their own size"
            )


# --- batch, steps and memory (P1–P3) ----------------------------------------------------------------


def _batch_plan(
    config: Config,
    dataset: DatasetPlan,
    max_batch: int,
    sources: _Sources,
    warnings: list[str],
    notes: list[str],
) -> BatchPlan:
    epochs = sources.config("batch.epochs", "train", "epochs")
    effective = sources.set(
        "batch.effective_batch",
        dataset.target.samples_per_epoch,
        f"recipe P2: repeats {dataset.target.repeats} × {dataset.target.pictures} target pictures",
    )
    reg_samples = dataset.reg.samples_per_epoch if dataset.reg else 0
    samples = sources.set(
        "batch.samples_per_epoch",
        dataset.target.samples_per_epoch + reg_samples,
        "recipe P3: 2 × repeats × N with regularization" if dataset.reg else "recipe P3: repeats × N",
    )
    steps_target = samples // effective  # P3: 2 with regularization, 1 without
    pairs = BatchPairs(
        effective, steps_target, lambda batch: micro_batches(dataset.target, dataset.reg, batch)
    )
    batch_size, accumulation = _batch_pair(config, pairs, max_batch, sources, warnings, notes)
    micro = sources.set(
        "batch.micro_batches_per_epoch",
        pairs.micro_batches(batch_size),
        "derived: samples per bucket / batch size, rounded up",
    )
    steps = sources.set(
        "batch.steps_per_epoch", math.ceil(micro / accumulation), "derived: micro-batches / accumulation"
    )
    if steps != steps_target:
        warnings.append(
            f"{steps} optimizer steps per epoch, not the recipe's {steps_target} (P3): "
            f"batch size {batch_size} × accumulation {accumulation} does not fit the epoch's {micro} batches"
        )
    return BatchPlan(
        epochs=epochs,
        effective_batch=effective,
        batch_size=batch_size,
        gradient_accumulation=accumulation,
        samples_per_epoch=samples,
        micro_batches_per_epoch=micro,
        steps_per_epoch=steps,
        total_steps=sources.set("batch.total_steps", steps * epochs, "derived: steps per epoch × epochs"),
    )


@dataclass(frozen=True)
class BatchPairs:
    """The batch × accumulation pairs for an epoch of `steps_per_epoch` optimizer steps (P2, P3)."""

    effective: int  # P2: repeats × target pictures
    steps_per_epoch: int  # P3: 2 with regularization, 1 without
    micro_batches: Callable[[int], int]  # batch size → batches in one epoch (buckets round up)

    def accumulation(self, batch: int) -> int:
        """Accumulation that makes an epoch `steps_per_epoch` steps (a step's last batch may be short)."""
        return math.ceil(self.micro_batches(batch) / self.steps_per_epoch)

    def deviation(self, batch: int) -> float:
        """How far batch × accumulation is from the effective batch, as a fraction of it."""
        return (batch * self.accumulation(batch) - self.effective) / self.effective


def _batch_pair(
    config: Config,
    pairs: BatchPairs,
    max_batch: int,
    sources: _Sources,
    warnings: list[str],
    notes: list[str],
) -> tuple[int, int]:
    """Batch size and gradient accumulation (P2), from overrides or the memory model."""
    given_batch, given_accumulation = config.train.batch_size, config.train.gradient_accumulation
    if given_batch:
        batch_size = sources.set("batch.batch_size", given_batch, "gafu.toml [train] batch_size")
        if given_batch > max(1, max_batch):
            warnings.append(
                f"batch size {given_batch} is above the {max(1, max_batch)} the memory model fits (estimate)"
            )
    elif given_accumulation:
        fitted = max(1, min(max_batch, round(pairs.effective / given_accumulation)))
        batch_size = sources.set(
            "batch.batch_size", fitted, "derived: effective batch / gradient_accumulation"
        )
    else:
        batch_size, why = choose_batch(pairs, max_batch)
        sources.set("batch.batch_size", batch_size, "memory model (estimate)")
        notes.append(why)
    if given_accumulation:
        accumulation = sources.set(
            "batch.gradient_accumulation", given_accumulation, "gafu.toml [train] gradient_accumulation"
        )
    else:
        accumulation = sources.set(
            "batch.gradient_accumulation",
            pairs.accumulation(batch_size),
            "recipe P2/P3: the epoch's batches / steps per epoch",
        )
    if abs(batch_size * accumulation - pairs.effective) > EFFECTIVE_BATCH_TOLERANCE * pairs.effective:
        warnings.append(
            f"batch size {batch_size} × accumulation {accumulation} = {batch_size * accumulation} "
            f"is far from the effective batch {pairs.effective} (P2: repeats × target pictures)"
        )
    return batch_size, accumulation


def choose_batch(pairs: BatchPairs, max_batch: int) -> tuple[int, str]:
    """A batch size ≤ max_batch for the effective batch (P2), and the sentence that says why.

    The fewest accumulation steps win (each is a forward and backward pass), among the batch
    sizes whose batch × accumulation lands within EFFECTIVE_BATCH_TOLERANCE of the effective
    batch; ties go to the nearest product, then the larger batch. Batch 1 always fits exactly.
    """
    ceiling = max(1, min(max_batch, pairs.effective))
    candidates = [b for b in range(1, ceiling + 1) if abs(pairs.deviation(b)) <= EFFECTIVE_BATCH_TOLERANCE]
    batch = min(candidates or [1], key=lambda b: (pairs.accumulation(b), abs(pairs.deviation(b)), -b))
    accumulation, effective = pairs.accumulation(batch), pairs.effective
    product = batch * accumulation
    if max_batch < 1:
        limit = "even batch 1 is over the memory estimate: see the warnings"
    elif max_batch > effective:
        limit = f"no batch needs to exceed the effective batch {effective}"
    else:
        limit = f"the memory estimate fits batches up to {max_batch}"
    if product == effective:
        return (
            batch,
            f"batch size {batch} × accumulation {accumulation} = effective batch {effective} (P2; {limit})",
        )
    exact = [b for b in candidates if pairs.deviation(b) == 0]
    alternative = (
        f"; the exact pair {max(exact)} × {pairs.accumulation(max(exact))} takes more passes per step: "
        f"set [train] batch_size = {max(exact)} to prefer it"
        if exact
        else ""
    )
    return batch, (
        f"batch size {batch} ({limit}) × accumulation {accumulation} = {product}, "
        f"{(product - effective) / effective:+.1%} from the effective batch {effective} (P2), "
        f"the nearest with {accumulation} passes per step{alternative}"
    )


def _vram(
    vram_gb: float | None, config: Config, gpu: GpuInfo | None, sources: _Sources, notes: list[str]
) -> tuple[float, str]:
    gpu_name = gpu.name if gpu else ""
    sources.set("memory.gpu", None, "detected" if gpu else "no GPU detected")
    if vram_gb is not None:
        if vram_gb <= 0:
            raise GafuError(f"--vram {vram_gb:g}: give the GPU's memory in GB, e.g. --vram 12")
        return sources.set("memory.vram_gb", float(vram_gb), "--vram"), gpu_name
    if config.train.vram_gb > 0:
        return sources.set("memory.vram_gb", config.train.vram_gb, "gafu.toml [train] vram_gb"), gpu_name
    if gpu is not None:
        return sources.set("memory.vram_gb", round(gpu.total_gib, 1), f"detected: {gpu.name}"), gpu_name
    notes.append(f"no GPU detected: planned for {DEFAULT_VRAM_GB:g} GB; pass --vram GB for your card")
    return sources.set("memory.vram_gb", DEFAULT_VRAM_GB, "gafu default (no GPU detected)"), gpu_name


def _training_shape(
    config: Config, run: RunPlan, network: NetworkPlan, dataset: DatasetPlan, notes: list[str]
) -> TrainingShape:
    """What the memory model needs to know about this run."""
    return TrainingShape(
        mixed_precision=run.mixed_precision,
        gradient_checkpointing=run.gradient_checkpointing,
        train_text_encoder=network.settings.train_text_encoder,
        optimizer=config.train.optimizer,
        cache_latents=dataset.cache_latents,
        lokr_parameters=_lokr_parameters(network, notes),
        largest_bucket=_parse_size(dataset.largest_bucket),
    )


def _memory_plan(
    estimate: MemoryEstimate, vram: float, gpu_name: str, usable: float, batch_size: int, sources: _Sources
) -> MemoryPlan:
    for key in (
        "usable_gb",
        "fixed_gb",
        "per_sample_gb",
        "estimate_gb",
        "max_batch_size",
        "fits",
        "breakdown",
    ):
        sources.set(f"memory.{key}", None, "memory model (estimate)")
    return MemoryPlan(
        vram_gb=vram,
        gpu=gpu_name,
        usable_gb=round(usable, 2),
        fixed_gb=round(estimate.fixed_gib, 2),
        per_sample_gb=round(estimate.per_sample_gib, 2),
        estimate_gb=round(estimate.at(batch_size), 2),
        max_batch_size=max(1, estimate.max_batch_size(usable)),
        fits=estimate.at(batch_size) <= usable,
        breakdown=estimate.breakdown(batch_size),
    )


def _memory_warning(memory: MemoryPlan, batch_size: int, config: Config) -> str:
    tips = []
    if config.train.optimizer != "adamw8bit":
        tips.append('optimizer = "adamw8bit"')
    if not config.train.gradient_checkpointing:
        tips.append("gradient_checkpointing = true")
    if config.train.train_text_encoder:
        tips.append("train_text_encoder = false")
    tips.append("a smaller [train] resolution")
    return (
        f"batch size {batch_size} needs about {memory.estimate_gb:g} GB (estimate) but {memory.vram_gb:g} GB "
        f"leaves {memory.usable_gb:g} GB usable; to save memory try, in [train]: {', '.join(tips)}"
    )


# --- optimizer, run, sampling (P1, P4, P5, P10) --------------------------------------------------------


def _optimizer_plan(
    config: Config, batch: BatchPlan, network: NetworkPlan, sources: _Sources, notes: list[str]
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


def _run_plan(project: Project, gpu: GpuInfo | None, sources: _Sources) -> RunPlan:
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
        sources.set("run.mixed_precision", None, "gafu.toml [train] mixed_precision")
    output_source = "gafu.toml [train] output_name" if train.output_name else "the trigger word"
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


def _sample_plan(project: Project, family: ModelFamily, sources: _Sources) -> SamplePlan:
    sample = project.config.sample
    preset = f"family {family.name} sampler preset"

    def override_or(name: str, key: str, fallback: Any, origin: str = preset) -> Any:
        given = getattr(sample, key)  # 0 / "" = not overridden
        return sources.set(
            f"sample.{name}", given or fallback, f"gafu.toml [sample] {key}" if given else origin
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


# --- helpers ---------------------------------------------------------------------------------------


def _parse_size(key: str) -> tuple[int, int]:
    width, height = key.split("x")
    return int(width), int(height)


def _ordered(by_name: dict[str, str], plan: Plan) -> dict[str, str]:
    """Sources in the order the plan's values appear (for reading the JSON top to bottom)."""
    order = {name: i for i, name in enumerate(value_names(plan.to_dict()))}
    return dict(sorted(by_name.items(), key=lambda item: (order.get(item[0], len(order)), item[0])))
