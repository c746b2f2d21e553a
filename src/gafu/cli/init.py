"""Create a project: write PROJECT/gafu.toml pointing at your folders (they are never modified)."""

from __future__ import annotations

import argparse
from pathlib import Path

from gafu import recipe
from gafu.cli.output import warn
from gafu.families import DEFAULT_FAMILY, FAMILIES

HELP = "create a project (gafu.toml) for a target folder and a trigger word"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `gafu init`."""
    parser.add_argument("project", type=Path, help="project folder to create (or reuse)")
    parser.add_argument("--target", type=Path, required=True, help="folder of the target style's pictures")
    parser.add_argument("--reg", type=Path, help="folder of other styles' pictures (recommended, D2)")
    parser.add_argument("--trigger", required=True, help="the trigger word (T3)")
    parser.add_argument("--model", default="", help="base model: .safetensors, diffusers folder or hub id")
    parser.add_argument("--family", choices=list(FAMILIES), default=DEFAULT_FAMILY, help="model family")
    parser.add_argument("--repeats", type=int, default=recipe.REPEATS, help="repeats per picture (P3)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing gafu.toml")


def run(args: argparse.Namespace) -> int:
    """Run `gafu init`."""
    from gafu.init import init_project

    result = init_project(
        args.project,
        target=args.target,
        reg=args.reg,
        trigger=args.trigger,
        model=args.model,
        family=args.family,
        repeats=args.repeats,
        force=args.force,
    )
    for message in result.warnings:
        warn(message)
    print(f"wrote {result.config_path}")
    print(f"next: gafu prep {args.project}")
    return 0
