"""Lint the prepared, captioned dataset and gafu.toml against the recipe (D1–D5, T3, T4, P7).

Prints one report headed by the D3 coverage figure (how much of the target's tagging the
regularization set also carries) and writes it to reports/check.json. Exit code 1 when it
finds errors, 0 otherwise (warnings included). Nothing in the dataset is changed, except with
--exclude-outliers: the target pictures of another period or technique it finds (D1) are added
to [sources.exclude] target in gafu.toml and moved out of the dataset, captions and all, into
set-aside/ (nothing is deleted; delete the lines in gafu.toml and run `gafu prep` to undo).
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
    parser.add_argument(
        "--exclude-outliers",
        action="store_true",
        help="set aside the target pictures that stand apart in style (D1): into [sources.exclude]",
    )


def run(args: argparse.Namespace) -> int:
    """Run `gafu check`."""
    from gafu.check import run_check
    from gafu.check.report import render_text
    from gafu.project import Project

    project = Project.open(args.project)
    report = run_check(project)
    data = report.to_dict()
    if args.exclude_outliers:
        data["excluded"] = _exclude_outliers(project, report, quiet=args.json)
    if args.json:
        print_json(data)
    else:
        print(render_text(report))
    return report.exit_code


def _exclude_outliers(project, report, *, quiet: bool) -> dict:
    """Set aside the pictures the D1 style findings name; say what moved (on stderr when JSON is printed)."""
    import sys

    from gafu.check.curation import STYLE_CODES
    from gafu.prep.aside import set_aside

    names = sorted({name for f in report.findings if f.code in STYLE_CODES for name in f.files})
    out = sys.stderr if quiet else sys.stdout
    if not names:
        print("--exclude-outliers: no target picture stands apart in style; nothing set aside", file=out)
        return {"set_aside": [], "notes": []}
    result = set_aside(project, names)
    print(
        f"--exclude-outliers: {len(result.set_aside)} target pictures set aside ([sources.exclude] target "
        "in gafu.toml; pictures and captions moved to set-aside/train/):",
        file=out,
    )
    for row in result.set_aside:
        print(f"  {row['original']} ({row['picture']} → {row['aside']})", file=out)
    for note in result.notes:
        print(f"  note: {note}", file=out)
    print("undo: delete them from [sources.exclude] target and run `gafu prep`", file=out)
    return result.to_dict()
