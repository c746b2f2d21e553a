"""The resolved plan: every value the trainer and the sampler use, each with where it came from.

A Plan is plain, typed data. `gafu train` takes one and nothing else; `gafu sample` reads the
family's sampler settings from `plan.sample`; the same JSON is written next to every training
output and into each LoKr's metadata. Values are plain (numbers, strings, lists); where each
came from is kept apart in `plan.sources`, keyed by the value's dotted name
(`"batch.epochs"` → `"recipe P1"`), so the trainer never has to unwrap anything.

Paths in a plan are as `gafu.toml` wrote them (model) or relative to the project folder (dataset
folders, POSIX style), so a plan stays valid when the project folder moves.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gafu import recipe
from gafu.errors import GafuError
from gafu.fsio import read_json, write_json_atomic
from gafu.network.settings import LokrSettings
from gafu.network.summary import AdaptedModule, NetworkSummary
from gafu.versioning import upgrade

PLAN_VERSION = 3


@dataclass(frozen=True)
class ModelPlan:
    """The base model and its family (P9: what the family decides)."""

    path: str  # as in gafu.toml: a .safetensors file, a diffusers folder or a hub repo id
    config: str  # diffusers config folder for a single file ("" = gafu's shipped SDXL config)
    tokenizers: str
    vae: str  # "" = the checkpoint's own VAE
    family: str  # a name in gafu.families.FAMILIES
    family_title: str
    prediction_type: str  # "epsilon" or "v_prediction"
    base_model_version: str  # ss_base_model_version for the LoKr metadata
    modelspec_architecture: str


@dataclass(frozen=True)
class SetPlan:
    """One prepared set (D5) as the trainer will see it."""

    name: Literal["target", "reg"]
    concept_folders: list[str]  # relative to the project folder, e.g. "dataset/train/2_mzh_style"
    pictures: int
    repeats: int  # from the concept folder names (`<repeats>_<name>`; the largest where they differ)
    samples_per_epoch: int  # Σ pictures × their folder's repeats; regularization: matched to the target (P3)
    captions_missing: int
    sizes: dict[str, int]  # picture size "WxH" → pictures
    buckets: dict[str, int]  # training size "WxH" → pictures (see gafu.plan.dataset.bucket_size)
    bucket_samples: dict[str, int]  # training size "WxH" → samples per epoch (see gafu.plan.dataset)


@dataclass(frozen=True)
class DatasetPlan:
    """What the trainer reads and how (D4, D5, P3, P7)."""

    target: SetPlan
    reg: SetPlan | None
    resolution: int  # side of the training area: pictures above resolution² are scaled down
    bucket_step: int  # D4b: bucket sides are multiples of this
    bucket_no_upscale: bool  # pictures smaller than the area train at their own size
    largest_bucket: str  # "WxH" of the largest training size (what the memory model plans for)
    caption_extension: str
    keep_tokens: int  # P7
    shuffle_caption: bool  # P7
    caption_dropout_rate: float  # P7: 0
    caption_tag_dropout_rate: float  # P7: 0
    caption_dropout_every_n_epochs: int  # P7: 0
    prior_loss_weight: float  # P3
    cache_latents: bool  # latents encoded once, so the VAE is off the GPU while training


@dataclass(frozen=True)
class NetworkPlan:
    """The LoKr network (P6) and, where gafu can build it, what it adapts."""

    algo: str
    settings: LokrSettings
    summary: NetworkSummary | None  # None where no network summary is available


@dataclass(frozen=True)
class BatchPlan:
    """Epochs, batch arithmetic and steps (P1–P3)."""

    epochs: int
    effective_batch: int  # P2 target: repeats × target pictures
    batch_size: int
    gradient_accumulation: int  # batch_size × gradient_accumulation ≈ effective_batch
    samples_per_epoch: int  # P3: 2 × repeats × N with regularization, repeats × N without
    micro_batches_per_epoch: int  # batches of batch_size, per bucket, summed
    steps_per_epoch: int  # optimizer steps: ceil(micro_batches / gradient_accumulation)
    total_steps: int


@dataclass(frozen=True)
class OptimizerPlan:
    """Learning rates, scheduler and optimizer (P4, P5)."""

    optimizer: str  # "adamw" or "adamw8bit"
    unet_lr: float
    text_encoder_lr: float  # 0 when the text encoders are not trained
    text_encoder_lr_ratio: float
    train_text_encoder: bool
    lr_scheduler: str  # "cosine_with_restarts"
    restart_every_epochs: int
    num_cycles: int  # cosine cycles over the run (kohya's lr_scheduler_num_cycles), not restarts
    steps_per_cycle: int
    warmup_steps: int
    max_grad_norm: float  # 0 = no clipping


@dataclass(frozen=True)
class LossPlan:
    """Prediction target, noise and loss weighting (P8, P9)."""

    v_parameterization: bool
    zero_terminal_snr: bool
    scale_v_pred_loss_like_noise_pred: bool
    multires_noise_iterations: int  # 0 = off
    multires_noise_discount: float
    noise_offset: float  # 0 = off
    min_snr_gamma: float  # 0 = off


@dataclass(frozen=True)
class RunPlan:
    """How the run executes and what it saves (P1)."""

    mixed_precision: str  # "bf16", "fp16" or "no"
    gradient_checkpointing: bool
    seed: int
    save_every_epochs: int
    save_dtype: str
    keep_states: int
    sample_every_epochs: int  # 0 = no grids during training
    output_name: str
    lokr_kernel: str


@dataclass(frozen=True)
class MemoryPlan:
    """The GPU memory the batch size was chosen for (figures are estimates; see gafu.plan.memory)."""

    vram_gb: float  # GiB planned for
    gpu: str  # the detected GPU's name, or "" where none was detected
    usable_gb: float  # vram_gb less the headroom kept free
    fixed_gb: float  # weights, optimizer state, context: paid once
    per_sample_gb: float  # activations of one sample at the largest bucket
    estimate_gb: float  # fixed + batch_size × per_sample
    max_batch_size: int  # the largest batch the estimate fits in usable_gb (at least 1)
    fits: bool
    breakdown: dict[str, float]  # component → GiB, adding up to estimate_gb


@dataclass(frozen=True)
class SamplePlan:
    """Sample grids (P10) with the family's sampler preset and `[sample]` overrides."""

    prompts: list[str]  # without the trigger; `[sample] prompts`, else the most typical target captions
    negative: str
    weights: list[float]
    seed: int
    scheduler: str
    steps: int
    cfg: float
    guidance_rescale: float
    timestep_spacing: str
    width: int
    height: int


