"""How the style probe's figures are shown and kept: `gafu eval`'s table and `reports/eval.json`, and
the figures already measured for a LoKr file (at its save, in its metadata; by `gafu eval`, in
the report) for `gafu sample`'s page, the UI and the demo.
"""

from __future__ import annotations

import re
from pathlib import Path

from gafu.errors import GafuError
from gafu.eval.evaluate import EvalResult, EvalRow, file_metadata, shown_path
from gafu.eval.figures import FIGURES, LABELS, StyleFigures, figures_html, format_figure, table
from gafu.eval.training import read_metadata_figures
from gafu.project import Project

REPORT = "eval"  # reports/eval.json


# --- the terminal ----------------------------------------------------------------------------------
def render_text(result: EvalResult) -> list[str]:
    """The probe, a row per file and weight (or two runs side by side), and the suggestion."""
    probe, base = result.probe, result.base
    where = "held out from training" if probe["held_out"] else "training pictures"
    steps = probe["timesteps"]
    lines = [
        f"style probe: {_count(probe['target_pictures'], 'target picture')} with and without the "
        f"trigger, {_count(probe['reg_pictures'], 'regularization picture')} ({where}); "
        f"{len(steps)} timesteps ({steps[0]} … {steps[-1]}), fixed noise (seed {probe['seed']})",
        "base model's mean loss: "
        + ", ".join(f"{case} {_loss(base.get(case))}" for case in ("trigger", "plain", "reg")),
        "",
    ]
    lines += _compare(result) if result.runs else _rows(result)
    lines.append("")
    lines.append(_suggestion(result))
    lines.append(f"{result.measured} measured, {result.reused} from the cache (.gafu/cache/eval)")
    return lines


def _rows(result: EvalResult) -> list[str]:
    header = ["file", "epoch", "weight", *(LABELS[name] for name in FIGURES)]
    return table(header, (_cells(result, row) for row in result.rows))


def _cells(result: EvalResult, row: EvalRow) -> list[str]:
    name = row.to_dict(result.root)["file"]
    epoch = "" if row.epoch is None else str(row.epoch)
    return [name, epoch, f"{row.weight:g}", *(format_figure(n, getattr(row.figures, n)) for n in FIGURES)]


def _compare(result: EvalResult) -> list[str]:
    """Two runs side by side at each epoch and weight they share, then the recipe's claim."""
    by_run: list[dict[tuple, EvalRow]] = [{}, {}]
    for row in result.rows:
        by_run[row.run or 0][(row.epoch, row.weight)] = row
    keys = sorted(set(by_run[0]) | set(by_run[1]), key=lambda k: (k[0] is None, k[0] or 0, k[1]))
    lines = [f"{letter}: {run.label}" for letter, run in zip("AB", result.runs, strict=True)]
    header = ["epoch", "weight", *(f"{letter} {LABELS[n]}" for letter in "AB" for n in FIGURES)]
    cells = []
    for key in keys:
        figures = [by_run[i].get(key) for i in (0, 1)]
        cells.append(
            ["" if key[0] is None else str(key[0]), f"{key[1]:g}"]
            + [format_figure(n, getattr(f.figures, n)) if f else "" for f in figures for n in FIGURES]
        )
    lines += ["", *table(header, cells)]
    shared = [k for k in keys if k in by_run[0] and k in by_run[1]]
    if shared:
        lines += ["", claim(result, by_run[0][shared[-1]], by_run[1][shared[-1]])]
    return lines


def claim(result: EvalResult, a: EvalRow, b: EvalRow) -> str:
    """The recipe's claim at one epoch: less leakage and a higher trigger share with regularization."""
    at = f"epoch {a.epoch}, weight {a.weight:g}" if a.epoch is not None else f"weight {a.weight:g}"
    figures = (
        f"leakage {format_figure('leakage', a.figures.leakage)} (A) vs "
        f"{format_figure('leakage', b.figures.leakage)} (B), trigger share "
        f"{format_figure('trigger_share', a.figures.trigger_share)} (A) vs "
        f"{format_figure('trigger_share', b.figures.trigger_share)} (B)"
    )
    regs = [run.regularization for run in result.runs]
    if None in regs or (regs[0] > 0) == (regs[1] > 0):
        return f"at {at}: {figures}"
    with_reg, without = (a, b) if regs[0] > 0 else (b, a)
    holds = _less(with_reg.figures.leakage, without.figures.leakage) and _less(
        without.figures.trigger_share, with_reg.figures.trigger_share
    )
    verdict = "holds here" if holds else "does not hold here"
    return (
        f"the recipe's claim at {at}: {figures}; with regularization the leakage should be lower "
        f"and the trigger share higher — {verdict}"
    )


