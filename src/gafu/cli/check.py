"""Lint the prepared, captioned dataset and gafu.toml against the recipe (D1–D5, T3, T4, P7).

Prints one report headed by the D3 coverage figure (how much of the target's tagging the
regularization set also carries) and writes it to reports/check.json. Exit code 1 when it
finds errors, 0 otherwise (warnings included). Nothing in the dataset is changed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gafu.cli.output import print_json

HELP = "lint the dataset and gafu.toml against the recipe (exit code 1 on errors)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `gafu check`."""
    parser.add_argument(
        "project", type=Path, nargs="?", default=Path("."), help="project folder (default: here)"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    """Run `gafu check`."""
    from gafu.check import run_check
    from gafu.check.report import render_text
    from gafu.project import Project

    report = run_check(Project.open(args.project))
    if args.json:
        print_json(report.to_dict())
    else:
        print(render_text(report))
    return report.exit_code
