"""`gafu eval`: the style probe's figures for LoKr files at several weights, and two runs side by side.

The base model is loaded once, as the trainer loads it; each LoKr file (gafu's, or kohya +
LyCORIS's: the same format) is rebuilt on it and measured at every weight by its multiplier.
The probe is the plan's (`output/plan.json`, the run's, else the project's as `gafu plan`
resolves it), so the figures are the ones training stored at each save. Losses are kept in
`.gafu/cache/eval/`: the base model's are measured once, and a file at a weight once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from gafu import recipe
from gafu.errors import GafuError
from gafu.eval.cache import LossCache, model_key
from gafu.eval.figures import StyleFigures, Suggestion, style_figures, suggest
from gafu.eval.probe import ProbeLosses, StyleProbe
from gafu.project import Project
from gafu.train.runs import RUNS_NAME

Progress = Callable[[int, int], None]  # (rows measured so far, rows in all)
_SAVED = re.compile(r"^(?P<name>.+?)(?:-e(?P<epoch>\d{6,}))?$")


@dataclass
class EvalRequest:
    """What to measure: LoKr files (default: the run's saved files) at weights, or two runs."""

    lokr_files: list[Path] = field(default_factory=list)
    weights: list[float] | None = None  # None: the plan's sample weights above 0 (compare: 1.0)
    min_fit: float | None = None  # the suggestion's floor; None = PROBE_FIT_SHARE of the largest fit
    compare: list[str] = field(default_factory=list)  # two runs: folders, LoKr files or output names
    reuse: bool = True  # answer from the cache where the same file and weight were measured


@dataclass(frozen=True)
class Run:
    """The LoKr files of one training run, by epoch."""

    name: str
    files: list[Path]
    regularization: int | None  # reg pictures it trained with (0: none), None: its file does not say

    @property
    def label(self) -> str:
        """`mzh_style (with regularization: 40 pictures)`."""
        if self.regularization is None:
            return self.name
        if self.regularization == 0:
            return f"{self.name} (without regularization)"
        return f"{self.name} (with regularization: {self.regularization} pictures)"


@dataclass
class EvalRow:
    """One LoKr file at one weight."""

    path: Path
    epoch: int | None
    weight: float
    figures: StyleFigures
    losses: dict[str, float | None]
    run: int | None = None  # index into EvalResult.runs (compare)

    def to_dict(self, root: Path) -> dict:
        """Plain data; the file relative to the project where it is inside it."""
        return {
            "file": shown_path(self.path, root),
            "epoch": self.epoch,
            "weight": self.weight,
            **self.figures.to_dict(),
            "losses": self.losses,
            "run": self.run,
        }


@dataclass
class EvalResult:
    """What `gafu eval` measured."""

    root: Path
    probe: dict
    base: dict[str, float | None]
    rows: list[EvalRow]
    suggestion: Suggestion | None
    runs: list[Run]
    plan_source: str
    measured: int = 0  # (file, weight) pairs measured now
    reused: int = 0  # … answered from the cache
    base_cached: bool = False  # the base model's losses came from the cache
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Plain data for `--json` and reports/eval.json."""
        suggestion = None
        if self.suggestion is not None:
            row = self.rows[self.suggestion.index]
            suggestion = {
                "file": shown_path(row.path, self.root),
                "epoch": row.epoch,
                "weight": row.weight,
                "min_fit": round(self.suggestion.min_fit, 6),
                "min_fit_from": self.suggestion.min_fit_source,
            }
        return {
            "probe": self.probe,
            "base": self.base,
            "rows": [row.to_dict(self.root) for row in self.rows],
            "suggestion": suggestion,
            "runs": [
                {"name": r.name, "label": r.label, "regularization": r.regularization, "files": len(r.files)}
                for r in self.runs
            ],
            "plan": self.plan_source,
            "measured": self.measured,
            "reused": self.reused,
            "base_cached": self.base_cached,
            "notes": self.notes,
        }


def evaluate_project(
    project: Project, request: EvalRequest, *, device=None, on_progress: Progress | None = None
) -> EvalResult:
    """Measure the requested files at the requested weights against the base model."""
    from gafu.sample.render import network_at
    from gafu.sample.samples import network_loader
    from gafu.sample.training import preserved_state

    plan, plan_source, notes = probe_plan(project)
    runs = [find_run(project, plan, spec) for spec in request.compare]
    if request.compare and len(runs) != 2:
        raise GafuError("--compare takes two runs", hint="e.g. --compare mzh_style mzh_style-noreg")
    files = [f for run in runs for f in run.files] or [_existing(p) for p in request.lokr_files]
    files = files or run_files(project, plan)
    weights = _weights(request, plan, compare=bool(runs))
    model = ProbeModel.load(project, plan, device)
    probe, cache = model.probe(project)
    total = len(probe.rows) * (1 + len(files) * len(weights))
    done = [0]

    def advance(count: int) -> None:
        done[0] += count
        if on_progress is not None:
            on_progress(done[0], total)

    base = cache.get("base") if request.reuse else None
    result = EvalResult(
        root=project.root,
        probe=probe.describe(),
        base={},
        rows=[],
        suggestion=None,
        runs=runs,
        plan_source=plan_source,
        base_cached=base is not None,
        notes=notes,
    )
    if base is None:
        with preserved_state(model.base, None, vae=False):
            base = _measured(cache, ("base",), probe, model, advance)
    else:
        advance(len(probe.rows))
    result.base = base.means()
    load = network_loader(model.base, model.plan)
    for path in files:
        run = next((i for i, r in enumerate(runs) if path in r.files), None)
        network = None
        try:
            for weight in weights:
                key = ("lokr", file_identity(path), float(weight))
                losses = cache.get(*key) if request.reuse else None
                if losses is None:
                    network = load(path) if network is None else network
                    with preserved_state(model.base, network, vae=False), network_at(network, weight):
                        losses = _measured(cache, key, probe, model, advance)
                    result.measured += 1
                else:
                    advance(len(probe.rows))
                    result.reused += 1
                figures = style_figures(result.base, losses.means())
                result.rows.append(EvalRow(path, file_epoch(path), weight, figures, losses.means(), run))
        finally:
            if network is not None:
                network.restore()
    result.suggestion = suggest([r.figures for r in result.rows], request.min_fit, recipe.PROBE_FIT_SHARE)
    return result


# --- the model and the probe ----------------------------------------------------------------------
@dataclass
class _Precision:
    """accelerate's autocast for the run's precision, on a device of our choosing."""

    device: torch.device
    mixed_precision: str  # "bf16", "fp16" or "no"

    def autocast(self):
        """Autocast to the run's half precision, or nothing in fp32."""
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.mixed_precision)
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)


