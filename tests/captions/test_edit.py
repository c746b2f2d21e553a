import errno
import json
import os

import pytest

from gafu.captions.edit import Selection, tags_add, tags_remove, tags_replace, tags_tidy
from gafu.captions.journal import list_entries, undo_last
from gafu.captions.text import read_caption
from gafu.cli import main
from gafu.errors import GafuError

TARGET = [
    ["mzh_style", "1girl", "long hair", "white dress"],
    ["mzh_style", "1girl", "chibi", r"ganyu \(genshin impact\)"],
    ["mzh_style", "solo", "black dress"],
]
REG = [["1girl", "long hair"], ["solo", "white dress", "chibi"]]


@pytest.fixture
def project(make_captioned_project):
    return make_captioned_project(TARGET, REG)


def captions(project, which):
    return {p.path.name: read_caption(p.caption_path).tags for p in project.pictures(which)}


def caption_bytes(project):
    return {p.path.name: p.caption_path.read_bytes() for w in ("target", "reg") for p in project.pictures(w)}


# --- add / remove / replace ----------------------------------------------------------------
def test_add_to_both_sets_keeps_trigger_first_and_tags_once(project):
    result = tags_add(project, ["Long_Hair", "censored"])
    target, reg = captions(project, "target"), captions(project, "reg")
    assert target["t000.png"] == ["mzh_style", "1girl", "long hair", "white dress", "censored"]
    assert target["t002.png"] == ["mzh_style", "solo", "black dress", "Long Hair", "censored"]
    assert reg["r000.png"] == ["1girl", "long hair", "censored"]
    assert all(tags[0] == "mzh_style" for tags in target.values())
    assert len(result.changes) == 5 and result.count("target") == 3 and result.count("reg") == 2
    change = next(c for c in result.changes if c.picture.endswith("t000.png"))
    assert change.added == ["censored"] and change.removed == []
    assert result.journal_id == 1


def test_add_with_where_and_picture_selects_captions(project):
    result = tags_add(project, ["dress"], Selection(where=["white_dress or black_dress", "no:solo"]))
    assert sorted(c.picture.rsplit("/", 1)[1] for c in result.changes) == ["t000.png"]
    assert "dress" in captions(project, "target")["t000.png"]
    assert "dress" not in captions(project, "reg")["r001.png"]  # has solo
    result = tags_add(project, ["smile"], Selection(pictures=["t001", "2_reg/r000.png"]))
    assert sorted(c.picture.rsplit("/", 1)[1] for c in result.changes) == ["r000.png", "t001.png"]


def test_where_naming_a_tag_no_caption_has_is_noted(project):
    result = tags_add(project, ["x"], Selection(where=["long hair"]), dry_run=True)
    assert result.changes == []
    assert any("'long'" in note and "write spaces in a tag as _" in note for note in result.notes)


def test_trigger_never_enters_a_reg_caption(project):
    before = caption_bytes(project)
    with pytest.raises(GafuError, match=r"never goes in a regularization caption \(RECIPE T3\).*set target"):
        tags_add(project, ["mzh style"])
    with pytest.raises(GafuError, match="RECIPE T3"):
        tags_replace(project, "solo", "mzh_style", Selection(sets="reg"))
    assert caption_bytes(project) == before and list_entries(project) == []


def test_adding_the_trigger_to_target_puts_it_first(make_captioned_project):
    project = make_captioned_project([["1girl", "mzh_style"], ["solo"], ["mzh_style", "smile"]], [])
    result = tags_add(project, ["mzh_style"], Selection(sets="target"))
    assert list(captions(project, "target").values()) == [
        ["mzh_style", "1girl"],
        ["mzh_style", "solo"],
        ["mzh_style", "smile"],
    ]
    assert len(result.changes) == 2


def test_trigger_stays_in_target_captions(project):
    with pytest.raises(GafuError, match=r"stays first in every target caption.*--set reg"):
        tags_remove(project, ["mzh_style"])
    with pytest.raises(GafuError, match="RECIPE T3"):
        tags_replace(project, "mzh_style", "other_style", Selection(sets="target"))


def test_removing_the_trigger_from_reg_repairs_t3(make_captioned_project):
    project = make_captioned_project([["mzh_style", "1girl"]], [["mzh_style", "1girl"], ["1girl"]])
    result = tags_remove(project, ["mzh_style"], Selection(sets="reg"))
    assert captions(project, "reg")["r000.png"] == ["1girl"] and len(result.changes) == 1


def test_remove_matches_any_spelling(project):
    tags_remove(project, ["ganyu_(genshin_impact)", "CHIBI"], Selection(sets="target"))
    assert captions(project, "target")["t001.png"] == ["mzh_style", "1girl"]
    assert "chibi" in captions(project, "reg")["r001.png"]  # --set target: reg untouched (T5)


