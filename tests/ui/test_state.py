"""Stage states from the files on disk: todo, partial, done, stale."""

from __future__ import annotations

import os
import time

from gafu.ui.state import project_state
from tests.conftest import write_captioned_set


def states(project) -> dict[str, str]:
    """Stage name → status."""
    return {s["name"]: s["status"] for s in project_state(project)}


def later(path, seconds: float = 10) -> None:
    """Give `path` a modification time in the future (as if changed after everything else)."""
    when = time.time() + seconds
    os.utime(path, (when, when))


def test_a_new_project_has_everything_to_do(make_project):
    assert set(states(make_project(n_target=2, n_reg=0)).values()) == {"todo"}


def test_partial_done_and_stale(make_project):
    project = make_project(n_target=2, n_reg=0)
    write_captioned_set(project, "target", [["mzh_style", "a"], None])
    assert states(project)["prep"] == "done" and states(project)["tag"] == "partial"
    later(project.source_dir("target") / "t000.png")
    assert states(project)["prep"] == "stale"  # an original changed since prep ran

    output = project.output_dir
    output.mkdir()
    (output / "mzh_style-e000001.safetensors").write_bytes(b"x")
    assert states(project)["train"] == "partial"
    (output / "mzh_style.safetensors").write_bytes(b"x")
    later(output / "mzh_style.safetensors", 20)
    assert states(project)["train"] == "done"
    assert project_state(project, training=True)[4]["status"] == "running"

    grid = output / "samples" / "mzh_style" / "grid-p01.png"
    grid.parent.mkdir(parents=True)
    grid.write_bytes(b"x")
    later(grid, 30)
    assert states(project)["sample"] == "done"
    later(output / "mzh_style.safetensors", 40)
    assert states(project)["sample"] == "stale"  # a LoKr newer than the latest grid
    later(project.config_path, 50)
    assert states(project)["train"] == "done"  # touched, but the same: nothing the run read changed
    with project.config_path.open("a", encoding="utf-8") as config:
        config.write("# a note\n")
    later(project.config_path, 60)
    assert states(project)["train"] == "stale"  # gafu.toml changed since the run