@dataclass
class ProbeModel:
    """The base model loaded as the trainer loads it (`Denoising`: what the trainer's loss needs)."""

    plan: object
    accelerator: _Precision
    base: object
    noise_scheduler: object
    loss_snr: torch.Tensor

    @classmethod
    def load(cls, project: Project, plan, device=None) -> ProbeModel:
        """The plan's base model on `device` (default: CUDA where there is one); fp32 on a CPU."""
        from gafu.train import setup
        from gafu.train.noise import loss_snr_table, noise_scheduler

        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if device.type == "cpu":  # half precision on a CPU is slow, and some of its operations are missing
            plan = dataclasses.replace(plan, run=dataclasses.replace(plan.run, mixed_precision="no"))
        base = setup.load_models(project, plan, device)
        scheduler = noise_scheduler(base.scheduler_config, plan.loss)
        precision = _Precision(device, plan.run.mixed_precision)
        return cls(plan, precision, base, scheduler, loss_snr_table(base.scheduler_config))

    def probe(self, project: Project) -> tuple[StyleProbe, LossCache]:
        """The plan's probe on this model (latents from the shared cache) and its loss cache."""
        from gafu.train.data import probe_pictures
        from gafu.train.latents import cached_latents

        device = self.accelerator.device
        pictures = probe_pictures(project, self.plan)
        latents, _ = cached_latents(pictures, self.base.vae, project.latent_cache_dir, device=device)
        self.base.vae.to("cpu")
        steps = self.noise_scheduler.config.num_train_timesteps
        probe = StyleProbe(self.plan, pictures, latents, steps, project.root)
        key = model_key(self.base, self.plan.run.mixed_precision, device)
        return probe, LossCache(project.eval_cache_dir, probe.key, key)


def probe_plan(project: Project) -> tuple[object, str, list[str]]:
    """The run's plan (or the project's) with a probe whose pictures exist; notes say what changed."""
    from gafu.sample.samples import sampling_plan

    plan, source = sampling_plan(project)
    probe = plan.eval
    names = probe.target + probe.reg
    if names and all((project.root / name).is_file() for name in names):
        return plan, source, []
    from gafu.plan import resolve_plan

    fresh = resolve_plan(project).eval
    why = "has none" if not names else "names pictures that are gone"
    note = f"the run's plan {why}: the probe's pictures were chosen now (`gafu plan`'s)"
    return dataclasses.replace(plan, eval=fresh), source, [note]


def _measured(cache, key, probe: StyleProbe, model, advance) -> ProbeLosses:
    """Measure the model as it is now and keep its losses under `key`."""
    batch_size = max(1, model.plan.batch.batch_size)
    losses = probe.measure(model, batch_size, on_rows=advance)
    cache.put(losses, *key)
    return losses


