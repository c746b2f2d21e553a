"""`gafu train` on the command line: what it refuses before planning (a live lock, a saved run)."""

from __future__ import annotations

import subprocess
import sys

from gafu.train.state import save_state
from tests.conftest import gafu_env


def _train(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "gafu", "train", *args]
    return subprocess.run(command, env=gafu_env(), capture_output=True, text=True, timeout=300)


def test_a_live_lock_is_reported_before_any_planning(make_project):
    project = make_project(n_target=0, n_reg=0)  # no pictures: planning would fail
    project.output_dir.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (project.output_dir / "train.lock").write_text(str(holder.pid), encoding="utf-8")
        done = _train(str(project.root))
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 2
    assert f"another `gafu train` (process {holder.pid}) is training this project" in done.stderr
    assert "picture" not in done.stderr  # the plan was never resolved


def test_a_saved_run_is_reported_before_any_planning(make_project):
    project = make_project(n_target=0, n_reg=0)
    save_state(project.output_dir / "state", 3, {}, keep=1)
    done = _train(str(project.root))
    assert done.returncode == 2
    assert "holds a stopped run saved at step 3" in done.stderr
    assert "gafu train --restart" in done.stderr and "picture" not in done.stderr