def test_replace_in_place_without_duplicates(project):
    tags_replace(project, "white_dress", "black dress")
    target = captions(project, "target")
    assert target["t000.png"] == ["mzh_style", "1girl", "long hair", "black dress"]
    assert target["t002.png"] == ["mzh_style", "solo", "black dress"]  # unchanged
    assert captions(project, "reg")["r001.png"] == ["solo", "black dress", "chibi"]
    tags_add(project, ["black dress"], Selection(sets="reg"))
    tags_replace(project, "long_hair", "black_dress", Selection(sets="reg"))
    assert captions(project, "reg")["r000.png"] == ["1girl", "black dress"]  # old dropped, new kept once


def test_renaming_the_trigger(project):
    project.config.project.trigger = "new_style"  # as after editing gafu.toml
    tags_replace(project, "mzh_style", "new_style", Selection(sets="target"))
    target = captions(project, "target").values()
    assert all(tags[0] == "new_style" and "mzh_style" not in tags for tags in target)


@pytest.mark.parametrize("bad", [["a, b"], ["  "], ["line\nbreak"], []])
def test_bad_tag_arguments(project, bad):
    with pytest.raises(GafuError):
        tags_add(project, bad)
    assert list_entries(project) == []


def test_dry_run_reports_the_same_and_writes_nothing(project):
    before = caption_bytes(project)
    dry = tags_add(project, ["censored"], dry_run=True)
    assert dry.dry_run and len(dry.changes) == 5 and dry.journal_id is None
    assert caption_bytes(project) == before and list_entries(project) == []
    real = tags_add(project, ["censored"])
    assert [c.to_dict() for c in real.changes] == [c.to_dict() for c in dry.changes]


def test_pictures_without_captions_are_skipped(make_captioned_project):
    project = make_captioned_project([["mzh_style", "1girl"], None], [])
    result = tags_add(project, ["smile"])
    assert result.uncaptioned == ["dataset/train/2_mzh_style/t001.png"]
    assert not project.pictures("target")[1].caption_path.exists()


# --- bad captions -----------------------------------------------------------------------------
def test_messy_captions_are_rewritten_cleanly_and_undo_restores_their_bytes(project):
    messy = "\ufeff1girl, mzh_style,, long_hair , 1girl,\r\nsmile,".encode()
    path = project.pictures("target")[0].caption_path
    path.write_bytes(messy)
    tags_add(project, ["censored"], Selection(sets="target"))
    assert path.read_bytes() == b"mzh_style, 1girl, long_hair, smile, censored\n"
    undo_last(project)
    assert path.read_bytes() == messy


def test_tidy_rewrites_only_messy_captions(project):
    path = project.pictures("reg")[0].caption_path
    path.write_bytes(b"1girl,long hair,\r\n")
    result = tags_tidy(project)
    assert [c.picture.rsplit("/", 1)[1] for c in result.changes] == ["r000.png"]
    assert path.read_bytes() == b"1girl, long hair\n"
    assert tags_tidy(project).changes == []


def test_non_utf8_caption_stops_the_edit_before_any_write(project):
    bad = project.pictures("reg")[1].caption_path
    bad.write_bytes("café, 1girl".encode("cp1252"))
    before = caption_bytes(project)
    with pytest.raises(GafuError) as err:
        tags_add(project, ["censored"])
    assert str(bad) in str(err.value) and "UTF-8" in str(err.value)
    assert caption_bytes(project) == before and list_entries(project) == []


# --- failed writes: nothing lost, journal consistent -----------------------------------------
def test_a_caption_held_by_another_program_rolls_the_edit_back(project, monkeypatch):
    before = caption_bytes(project)
    held = project.pictures("reg")[0].caption_path
    real_replace = os.replace

    def replace(src, dst):
        if os.fspath(dst) == os.fspath(held):
            raise PermissionError(errno.EACCES, "in use by another program")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(GafuError) as err:
        tags_add(project, ["censored"])
    message = str(err.value)
    assert str(held) in message and "permission denied" in message and "no caption was changed" in message
    assert caption_bytes(project) == before  # the target captions written first were put back
    assert list_entries(project) == []
    assert not [p for p in held.parent.iterdir() if p.suffix == ".tmp"]


def test_failure_whose_restore_also_fails_is_journaled_exactly(project, write_failure, monkeypatch):
    before = caption_bytes(project)
    write_failure.under(project.concept_dir("target"), errno.EROFS, after=2)
    with pytest.raises(GafuError) as err:
        tags_add(project, ["censored"])
    assert "2 caption(s) written before the failure could not be put back" in str(err.value)
    assert "gafu tags undo" in str(err.value)
    entries = list_entries(project)
    assert len(entries) == 1
    assert [c.path.rsplit("/", 1)[1] for c in entries[0].changes] == ["t000.txt", "t001.txt"]
    now = caption_bytes(project)
    assert [name for name in now if now[name] != before[name]] == ["t000.png", "t001.png"]
    monkeypatch.undo()  # the folder is writable again
    result = undo_last(project)
    assert len(result.restored) == 2 and caption_bytes(project) == before