# --- which files ---------------------------------------------------------------------------------------
def run_files(project: Project, plan) -> list[Path]:
    """The run's saved LoKr files in epoch order, the final one last."""
    from gafu.sample.samples import epoch_files

    saved = [path for _, path in sorted(epoch_files(project, plan).items())]
    final = project.output_dir / f"{plan.run.output_name}.safetensors"
    files = saved + ([final] if final.is_file() else [])
    if not files:
        raise GafuError(
            f"no LoKr files in {project.output_dir}",
            hint="train first (`gafu train`), or name files with --lokr FILE …",
        )
    return files


def find_run(project: Project, plan, spec: str) -> Run:
    """A run named on the command line: a LoKr file, a folder of one run's files, or an output name."""
    for candidate in (Path(spec), project.root / spec, project.output_dir / spec):
        if candidate.is_file():
            return _run_of([candidate], candidate.stem)
        if candidate.is_dir():
            groups = _by_output_name(candidate)
            if len(groups) == 1:
                (name, files), *_ = groups.items()
                return _run_of(files, name)
            if groups:
                raise GafuError(
                    f"{candidate} holds the files of several runs ({', '.join(sorted(groups))})",
                    hint="name one run by its output name, e.g. --compare " + " ".join(sorted(groups)[:2]),
                )
    known: set[str] = set()
    for folder in _run_folders(project.output_dir):
        groups = _by_output_name(folder)
        if spec in groups:
            return _run_of(groups[spec], spec)
        known.update(groups)
    raise GafuError(
        f"no run {spec!r}: not a LoKr file, a folder of one, or an output name in {project.output_dir}"
        f" or its {RUNS_NAME}/",
        hint=f"runs found: {', '.join(sorted(known)) or 'none'}",
    )


def _run_folders(output: Path) -> list[Path]:
    """`output/` (the current run) then `output/runs/*/` newest first: where a name is looked up."""
    earlier = output / RUNS_NAME
    moved = sorted((p for p in earlier.iterdir() if p.is_dir()), reverse=True) if earlier.is_dir() else []
    return [output, *moved]


def _by_output_name(folder: Path) -> dict[str, list[Path]]:
    """`<name>-e000010.safetensors` and `<name>.safetensors` in `folder`, grouped by name, by epoch."""
    groups: dict[str, list[Path]] = {}
    for path in sorted(folder.glob("*.safetensors")):
        match = _SAVED.match(path.stem)
        if match and "-step" not in path.stem:
            groups.setdefault(match.group("name"), []).append(path)
    return {
        name: sorted(files, key=lambda p: (file_epoch(p) is None, file_epoch(p) or 0, p.name))
        for name, files in groups.items()
    }


def _run_of(files: list[Path], name: str) -> Run:
    return Run(name, files, _regularization(files[-1]))


def _regularization(path: Path) -> int | None:
    """Regularization pictures the file's run trained with, from the plan in its metadata."""
    import json

    from gafu.network.files import PLAN_KEY

    try:
        plan = json.loads(file_metadata(path).get(PLAN_KEY, ""))
        reg = plan["dataset"]["reg"]
        return 0 if reg is None else int(reg["pictures"])
    except (ValueError, KeyError, TypeError):
        return None


def file_metadata(path: Path) -> dict[str, str]:
    from gafu.models.checkpoint import read_header

    header, _ = read_header(path)
    return {str(k): str(v) for k, v in (header.get("__metadata__") or {}).items()}


def file_epoch(path: Path) -> int | None:
    """The epoch a LoKr file was saved at: its `ss_epoch` metadata, else its name (`-e000010`)."""
    try:
        return int(file_metadata(path)["ss_epoch"])
    except (GafuError, KeyError, ValueError):
        match = _SAVED.match(path.stem)
        return int(match.group("epoch")) if match and match.group("epoch") else None


def file_identity(path: Path) -> str:
    """A LoKr file's identity for the cache: path, size and modification time."""
    stat = path.stat()
    return f"{path.resolve().as_posix()}:{stat.st_size}:{stat.st_mtime_ns}"


def _weights(request: EvalRequest, plan, *, compare: bool) -> list[float]:
    if request.weights:
        return [float(w) for w in request.weights]
    if compare:
        return [1.0]  # P1: runs compare at weight 1
    return [float(w) for w in plan.sample.weights if w > 0] or [1.0]


def _existing(path: Path) -> Path:
    if not Path(path).is_file():
        raise GafuError(f"LoKr file {path} does not exist", path=Path(path))
    return Path(path)


def shown_path(path: Path, root: Path) -> str:
    from gafu.train.data import relative

    return relative(path, root)
