"""Captions beside the originals carried to the prepared pictures (kohya datasets: `a.png` + `a.txt`)."""

import dataclasses
import json

import pytest

from gafu.captions.edit import Selection, tags_add
from gafu.check import run_check
from gafu.cli import main
from gafu.config import save_config
from gafu.errors import ConfigError
from gafu.prep.prepare import prepare
from gafu.project import Project
from tests.conftest import snapshot_files, write_picture


@pytest.fixture
def kohya_originals(tmp_path):
    """A target folder with `.txt` and `.caption` captions (one CRLF + BOM, one missing), and a reg folder."""
    target, reg = tmp_path / "originals" / "target", tmp_path / "originals" / "reg"
    for i in range(4):
        write_picture(target / f"t{i}.png", seed=300 + i)
    (target / "t0.txt").write_text("1girl, white dress, smile\n", encoding="utf-8")
    (target / "t1.caption").write_text("1girl, school uniform", encoding="utf-8")
    (target / "t2.txt").write_bytes("\ufeffmzh_style, 1girl, 桜\r\n".encode())
    for i in range(2):
        write_picture(reg / f"r{i}.png", seed=400 + i)
    (reg / "r0.txt").write_text("1girl, mzh_style, outdoors", encoding="utf-8")
    return target, reg


@pytest.fixture
def kohya_project(tmp_path, kohya_originals):
    from gafu.init import init_project

    target, reg = kohya_originals
    init_project(tmp_path / "project", target=target, reg=reg, trigger="mzh_style", family="sdxl")
    return Project.open(tmp_path / "project")


def _caption(project, which, stem):
    return project.concept_dir(which) / f"{stem}.txt"


def test_captions_beside_originals_are_carried_byte_for_byte(kohya_project, kohya_originals):
    target, _ = kohya_originals
    before = snapshot_files(target.parent)
    summary = prepare(kohya_project, workers=1)
    assert summary.exit_code == 0
    assert _caption(kohya_project, "target", "t0").read_bytes() == (target / "t0.txt").read_bytes()
    assert _caption(kohya_project, "target", "t1").read_bytes() == (target / "t1.caption").read_bytes()
    assert _caption(kohya_project, "target", "t2").read_bytes() == (target / "t2.txt").read_bytes()
    assert not _caption(kohya_project, "target", "t3").exists()  # no caption beside t3.png
    assert _caption(kohya_project, "reg", "r0").read_text(encoding="utf-8") == "1girl, mzh_style, outdoors"
    carried = {(row["set"], row["output"]) for row in summary.captions_carried}
    assert carried == {
        ("target", "dataset/train/2_mzh_style/t0.txt"),
        ("target", "dataset/train/2_mzh_style/t1.txt"),
        ("target", "dataset/train/2_mzh_style/t2.txt"),
        ("reg", "dataset/reg/2_reg/r0.txt"),
    }
    assert snapshot_files(target.parent) == before  # originals and their captions untouched
    report = json.loads((kohya_project.reports_dir / "prep.json").read_text(encoding="utf-8"))
    assert len(report["captions_carried"]) == 4


def test_the_summary_points_at_the_trigger_fix_and_check_agrees(kohya_project):
    summary = prepare(kohya_project, workers=1)
    hints = [w for w in summary.warnings if "RECIPE T3" in w]
    assert any(
        "2 captions carried into the target set do not start with the trigger 'mzh_style'" in w
        and "`gafu tags add mzh_style --set target`" in w
        for w in hints
    )
    assert any("`gafu tags remove mzh_style --set reg`" in w for w in hints)
    codes = {f.code for f in run_check(kohya_project, save=False).findings}
    assert {"trigger-missing", "trigger-in-regularization"} <= codes
    tags_add(kohya_project, ["mzh_style"], Selection(sets="target"))  # the command the summary gives
    codes = {f.code for f in run_check(kohya_project, save=False).findings}
    assert "trigger-missing" not in codes and "trigger-not-first" not in codes
    assert _caption(kohya_project, "target", "t0").read_text(encoding="utf-8").startswith("mzh_style, 1girl")


