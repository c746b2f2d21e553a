"""Run a `gafu` command the way a user does: in a terminal, where progress bars draw.

Progress bars (tqdm) draw only when their stream is a terminal, so a command run with pipes, as
tests usually run it, never executes that code. `run_in_terminal` gives the command a
pseudo-terminal (Python's `pty`: Linux and macOS) as its controlling terminal for stdin,
stdout and stderr, reads everything it shows, and can press keys (Ctrl-C) when some text has
appeared. `TerminalRun.bars(unit)` reads back the states of the bars it drew.

A new command gets its terminal test by calling `run_in_terminal(["COMMAND", ...])` and
`assert_progress(run, unit)` (tests/cli/test_terminal.py).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CTRL_C = b"\x03"  # what the Ctrl-C key sends; the terminal turns it into SIGINT
COLUMNS, ROWS = 120, 40

needs_terminal = pytest.mark.skipif(
    sys.platform == "win32", reason="pseudo-terminals (Python's pty module) are POSIX only"
)


@dataclass
class TerminalRun:
    """What a command showed in its terminal, and how it ended."""

    args: list[str]
    returncode: int
    output: str  # everything written to the terminal, stdout and stderr interleaved as shown
    pressed_at: list[int] = field(default_factory=list)  # offsets in `output` where keys were pressed

    def bars(self, unit: str, *, end: int | None = None) -> list[tuple[int, int]]:
        """Each drawn state (done, total) of tqdm bars counting `unit`s, in order (up to offset `end`)."""
        return [(done, total) for _, done, total in self._draws(unit, end)]

    def first_bar(self, unit: str) -> int:
        """Where a bar of `unit`s was first drawn (-1: never)."""
        draws = self._draws(unit, None)
        return draws[0][0] if draws else -1

    def _draws(self, unit: str, end: int | None) -> list[tuple[int, int, int]]:
        rate = rf"(?:\?|[\d.]+)(?:{unit}s?/s|s/{unit})"
        pattern = re.compile(rf"(\d+)/(\d+) \[[\d:]+<[\d:?]+, +{rate}")
        text = self.output if end is None else self.output[:end]
        return [(m.start(), int(m.group(1)), int(m.group(2))) for m in pattern.finditer(text)]

    def first(self, text: str) -> int:
        """Where `text` first appears in the output (-1: nowhere)."""
        return self.output.find(text)

    def tail(self, size: int = 3000) -> str:
        """The end of the output, for assertion messages."""
        return self.output[-size:]


def run_in_terminal(
    args: list[str],
    *,
    env: dict[str, str],
    cwd: Path | None = None,
    timeout: float = 300,
    press: tuple[str, bytes] | None = None,
) -> TerminalRun:
    """Run `python -m gafu ARGS` with a pseudo-terminal as its controlling terminal.

    `press = (regex, keys)`: type `keys` once, as soon as the output matches `regex`.
    """
    import fcntl
    import pty
    import select
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))

    def take_terminal() -> None:  # in the child, after setsid: Ctrl-C reaches it as from a shell
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    process = subprocess.Popen(
        [sys.executable, "-m", "gafu", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=cwd,
        env={**env, "TERM": "xterm", "COLUMNS": str(COLUMNS)},
        start_new_session=True,
        preexec_fn=take_terminal,  # the tests' own child, started while no lock is held
    )
    os.close(slave)
    received, pressed = bytearray(), []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                process.kill()
                raise AssertionError(
                    f"`gafu {' '.join(args)}` ran past {timeout} s; its terminal showed:\n"
                    + received[-3000:].decode("utf-8", "replace")
                )
            ready, _, _ = select.select([master], [], [], min(left, 0.5))
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every holder of the terminal's other end has closed it
                data = b""
            if not data:
                break
            received += data
            if press and not pressed and re.search(press[0], received.decode("utf-8", "replace")):
                os.write(master, press[1])
                pressed.append(len(received.decode("utf-8", "replace")))
        returncode = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    return TerminalRun(list(args), returncode, received.decode("utf-8", "replace"), pressed)


def assert_progress(run: TerminalRun, unit: str, *, total: int | None = None) -> list[tuple[int, int]]:
    """The command ended well and drew a bar of `unit`s that reached its end (of `total`, if given)."""
    assert run.returncode == 0, f"`gafu {' '.join(run.args)}` exited {run.returncode}:\n{run.tail()}"
    assert "Traceback" not in run.output, run.tail()
    states = run.bars(unit)
    assert states, f"no progress bar of {unit}s was drawn:\n{run.tail()}"
    finished = [(done, whole) for done, whole in states if done == whole and done > 0]
    assert finished, f"the {unit} bar never reached its end: {states}"
    if total is not None:
        assert finished[-1][1] == total, states
    return states
