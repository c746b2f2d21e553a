"""A training stage beside a CPU-bound neighbour: how much slower, and how much more CPU, than quiet.

    PYTHONPATH=src python bench/busy_machine.py                     # 8 steps, 2 rounds, 1 neighbour
    PYTHONPATH=src python bench/busy_machine.py --neighbours 2 --rounds 3

Builds a small project on gafu's tiny SDXL-architecture model (its 64 px pictures, captions,
batch 2), then runs `gafu.train.train` on it in fresh processes, one per thread setting, each
once on the machine as it is ("quiet") and once beside `--neighbours` processes that spin a
core each ("loaded"). Settings:
- torch default: what gafu did before — a thread per core, OpenMP's default waiting (spin first);
- 1 thread: `torch.set_num_threads(1)`;
- 2 threads passive: a thread per core, OpenMP threads sleep while they wait;
- gafu: what the `gafu` command does now (`gafu.cpu`: passive waiting, threads = idle cores).
Figures are medians over the rounds, in which every setting and condition take turns: the
training loop's seconds per optimizer step (from the run's own step events, loading and latent
caching excluded) and the process's CPU seconds per step (all its threads). "× quiet" is the
loaded figure over the same setting's quiet one, measured in the same run. The machine's busy
cores at each run's start (all programs, `gafu.cpu.busy_cores`) are printed: other programs'
work counts as part of "quiet".
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTINGS = ("torch default", "1 thread", "2 threads passive", "gafu")
CONDITIONS = ("quiet", "loaded")
NEIGHBOUR = "while True: pass"  # a CPU-bound program: one core, all the time


# --- the project -------------------------------------------------------------------------------
def build_project(folder: Path, pictures: int, epochs: int) -> Path:
    """A captioned project on the tiny model: `pictures` target and regularization pictures of 64 px."""
    import dataclasses

    import numpy as np
    from PIL import Image

    from gafu.captions.text import write_caption
    from gafu.config import save_config
    from gafu.init import init_project
    from gafu.models.tiny import save_tiny_model
    from gafu.project import Project

    model = save_tiny_model(folder / "model")
    originals = folder / "originals"
    originals.mkdir(parents=True)
    init_project(folder / "project", target=originals, trigger="bench_style", model=str(model.diffusers_dir))
    project = Project.open(folder / "project")
    rng = np.random.default_rng(0)
    tags = ["1girl", "solo", "smile", "outdoors", "sky", "white dress"]
    for which, first in (("target", ["bench_style"]), ("reg", [])):
        concept = project.concept_dir(which)
        concept.mkdir(parents=True)
        for i in range(pictures):
            blocks = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
            path = concept / f"{which}{i:03d}.png"
            Image.fromarray(blocks).resize((64, 64), Image.Resampling.NEAREST).save(path)
            write_caption(path.with_suffix(".txt"), [*first, *tags[: 2 + i % 4]])
    config = project.config
    config.train = dataclasses.replace(
        config.train,
        resolution=512,  # the smallest the plan takes; 64 px pictures train at their own size
        epochs=epochs,
        batch_size=2,
        mixed_precision="no",
        gradient_checkpointing=False,
        save_every_epochs=epochs,
        save_dtype="fp32",
        restart_every_epochs=1,
    )
    save_config(config, project.config_path)
    return project.root


# --- one run, in its own process -----------------------------------------------------------------
def child(setting: str, project_root: Path) -> None:
    """Train the project once with `setting` and print the loop's figures as JSON."""
    if setting == "2 threads passive":
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    elif setting == "gafu":
        from gafu.cpu import prepare_environment

        prepare_environment()
    import torch

    if setting == "1 thread":
        torch.set_num_threads(1)
    elif setting == "gafu":
        from gafu.cpu import use_cpu_threads

        use_cpu_threads()
    from gafu.project import Project
    from gafu.train import train

    marks: dict[str, tuple[float, float]] = {}
    steps = []

    def listen(event: dict) -> None:
        if event["event"] == "start":
            marks["start"] = (time.perf_counter(), time.process_time())
        elif event["event"] == "step":
            steps.append(event["step"])
            marks["last"] = (time.perf_counter(), time.process_time())

    project = Project.open(project_root)
    shutil.rmtree(project.output_dir, ignore_errors=True)
    train(project, callbacks=[listen])
    (wall0, cpu0), (wall1, cpu1) = marks["start"], marks["last"]
    print(
        json.dumps(
            {
                "threads": torch.get_num_threads(),
                "steps": len(steps),
                "s_per_step": (wall1 - wall0) / len(steps),
                "cpu_per_step": (cpu1 - cpu0) / len(steps),
            }
        )
    )