def test_journal_that_cannot_be_written_stops_the_edit(project, write_failure):
    before = caption_bytes(project)
    write_failure.under(project.journal_dir.parent, errno.ENOSPC)
    with pytest.raises(GafuError, match="disk full"):
        tags_add(project, ["censored"])
    assert caption_bytes(project) == before


# --- undo -------------------------------------------------------------------------------------
def test_undo_is_repeatable(project):
    original = caption_bytes(project)
    tags_add(project, ["censored"])
    after_first = caption_bytes(project)
    tags_remove(project, ["1girl"], Selection(sets="target"))
    assert [e.action.split()[0] for e in list_entries(project)] == ["add", "remove"]
    first = undo_last(project)
    assert first.entry.action.startswith("remove 1girl") and caption_bytes(project) == after_first
    second = undo_last(project)
    assert second.entry.action.startswith("add censored") and len(second.restored) == 5
    assert caption_bytes(project) == original
    assert undo_last(project).entry is None and list_entries(project) == []


def test_undo_does_not_overwrite_later_changes_without_force(project):
    tags_add(project, ["censored"], Selection(sets="reg"))
    path = project.pictures("reg")[0].caption_path
    path.write_text("edited, by hand\n", encoding="utf-8")
    with pytest.raises(GafuError, match=r"changed since edit 1.*--force"):
        undo_last(project)
    assert path.read_text(encoding="utf-8") == "edited, by hand\n"
    assert undo_last(project, force=True, dry_run=True).restored  # dry run shows, keeps the entry
    undo_last(project, force=True)
    assert path.read_text(encoding="utf-8") == "1girl, long hair\n" and list_entries(project) == []


def test_undo_that_fails_changes_nothing(project, write_failure):
    tags_add(project, ["censored"])
    edited = caption_bytes(project)
    write_failure.under(project.concept_dir("reg"), errno.EACCES)
    with pytest.raises(GafuError, match="undo did not change anything"):
        undo_last(project)
    assert caption_bytes(project) == edited and len(list_entries(project)) == 1


def test_undo_that_fails_halfway_can_be_run_again(project, write_failure, monkeypatch):
    original = caption_bytes(project)
    tags_add(project, ["censored"], Selection(sets="target"))
    write_failure.under(project.concept_dir("target"), errno.ENOSPC, after=1)
    with pytest.raises(GafuError, match=r"1 caption\(s\) were already restored.*undo` again"):
        undo_last(project)
    now = caption_bytes(project)
    assert sum(now[name] != original[name] for name in now) == 2  # one of three restored
    monkeypatch.undo()
    assert len(undo_last(project).restored) == 2
    assert caption_bytes(project) == original and list_entries(project) == []


# --- the command line -----------------------------------------------------------------------
def test_cli_edit_prints_what_changed(project, capsys):
    root = str(project.root)
    assert main(["tags", "add", "censored", "--where", "chibi", "--dry-run", "-p", root]) == 0
    out = capsys.readouterr().out
    assert "dataset/train/2_mzh_style/t001.png  + censored" in out
    assert "dataset/reg/2_reg/r001.png  + censored" in out and "nothing written" in out
    assert main(["tags", "remove", "chibi", "--set", "target", "-p", root]) == 0
    out = capsys.readouterr().out
    assert "t001.png  - chibi" in out and "1 of 3 selected caption(s) changed (target 1, reg 0)" in out
    assert main(["tags", "history", "-p", root]) == 0
    assert "remove chibi --set target" in capsys.readouterr().out
    assert main(["tags", "undo", "-p", root]) == 0
    assert "restored 1 caption(s)" in capsys.readouterr().out
    assert "chibi" in captions(project, "target")["t001.png"]


def test_cli_errors_are_one_line(project, capsys):
    root = str(project.root)
    assert main(["tags", "add", "x", "--where", "a or", "-p", root]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gafu: error: malformed --where expression") and "\n" not in err
    assert main(["tags", "add", "mzh_style", "-p", root]) == 2
    assert "RECIPE T3" in capsys.readouterr().err


def test_cli_read_only_caption_folder_is_one_clear_line_and_loses_nothing(project, write_failure, capsys):
    before = caption_bytes(project)
    write_failure.under(project.concept_dir("reg"), errno.EROFS)
    assert main(["tags", "add", "censored", "-p", str(project.root)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("gafu: error: permission denied")
    assert str(project.pictures("reg")[0].caption_path) in err and "no caption was changed" in err
    assert caption_bytes(project) == before and list_entries(project) == []


def test_cli_json_and_tidy(project, capsys):
    root = str(project.root)
    project.pictures("target")[2].caption_path.write_bytes(b"\xef\xbb\xbfsolo, mzh_style, solo,\r\n")
    assert main(["tags", "tidy", "--json", "-p", root]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["changed"] == {"target": 1, "reg": 0} and data["journal_id"] == 1
    assert data["changes"][0]["after"] == ["mzh_style", "solo"] and data["changes"][0]["added"] == []
    assert main(["tags", "undo", "--json", "-p", root]) == 0
    assert json.loads(capsys.readouterr().out)["restored"] == ["dataset/train/2_mzh_style/t002.txt"]
