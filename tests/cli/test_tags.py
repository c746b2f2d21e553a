"""`gafu tags` takes the project as every other command does (first), or with -p/--project."""

from __future__ import annotations

import json

import pytest

from gafu.captions.text import read_caption
from gafu.cli import main
from gafu.cli.tags import ACTIONS
from tests.conftest import write_captioned_set


@pytest.fixture
def project(make_project):
    project = make_project(n_target=1, n_reg=1)
    write_captioned_set(project, "target", [["mzh_style", "1girl"], ["mzh_style", "smile"]])
    write_captioned_set(project, "reg", [["1girl"]], seed=50)
    return project


def test_the_project_may_come_first(project, capsys):
    root = str(project.root)
    assert main(["tags", root, "add", "red_scarf", "--set", "target"]) == 0
    assert all("red scarf" in read_caption(p.caption_path).tags for p in project.pictures("target"))
    capsys.readouterr()
    assert main(["tags", root, "stats", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(["tags", "stats", "--json", "-p", root]) == 0  # the -p form still works
    assert json.loads(capsys.readouterr().out) == first
    assert main(["tags", root, "undo"]) == 0
    assert not any("red scarf" in read_caption(p.caption_path).tags for p in project.pictures("target"))


def test_usage_shows_both_forms(capsys):
    with pytest.raises(SystemExit):
        main(["tags", "--help"])
    shown = capsys.readouterr().out
    assert "gafu tags [PROJECT] ACTION" in shown
    assert all(action in shown for action in ACTIONS)  # every action the project-first form knows
