import json

import pytest

from gafu.captions.stats import picture_tags, tag_stats
from gafu.cli import main
from gafu.errors import GafuError


@pytest.fixture
def project(make_captioned_project):
    project = make_captioned_project(
        [
            ["mzh_style", "1girl", "long_hair", "censored"],
            ["mzh_style", "1girl", "long hair", "chibi"],
            ["mzh_style", "solo"],
            None,
        ],
        [["1girl", "long hair"], ["solo", "1girl"]],
        bars={0: "letterboxed"},
    )
    project.pictures("reg")[1].caption_path.write_bytes(b"\xef\xbb\xbfsolo, 1girl,\r\n")
    return project


def test_stats_count_tags_per_set_in_any_spelling(project):
    stats = tag_stats(project)
    counts = {t.tag: t.counts for t in stats.tags}
    assert counts["1girl"] == {"target": 2, "reg": 2}
    assert counts["long hair"] == {"target": 2, "reg": 1}  # `long_hair` and `long hair`
    assert counts["chibi"] == {"target": 1, "reg": 0}
    assert stats.tags[0].tag == "mzh_style"  # most frequent in the target set first
    assert stats.pictures == {"target": 4, "reg": 2} and stats.captioned == {"target": 3, "reg": 2}
    assert stats.share(2, "target") == pytest.approx(2 / 3)
    reg_only = tag_stats(project, "reg")
    assert reg_only.sets == ("reg",) and "mzh_style" not in {t.tag for t in reg_only.tags}


def test_show_one_picture(project):
    shown = picture_tags(project, "t000")
    assert shown.set == "target" and shown.picture == "dataset/train/2_mzh_style/t000.png"
    assert shown.tags == ["mzh_style", "1girl", "long_hair", "censored"]
    assert shown.bars == "letterboxed"
    assert shown.uncovered == []  # trigger and `censored` (T4) are not counted; the rest is in reg
    assert picture_tags(project, "t001.txt").uncovered == ["chibi"]
    reg = picture_tags(project, project.pictures("reg")[1].path)
    assert "starts with a byte-order mark" in reg.problems and reg.tags == ["solo", "1girl"]
    assert not picture_tags(project, "2_mzh_style/t003.png").exists
    with pytest.raises(GafuError, match="no prepared picture named nothing"):
        picture_tags(project, "nothing")


def test_show_ambiguous_name(project):
    (project.concept_dir("target") / "r000.png").write_bytes((project.pictures("reg")[0].path).read_bytes())
    with pytest.raises(GafuError, match="names 2 pictures"):
        picture_tags(project, "r000.png")


def test_cli_stats_and_show(project, capsys):
    root = str(project.root)
    assert main(["tags", "stats", "--top", "2", "-p", root]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["tag", "target", "reg"]
    assert out[1].split() == ["mzh_style", "3", "100%", "0", "0%"]
    assert "showing 2 (--top 0 for all)" in out[-1]
    assert main(["tags", "stats", "--json", "--top", "0", "-p", root]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"tag": "chibi", "target": 1, "reg": 0} in data["tags"] and data["distinct_tags"] == 6
    assert main(["tags", "show", "t001", "-p", root]) == 0
    out = capsys.readouterr().out
    assert "chibi   (no regularization caption has it: D3)" in out and "1. mzh_style" in out
