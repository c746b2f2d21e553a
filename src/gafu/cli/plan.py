"""Resolve the training plan: every value with its source, the LoKr's size, and a kohya export.

Prints the plan (or its JSON with --json) and writes it to reports/plan.json. It does not touch
output/: `gafu train` writes output/plan.json when a run starts, so that file always describes
the run that made the LoKr files beside it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "resolve and print the training plan (batch, steps, LoKr size); export it for kohya's scripts"
EXPORT_FORMATS = ("kohya",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `gafu plan`."""
    parser.add_argument("project", type=Path, nargs="?", default=None, help="project folder (default: here)")
    parser.add_argument("--vram", type=float, metavar="GB", help="GPU memory to plan for (default: detected)")
    parser.add_argument("--json", action="store_true", help="print the whole plan as JSON")
    parser.add_argument(
        "--export",
        nargs=2,
        metavar=("FORMAT", "DIR"),
        help="also write the plan for another trainer: `kohya DIR` (sd-scripts dataset + training TOML)",
    )


def run(args: argparse.Namespace) -> int:
    """Run `gafu plan`."""
    from gafu.cli.output import print_json, warn
    from gafu.errors import GafuError
    from gafu.kohya.export import export_kohya
    from gafu.plan import resolve_plan, write_plan_report
    from gafu.plan.memory import detect_gpu
    from gafu.plan.render import render_plan
    from gafu.project import Project

    if args.export and args.export[0] not in EXPORT_FORMATS:
        raise GafuError(
            f"--export {args.export[0]}: unknown format", hint=f"use one of: {', '.join(EXPORT_FORMATS)}"
        )
    project = Project.open(args.project)
    plan = resolve_plan(project, args.vram, gpu=detect_gpu())
    write_plan_report(project.reports_dir, plan)
    if args.json:
        print_json(plan.to_dict())
        for message in plan.warnings:  # the printed plan lists them itself
            warn(message)
    else:
        print(render_plan(plan), end="")
    if args.export:
        exported = export_kohya(plan, project.root, Path(args.export[1]))
        for message in exported.notes:
            warn(message)
        if not args.json:
            print(
                f"\nwrote the kohya sd-scripts export to {exported.folder}; from your sd-scripts folder run:"
            )
            print(f"  {exported.command}")
    return 0