@dataclass(frozen=True)
class EvalPlan:
    """The style probe (`gafu eval`, and `gafu train` at every save): its pictures and fixed draws."""

    during_training: bool  # measured at every saved epoch
    target: list[str]  # probe pictures, relative to the project folder (POSIX), spread over buckets
    reg: list[str]
    held_out: bool  # True: the probe pictures are left out of training (`[eval] holdout`)
    timesteps: int  # fixed timesteps, the centres of equal slices of the noise schedule
    seed: int  # of the fixed noise

    @property
    def held_out_pictures(self) -> frozenset[str]:
        """The pictures training must not see."""
        return frozenset(self.target + self.reg) if self.held_out else frozenset()


@dataclass(frozen=True)
class Plan:
    """Everything `gafu train` uses and `gafu sample` reads, resolved once by `gafu plan`."""

    version: int
    gafu_version: str
    trigger: str
    model: ModelPlan
    dataset: DatasetPlan
    network: NetworkPlan
    batch: BatchPlan
    optimizer: OptimizerPlan
    loss: LossPlan
    run: RunPlan
    memory: MemoryPlan
    sample: SamplePlan
    eval: EvalPlan
    sources: dict[str, str] = field(default_factory=dict)  # dotted value name → where it came from
    notes: list[str] = field(default_factory=list)  # why a value is what it is
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data, including the network's module list and totals."""
        return _to_data(self)


# --- JSON ------------------------------------------------------------------------------------


