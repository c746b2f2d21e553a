"""gafu's CPU threads on a shared machine: OpenMP threads that sleep, as many torch threads as idle cores."""

from __future__ import annotations

import pytest

from gafu import cpu


def test_openmp_threads_sleep_unless_the_user_says_otherwise(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    cpu.prepare_environment()
    assert cpu.os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    cpu.prepare_environment()
    assert cpu.os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_the_cli_asks_it_before_torch_loads(monkeypatch):
    from gafu.cli import main

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert cpu.os.environ["OMP_WAIT_POLICY"] == "PASSIVE"


@pytest.mark.parametrize(("busy", "threads"), [(0.0, 2), (0.4, 2), (0.6, 1), (1.0, 1), (1.9, 1), (5.0, 1)])
def test_threads_are_the_cores_others_leave_idle(monkeypatch, busy, threads):
    monkeypatch.setattr(cpu, "usable_cores", lambda: 2)
    assert cpu.idle_cores(busy) == threads


def test_a_user_thread_count_wins_and_torch_gets_it(monkeypatch):
    import torch

    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "3")
        assert cpu.use_cpu_threads() == 3 and torch.get_num_threads() == 3
        monkeypatch.delenv("OMP_NUM_THREADS")
        monkeypatch.setattr(cpu, "busy_cores", lambda: 0.0)
        monkeypatch.setattr(cpu, "usable_cores", lambda: 2)
        assert cpu.use_cpu_threads() == 2 and torch.get_num_threads() == 2
        assert cpu.use_cpu_threads(most=1) == 1 and torch.get_num_threads() == 1  # the demo's tiny model
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert cpu.use_cpu_threads(most=1) == 2  # the user's count still wins
    finally:
        torch.set_num_threads(before)


def test_busy_cores_are_measured_over_the_machine():
    assert 0.0 <= cpu.busy_cores(0.05) <= (cpu.os.cpu_count() or 1) + 1e-6


def test_a_cpu_without_native_bf16_trains_in_fp32(monkeypatch):
    """bf16 emulated on a CPU is ~90× slower than fp32: the run uses fp32 there; the plan stays as it is."""
    from types import SimpleNamespace

    import torch

    from gafu.train import setup

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    plan = SimpleNamespace(run=SimpleNamespace(mixed_precision="bf16"))  # what training_precision reads
    monkeypatch.setattr(cpu, "native_bf16", lambda: False)
    assert setup.training_precision(plan) == "no"
    monkeypatch.setattr(cpu, "native_bf16", lambda: True)
    assert setup.training_precision(plan) == "bf16"
    plan.run.mixed_precision = "fp16"
    assert setup.training_precision(plan) == "fp16"
    assert isinstance(cpu.native_bf16(), bool)