def _less(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and a < b


def _suggestion(result: EvalResult) -> str:
    chosen = result.suggestion
    if chosen is None:
        if not any(row.figures.fit is not None and row.figures.fit > 0 for row in result.rows):
            return "no suggestion: no file lowered the target pictures' loss (fit ≤ 0); train longer"
        return "no suggestion: no file reaches the fit asked for with a trigger share"
    row = result.rows[chosen.index]
    name = row.to_dict(result.root)["file"]
    return (
        f"suggested: {name} at weight {row.weight:g} — trigger share "
        f"{format_figure('trigger_share', row.figures.trigger_share)} at fit "
        f"{format_figure('fit', row.figures.fit)} (the highest trigger share at a fit of at least "
        f"{format_figure('fit', chosen.min_fit)}, {chosen.min_fit_source})"
    )


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _loss(value: float | None) -> str:
    return "–" if value is None else f"{value:.5f}"


def write_eval_report(project: Project, result: EvalResult) -> Path:
    """`reports/eval.json`: the figures of the last `gafu eval`."""
    from gafu.reports import write_report

    return write_report(project.reports_dir, REPORT, result.to_dict())


# --- figures already measured ----------------------------------------------------------------------
def known_figures(project: Project, path: Path) -> list[tuple[float, StyleFigures, str]]:
    """A LoKr file's figures: (weight, figures, where from), at its save and by the last `gafu eval`."""
    found: list[tuple[float, StyleFigures, str]] = []
    try:
        saved = read_metadata_figures(file_metadata(path))
    except GafuError:  # an unreadable file simply has no figures to show
        saved = None
    if saved is not None:
        found.append((float(saved.get("weight", 1.0)), _figures(saved), "at its save"))
    name = shown_path(path, project.root)
    for row in _report_rows(project):
        if row.get("file") == name:
            found.append((float(row["weight"]), _figures(row), "gafu eval"))
    return found


def known_html(project: Project, path: Path) -> str:
    """`figures_html` of a file's known figures ("" when none)."""
    rows = [(f"weight {w:g} ({source})", figures) for w, figures, source in known_figures(project, path)]
    return figures_html(rows) if rows else ""


def _figures(data: dict) -> StyleFigures:
    return StyleFigures(**{name: data.get(name) for name in FIGURES})


def _report_rows(project: Project) -> list[dict]:
    from gafu.fsio import read_json

    path = project.reports_dir / f"{REPORT}.json"
    if not path.is_file():
        return []
    try:
        rows = read_json(path, what="eval report").get("rows", [])
    except (GafuError, AttributeError):
        return []
    return [row for row in rows if isinstance(row, dict) and "weight" in row]


# --- beside sample grids ------------------------------------------------------------------------------
_EPOCH_FOLDER = re.compile(r"^e(\d{6,})$")  # grids `gafu train` rendered at an epoch
_EPOCHS_FOLDER = re.compile(r"^epochs-(?P<epochs>[\d-]+)-w")  # `gafu sample --epochs`


def sample_notes(project: Project, output_name: str, samples: Path) -> dict[str, str]:
    """HTML of the known figures beside each folder of grids under `samples` (`gafu sample`'s page)."""
    notes = {}
    for folder in sorted(p for p in samples.iterdir() if p.is_dir()) if samples.is_dir() else []:
        rows = [
            (f"{label}weight {weight:g} ({source})", figures)
            for label, path in _section_files(project, output_name, folder.name)
            for weight, figures, source in known_figures(project, path)
        ]
        if rows:
            notes[folder.name] = figures_html(rows)
    return notes


def _section_files(project: Project, output_name: str, folder: str) -> list[tuple[str, Path]]:
    """The LoKr files a folder of grids shows: `<file stem>/`, `e000010/` or `epochs-10-20-w1/`."""
    output = project.output_dir

    def epoch(number: int) -> Path:
        return output / f"{output_name}-e{number:06d}.safetensors"

    if (output / f"{folder}.safetensors").is_file():
        return [("", output / f"{folder}.safetensors")]
    if match := _EPOCH_FOLDER.match(folder):
        return [("", epoch(int(match.group(1))))] if epoch(int(match.group(1))).is_file() else []
    if match := _EPOCHS_FOLDER.match(folder):
        numbers = [int(e) for e in match.group("epochs").split("-") if e]
        return [(f"epoch {n}, ", epoch(n)) for n in numbers if epoch(n).is_file()]
    return []
