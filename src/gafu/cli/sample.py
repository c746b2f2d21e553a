"""Render sample grids of your LoKr: rows of weights (or epochs), each prompt with and without the trigger.

Writes output/samples/<LoKr file>/ (single pictures and grid-*.png) and output/samples/index.html.
Weight 0 is the base model alone. Sampler settings come from the plan of the run (output/plan.json).
Pictures already rendered with the same settings are kept; --force renders them again.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gafu.cli.output import number_list, print_json, warn

HELP = "render weight × prompt grids of LoKr files, with and without the trigger (P10)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `gafu sample`."""
    parser.add_argument("project", type=Path, nargs="?", default=None, help="project folder (default: here)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--lokr", type=Path, nargs="+", metavar="FILE", help="LoKr files (default: the latest in output/)"
    )
    which.add_argument(
        "--epochs",
        type=number_list(int),
        metavar="E1,E2,…",
        help="compare saved epochs: a row per epoch, one weight",
    )
    parser.add_argument(
        "--weights",
        type=number_list(float),
        metavar="W1,W2,…",
        help="LoKr weights (default: the plan's; epochs: 1.0)",
    )
    parser.add_argument(
        "--prompts",
        type=Path,
        metavar="FILE",
        help="kohya-style prompts file: `prompt --n neg --w --h --s --l --d`",
    )
    parser.add_argument(
        "--seed", type=int, help="seed for prompts without their own --d (default: the plan's)"
    )
    parser.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--force", action="store_true", help="render every picture again")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    """Run `gafu sample`."""
    from gafu.cpu import use_cpu_threads
    from gafu.project import Project
    from gafu.reports import write_report
    from gafu.sample.progress import PictureBar
    from gafu.sample.samples import SampleRequest, render_samples

    use_cpu_threads()  # as many threads as idle cores: a busy machine slows it, not stalls it
    project = Project.open(args.project)
    request = SampleRequest(
        lokr_files=list(args.lokr or []),
        epochs=list(args.epochs or []),
        weights=args.weights,
        prompts_file=args.prompts,
        seed=args.seed,
        reuse=not args.force,
    )
    bar = PictureBar(enabled=not args.json and sys.stderr.isatty())
    try:
        result = render_samples(
            project, request, device=args.device, on_picture=bar.picture, on_start=bar.start
        )
    finally:
        bar.close()
    write_report(project.reports_dir, "sample", result.to_dict())
    if args.json:
        print_json(result.to_dict())
    else:
        print(
            f"{result.rendered} pictures rendered, {result.reused} kept from before "
            f"(plan: {result.plan_source})"
        )
        for grid in result.grids:
            print(f"  {grid}")
        print(f"open {result.index} to see every grid")
    for message in result.notes:
        warn(message)
    return 0
