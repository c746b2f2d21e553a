"""Resumable state, the one-trainer-per-project lock, and stop requests (Ctrl-C, SIGTERM, output/STOP).

A state is one file, `output/state/step-00000123.pt`, written atomically: the LoKr's fp32
weights, the optimizer and scheduler, the step, the gradient scaler and the RNG states. The data
order and every noise draw are functions of (seed, epoch, step), so with these a resumed run
continues exactly as an uninterrupted one would.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gafu.errors import GafuError, os_error_message
from gafu.fsio import atomic_path, read_text_utf8

STATE_NAME = re.compile(r"^step-(\d{8})\.pt$")
LOCK_NAME = "train.lock"
STOP_NAME = "STOP"


# --- states ------------------------------------------------------------------------------------
def state_path(state_dir: Path, step: int) -> Path:
    """`state/step-00000123.pt`."""
    return state_dir / f"step-{step:08d}.pt"


def list_states(state_dir: Path) -> list[tuple[int, Path]]:
    """Saved states as (step, path), oldest first."""
    if not state_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in state_dir.iterdir() if (m := STATE_NAME.match(p.name))]
    return sorted(found)


def save_state(state_dir: Path, step: int, content: dict[str, Any], *, keep: int) -> Path:
    """Write a state atomically, then remove all but the newest `keep`."""
    import torch

    path = state_path(state_dir, step)
    with atomic_path(path) as tmp:
        torch.save({**content, "step": step}, tmp)
    for _, old in list_states(state_dir)[: -max(1, keep)]:
        with contextlib.suppress(OSError):
            old.unlink()
    return path


def load_state(path: Path) -> dict[str, Any]:
    """Read a state written by `save_state`."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise os_error_message(exc, path, "read") from exc
    except Exception as exc:  # a truncated or foreign file: torch raises several kinds
        raise GafuError(
            f"{path} is not a readable training state ({exc.__class__.__name__})",
            path=path,
            hint="delete it to resume from the one before, or start over with `gafu train --restart`",
        ) from exc


def rng_state() -> dict[str, Any]:
    """Python's and torch's random states (sampling and any library that draws from them)."""
    import torch

    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put back what `rng_state` saved."""
    import torch

    random.setstate(_as_tuple(state["python"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, list | tuple) else value


# --- the lock ------------------------------------------------------------------------------------
def pid_running(pid: int) -> bool:
    """True when a process with this id is running (portable: psutil)."""
    import psutil

    return psutil.pid_exists(pid)


def live_lock_holder(output_dir: Path) -> int | None:
    """The id of another running process that holds `output/train.lock` (None: free or stale)."""
    holder = _lock_holder(output_dir / LOCK_NAME)
    if holder is not None and holder != os.getpid() and pid_running(holder):
        return holder
    return None


def lock_error(output_dir: Path, holder: int) -> GafuError:
    """The error for a project another trainer is training."""
    path = output_dir / LOCK_NAME
    return GafuError(
        f"another `gafu train` (process {holder}) is training this project: {path}",
        path=path,
        hint="wait for it, or stop it by creating output/STOP",
    )


@contextlib.contextmanager
def train_lock(output_dir: Path) -> Iterator[Path]:
    """Hold `output/train.lock` (this process's id) while training; a live holder is an error."""
    path = output_dir / LOCK_NAME
    output_dir.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            holder = live_lock_holder(output_dir)
            if holder is not None:
                raise lock_error(output_dir, holder) from None
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # stale: its process is gone
            continue
        except OSError as exc:
            raise os_error_message(exc, path, "create") from exc
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(str(os.getpid()))
        break
    try:
        yield path
    finally:
        if _lock_holder(path) == os.getpid():
            with contextlib.suppress(OSError):
                path.unlink()


def _lock_holder(path: Path) -> int | None:
    try:
        return int(read_text_utf8(path, what="lock").strip())
    except (GafuError, ValueError):
        return None


# --- stop requests -----------------------------------------------------------------------------------
@dataclass
class StopRequest:
    """Set by Ctrl-C, SIGTERM or the file `output/STOP`; the loop stops at the next step boundary.

    `on_request(reason)` is told at once, when the first request arrives (the run says so before
    the step in progress ends). Until `training` is set nothing is trained that a save would
    keep, so a Ctrl-C then interrupts at once.
    """

    stop_file: Path
    reason: str = ""
    training: bool = False
    on_request: Callable[[str], None] | None = field(default=None, repr=False)

    def request(self, reason: str) -> None:
        """Ask the loop to stop after the current step."""
        if self.reason:
            return
        self.reason = reason
        if self.on_request is not None:
            self.on_request(reason)

    @property
    def requested(self) -> bool:
        """True once a stop was asked for (the STOP file is looked at here, and removed)."""
        if not self.reason and self.stop_file.exists():
            with contextlib.suppress(OSError):
                self.stop_file.unlink()
            self.request(f"{self.stop_file.name} file")
        return bool(self.reason)


@contextlib.contextmanager
def stop_on_signals(stop: StopRequest) -> Iterator[StopRequest]:
    """Turn the first Ctrl-C / SIGTERM into a stop request; a second Ctrl-C interrupts at once.

    So does a Ctrl-C before training begins (loading, caching latents): nothing to save yet.
    """
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signals reach only the main thread; the STOP file still works
        return

    def handler(signum, frame):
        if signum == signal.SIGINT and (stop.reason or not stop.training):
            raise KeyboardInterrupt
        stop.request(signal.Signals(signum).name)

    names = ["SIGINT", "SIGTERM", "SIGBREAK"]  # SIGBREAK: Ctrl-Break on Windows
    previous = {}
    for name in names:
        if hasattr(signal, name):
            number = getattr(signal, name)
            previous[number] = signal.signal(number, handler)
    try:
        yield stop
    finally:
        for number, old in previous.items():
            signal.signal(number, old)
