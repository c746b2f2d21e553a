"""The long stages behind the UI: tagging in a thread, training and sampling in child processes.

Training runs detached (its own session on POSIX, its own process group without a console on
Windows), so closing the browser or stopping `gafu ui` leaves it running; the UI finds it again
through `output/train.lock` and follows it through `output/logs/progress.jsonl`, and stops it by
writing `output/STOP` (signals are not portable to Windows; a file is). What the children print
goes to `.gafu/logs/` — not `output/`, which a run that starts over moves aside.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gafu
from gafu.errors import GafuError
from gafu.fsio import write_text_atomic
from gafu.project import Project

LOG_TAIL_BYTES = 4000  # of a child's log shown when it fails


class JobConflict(GafuError):
    """A job of this kind is already running (HTTP 409)."""


# --- processes -----------------------------------------------------------------------------------


def gafu_command(*args: str) -> list[str]:
    """`python -m gafu ARGS` with this interpreter."""
    return [sys.executable, "-m", "gafu", *args]


def child_env() -> dict[str, str]:
    """The environment for a gafu child: this gafu importable even where it is not installed."""
    env = dict(os.environ)
    src = str(Path(gafu.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def detached_options() -> dict[str, Any]:
    """Popen options for a child that outlives the server and its console."""
    if sys.platform == "win32":
        flags = subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.DETACHED_PROCESS
        return {"creationflags": flags | subprocess.CREATE_NO_WINDOW}
    return {"start_new_session": True}


def pid_running(pid: int) -> bool:
    """True while process `pid` exists (a zombie of our own is reaped by `Popen.poll` first)."""
    import psutil

    return pid > 0 and psutil.pid_exists(pid)


def lock_pid(lock: Path) -> int | None:
    """The pid in a trainer's lock file, if the file exists and holds one."""
    try:
        text = lock.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    first = text.split()[0] if text.split() else ""
    if first.startswith("{"):  # a JSON lock: {"pid": …}
        try:
            return int(json.loads(text).get("pid"))
        except (ValueError, TypeError, AttributeError):
            return None
    return int(first) if first.isdigit() else None


def log_tail(path: Path, size: int = LOG_TAIL_BYTES, *, start: int = 0) -> str:
    """The end of a child's log (of what it printed after byte `start`)."""
    try:
        data = path.read_bytes()[start:]
    except OSError:
        return ""
    return data[-size:].decode("utf-8", errors="replace")


def error_line(log: str) -> str | None:
    """The last `gafu: error: …` line of a child's log, without the prefix (None: there is none)."""
    prefix = "gafu: error: "
    lines = [line for line in log.splitlines() if line.startswith(prefix)]
    return lines[-1][len(prefix) :] if lines else None


# --- progress.jsonl --------------------------------------------------------------------------------


def progress_path(project_root: Path) -> Path:
    """`output/logs/progress.jsonl`, where `gafu train` reports each event."""
    return project_root / "output" / "logs" / "progress.jsonl"


def read_events(path: Path, offset: int) -> tuple[list[tuple[int, dict]], int]:
    """Complete JSON lines after byte `offset`: ([(end offset, event)], next offset).

    A line still being written (no newline yet) is left for the next call; a file shorter than
    `offset` (a new run replaced it) is read from its start.
    """
    try:
        size = path.stat().st_size
    except OSError:
        return [], 0
    if size < offset:
        offset = 0
    with path.open("rb") as f:
        f.seek(offset)
        data = f.read()
    events = []
    position = offset
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break
        position += len(line)
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append((position, event))
    return events, position


# --- training ---------------------------------------------------------------------------------------


