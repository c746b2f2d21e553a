"""Running picture jobs on every core: in this process for one worker, else in a spawned pool."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context

from gafu.errors import GafuError
from gafu.prep.work import PictureJob, PictureResult, ignore_interrupts, prepare_picture


def worker_count(requested: int, jobs: int) -> int:
    """`requested` processes, or every core the process may use; never more than there is work."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    count = requested or cores
    if sys.platform == "win32":
        count = min(count, 61)  # the most a process pool takes on Windows
    return max(1, min(count, jobs))


class PictureWorkers:
    """Runs picture jobs in this process (one worker) or in a pool of spawned processes."""

    def __init__(self, count: int):
        self.count = count
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> PictureWorkers:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def run(self, jobs: list[PictureJob], record: Callable[[PictureResult], bool]) -> None:
        """Prepare `jobs`, passing each result to `record`; stop handing out work once it returns False."""
        if self.count <= 1 or len(jobs) <= 1:
            for job in jobs:
                if not record(prepare_picture(job)):
                    return
            return
        if self._pool is None:  # spawn: what Windows and macOS use, so Linux tests the same path
            self._pool = ProcessPoolExecutor(self.count, get_context("spawn"), initializer=ignore_interrupts)
        futures = [self._pool.submit(prepare_picture, job) for job in jobs]
        pending: set[Future[PictureResult]] = set(futures)
        try:
            for future in as_completed(futures):
                pending.discard(future)
                if not record(_result(future)):
                    break
        finally:
            for future in pending:
                future.cancel()
        for future in pending:  # after a stop: pictures already being written are still recorded
            if not future.cancelled():
                record(_result(future))


def _result(future: Future[PictureResult]) -> PictureResult:
    try:
        return future.result()
    except BrokenProcessPool as exc:
        raise GafuError(
            "a prep worker process died (out of memory?); pictures prepared so far are kept",
            hint="run again with fewer workers, e.g. `gafu prep --workers 2`",
        ) from exc
