"""Train the LoKr the plan describes: LoKr files per saved epoch, resumable states, logs, samples.

A new run resolves the plan (as `gafu plan` prints it) and saves it as output/plan.json;
`--resume` continues the last saved state with that plan; `--restart` starts over, moving the
previous run's files to output/runs/<date>/ (nothing is deleted). Ctrl-C (or SIGTERM, or a file named
STOP in output/) ends the run after the current step with a LoKr and a state saved. On several
GPUs: `accelerate launch -m gafu train PROJECT` (the effective batch stays the plan's).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "train the LoKr (P1–P9): per-epoch LoKr files, resumable state, logs and samples"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `gafu train`."""
    parser.add_argument("project", type=Path, nargs="?", default=None, help="project folder (default: here)")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--resume", action="store_true", help="continue the last saved state of output/")
    start.add_argument(
        "--restart",
        action="store_true",
        help="start over although output/ holds a run (it is moved to output/runs/<date>/)",
    )
    parser.add_argument("--vram", type=float, metavar="GB", help="GPU memory to plan for (default: detected)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    """Run `gafu train`."""
    from gafu.cli.output import print_json, warn
    from gafu.cpu import use_cpu_threads
    from gafu.errors import GafuError
    from gafu.project import Project
    from gafu.train import train
    from gafu.train.runs import check_start

    project = Project.open(args.project)
    # The lock and a saved run first: a refusal must not wait for minutes of planning.
    check_start(project.output_dir, resume=args.resume, restart=args.restart)
    use_cpu_threads()  # as many threads as idle cores: a busy machine slows it, not stalls it
    plan = None
    if args.resume:
        if args.vram is not None:
            raise GafuError("--vram plans a new run; a resumed run keeps its plan (output/plan.json)")
    else:
        from gafu.plan import resolve_plan
        from gafu.plan.memory import detect_gpu

        plan = resolve_plan(project, args.vram, gpu=detect_gpu())
        for message in plan.warnings:
            warn(message)
    result = train(
        project, plan=plan, resume=args.resume, restart=args.restart, progress_bar=sys.stderr.isatty()
    )
    if not result.main_process:
        return 0  # the main process reports for all
    for note in result.notes:
        print(f"gafu: note: {note}", file=sys.stderr)
    if args.json:
        print_json(
            {
                "outcome": result.outcome,
                "step": result.step,
                "total_steps": result.total_steps,
                "processes": result.processes,
                "lokr": str(result.lokr),
                "state": str(result.state) if result.state else None,
                "saved": [str(p) for p in result.saved],
            }
        )
    elif result.outcome == "done":
        print(f"trained {result.step} steps; LoKr: {result.lokr}")
    else:
        print(f"stopped at step {result.step} of {result.total_steps}; LoKr: {result.lokr}")
        print(f"resume with: gafu train --resume {project.root}")
    return 0
