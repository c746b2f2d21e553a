"""`gafu sample`: grids of saved LoKr files at several weights (or of several epochs at one weight),
each prompt with and without the trigger (P10), sampled as the model's family needs (P9).

The base model is loaded once and the pipeline built once; each LoKr file is rebuilt on the
loaded model, applied, rendered at every weight by its multiplier, and unhooked before the next.
Sampler settings are the plan's: `output/plan.json` (the plan of the run that made the files)
when it exists, else the project's plan as `gafu plan` resolves it.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gafu.errors import GafuError
from gafu.project import Project
from gafu.sample.grid import write_index
from gafu.sample.prompts import SamplePrompt, plan_prompts, read_prompts_file
from gafu.sample.sheet import COLUMNS, PictureDone, Row, render_sheet, weight_rows
from gafu.train.runs import current_run, lokr_files

EPOCH_WEIGHT = 1.0  # P1: "about 100 epochs at weight 1.0 is typically good": epochs compare at 1.0


@dataclass
class SampleRequest:
    """What to render: LoKr files (each a weights sheet) or epochs (one sheet, a row per epoch)."""

    lokr_files: list[Path] = field(default_factory=list)
    epochs: list[int] = field(default_factory=list)
    weights: list[float] | None = None  # None = the plan's (epochs mode: 1.0)
    prompts_file: Path | None = None
    seed: int | None = None
    reuse: bool = True  # keep pictures already rendered with the same settings


@dataclass
class SampleResult:
    """What `gafu sample` wrote."""

    folders: list[Path]
    grids: list[Path]
    index: Path
    rendered: int
    reused: int
    plan_source: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Plain data for `--json` and reports."""
        return {
            "folders": [str(p) for p in self.folders],
            "grids": [str(p) for p in self.grids],
            "index": str(self.index),
            "rendered": self.rendered,
            "reused": self.reused,
            "plan": self.plan_source,
            "notes": self.notes,
        }


@dataclass(frozen=True)
class Sheet:
    """One folder of grids: its rows, and the LoKr file they share (None in epochs mode)."""

    folder: Path
    rows: list[Row]
    lokr: Path | None


def render_samples(
    project: Project,
    request: SampleRequest,
    *,
    device=None,
    on_picture: PictureDone | None = None,
    on_start: Callable[[int], None] | None = None,
) -> SampleResult:
    """Render the requested grids under `output/samples/` and rebuild `output/samples/index.html`.

    `on_start(pictures)` is told how many pictures the sheets hold (rendered or kept) before the
    model loads; `on_picture` is called after each.
    """
    plan, plan_source = sampling_plan(project)
    prompts = sample_prompts(plan, request)
    sheets = plan_sheets(project, plan, request)
    if on_start is not None:
        on_start(sum(len(sheet.rows) for sheet in sheets) * len(prompts) * len(COLUMNS))
    base = load_sampling_model(project, plan, device)
    from gafu.sample.training import renderer_for

    renderer = renderer_for(base, plan)
    identity = _identity(base, plan)
    load = network_loader(base, plan)
    grids, rendered, reused = [], 0, 0
    for sheet in sheets:
        network = load(sheet.lokr) if sheet.lokr is not None else None
        result = render_sheet(
            renderer,
            sheet.rows,
            prompts,
            sheet.folder,
            trigger=plan.trigger,
            network=network,
            load=load,
            identity=identity,
            reuse=request.reuse,
            on_picture=on_picture,
        )
        del network  # unhooked by the sheet; the next file is rebuilt on the same base model
        grids += result.grids
        rendered += result.rendered
        reused += result.reused
    from gafu.eval.report import sample_notes

    samples_dir = project.output_dir / "samples"
    notes = sample_notes(project, plan.run.output_name, samples_dir)  # the style probe's figures
    index = write_index(samples_dir, f"{plan.run.output_name}: samples", notes)
    return SampleResult(
        folders=[s.folder for s in sheets],
        grids=grids,
        index=index,
        rendered=rendered,
        reused=reused,
        plan_source=plan_source,
        notes=[*base.warnings, *base.notes],
    )


# --- what to render -----------------------------------------------------------------------------
def sampling_plan(project: Project):
    """The plan of the run (`output/plan.json`) when there is one, else the project's resolved plan."""
    from gafu.plan import load_plan, resolve_plan

    if project.plan_path.is_file():
        return load_plan(project.plan_path), str(project.plan_path)
    return resolve_plan(project), "gafu.toml (no output/plan.json yet)"


def sample_prompts(plan, request: SampleRequest) -> list[SamplePrompt]:
    """The prompts file's prompts, or the plan's; `--seed` replaces the plan's seed."""
    sample = plan.sample if request.seed is None else dataclasses.replace(plan.sample, seed=request.seed)
    if request.prompts_file is not None:
        return read_prompts_file(request.prompts_file, sample, plan.trigger)
    return plan_prompts(sample, plan.trigger)


