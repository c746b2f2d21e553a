"""`[sources] exclude` / `include`: pictures leave the dataset with their captions and come back intact."""

import errno

import pytest

from gafu.captions.text import write_caption
from gafu.config import load_config, save_config
from gafu.errors import GafuError
from gafu.prep.aside import bring_back, set_aside
from gafu.prep.manifest import load_manifest
from gafu.prep.prepare import prepare
from gafu.prep.selection import Selection, pattern_matches
from gafu.project import Project
from tests.conftest import snapshot_files, write_picture


@pytest.fixture
def prepared(make_project):
    project = make_project(n_target=5, n_reg=3, family="sdxl")
    write_picture(project.source_dir("target") / "old" / "t900.jpg", seed=77, fmt="JPEG")
    prepare(project, workers=1)
    for picture in project.pictures("target"):  # captions a user edited by hand: they must survive
        write_caption(picture.caption_path, ["mzh_style", f"hand edit of {picture.path.stem}"])
    return project


def _with_exclude(project: Project, target: list[str]) -> Project:
    config = load_config(project.config_path)
    config.sources.exclude.target = target
    save_config(config, project.config_path)
    return Project.open(project.root)


def _names(project: Project, which: str = "target") -> set[str]:
    return {p.path.name for p in project.pictures(which)}


@pytest.mark.parametrize(
    ("pattern", "relative", "hit"),
    [
        ("t001.png", "t001.png", True),
        ("T001.PNG", "t001.png", True),  # as Windows compares names
        ("t001.png", "old/t001.png", True),  # a bare name matches in any subfolder
        ("old/*", "old/t900.jpg", True),
        ("old\\t900.jpg", "old/t900.jpg", True),  # a Windows path as written in gafu.toml
        ("./t00[12].png", "t002.png", True),
        ("*.jpg", "old/t900.jpg", True),
        ("old/*", "t001.png", False),
        ("t00", "t001.png", False),
        ("", "t001.png", False),
    ],
)
def test_patterns(pattern, relative, hit):
    assert pattern_matches(pattern, relative) is hit


def test_include_and_exclude_reasons():
    selection = Selection("reg", include=("r*.png",), exclude=("r002.png",))
    assert selection.wants("r001.png") and selection.reason("r001.png") is None
    assert "excluded by 'r002.png'" in selection.reason("r002.png")
    assert selection.reason("x.png") == "not in [sources.include] reg"


def test_exclude_round_trips_through_prep_with_nothing_lost(prepared):
    project = prepared
    originals = project.source_dir("target")
    before_originals = snapshot_files(originals)
    before = snapshot_files(project.concept_dir("target"))
    assert "t900.png" in _names(project)

    project = _with_exclude(project, ["t001.png", "old/*"])
    summary = prepare(project, workers=1)
    assert _names(project) == {"t000.png", "t002.png", "t003.png", "t004.png"}
    aside = project.aside_dir("target")
    assert sorted(p.name for p in aside.iterdir()) == ["t001.png", "t001.txt", "t900.png", "t900.txt"]
    assert {(row["original"], row["aside"]) for row in summary.set_aside} == {
        ("t001.png", "set-aside/train/t001.png"),
        ("old/t900.jpg", "set-aside/train/t900.png"),
    }
    assert summary.sets["target"]["left_out"] == 2 and summary.sets["target"]["in_dataset"] == 4
    manifest = load_manifest(project.prep_manifest_path)
    assert set(manifest.aside) == {"dataset/train/2_mzh_style/t001.png", "dataset/train/2_mzh_style/t900.png"}
    assert not set(manifest.aside) & set(manifest.entries)

    again = prepare(project, workers=1)  # a re-run moves nothing and makes nothing
    assert again.set_aside == [] and again.prepared == [] and again.missing == []

    project = _with_exclude(project, [])  # undo: the lines deleted from gafu.toml
    summary = prepare(project, workers=1)
    assert {row["picture"].rsplit("/", 1)[1] for row in summary.restored} == {"t001.png", "t900.png"}
    assert summary.prepared == []  # the very same files came back; nothing was made again
    assert snapshot_files(project.concept_dir("target")) == before  # byte for byte, times included
    assert not any(aside.iterdir())
    assert snapshot_files(originals) == before_originals  # originals never touched


def test_include_list_keeps_only_the_named_originals(prepared):
    project = prepared
    config = load_config(project.config_path)
    config.sources.include.reg = ["r000.png", "r002.png"]
    save_config(config, project.config_path)
    summary = prepare(Project.open(project.root), workers=1)
    assert _names(project, "reg") == {"r000.png", "r002.png"}
    assert [row["reason"] for row in summary.set_aside] == ["not in [sources.include] reg"]
    assert (project.aside_dir("reg") / "r001.png").is_file()


def test_set_aside_and_bring_back_by_dataset_name(prepared):
    project = prepared
    name = "dataset/train/2_mzh_style/t003.png"
    caption = (project.root / name).with_suffix(".txt").read_bytes()
    result = set_aside(project, [name])
    assert [row["picture"] for row in result.set_aside] == [name]
    assert load_config(project.config_path).sources.exclude.target == ["t003.png"]
    assert "t003.png" not in _names(project)
    assert prepare(Project.open(project.root), workers=1).prepared == []  # prep agrees: nothing to do

    result = bring_back(Project.open(project.root), [name])
    assert [row["picture"] for row in result.restored] == [name]
    assert load_config(project.config_path).sources.exclude.target == []
    assert (project.root / name).with_suffix(".txt").read_bytes() == caption


def test_bring_back_keeps_a_picture_a_wider_pattern_still_excludes(prepared):
    project = _with_exclude(prepared, ["t00*.png"])
    prepare(project, workers=1)
    result = bring_back(project, ["dataset/train/2_mzh_style/t002.png"])
    assert result.restored == [] and "stays aside" in result.notes[0] and "'t00*.png'" in result.notes[0]


def test_a_picture_prep_did_not_make_cannot_be_set_aside(prepared):
    with pytest.raises(GafuError, match="not a picture `gafu prep` made"):
        set_aside(prepared, ["dataset/train/2_mzh_style/nothing.png"])


def test_excluding_every_picture_is_a_clear_error(prepared):
    project = _with_exclude(prepared, ["*"])
    with pytest.raises(GafuError, match=r"leave none of the 6 pictures of the target folder"):
        prepare(project, workers=1)
    assert len(_names(project)) == 6  # nothing moved before the error


def test_a_caption_set_aside_comes_back_when_the_manifest_is_lost(prepared):
    project = _with_exclude(prepared, ["t001.png"])
    prepare(project, workers=1)
    project.prep_manifest_path.unlink()  # .gafu/ is bookkeeping: users may delete it
    project = _with_exclude(project, [])
    prepare(project, workers=1)
    assert (project.concept_dir("target") / "t001.txt").read_text(encoding="utf-8") == (
        "mzh_style, hand edit of t001\n"
    )


def test_a_failing_move_puts_the_caption_back(prepared, monkeypatch):
    import os

    project = _with_exclude(prepared, ["t001.png"])
    real = os.replace

    def replace(source, target):
        if str(source).endswith("t001.png"):
            raise OSError(errno.EACCES, "in use")
        return real(source, target)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(GafuError, match="permission denied: cannot move"):
        prepare(project, workers=1)
    assert {"t001.png", "t001.txt"} <= {p.name for p in project.concept_dir("target").iterdir()}