def run_child(setting: str, project: Path, timeout: float) -> dict | None:
    """One training run in a fresh process (torch reads its thread settings once, when it loads)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    command = [sys.executable, __file__, "--child", setting, "--project", str(project)]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0:
        raise SystemExit(f"{setting}: the run failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


class Neighbours:
    """`count` processes spinning a core each, while the block runs."""

    def __init__(self, count: int):
        self.count = count
        self.processes: list[subprocess.Popen] = []

    def __enter__(self) -> Neighbours:
        self.processes = [subprocess.Popen([sys.executable, "-c", NEIGHBOUR]) for _ in range(self.count)]
        time.sleep(1.0)  # running before the stage starts, as a busy machine is
        return self

    def __exit__(self, *exc_info: object) -> None:
        for process in self.processes:
            process.kill()
            process.wait()


def main() -> None:
    """Run every setting quiet and loaded, round after round, and print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pictures", type=int, default=4, help="per set (2 steps an epoch)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--neighbours", type=int, default=1, help="CPU-bound processes beside the stage")
    parser.add_argument("--timeout", type=float, default=600, help="seconds a run may take")
    parser.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS))
    parser.add_argument("--child", choices=SETTINGS, help=argparse.SUPPRESS)
    parser.add_argument("--project", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.project)
        return

    import psutil

    from gafu.cpu import busy_cores

    with tempfile.TemporaryDirectory(prefix="gafu-bench-busy-") as temp:
        project = build_project(Path(temp), args.pictures, args.epochs)
        runs: dict[tuple[str, str], list[dict | None]] = {}
        loads: dict[str, list[float]] = {c: [] for c in CONDITIONS}
        print(f"{os.cpu_count()} cores; load average {psutil.getloadavg()[0]:.2f} before", flush=True)
        for round_index in range(args.rounds):
            for condition in CONDITIONS:
                for setting in args.settings:
                    with Neighbours(args.neighbours if condition == "loaded" else 0):
                        loads[condition].append(busy_cores(0.5))
                        result = run_child(setting, project, args.timeout)
                    runs.setdefault((setting, condition), []).append(result)
                    shown = "timed out" if result is None else f"{result['s_per_step']:.3f} s/step"
                    print(f"  round {round_index + 1}: {setting}, {condition}: {shown}", flush=True)
        print_table(runs, args, loads)


def _median(results: list[dict | None], key: str) -> float | None:
    values = [r[key] for r in results if r is not None]
    return statistics.median(values) if len(values) == len(results) else None


def print_table(runs: dict, args: argparse.Namespace, loads: dict[str, list[float]]) -> None:
    """Seconds and CPU seconds per step, quiet and loaded, and the loaded/quiet ratios."""
    quiet_load = statistics.mean(loads["quiet"])
    loaded_load = statistics.mean(loads["loaded"])
    print(
        f"\n{args.pictures}+{args.pictures} pictures of 64 px, {args.epochs} epochs, {args.rounds} rounds; "
        f"loaded = beside {args.neighbours} spinning process(es); busy cores at the runs' start "
        f"(all programs): {quiet_load:.2f} quiet, {loaded_load:.2f} loaded"
    )
    header = (
        f"{'setting':20} {'threads':>7} {'quiet s/step':>12} {'loaded s/step':>13} {'× quiet':>8} "
        f"{'quiet CPU s':>11} {'loaded CPU s':>12} {'× quiet':>8}"
    )
    print(header)
    for setting in args.settings:
        quiet, loaded = runs[(setting, "quiet")], runs[(setting, "loaded")]
        threads = next((r["threads"] for r in quiet + loaded if r is not None), "?")
        figures = [_median(quiet, "s_per_step"), _median(loaded, "s_per_step")]
        cpu = [_median(quiet, "cpu_per_step"), _median(loaded, "cpu_per_step")]
        print(
            f"{setting:20} {threads!s:>7} {_cell(figures[0], 12)} {_cell(figures[1], 13)} "
            f"{_ratio(*figures)} {_cell(cpu[0], 11)} {_cell(cpu[1], 12)} {_ratio(*cpu)}"
        )


def _cell(value: float | None, width: int) -> str:
    return f"{value:{width}.3f}" if value is not None else f"{'> timeout':>{width}}"


def _ratio(quiet: float | None, loaded: float | None) -> str:
    return f"{loaded / quiet:8.2f}" if quiet and loaded else f"{'–':>8}"


if __name__ == "__main__":
    main()