def plan_sheets(project: Project, plan, request: SampleRequest) -> list[Sheet]:
    """The sheets to render: a weights sheet per LoKr file, or one epochs sheet."""
    samples = project.output_dir / "samples"
    if request.lokr_files and request.epochs:
        raise GafuError("give LoKr files or epochs, not both", hint="--lokr FILE … or --epochs 10,20,…")
    if request.epochs:
        weight = _epoch_weight(request.weights)
        files = [epoch_file(project, plan, epoch) for epoch in request.epochs]
        rows = [
            Row(f"epoch {epoch} (w {weight:g})", f"e{epoch:06d}", weight, lokr=path, lokr_id=_file_id(path))
            for epoch, path in zip(request.epochs, files, strict=True)
        ]
        name = "epochs-" + "-".join(str(e) for e in request.epochs) + f"-w{weight:g}"
        return [Sheet(samples / name, rows, None)]
    files = [_existing(Path(p)) for p in request.lokr_files] or [latest_lokr(project, plan)]
    weights = request.weights if request.weights is not None else plan.sample.weights
    return [
        Sheet(
            samples / path.stem,
            [dataclasses.replace(row, lokr_id=_file_id(path)) for row in weight_rows(weights)],
            path,
        )
        for path in files
    ]


def epoch_file(project: Project, plan, epoch: int) -> Path:
    """`output/<name>-e000010.safetensors` (the name `gafu train` saves epoch 10 under)."""
    path = project.output_dir / f"{plan.run.output_name}-e{epoch:06d}.safetensors"
    if not path.is_file():
        saved = sorted(epoch_files(project, plan))
        listing = ", ".join(str(e) for e in saved) or "none"
        raise GafuError(
            f"no LoKr for epoch {epoch}: {path} does not exist", path=path, hint=f"saved epochs: {listing}"
        )
    return path


def epoch_files(project: Project, plan) -> dict[int, Path]:
    """Saved epochs of the current run → their LoKr files in `output/`."""
    files = lokr_files(project.output_dir, plan.run.output_name)
    return {f.number: f.path for f in files if f.kind == "epoch"}


def latest_lokr(project: Project, plan) -> Path:
    """The current run's latest LoKr: the finished file, else the latest epoch or stop."""
    latest = current_run(project.output_dir, plan.run.output_name).latest
    if latest is not None:
        return latest.path
    raise GafuError(
        f"no LoKr files in {project.output_dir}",
        hint="train first (`gafu train`), or name files with --lokr FILE …",
    )


def _epoch_weight(weights: Sequence[float] | None) -> float:
    if weights is None:
        return EPOCH_WEIGHT
    if len(weights) != 1:
        raise GafuError(
            "--epochs compares epochs at one weight",
            hint="give one --weights value (default 1.0), e.g. --weights 0.8",
        )
    return float(weights[0])


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise GafuError(f"LoKr file {path} does not exist", path=path)
    return path


def _file_id(path: Path) -> str:
    """A LoKr file's identity: its path, size and modification time (cheaper than hashing 200 MB).

    Kept in each picture, hashed: a picture someone posts names no folder of theirs.
    """
    stat = path.stat()
    return _digest(f"{path.resolve().as_posix()}:{stat.st_size}:{stat.st_mtime_ns}")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


# --- the model ------------------------------------------------------------------------------------
DTYPES = {"bf16": "bfloat16", "fp16": "float16", "no": "float32"}


def load_sampling_model(project: Project, plan, device):
    """The base model on the sampling device, in the run's precision (on a CPU: bf16 or fp32)."""
    import torch

    from gafu.cpu import native_bf16
    from gafu.models.load import load_project_model

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = getattr(torch, DTYPES.get(plan.run.mixed_precision, "float32"))
    if device.type == "cpu" and (dtype == torch.float16 or (dtype == torch.bfloat16 and not native_bf16())):
        # fp16 on a CPU is slow and lacks operations; bf16 runs there natively with AVX-512 (as the
        # run's own samples on its bf16 weights did, at half the memory of fp32: full SDXL 7 GB
        # instead of 14), and about 90× slower than fp32 where it is emulated (gafu.cpu.native_bf16).
        dtype = torch.float32
    return load_project_model(project, dtype=dtype, device=device)


def network_loader(base, plan):
    """LoKr file → its network on the base model's device (not applied), with the run's LoKr kernel."""
    from gafu.network.fast_lokr import lokr_module_class
    from gafu.network.files import load_network

    device = base.unet.device
    module_class = lokr_module_class(plan.run.lokr_kernel, device)

    def load(path: Path):
        network = load_network(path, base.unet, base.text_encoders, module_class=module_class)
        return network.to(device)

    return load


def _identity(base, plan) -> str:
    """What decides the pictures besides the prompt (base model, dtype, noise schedule), hashed."""
    source = base.source.path
    stat = source.stat() if source.exists() else None
    stamp = f"{stat.st_size}:{stat.st_mtime_ns}" if stat else ""
    return _digest(
        f"{source.as_posix()}:{stamp}|{base.unet.dtype}|{plan.model.prediction_type}|"
        f"ztsnr={plan.loss.zero_terminal_snr}|{plan.sample.timestep_spacing}|rescale={plan.sample.guidance_rescale}"
    )