def test_a_caption_edited_in_gafu_is_never_replaced(kohya_project, kohya_originals):
    target, _ = kohya_originals
    prepare(kohya_project, workers=1)
    edited = _caption(kohya_project, "target", "t0")
    edited.write_text("mzh_style, 1girl, edited", encoding="utf-8")
    (target / "t0.txt").write_text("1girl, changed beside the original", encoding="utf-8")
    summary = prepare(kohya_project, workers=1)
    assert edited.read_text(encoding="utf-8") == "mzh_style, 1girl, edited"
    assert summary.captions_carried == []
    assert [row["output"] for row in summary.captions_kept] == ["dataset/train/2_mzh_style/t0.txt"]


def test_a_re_run_reports_nothing_and_a_new_caption_is_carried(kohya_project, kohya_originals):
    target, _ = kohya_originals
    prepare(kohya_project, workers=1)
    summary = prepare(kohya_project, workers=1)
    assert summary.captions_carried == [] and summary.captions_kept == []
    (target / "t3.txt").write_text("1girl, night", encoding="utf-8")  # added after the first prep
    summary = prepare(kohya_project, workers=1)
    assert [row["output"] for row in summary.captions_carried] == ["dataset/train/2_mzh_style/t3.txt"]


def test_a_caption_that_is_not_utf8_is_a_one_line_error_and_the_rest_is_carried(
    kohya_project, kohya_originals
):
    target, _ = kohya_originals
    (target / "t3.txt").write_bytes("1girl, caf\xe9".encode("latin-1"))
    summary = prepare(kohya_project, workers=1)
    assert summary.exit_code == 1 and summary.failed == []
    [failed] = summary.caption_failed
    assert "t3.txt" in failed["reason"] and "not UTF-8" in failed["reason"]
    assert "re-save it as UTF-8" in failed["reason"] and "\n" not in failed["reason"]
    assert (kohya_project.concept_dir("target") / "t3.png").is_file()  # the picture is prepared
    assert not _caption(kohya_project, "target", "t3").exists()
    assert len(summary.captions_carried) == 4


def test_the_extensions_are_configurable(kohya_project, kohya_originals):
    target, _ = kohya_originals
    (target / "t0.caption").write_text("from the caption file", encoding="utf-8")
    prep = dataclasses.replace(kohya_project.config.prep, caption_extensions=[".caption"])
    project = dataclasses.replace(kohya_project, config=dataclasses.replace(kohya_project.config, prep=prep))
    prepare(project, workers=1)
    assert _caption(project, "target", "t0").read_text(encoding="utf-8") == "from the caption file"
    assert not _caption(project, "target", "t2").exists()  # .txt is not looked at
    assert _caption(project, "target", "t1").is_file()


def test_no_extensions_carries_nothing_and_a_bad_one_is_refused(kohya_project):
    config = kohya_project.config
    project = dataclasses.replace(
        kohya_project,
        config=dataclasses.replace(config, prep=dataclasses.replace(config.prep, caption_extensions=[])),
    )
    assert prepare(project, workers=1).captions_carried == []
    for bad in ("txt", ".png"):
        prep = dataclasses.replace(config.prep, caption_extensions=[bad])
        project = dataclasses.replace(kohya_project, config=dataclasses.replace(config, prep=prep))
        with pytest.raises(ConfigError, match=r"prep\.caption_extensions"):
            prepare(project, workers=1)


def test_the_cli_summary_reports_the_captions(kohya_project, capsys):
    save_config(kohya_project.config, kohya_project.config_path)
    assert main(["prep", str(kohya_project.root), "--workers", "1"]) == 0
    captured = capsys.readouterr()
    assert "captions carried from beside the originals: 4 (target 3, reg 1)" in captured.out
    assert "`gafu tag --merge`" in captured.out
    assert "`gafu tags add mzh_style --set target`" in captured.err
