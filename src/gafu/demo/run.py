"""`gafu demo`: the whole recipe on a miniature world and a tiny model that draws it, on a CPU.

The pictures are drawn by gafu's own code (`gafu.demo.world`): a target set in a style the base
model never saw, regularization pictures in nine others. The base model — a tiny SDXL-architecture
model in one single-file checkpoint — its WD-format tagger and a judge of the world's styles ship
with gafu (`gafu/demo/model/`, made by `python -m gafu.demo.pretrain`). Each stage runs through
the same library functions the CLI calls: init → prep → tag → check (setting aside the pictures
of an older period it finds, D1) → plan → train (with the style probe at every save) → eval →
sample → judge, which says whether the trigger, and only the trigger, now draws the style.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gafu.config import Config, save_config
from gafu.demo.world import WORLD_SIDE
from gafu.errors import GafuError
from gafu.fsio import read_json, write_json_atomic

DEMO_TRIGGER = "flatink_style"
# What the help and the README say (docs/benchmarks.md has the measured times).
RUNNING_TIME = "about two minutes on two CPU cores"
MARKER = "gafu-demo.json"  # marks a folder as made by `gafu demo`, so --force may replace it
RESULT_FILE = "demo.json"  # what the demo did, for scripts and tests (read back by `load_demo_result`)


@dataclass(frozen=True)
class DemoSettings:
    """The demo's deviations from the recipe, each there to finish in about two minutes on 2 CPU cores."""

    pictures: int = 12  # target, a quarter from an older period (D1); the recipe's 40+ are for real styles
    reg_pictures: int = 12  # D2: about as many as the target set
    epochs: int = 64  # P1's 200 epochs are for a real model
    restart_every_epochs: int = 32  # P5's 50-epoch cycles, scaled to the short run
    save_every_epochs: int = 32
    unet_lr: float = 1e-2  # a tiny model and 128 steps: at the recipe's rate (P4) nothing lands
    resolution: int = WORLD_SIDE  # the demo model's own side (SDXL's is 1024, D4)
    sample_side: int = WORLD_SIDE
    sample_steps: int = 20
    # The demo model's guidance, as a real model's card gives one (NoobAI-XL's 4-5): at the SDXL
    # family's 7 the trigger's style lands on fewer pictures, with no less leakage (docs/recipe.md).
    sample_cfg: float = 5.0
    judge_prompts: int = 16  # pictures per weight and column the judge scores
    judge_weights: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5)
    family: str = "sdxl"  # the demo model is an ε-prediction model with SDXL's architecture
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
    verdict: dict | None = None  # the judge's scores with and without the trigger (judge.json)
    judge_sheet: Path | None = None


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
    project = _timed("check", lambda: _check(project), record)
    _timed("plan", lambda: _plan(project), record)
    result = DemoResult(folder=folder, project=project.root, report=folder / "report.html", stages=stages)
    _timed("train", lambda: _train(project, result, progress_bar), record)
    _timed("eval", lambda: _eval(project, result), record)
    _timed("sample", lambda: _sample(project, result, progress_bar), record)
    _timed("judge", lambda: _judge(project, result, settings), record)

    from gafu.demo.report import write_demo_report

    write_demo_report(result)
    write_json_atomic(folder / RESULT_FILE, _result_data(result))
    return result


def load_demo_result(folder: Path) -> DemoResult:
    """The result of the demo that ran in `folder` (from its `demo.json`)."""
    folder = Path(folder).resolve()
    data = read_json(folder / RESULT_FILE)

    def path(value: str | None) -> Path | None:
        return folder / value if value else None

    return DemoResult(
        folder=folder,
        project=folder / data["project"],
        report=folder / data["report"],
        stages=[StageRecord(**stage) for stage in data["stages"]],
        lokr=path(data["lokr"]),
        grids=[folder / grid for grid in data["grids"]],
        style=data["style"],
        evaluation=data["evaluation"],
        verdict=data["verdict"],
        judge_sheet=path(data["judge_sheet"]),
    )


def _result_data(result: DemoResult) -> dict:
    def relative(value: Path | None) -> str | None:
        return Path(value).relative_to(result.folder).as_posix() if value else None

    return {
        "project": relative(result.project),
        "report": relative(result.report),
        # stage details hold paths: as text, as the report shows them
        "stages": json.loads(json.dumps([dataclasses.asdict(s) for s in result.stages], default=str)),
        "lokr": relative(result.lokr),
        "grids": [relative(grid) for grid in result.grids],
        "style": result.style,
        "evaluation": result.evaluation,
        "verdict": result.verdict,
        "judge_sheet": relative(result.judge_sheet),
    }


# --- the stages --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Inputs:
    target: Path
    reg: Path
    model: Path  # the single-file checkpoint
    config: Path  # its architecture configs
    tokenizers: Path
    tagger: Path


