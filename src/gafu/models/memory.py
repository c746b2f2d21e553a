"""The peak memory (RAM) this process used while a block of code ran, on Linux, macOS and Windows."""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass

import psutil

SAMPLE_SECONDS = 0.02


@dataclass
class MemoryReport:
    """Resident memory before a block and at its peak, in bytes, and how long it took."""

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


def _high_water_mark(process: psutil.Process) -> int:
    """The operating system's record of this process's peak resident memory, in bytes."""
    if sys.platform == "win32":
        return int(process.memory_info().peak_wset)
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # macOS reports bytes, Linux KiB


class PeakMemory:
    """Context manager measuring peak resident memory while its block runs.

    A sampling thread catches the peak; where the OS high-water mark rose during the block, that
    exact figure replaces the sampled one (it cannot be reset, so it only helps when it moved).
    """

    def __init__(self) -> None:
        self.report = MemoryReport()
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._mark_before = 0
        self._started = 0.0

    def __enter__(self) -> MemoryReport:
        self.report.before_bytes = self.report.peak_bytes = self._process.memory_info().rss
        self._mark_before = _high_water_mark(self._process)
        self._started = time.perf_counter()
        self._thread = threading.Thread(target=self._sample, name="gafu-peak-memory", daemon=True)
        self._thread.start()
        return self.report

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._record()
        mark_after = _high_water_mark(self._process)
        if mark_after > self._mark_before:
            self.report.peak_bytes = max(self.report.peak_bytes, mark_after)
        self.report.seconds = time.perf_counter() - self._started

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self._record()

    def _record(self) -> None:
        self.report.peak_bytes = max(self.report.peak_bytes, self._process.memory_info().rss)
