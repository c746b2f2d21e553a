"""The run in `output/` and the earlier ones in `output/runs/<date>/` (DESIGN.md).

`output/` holds one run: its plan, LoKr files, states, logs and samples. Starting over moves
all of it to `output/runs/<date>/` (the date the moved run started; nothing is deleted), so
every command that picks "the latest LoKr" or "epoch 50" picks a file of the current run.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from gafu.errors import GafuError, os_error_message
from gafu.fsio import read_json
from gafu.train.state import LOCK_NAME, list_states, live_lock_holder, lock_error

RUNS_NAME = "runs"
KEPT = {RUNS_NAME, LOCK_NAME}  # what stays in output/ when a run is moved aside
_LOKR = re.compile(r"^(?P<name>.+?)(?:-e(?P<epoch>\d{6})|-step(?P<step>\d{6}))?\.safetensors$")


@dataclass(frozen=True)
class LokrFile:
    """A LoKr file of the run: the final one, an epoch's, or one saved when the run was stopped."""

    path: Path
    kind: str  # "final", "epoch" or "step"
    number: int | None  # the epoch or the step; None for the final file

    @property
    def label(self) -> str:
        """`final`, `epoch 10`, `step 123`."""
        return self.kind if self.number is None else f"{self.kind} {self.number}"


@dataclass(frozen=True)
class CurrentRun:
    """What `output/` holds of the current run."""

    output: Path
    saved_step: int | None  # the last resumable state's step; None when there is none
    total_steps: int | None  # the run's plan (output/plan.json); None without one
    lokr_files: list[LokrFile] = field(default_factory=list)  # in saving order

    @property
    def finished(self) -> bool:
        """The last state is the plan's last step: nothing left to resume."""
        return (
            self.saved_step is not None
            and self.total_steps is not None
            and (self.saved_step >= self.total_steps)
        )

    @property
    def resumable(self) -> bool:
        """A state to continue from, before the plan's end."""
        return self.saved_step is not None and not self.finished

    @property
    def latest(self) -> LokrFile | None:
        """The LoKr saved last: the final file, else the latest epoch or stop."""
        return self.lokr_files[-1] if self.lokr_files else None


def lokr_files(output: Path, name: str, steps_per_epoch: int | None = None) -> list[LokrFile]:
    """The run's LoKr files named after `name` in `output/`, in the order the run saves them.

    Epoch and step files are ordered by the step they were saved at (`steps_per_epoch` from the
    plan; without it epochs come before stops); the final file comes last.
    """
    found = []
    for path in output.glob("*.safetensors") if output.is_dir() else []:
        match = _LOKR.match(path.name)
        if not match or match.group("name") != name:
            continue
        if match.group("epoch"):
            found.append(LokrFile(path, "epoch", int(match.group("epoch"))))
        elif match.group("step"):
            found.append(LokrFile(path, "step", int(match.group("step"))))
        else:
            found.append(LokrFile(path, "final", None))

    def order(item: LokrFile) -> tuple[int, float]:
        if item.kind == "final":
            return 2, 0.0
        if item.kind == "epoch":
            return (0, item.number * steps_per_epoch) if steps_per_epoch else (0, item.number)
        return (0, item.number) if steps_per_epoch else (1, item.number)

    return sorted(found, key=order)


def current_run(output: Path, name: str) -> CurrentRun:
    """The run in `output/`: its last state, its plan's length and its LoKr files named `name`."""
    states = list_states(output / "state")
    total, per_epoch = _plan_steps(output / "plan.json")
    return CurrentRun(
        output=output,
        saved_step=states[-1][0] if states else None,
        total_steps=total,
        lokr_files=lokr_files(output, name, per_epoch),
    )


def _plan_steps(path: Path) -> tuple[int | None, int | None]:
    """(total steps, steps per epoch) of the run's plan, read as plain JSON (no torch to load)."""
    if not path.is_file():
        return None, None
    try:
        batch = read_json(path, what="plan")["batch"]
        return int(batch["total_steps"]), int(batch["steps_per_epoch"])
    except (GafuError, KeyError, TypeError, ValueError):
        return None, None  # an unreadable plan: the files still show


def check_start(output: Path, *, resume: bool, restart: bool, lock: bool | None = None) -> CurrentRun:
    """Refuse, before anything is planned or loaded, a run that cannot start; returns the current run.

    Refused: a project another trainer holds the lock of (`lock`; default: unless this is one of
    several launched processes, whose main process takes the lock itself), a new run over a saved
    one (without `restart`), a resume with nothing to resume or of a finished run.
    """
    if lock is None:
        lock = int(os.environ.get("WORLD_SIZE", "1")) <= 1
    holder = live_lock_holder(output) if lock else None
    if holder is not None:
        raise lock_error(output, holder)
    run = current_run(output, "")
    if resume:
        if run.saved_step is None or run.total_steps is None:
            raise GafuError(
                f"nothing to resume in {output}: no saved state", hint="run `gafu train` to start"
            )
        if run.finished:
            raise GafuError(
                f"the run in {output} is already finished ({run.saved_step} steps)",
                hint="see its LoKr files, or start over with `gafu train --restart`",
            )
    elif run.saved_step is not None and not restart:
        state = "finished" if run.finished else "stopped"
        raise GafuError(
            f"{output} holds a {state} run saved at step {run.saved_step}",
            path=output / "state",
            hint=("continue it with `gafu train --resume`, or " if run.resumable else "")
            + f"start over with `gafu train --restart` (it moves the run to output/{RUNS_NAME}/)",
        )
    return run


def holds_a_run(output: Path) -> bool:
    """True when `output/` holds anything of a run (what `move_aside` would move)."""
    return output.is_dir() and any(entry.name not in KEPT for entry in output.iterdir())


def move_aside(output: Path) -> Path | None:
    """Move the run in `output/` to `output/runs/<date>/`; returns that folder (None: nothing to move)."""
    entries = sorted(e for e in output.iterdir() if e.name not in KEPT) if output.is_dir() else []
    if not entries:
        return None
    folder = _runs_folder(output, _started(output))
    try:
        folder.mkdir(parents=True)
        for entry in entries:
            os.replace(entry, folder / entry.name)
    except OSError as exc:
        raise os_error_message(exc, Path(exc.filename or folder), "move") from exc
    return folder


def _started(output: Path) -> float:
    """When the run in `output/` started: its plan's time, else its oldest file's."""
    plan = output / "plan.json"
    if plan.is_file():
        return plan.stat().st_mtime
    times = [e.stat().st_mtime for e in output.iterdir() if e.name not in KEPT]
    return min(times, default=time.time())


def _runs_folder(output: Path, started: float) -> Path:
    """`output/runs/2025-01-31_142500`, with `-2`, `-3` … if that name is taken."""
    stamp = time.strftime("%Y-%m-%d_%H%M%S", time.localtime(started))
    folder = output / RUNS_NAME / stamp
    count = 2
    while folder.exists():
        folder = output / RUNS_NAME / f"{stamp}-{count}"
        count += 1
    return folder
