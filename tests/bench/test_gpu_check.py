"""`bench/gpu_check.py` on the CPU with the tiny architecture: the command a GPU run will use, end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import gafu_env

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "gpu_check.py"


@pytest.mark.slow
def test_gpu_check_runs_gafus_training_step_and_reports_each_row(tmp_path):
    report_path = tmp_path / "report" / "gpu-check.json"
    command = [sys.executable, str(SCRIPT), "--arch", "tiny", "--steps", "1", "--json", str(report_path)]
    done = subprocess.run(command, capture_output=True, text=True, env=gafu_env(), timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(report_path.read_text(encoding="utf-8"))
    rows = {(row["kernel"], row["optimizer"], row["batch"]): row for row in report["rows"]}
    # No CUDA: no 8-bit AdamW and no memory cap; batches 1 and 2, gafu's LoKr against LyCORIS's.
    assert set(rows) == {(k, "adamw", b) for k in ("gafu", "lycoris") for b in (1, 2)}
    for row in rows.values():
        assert row["outcome"] == "ok" and row["seconds_per_step"] > 0 and row["peak_allocated_gib"] > 0
        assert row["estimate_gib"] > 0  # the plan's estimate for the same settings
    # (the tiny model's activations are under the plan's 0.01 GiB rounding: equal is right here)
    assert rows["gafu", "adamw", 2]["estimate_gib"] >= rows["gafu", "adamw", 1]["estimate_gib"]
    assert report["lokr"]["train_text_encoder"] and report["lokr"]["dim"] == 128
    assert report["largest_batch"]["measured"] is None and report["cap_gib"] is None
    table = done.stdout
    assert "gafu/adamw" in table and "lycoris/adamw" in table and "plan est." in table