def _samples_per_bucket_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 → 2: each set's samples per bucket, as version 1 counted them.

    Version 1 gave every target picture the set's repeats and spread the regularization samples
    over the reg buckets in proportion, each share rounded up; a run planned so and resumed now
    is checked against those counts (and told to start over where the trainer's differ).
    """
    dataset = data.get("dataset")
    if not isinstance(dataset, dict):
        return data
    for name in ("target", "reg"):
        plan = dataset.get(name)
        if not isinstance(plan, dict) or not plan.get("pictures"):
            continue
        buckets, pictures = plan.get("buckets", {}), plan["pictures"]
        if name == "target":
            plan["bucket_samples"] = {k: n * plan.get("repeats", 0) for k, n in buckets.items()}
        else:
            samples = plan.get("samples_per_epoch", 0)
            plan["bucket_samples"] = {
                k: math.ceil(round(samples * n / pictures, 6)) for k, n in buckets.items()
            }
    return data


def _add_eval(data: dict[str, Any]) -> dict[str, Any]:
    """Version 2 → 3: plans before the style probe; their runs measured nothing during training."""
    empty = {"during_training": False, "target": [], "reg": [], "held_out": False}
    return {**data, "eval": {**empty, "timesteps": recipe.PROBE_TIMESTEPS, "seed": recipe.PROBE_SEED}}


# Migrations from plan version N to N + 1, applied in order to older plans. Version 1 is the first.
MIGRATIONS: dict[int, typing.Callable[[dict[str, Any]], dict[str, Any]]] = {
    1: _samples_per_bucket_v1,
    2: _add_eval,
}


def plan_from_dict(data: dict[str, Any], *, source: str = "plan") -> Plan:
    """Rebuild a Plan from `Plan.to_dict()` data, migrating older versions."""
    if not isinstance(data, dict):
        raise GafuError(f"{source} is not a plan (expected a JSON object)")
    data = upgrade(data, current=PLAN_VERSION, migrations=MIGRATIONS, source=source, kind="plan")
    try:
        return _from_data(Plan, data, "")
    except (TypeError, ValueError, KeyError) as exc:
        raise GafuError(f"{source} is not a valid plan ({exc})", hint="run `gafu plan` again") from exc


def save_plan(plan: Plan, path: Path) -> None:
    """Write `plan` as JSON, atomically."""
    write_json_atomic(path, plan.to_dict())


def write_plan_report(reports_dir: Path, plan: Plan) -> Path:
    """Write `reports/plan.json`: the plan as `gafu plan` last resolved it (not the run's)."""
    from gafu.reports import write_report

    return write_report(reports_dir, "plan", {"plan": plan.to_dict()})


def load_plan(path: Path) -> Plan:
    """Read a plan written by `save_plan`."""
    return plan_from_dict(read_json(path, what="plan"), source=str(path))


# Plan values held as whole tables: their keys are data (sizes, components), not value names.
TABLE_VALUES = frozenset({"summary", "sizes", "buckets", "bucket_samples", "breakdown", "sources"})


def value_names(data: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the values in plan data (`"batch.epochs"`), sections before their values."""
    names = []
    for key, value in data.items():
        names.append(prefix + key)
        if isinstance(value, dict) and key not in TABLE_VALUES:
            names.extend(value_names(value, f"{prefix}{key}."))
    return names


def _to_data(value: Any) -> Any:
    if isinstance(value, NetworkSummary):
        data = _to_data(value.to_dict())  # plain lists for the shapes, as JSON reads them back
        data["full_matrix_modules"] = sum(m.full_matrix for m in value.modules)
        return data
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_data(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_to_data(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_data(v) for k, v in value.items()}
    return value


def _from_data(hint: Any, data: Any, name: str) -> Any:
    """Build a value of type `hint` from JSON data; raises TypeError/KeyError on a mismatch."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if data is None and type(None) in args:
            return None
        return _from_data(next(a for a in args if a is not type(None)), data, name)
    if hint is NetworkSummary:
        return NetworkSummary(
            modules=[_from_data(AdaptedModule, m, f"{name}.modules") for m in data["modules"]]
        )
    if dataclasses.is_dataclass(hint):
        if not isinstance(data, dict):
            raise TypeError(f"{name or 'plan'} must be an object")
        hints = typing.get_type_hints(hint)
        names = {f.name for f in dataclasses.fields(hint)}
        unknown = set(data) - names
        if unknown:
            raise KeyError(f"unknown key {sorted(unknown)[0]!r} in {name or 'plan'}")
        return hint(**{k: _from_data(hints[k], v, f"{name}.{k}".lstrip(".")) for k, v in data.items()})
    if origin is list:
        return [_from_data(args[0], v, name) for v in _checked(data, list, name)]
    if origin is tuple:
        return tuple(_from_data(args[0], v, name) for v in _checked(data, list, name))
    if origin is dict:
        return {k: _from_data(args[1], v, name) for k, v in _checked(data, dict, name).items()}
    if origin is Literal:
        if data not in args:
            raise ValueError(f"{name} = {data!r} is not one of {args}")
        return data
    if hint is float and isinstance(data, int) and not isinstance(data, bool):
        return float(data)
    return _checked(data, hint, name)


def _checked(data: Any, kind: type, name: str) -> Any:
    if not isinstance(data, kind) or (kind in (int, float) and isinstance(data, bool)):
        raise TypeError(f"{name} must be {kind.__name__}, not {type(data).__name__}")
    return data
