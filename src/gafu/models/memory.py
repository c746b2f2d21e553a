"""The peak memory (RAM) this process used while a block of code ran, on Linux, macOS and Windows.

What counts is the memory the process owns. Pages of a file mapped for reading (safetensors
maps the checkpoint) show in the resident size too, but they are the OS's file cache, shared
and dropped under pressure; counting them would report every loaded checkpoint twice.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

SAMPLE_SECONDS = 0.01


@dataclass
class MemoryReport:
    """Memory the process owned before a block and at its peak, in bytes, and how long it took."""

    before_bytes: int = 0
    peak_bytes: int = 0
    seconds: float = 0.0

    @property
    def added_bytes(self) -> int:
        """How far the peak rose above the starting point."""
        return max(0, self.peak_bytes - self.before_bytes)

    def to_dict(self) -> dict:
        """Plain data (MB), for reports."""
        return {
            "ram_before_mb": round(self.before_bytes / 1e6),
            "ram_peak_mb": round(self.peak_bytes / 1e6),
            "ram_added_mb": round(self.added_bytes / 1e6),
            "seconds": round(self.seconds, 2),
        }


def owned_bytes(process: psutil.Process) -> int:
    """Memory the process owns: anonymous resident memory on Linux, private bytes on Windows.

    macOS exposes no such figure cheaply; there it is the resident size (mapped files included).
    """
    if sys.platform.startswith("linux"):
        for line in Path(f"/proc/{process.pid}/status").read_text("ascii", "replace").splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    if sys.platform == "win32":
        return int(process.memory_info().private)
    return int(process.memory_info().rss)


class PeakMemory:
    """Context manager measuring the peak of `owned_bytes` while its block runs (sampled)."""

    def __init__(self) -> None:
        self.report = MemoryReport()
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0

    def __enter__(self) -> MemoryReport:
        self.report.before_bytes = self.report.peak_bytes = owned_bytes(self._process)
        self._started = time.perf_counter()
        self._thread = threading.Thread(target=self._sample, name="gafu-peak-memory", daemon=True)
        self._thread.start()
        return self.report

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._record()
        self.report.seconds = time.perf_counter() - self._started

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self._record()

    def _record(self) -> None:
        self.report.peak_bytes = max(self.report.peak_bytes, owned_bytes(self._process))
