"""Measure where the style went: fit, leakage, trigger share and drift of LoKr files at several weights.

From the model's own denoising loss on a fixed probe (a few target pictures with and without the
trigger, a few regularization pictures, fixed noise and timesteps), against the base model:
fit = how much the target pictures' loss fell with the trigger; leakage = how much it fell
without it; trigger share = the part of the fit that needs the trigger; drift = how much the
regularization pictures' loss rose. Any LoKr file works, kohya + LyCORIS ones included. Suggests
the file and weight with the highest trigger share at a fit you set (--min-fit). Writes
reports/eval.json; losses are cached in .gafu/cache/eval (--force measures again).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gafu.cli.output import number_list, print_json, warn

HELP = "fit, leakage, trigger share and drift of LoKr files at several weights (the recipe's claim)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `gafu eval`."""
    parser.add_argument("project", type=Path, nargs="?", default=None, help="project folder (default: here)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--lokr", type=Path, nargs="+", metavar="FILE", help="LoKr files (default: every file the run saved)"
    )
    which.add_argument(
        "--compare",
        nargs=2,
        metavar=("RUN_A", "RUN_B"),
        help="two runs side by side (an output name, a folder of one run's files, or a file), "
        "e.g. with and without regularization",
    )
    parser.add_argument(
        "--weights",
        type=number_list(float),
        metavar="W1,W2,…",
        help="LoKr weights (default: the plan's sample weights above 0; --compare: 1.0)",
    )
    parser.add_argument(
        "--min-fit",
        type=_percent,
        metavar="FIT",
        help="suggest the highest trigger share at a fit of at least this (0.03 or 3%%; "
        "default: 80%% of the largest fit measured)",
    )
    parser.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--force", action="store_true", help="measure again instead of using the cache")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    """Run `gafu eval`."""
    from gafu.eval.evaluate import EvalRequest, evaluate_project
    from gafu.eval.report import render_text, write_eval_report
    from gafu.project import Project

    project = Project.open(args.project)
    request = EvalRequest(
        lokr_files=list(args.lokr or []),
        weights=args.weights,
        min_fit=args.min_fit,
        compare=list(args.compare or []),
        reuse=not args.force,
    )
    bar = None
    if not args.json and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(unit="row", desc="style probe", file=sys.stderr, dynamic_ncols=True)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        result = evaluate_project(
            project, request, device=args.device, on_progress=progress if bar is not None else None
        )
    finally:
        if bar is not None:
            bar.close()
    report = write_eval_report(project, result)
    if args.json:
        print_json(result.to_dict())
    else:
        print("\n".join(render_text(result)))
        print(f"figures kept in {report}")
    for message in result.notes:
        warn(message)
    return 0


def _percent(text: str) -> float:
    """`0.03` or `3%` → 0.03."""
    try:
        return float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (e.g. 0.03 or 3%)") from None
