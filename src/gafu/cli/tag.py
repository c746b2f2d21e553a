"""Caption the prepared pictures with a WD tagger: the trigger first on target captions (T3), 0.5 / 0.35
thresholds per set (T2), letterboxed / pillarboxed where prep added bars (T4).

Pictures that already have a caption are skipped unless --overwrite or --merge is given.
After changing a threshold or a list under [tag] in gafu.toml, --rethreshold rewrites the
captions from the kept scores in seconds, without the model (captions edited since gafu wrote
them are left alone unless --overwrite or --merge is given too).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from gafu.cli.output import print_json, warn

if TYPE_CHECKING:
    from gafu.tagging.tag import TagResult

HELP = "caption the pictures with a WD tagger (T1–T4)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `gafu tag`."""
    parser.add_argument(
        "project", type=Path, nargs="?", default=Path("."), help="project folder (default: .)"
    )
    existing = parser.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true", help="replace existing captions")
    existing.add_argument(
        "--merge", action="store_true", help="keep existing captions' tags and add the new ones they lack"
    )
    parser.add_argument(
        "--rethreshold",
        action="store_true",
        help="rewrite captions from the kept scores with gafu.toml's current [tag] settings (no model)",
    )
    add_tagger_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def add_tagger_arguments(parser: argparse.ArgumentParser) -> None:
    """How to run the tagger: `gafu tag` and `gafu reg pick` take the same options."""
    parser.add_argument(
        "--tagger",
        help="WD tagger folder (model.onnx + selected_tags.csv) or hub repo id (default: [tag] tagger)",
    )
    parser.add_argument("--batch-size", type=int, help="pictures per batch (default: [tag] batch_size)")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even when CUDA is available")
    parser.add_argument("--threads", type=int, help="picture-loading threads (default: cores − 1, up to 4)")


def run(args: argparse.Namespace) -> int:
    """Run `gafu tag`."""
    from tqdm import tqdm

    from gafu.errors import GafuError
    from gafu.project import Project
    from gafu.tagging.tag import TagEvents, TagOptions, rethreshold_project, tag_project

    project = Project.open(args.project)
    mode = "overwrite" if args.overwrite else "merge" if args.merge else "skip"
    if args.batch_size is not None and args.batch_size < 1:
        raise GafuError(f"--batch-size must be at least 1, not {args.batch_size}")
    if args.rethreshold:
        result = rethreshold_project(project, mode)
    else:
        tagger = args.tagger
        if tagger and Path(tagger).expanduser().exists():  # a folder relative to where the user is
            tagger = str(Path(tagger).expanduser().resolve())
        options = TagOptions(
            mode=mode, tagger=tagger, batch_size=args.batch_size, cpu_only=args.cpu, threads=args.threads
        )
        bar: list[tqdm] = []

        def on_start(reference: str, provider: str, count: int) -> None:
            line = f"tagger {reference} on {provider}: {count} pictures"
            print(line, file=sys.stderr if args.json else sys.stdout, flush=True)  # stdout: JSON only
            bar.append(tqdm(total=count, unit="picture", desc="tagging"))

        try:
            result = tag_project(project, options, TagEvents(on_start, lambda n: bar[0].update(n)))
        finally:
            for b in bar:
                b.close()
    for message in result.warnings:
        warn(message)
    if args.json:
        print_json(result.to_dict())
    else:
        _print_summary(result)
    return 1 if result.failed else 0


def _print_summary(result: TagResult) -> None:
    for which, summary in result.sets.items():
        for picture, error in summary.failed.items():
            warn(f"{which} {picture}: {error}")
        counts = summary.to_dict()
        line = f"{which}: {counts['tagged']} captions written, {counts['skipped']} skipped, "
        line += f"{counts['failed']} failed"
        if summary.unchanged:
            line += f", {summary.unchanged} unchanged"
        stats = summary.tags_per_caption
        if stats.get("captions"):
            line += f"; tags per caption {stats['mean']} (min {stats['min']}, max {stats['max']})"
        print(line)
        for reason, pictures in summary.skipped.items():
            print(f"  skipped, {reason}: {len(pictures)}")
    if not result.sets:
        print("no prepared pictures found; run `gafu prep` first")
    speed = result.to_dict()
    if speed["pictures_per_second"]:
        print(f"model: {speed['pictures_per_second']} pictures/s, busy {speed['model_busy']:.0%} of the time")
    print(f"report: {result.report_path}")
