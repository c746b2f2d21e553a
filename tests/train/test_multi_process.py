"""Two processes (gloo, CPU) training one run: it trains and saves once.

`accelerate launch` on GPUs starts its processes with torch's launcher (`torch.distributed.run`),
which the test uses directly: accelerate's own CPU launcher needs MPI. Each process then finds
its rank in the environment, as under `accelerate launch`, and accelerate sets up gloo.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gafu.network.files import read_lokr_file
from gafu.plan.model import load_plan
from tests.conftest import gafu_env


@pytest.mark.slow
def test_two_processes_train_and_save_once(train_project):
    project = train_project(4, 4, epochs=2, batch_size=2)
    env = gafu_env(OMP_NUM_THREADS="1")
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "gafu",
        "train",
        str(project.root),
        "--json",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)  # printed by the main process only
    assert result["processes"] == 2 and result["outcome"] == "done"
    events = [
        json.loads(line)
        for line in (project.output_dir / "logs" / "progress.jsonl").read_text("utf-8").splitlines()
    ]
    plan = load_plan(project.plan_path)
    kinds = [e["event"] for e in events]
    assert kinds.count("start") == 1 and kinds.count("done") == 1  # one process reports
    assert [e["step"] for e in events if e["event"] == "step"] == list(range(1, plan.batch.total_steps + 1))
    saves = [e["path"] for e in events if e["event"] == "save"]
    assert saves == [
        "output/mzh_style-e000001.safetensors",
        "output/mzh_style.safetensors",
    ]  # saved once each
    assert sorted(p.name for p in project.output_dir.glob("*.safetensors")) == sorted(
        Path(s).name for s in saves
    )
    tensors = read_lokr_file(project.output_dir / "mzh_style.safetensors").tensors
    assert any(k.endswith("w2") and t.abs().sum() > 0 for k, t in tensors.items())
    assert all(torch.isfinite(t).all() for t in tensors.values())