@dataclass
class Trainer:
    """Starts, finds and stops the project's training run."""

    root: Path
    program: list[str] = field(default_factory=lambda: gafu_command("train"))  # + PROJECT + options
    process: subprocess.Popen | None = None
    guard: threading.Lock = field(default_factory=threading.Lock)
    log_start: int = 0  # the log's size when our child started: what it printed comes after

    @property
    def lock(self) -> Path:
        """`output/train.lock`: the running trainer's pid."""
        return self.root / "output" / "train.lock"

    @property
    def log(self) -> Path:
        """What the trainer printed, for when it fails before reporting."""
        return self.root / ".gafu" / "logs" / "ui-train.log"

    def running_pid(self) -> int | None:
        """The pid of a running trainer of this project, from our child or the lock."""
        if self.process is not None and self.process.poll() is None:
            return self.process.pid
        pid = lock_pid(self.lock)
        if pid is not None and pid_running(pid) and pid != os.getpid():
            return pid
        return None

    def start(self, extra: list[str] | None = None, *, check: Callable[[], None] | None = None) -> int:
        """Start `gafu train PROJECT` detached; refuses while a run holds the lock, or when `check` raises."""
        with self.guard:
            pid = self.running_pid()
            if pid is not None:
                raise JobConflict(
                    f"a training run is already going (pid {pid}, {self.lock})",
                    path=self.lock,
                    hint="stop it first, or wait for it to finish",
                )
            if check is not None:
                check()
            self.log.parent.mkdir(parents=True, exist_ok=True)
            self.log_start = self.log.stat().st_size if self.log.is_file() else 0
            with self.log.open("ab") as log:
                self.process = subprocess.Popen(
                    [*self.program, str(self.root), *(extra or [])],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=child_env(),
                    cwd=self.root,
                    close_fds=True,
                    **detached_options(),
                )
            return self.process.pid

    def stop(self) -> Path:
        """Ask the running trainer to stop at the next step boundary (it saves first)."""
        if self.running_pid() is None:
            raise JobConflict("no training run is going")
        stop = self.root / "output" / "STOP"
        write_text_atomic(stop, f"stop requested by gafu ui at {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        return stop

    def status(self) -> dict[str, Any]:
        """Running or not, and how our own child ended (with its error line when it failed)."""
        pid = self.running_pid()
        ended = None
        if self.process is not None and pid is None:
            tail = log_tail(self.log, start=self.log_start)
            ended = {"returncode": self.process.returncode, "log": tail, "error": error_line(tail)}
        return {"running": pid is not None, "pid": pid, "ended": ended, "log": _relative(self.root, self.log)}


def _relative(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


# --- sampling ---------------------------------------------------------------------------------------


@dataclass
class Sampler:
    """One `gafu sample PROJECT …` child at a time."""

    root: Path
    program: list[str] = field(default_factory=lambda: gafu_command("sample"))  # + PROJECT + options
    process: subprocess.Popen | None = None
    what: str = ""  # what is being rendered, for the page
    guard: threading.Lock = field(default_factory=threading.Lock)

    @property
    def log(self) -> Path:
        """What the sampler printed."""
        return self.root / ".gafu" / "logs" / "ui-sample.log"

    def start(self, options: list[str], what: str) -> int:
        """Run `gafu sample PROJECT OPTIONS` (e.g. `--lokr FILE --weights 0,1`)."""
        with self.guard:
            if self.process is not None and self.process.poll() is None:
                raise JobConflict(f"already rendering {self.what}", hint="wait for it to finish")
            self.log.parent.mkdir(parents=True, exist_ok=True)
            with self.log.open("wb") as log:
                self.process = subprocess.Popen(
                    [*self.program, str(self.root), *options],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=child_env(),
                    cwd=self.root,
                )
            self.what = what
            return self.process.pid

    def status(self) -> dict[str, Any]:
        """Running, finished (with its exit code) or never started."""
        if self.process is None:
            return {"state": "idle"}
        code = self.process.poll()
        state = "running" if code is None else "done" if code == 0 else "failed"
        return {"state": state, "what": self.what, "returncode": code, "log": log_tail(self.log)}


# --- tagging ----------------------------------------------------------------------------------------


@dataclass
class Tagger:
    """`gafu tag` in a thread of the server, with progress for the page."""

    root: Path
    thread: threading.Thread | None = None
    progress: dict[str, Any] = field(default_factory=lambda: {"state": "idle"})
    guard: threading.Lock = field(default_factory=threading.Lock)

    def start(self, mode: str) -> None:
        """Caption the pictures that need it (`mode`: skip, overwrite or merge)."""
        with self.guard:
            if self.thread is not None and self.thread.is_alive():
                raise JobConflict("the tagger is already running")
            self.progress = {"state": "running", "done": 0, "total": None, "tagger": None}
            self.thread = threading.Thread(target=self._run, args=(mode,), name="gafu-ui-tag", daemon=True)
            self.thread.start()

    def _run(self, mode: str) -> None:
        from gafu.tagging.tag import TagEvents, TagOptions, tag_project

        def on_start(reference: str, provider: str, count: int) -> None:
            self.progress.update(tagger=reference, provider=provider, total=count)

        def on_progress(count: int) -> None:
            self.progress["done"] += count

        try:
            result = tag_project(
                Project.open(self.root), TagOptions(mode=mode), TagEvents(on_start, on_progress)
            )
        except Exception as exc:  # shown on the page; the CLI gives the same message
            self.progress.update(state="failed", error=str(exc))
            return
        self.progress.update(state="done", result=result.to_dict())
