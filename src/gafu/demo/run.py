"""`gafu demo`: the whole recipe on a synthetic dataset and a tiny model, in about a minute on a CPU.

Everything is made here by gafu's own code — pictures in a target style and in other styles,
a tiny SDXL-architecture base model saved as a single file, a tiny WD-format tagger — and then
each stage runs through the same library functions the CLI calls:
init → prep → tag → check → plan → train (with the style probe at every save) → eval → sample.
The tiny model learns nothing worth looking
at; the demo shows that every stage works and fits the next, and what each one writes.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gafu.config import Config, save_config
from gafu.demo.pictures import SIZES
from gafu.errors import GafuError
from gafu.fsio import read_json, write_json_atomic

DEMO_TRIGGER = "flatink_style"
# What the help and the README say (docs/benchmarks.md has the measured times).
RUNNING_TIME = "about a minute on two CPU cores"
MARKER = "gafu-demo.json"  # marks a folder as made by `gafu demo`, so --force may replace it


@dataclass(frozen=True)
class DemoSettings:
    """The demo's deviations from the recipe, each there to finish in about a minute on 2 CPU cores."""

    pictures: int = 12  # per set; the recipe's 40+ (D1) is for real styles
    epochs: int = 10  # P1's 200 epochs are for a real model
    restart_every_epochs: int = 5  # P5's 50-epoch cycles, scaled to the short run
    save_every_epochs: int = 5
    resolution: int = 256  # the smallest training side gafu accepts (SDXL's is 1024, D4)
    sample_side: int = 256
    sample_steps: int = 12
    family: str = "sdxl"  # the tiny model is an eps model with SDXL's architecture
    seed: int = 0


@dataclass
class StageRecord:
    """What one stage of the demo did, for the console and the report."""

    name: str
    seconds: float
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class DemoResult:
    """Where the demo's results are."""

    folder: Path
    project: Path
    report: Path
    stages: list[StageRecord]
    lokr: Path | None = None
    grids: list[Path] = field(default_factory=list)
    style: list[dict] = field(default_factory=list)  # the style probe's `eval` events, one per save
    evaluation: dict | None = None  # `gafu eval` of the final LoKr at several weights


StageListener = Callable[[StageRecord], None]


def run_demo(
    folder: Path,
    settings: DemoSettings | None = None,
    *,
    force: bool = False,
    on_stage: StageListener | None = None,
    progress_bar: bool = False,
) -> DemoResult:
    """Make the demo's inputs in `folder`, run every stage on them and write `folder/report.html`.

    `progress_bar`: draw the training and sampling bars on stderr (for a terminal).
    """
    settings = settings or DemoSettings()
    folder = _fresh_folder(Path(folder), force=force)
    stages: list[StageRecord] = []

    def record(stage: StageRecord) -> None:
        stages.append(stage)
        if on_stage:
            on_stage(stage)

    inputs = _timed("make inputs", lambda: _make_inputs(folder, settings), record)
    project = _timed("init", lambda: _init(folder, inputs, settings), record)
    _timed("prep", lambda: _prep(project), record)
    _timed("tag", lambda: _tag(project), record)
    _timed("check", lambda: _check(project), record)
    _timed("plan", lambda: _plan(project), record)
    result = DemoResult(folder=folder, project=project.root, report=folder / "report.html", stages=stages)
    _timed("train", lambda: _train(project, result, progress_bar), record)
    _timed("eval", lambda: _eval(project, result), record)
    _timed("sample", lambda: _sample(project, result, progress_bar), record)

    from gafu.demo.report import write_demo_report

    write_demo_report(result)
    return result


# --- the stages --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Inputs:
    target: Path
    reg: Path
    model: Any  # gafu.models.tiny.TinyModel
    tagger: Path


def _make_inputs(folder: Path, settings: DemoSettings) -> tuple[_Inputs, str, dict]:
    from gafu.demo.pictures import write_demo_pictures
    from gafu.demo.tagger import build_demo_tagger
    from gafu.models.tiny import save_tiny_model

    originals = folder / "originals"
    counts = write_demo_pictures(
        originals / "target", originals / "reg", n_target=settings.pictures, seed=settings.seed
    )
    model = save_tiny_model(folder / "models" / "tiny-sdxl", seed=settings.seed)
    tagger = build_demo_tagger(folder / "models" / "tiny-tagger")
    inputs = _Inputs(originals / "target", originals / "reg", model, tagger)
    summary = (
        f"{counts['target']} target pictures (flat palette, thick outlines), {counts['reg']} in other "
        "styles; a tiny SDXL-architecture model (single file) and a tiny WD-format tagger"
    )
    return inputs, summary, {"pictures": counts, "model": str(model.single_file.relative_to(folder))}


