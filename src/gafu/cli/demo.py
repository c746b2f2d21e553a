"""Run the whole recipe on gafu's miniature world with its demo model: no downloads, about two minutes on
two CPU cores (longer on a busy machine), a report of what each stage did and whether the style landed."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "run every stage on a miniature world with a tiny model that draws it (no downloads)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `gafu demo`."""
    parser.add_argument(
        "folder",
        nargs="?",
        type=Path,
        default=Path("gafu-demo"),
        help="new folder for the demo (default: gafu-demo)",
    )
    parser.add_argument("--force", action="store_true", help="replace an earlier demo in FOLDER")


def run(args: argparse.Namespace) -> int:
    """Run `gafu demo`."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the demo needs nothing from the network
    from gafu.cpu import use_cpu_threads
    from gafu.demo.run import StageRecord, run_demo

    # One thread: the demo model's operators are too small to share (on an idle 2-core machine the
    # demo took 268 s on two threads against 105 s on one, docs/benchmarks.md); OMP_NUM_THREADS wins.
    use_cpu_threads(most=1)

    def show(stage: StageRecord) -> None:
        print(f"  {stage.name:<12} {stage.seconds:6.1f} s  {stage.summary}", flush=True)

    print(f"gafu demo in {args.folder.resolve()}", flush=True)
    result = run_demo(args.folder, force=args.force, on_stage=show, progress_bar=sys.stderr.isatty())
    print(f"done in {sum(s.seconds for s in result.stages):.0f} s")
    print(f"report:  {result.report}")
    print(f"project: {result.project}  (try: gafu plan {result.project})")
    if result.lokr:
        print(f"LoKr:    {result.lokr}")
    if result.verdict:
        print(
            f"did the style land in the trigger? {result.verdict['answer']} ({result.folder / 'judge.json'})"
        )
    return 0
