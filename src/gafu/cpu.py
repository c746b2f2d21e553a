"""How gafu's CPU work shares the machine: how many threads, and how idle threads wait.

PyTorch runs its CPU operators on an OpenMP team, one thread per core, whose threads spin
while they wait for one another. When another program holds one of the cores, every operator
waits for a thread the system has not scheduled yet, while the others burn their time slices
spinning: on a shared 2-core machine a tiny-model training step took 20 s with torch's defaults
against 1.1 s on one thread, at 16× the CPU time (docs/benchmarks.md, `bench/busy_machine.py`).
So gafu
- asks OpenMP's threads to sleep when they wait instead of spinning (`OMP_WAIT_POLICY=PASSIVE`,
  set before torch is loaded), and
- gives torch as many threads as there are cores other programs leave idle when a stage
  starts (the cores it may use, less the busy share of the machine over a fifth of a
  second), at least one.
A user's own `OMP_WAIT_POLICY` or `OMP_NUM_THREADS` wins over both.
"""

from __future__ import annotations

import os

WAIT_POLICY = "PASSIVE"
# Long enough to see a busy neighbour (the system samples run time every few ms), short enough
# to go unnoticed at a stage's start.
BUSY_SAMPLE_SECONDS = 0.2


def prepare_environment() -> None:
    """Before torch loads: OpenMP threads sleep rather than spin while they wait (a user's setting wins)."""
    os.environ.setdefault("OMP_WAIT_POLICY", WAIT_POLICY)


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the system tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def busy_cores(seconds: float = BUSY_SAMPLE_SECONDS) -> float:
    """How many of the machine's cores other programs keep busy, measured over `seconds`."""
    import psutil

    return psutil.cpu_percent(interval=seconds) / 100 * (psutil.cpu_count() or 1)


def idle_cores(busy: float | None = None) -> int:
    """Usable cores less the ones other programs keep busy (`busy_cores()`), at least 1."""
    if busy is None:
        busy = busy_cores()
    cores = usable_cores()
    return max(1, min(cores, int(cores - busy + 0.5)))


def cpu_threads(most: int | None = None) -> int:
    """Threads for CPU operators: the user's `OMP_NUM_THREADS`, else the idle cores, at most `most`."""
    configured = os.environ.get("OMP_NUM_THREADS", "").strip()
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return idle_cores() if most is None else min(idle_cores(), most)


def use_cpu_threads(most: int | None = None) -> int:
    """Set torch's CPU thread count to `cpu_threads(most)` for this process; returns it."""
    import torch

    threads = cpu_threads(most)
    torch.set_num_threads(threads)
    return threads


def native_bf16() -> bool:
    """True where this CPU computes bf16 natively (oneDNN's AVX-512 paths); elsewhere it is emulated.

    Emulated bf16 is no use for training or sampling: on an AVX2 CPU a 1024² matmul on one thread
    took 2.30 s in bf16 against 0.026 s in fp32 (docs/benchmarks.md).
    """
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch built without oneDNN
        return False