def _init(folder: Path, inputs: _Inputs, settings: DemoSettings) -> tuple[Any, str, dict]:
    from gafu.init import init_project
    from gafu.project import Project

    made = init_project(
        folder / "project",
        target=inputs.target,
        reg=inputs.reg,
        trigger=DEMO_TRIGGER,
        model=str(inputs.model.single_file),
        family=settings.family,
    )
    config = _demo_config(made.config, inputs, settings)
    save_config(config, made.config_path)
    project = Project.open(made.config_path.parent)
    return (
        project,
        f"gafu.toml for trigger {DEMO_TRIGGER!r}, family {settings.family}",
        {"changed from the recipe": _changed_settings(config)},
    )


def _demo_config(config: Config, inputs: _Inputs, settings: DemoSettings) -> Config:
    """The recipe's config with the demo's small sizes and short run (see DemoSettings)."""
    model = dataclasses.replace(
        config.model,
        config=inputs.model.config_dir.as_posix(),
        tokenizers=inputs.model.diffusers_dir.as_posix(),
    )
    prep = dataclasses.replace(config.prep, mode="bucket", max_side=max(max(size) for size in SIZES))
    tag = dataclasses.replace(config.tag, tagger=inputs.tagger.as_posix())
    train = dataclasses.replace(
        config.train,
        epochs=settings.epochs,
        restart_every_epochs=settings.restart_every_epochs,
        save_every_epochs=settings.save_every_epochs,
        resolution=settings.resolution,
        mixed_precision="no",  # a CPU trains in fp32
        gradient_checkpointing=False,  # the tiny model needs no memory saving
        seed=settings.seed,
    )
    sample = dataclasses.replace(
        config.sample, width=settings.sample_side, height=settings.sample_side, steps=settings.sample_steps
    )
    return dataclasses.replace(config, model=model, prep=prep, tag=tag, train=train, sample=sample)


def _changed_settings(config: Config) -> dict[str, Any]:
    defaults = Config()
    changed = {}
    for section in ("prep", "train", "sample"):
        mine, default = getattr(config, section), getattr(defaults, section)
        for name in mine.__dataclass_fields__:
            if getattr(mine, name) != getattr(default, name):
                changed[f"{section}.{name}"] = getattr(mine, name)
    return changed


def _prep(project) -> tuple[None, str, dict]:
    from gafu.prep.prepare import prepare

    summary = prepare(project, workers=1)  # a dozen small pictures: processes would cost more
    if summary.failed:
        raise GafuError(f"demo: prep failed on {len(summary.failed)} pictures; see {summary.report_path}")
    counts = {which: len(project.pictures(which)) for which in ("target", "reg")}
    text = f"{counts['target']} target and {counts['reg']} regularization pictures in dataset/ (D4b, D5)"
    return None, text, {"report": summary.report_path}


def _tag(project) -> tuple[None, str, dict]:
    from gafu.captions.text import read_caption
    from gafu.tagging.tag import TagOptions, tag_project

    result = tag_project(project, TagOptions(cpu_only=True))
    captions = {
        which: {p.path.name: read_caption(p.caption_path).tags for p in project.pictures(which)[:3]}
        for which in ("target", "reg")
    }
    tagged = result.to_dict()["tagged"]
    text = f"{tagged} captions written; thresholds 0.5 (target) and 0.35 (reg), trigger first (T2, T3)"
    return None, text, {"examples": captions}


def _check(project) -> tuple[None, str, dict]:
    from gafu.check import run_check

    report = run_check(project)
    data = report.to_dict()
    coverage = data["coverage"]
    findings = ", ".join(f"{n} {severity}" for severity, n in data["summary"].items())
    text = (
        f"regularization tags cover {coverage['share']:.0%} of target tag uses "
        f"({coverage['distinct_covered']} of {coverage['distinct']} distinct tags, D3); findings: {findings}"
    )
    messages = [f"{f['severity']} {f['rule']}: {f['message']}" for f in data["findings"]]
    drift = [f for f in data["findings"] if f["code"] in ("style-groups", "style-apart")]
    if drift:  # the older, muted pictures the demo planted (gafu.demo.drift)
        text += f"; D1: {len(drift[0]['files'])} target pictures of an older, muted period found"
    return None, text, {"findings": messages, "coverage": coverage, "report": report.report_path}


