"""Create a project: write PROJECT/gafu.toml pointing at your folders (they are never modified).

With --from-kohya, the folders and settings come from a kohya training config (sd-scripts'
--config_file TOML, or the JSON kohya_ss saves) and its dataset config.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gafu import recipe
from gafu.cli.output import warn
from gafu.families import DEFAULT_FAMILY, FAMILIES

HELP = "create a project (gafu.toml) for a target folder and a trigger word, or from a kohya config"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `gafu init`."""
    parser.add_argument("project", type=Path, help="project folder to create (or reuse)")
    parser.add_argument("--target", type=Path, help="folder of the target style's pictures")
    parser.add_argument("--reg", type=Path, help="folder of other styles' pictures (recommended, D2)")
    parser.add_argument("--trigger", help="the trigger word (T3)")
    parser.add_argument("--model", default="", help="base model: .safetensors, diffusers folder or hub id")
    parser.add_argument("--family", choices=list(FAMILIES), help=f"model family (default {DEFAULT_FAMILY})")
    parser.add_argument("--repeats", type=int, help=f"repeats per picture (P3, default {recipe.REPEATS})")
    parser.add_argument(
        "--from-kohya",
        type=Path,
        metavar="CONFIG",
        help="take folders and settings from a kohya config: sd-scripts' .toml or kohya_ss's .json",
    )
    parser.add_argument(
        "--dataset",
        type=Path,
        metavar="DATASET_TOML",
        help="with --from-kohya: the sd-scripts dataset config",
    )
    parser.add_argument("--force", action="store_true", help="overwrite an existing gafu.toml")


def run(args: argparse.Namespace) -> int:
    """Run `gafu init`."""
    from gafu.errors import GafuError

    if args.from_kohya is not None:
        given = [f"--{name}" for name in ("target", "reg", "model", "repeats") if getattr(args, name)]
        if given:
            raise GafuError(
                f"{', '.join(given)} cannot be used with --from-kohya", hint="the kohya files give them"
            )
        return _from_kohya(args)
    if args.dataset is not None:
        raise GafuError(
            "--dataset goes with --from-kohya", hint="gafu init PROJECT --from-kohya CONFIG --dataset TOML"
        )
    if args.target is None or args.trigger is None:
        raise GafuError(
            "gafu init needs --target and --trigger (or --from-kohya CONFIG)",
            hint="gafu init PROJECT --target DIR --trigger WORD",
        )
    from gafu.init import init_project

    result = init_project(
        args.project,
        target=args.target,
        reg=args.reg,
        trigger=args.trigger,
        model=args.model,
        family=args.family or DEFAULT_FAMILY,
        repeats=recipe.REPEATS if args.repeats is None else args.repeats,
        force=args.force,
    )
    for message in result.warnings:
        warn(message)
    print(f"wrote {result.config_path}")
    print(f"next: gafu prep {args.project}")
    return 0


def _from_kohya(args: argparse.Namespace) -> int:
    from gafu.kohya import init_from_kohya
    from gafu.kohya.options import toml_text

    result = init_from_kohya(
        args.project,
        args.from_kohya,
        args.dataset,
        trigger=args.trigger,
        family=args.family,
        force=args.force,
    )
    config = result.config
    print(
        f"wrote {result.config_path} from {Path(config.kohya.config).name}"
        + (f" + {Path(config.kohya.dataset).name}" if config.kohya.dataset else "")
    )
    print(f"  trigger {config.project.trigger!r}, family {config.project.family}")
    for which, folder in (("target", config.sources.target), ("reg", config.sources.reg)):
        if folder:
            print(f"  {which:<6} {folder}  (its <repeats>_<name> folders keep their repeats)")
    for concept in config.sources.concepts:
        print(f"  {concept.set:<6} {concept.folder}  ({concept.repeats} repeats)")
    if result.imported:
        print(f"values from kohya that differ from the recipe ({len(result.imported)}):")
        for value in result.imported:
            section, key = value.key.split(".")
            print(
                f"  [{section}] {key} = {toml_text(value.value)}   "
                f"(kohya {value.options}; recipe {value.recipe_text()})"
            )
    if result.unused:
        print(f"kohya options gafu does not use ({len(result.unused)}; kept in gafu.toml [kohya] unused):")
        for unused in result.unused:
            print(f"  {unused.line()}   — {unused.reason}")
    for note in result.notes:
        print(f"note: {note}")
    for message in result.warnings:
        warn(message)
    print(f"next: gafu prep {args.project}   (carries the captions beside your pictures)")
    return 0