def _make_inputs(folder: Path, settings: DemoSettings) -> tuple[_Inputs, str, dict]:
    from gafu.demo.pictures import write_demo_pictures
    from gafu.demo.pretrain import CHECKPOINT_NAME, shipped_model

    originals = folder / "originals"
    counts = write_demo_pictures(
        originals / "target", originals / "reg", n_target=settings.pictures, n_reg=settings.reg_pictures,
        seed=settings.seed,
    )  # fmt: skip
    models = folder / "models"
    shipped = shipped_model()
    shutil.copytree(shipped, models / "world-sdxl", ignore=shutil.ignore_patterns("tagger", "judge.*"))
    shutil.copytree(shipped / "tagger", models / "tagger")
    base = models / "world-sdxl"
    inputs = _Inputs(
        originals / "target", originals / "reg", base / CHECKPOINT_NAME, base / "config", base / "tokenizers",
        models / "tagger",
    )  # fmt: skip
    summary = (
        f"{counts['target']} target pictures (flat palette, thick outlines; a quarter muted, from an older "
        f"period), {counts['reg']} in nine other styles; gafu's demo model (a tiny SDXL-architecture single "
        "file pretrained on this world, which never saw the target style) and its WD-format tagger"
    )
    return inputs, summary, {"pictures": counts, "model": inputs.model.relative_to(folder).as_posix()}


def _init(folder: Path, inputs: _Inputs, settings: DemoSettings) -> tuple[Any, str, dict]:
    from gafu.init import init_project
    from gafu.project import Project

    made = init_project(
        folder / "project",
        target=inputs.target,
        reg=inputs.reg,
        trigger=DEMO_TRIGGER,
        model=str(inputs.model),
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
        config=inputs.config.as_posix(),
        tokenizers=inputs.tokenizers.as_posix(),
    )
    prep = dataclasses.replace(config.prep, mode="bucket", max_side=settings.resolution)
    tag = dataclasses.replace(config.tag, tagger=inputs.tagger.as_posix())
    train = dataclasses.replace(
        config.train,
        epochs=settings.epochs,
        restart_every_epochs=settings.restart_every_epochs,
        save_every_epochs=settings.save_every_epochs,
        unet_lr=settings.unet_lr,
        resolution=settings.resolution,
        mixed_precision="no",  # a CPU trains in fp32
        gradient_checkpointing=False,  # the tiny model needs no memory saving
        seed=settings.seed,
    )
    # No negative prompt: the demo model never saw the recipe's ("lowres, worst quality, …"), and an
    # empty one is what it learned as "no caption" (zeros, as SDXL).
    sample = dataclasses.replace(
        config.sample,
        width=settings.sample_side,
        height=settings.sample_side,
        steps=settings.sample_steps,
        cfg=settings.sample_cfg,
        negative="",
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


def _check(project) -> tuple[Any, str, dict]:
    from gafu.check import run_check
    from gafu.check.curation import STYLE_CODES
    from gafu.prep.aside import set_aside
    from gafu.project import Project

    report = run_check(project)
    data = report.to_dict()
    coverage = data["coverage"]
    findings = ", ".join(f"{n} {severity}" for severity, n in data["summary"].items())
    text = (
        f"regularization tags cover {coverage['share']:.0%} of target tag uses "
        f"({coverage['distinct_covered']} of {coverage['distinct']} distinct tags, D3); findings: {findings}"
    )
    messages = [f"{f['severity']} {f['rule']}: {f['message']}" for f in data["findings"]]
    # D1: the older, muted pictures the demo planted (gafu.demo.drift), set aside as
    # `gafu check --exclude-outliers` does; the originals stay where they are.
    apart = sorted({name for f in report.findings if f.code in STYLE_CODES for name in f.files})
    aside = set_aside(project, apart).to_dict()["set_aside"] if apart else []
    if aside:
        text += f"; D1: {len(aside)} target pictures of another period found and set aside"
    details = {"findings": messages, "coverage": coverage, "set aside": aside, "report": report.report_path}
    return Project.open(project.root), text, details


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


def _judge(project, result: DemoResult, settings: DemoSettings) -> tuple[None, str, dict]:
    from gafu.demo.judge import JUDGE_FILE
    from gafu.demo.pretrain import shipped_model
    from gafu.demo.verdict import SHEET_FILE, judge_lokr

    if result.lokr is None:
        return None, "no LoKr to judge", {}
    verdict = judge_lokr(
        project, result.lokr, shipped_model() / JUDGE_FILE, weights=list(settings.judge_weights),
        count=settings.judge_prompts, folder=result.folder,
    )  # fmt: skip
    result.verdict = verdict.to_dict()
    result.judge_sheet = result.folder / SHEET_FILE
    text = f"did the style land in the trigger? {verdict.answer()}"
    return None, text, {"judge": result.verdict}


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