def _plan(project) -> tuple[None, str, dict]:
    from gafu.plan import resolve_plan, write_plan_report

    plan = resolve_plan(project, 12.0)
    write_plan_report(project.reports_dir, plan)
    batch = plan.batch
    text = (
        f"effective batch {batch.effective_batch} = {batch.batch_size} × {batch.gradient_accumulation} (P2), "
        f"{batch.steps_per_epoch} steps per epoch (P3), {batch.total_steps} steps in {batch.epochs} epochs"
    )
    return None, text, {"batch": dataclasses.asdict(batch), "warnings": plan.warnings}


def _train(project, result: DemoResult, progress_bar: bool) -> tuple[None, str, dict]:
    from gafu.network.files import read_lokr_file
    from gafu.train.run import train

    losses: list[float] = []

    def listen(event: dict) -> None:
        if event.get("event") == "step":
            losses.append(float(event["loss"]))
        elif event.get("event") == "eval":
            result.style.append(event)

    run = train(project, callbacks=[listen], progress_bar=progress_bar)
    result.lokr = run.lokr
    lokr = read_lokr_file(run.lokr)
    text = (
        f"{run.step} optimizer steps, loss {losses[0]:.3f} → {losses[-1]:.3f}; {len(run.saved)} LoKr files "
        f"({len(lokr.module_names)} modules, kohya/LyCORIS names) and a resumable state in output/"
    )
    return None, text, {"losses": [round(x, 4) for x in losses], "saved": run.saved, "state": run.state}


def _eval(project, result: DemoResult) -> tuple[None, str, dict]:
    from gafu.eval.evaluate import EvalRequest, evaluate_project
    from gafu.eval.report import write_eval_report

    request = EvalRequest(lokr_files=[result.lokr] if result.lokr else [])  # the plan's sample weights
    evaluation = evaluate_project(project, request)
    report = write_eval_report(project, evaluation)
    result.evaluation = evaluation.to_dict()
    base = "from the cache: measured once, during training" if evaluation.base_cached else "measured now"
    text = (
        f"fit, leakage, trigger share and drift of the final LoKr at {len(evaluation.rows)} weights "
        f"(the base model's losses {base})"
    )
    return None, text, {"report": report, "suggestion": result.evaluation["suggestion"]}


def _sample(project, result: DemoResult, progress_bar: bool) -> tuple[None, str, dict]:
    from gafu.sample.progress import PictureBar
    from gafu.sample.samples import SampleRequest, render_samples

    request = SampleRequest(lokr_files=[result.lokr] if result.lokr else [])
    bar = PictureBar(enabled=progress_bar)
    try:
        samples = render_samples(project, request, on_start=bar.start, on_picture=bar.picture)
    finally:
        bar.close()
    result.grids = list(samples.grids)
    weights = project.config.sample.weights
    text = (
        f"{len(samples.grids)} grids of {len(weights)} weights ({', '.join(f'{w:g}' for w in weights)}) "
        f"× with/without the trigger, {samples.rendered} pictures (P10)"
    )
    return None, text, {"index": samples.index, "grids": samples.grids}


# --- helpers -----------------------------------------------------------------------------------


def _timed(name: str, stage: Callable[[], tuple[Any, str, dict]], record: StageListener) -> Any:
    start = time.perf_counter()
    value, summary, details = stage()
    record(StageRecord(name, time.perf_counter() - start, summary, details))
    return value


def _fresh_folder(folder: Path, *, force: bool) -> Path:
    """`folder`, empty: a new one, an empty one, or (with force) a previous demo's, cleared."""
    folder = folder.expanduser().resolve()
    if folder.exists() and not folder.is_dir():
        raise GafuError(f"{folder} is a file", hint="give the demo a folder to create")
    if folder.is_dir() and any(folder.iterdir()):
        if not (folder / MARKER).is_file():
            raise GafuError(
                f"{folder} is not empty and was not made by `gafu demo`",
                hint="give the demo a new folder; it never writes into one that holds other files",
            )
        if not force:
            raise GafuError(f"{folder} holds an earlier demo", hint="pass --force to replace it")
        _check_marker(folder)
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / MARKER, {"made_by": "gafu demo"})
    return folder


def _check_marker(folder: Path) -> None:
    if read_json(folder / MARKER).get("made_by") != "gafu demo":
        raise GafuError(f"{folder / MARKER} is not a gafu demo marker", hint="remove the folder yourself")
