import errno
import json
import shutil

import pytest
from PIL import Image

from gafu.check import run_check
from gafu.check.pictures import cache_path, picture_facts
from gafu.check.rules import size_problems
from gafu.cli import main
from gafu.config import save_config
from tests.conftest import write_picture

SQUARE = (1024, 1024)
TARGET = [
    ["mzh_style", "1girl", "white dress"],
    ["mzh_style", "1girl", "school uniform", "censored"],
    ["mzh_style", "solo", "white_dress"],
]
REG = [["1girl", "White Dress"], ["solo", "smile"], ["1girl", "smile"]]


def codes(report, severity=None):
    return {f.code for f in report.findings if severity is None or f.severity == severity}


def finding(report, code):
    found = [f for f in report.findings if f.code == code]
    assert len(found) == 1, f"{code}: {found}"
    return found[0]


@pytest.fixture
def project(make_captioned_project):
    return make_captioned_project(TARGET, REG, size=SQUARE)


def test_clean_dataset_has_no_errors_and_a_coverage_headline(project):
    report = run_check(project)
    assert codes(report, "error") == set() and report.exit_code == 0
    assert codes(report) == {"few-target-pictures", "uncovered-tags"}  # 3 < 40 (D1)
    coverage = report.coverage
    # counted: 1girl×2, white dress×2, school uniform×1, solo×1 (trigger and `censored` left out)
    assert (coverage.occurrences, coverage.covered) == (6, 5)
    assert coverage.share == pytest.approx(5 / 6)
    assert [(u.tag, u.count, u.files) for u in coverage.uncovered] == [
        ("school uniform", 1, ["dataset/train/2_mzh_style/t001.png"])
    ]
    assert coverage.not_counted[:3] == ["mzh_style", "censored", "mosaic censoring"]
    assert report.unwanted["censored"] == {"target": 1, "reg": 0}
    saved = json.loads((project.reports_dir / "check.json").read_text(encoding="utf-8"))
    assert saved["stage"] == "check" and saved["coverage"]["share"] == pytest.approx(5 / 6)
    assert saved["summary"] == {"error": 0, "warning": 2, "info": 0}
    assert report.report_path == "reports/check.json"


def test_full_coverage_gives_no_d3_warning(make_captioned_project):
    project = make_captioned_project([["mzh_style", "1girl", "censored"]], [["1girl"]], size=SQUARE)
    report = run_check(project)
    assert report.coverage.share == 1.0 and "uncovered-tags" not in codes(report)


def test_trigger_rules(make_captioned_project):
    project = make_captioned_project(
        [["mzh_style", "1girl"], ["1girl", "mzh style"], ["1girl", "solo"]],
        [["1girl", "mzh_style"], ["solo"]],
        size=SQUARE,
    )
    report = run_check(project)
    assert finding(report, "trigger-missing").files == ["dataset/train/2_mzh_style/t002.png"]
    assert finding(report, "trigger-not-first").files == ["dataset/train/2_mzh_style/t001.png"]
    in_reg = finding(report, "trigger-in-regularization")
    assert in_reg.severity == "error" and in_reg.files == ["dataset/reg/2_reg/r000.png"]
    assert "gafu tags remove mzh_style --set reg" in in_reg.hint
    assert report.exit_code == 1


def test_bars_from_prep_without_their_tag(make_captioned_project):
    project = make_captioned_project(
        [["mzh_style", "1girl"], ["mzh_style", "letterboxed"], ["mzh_style", "solo"]],
        [["1girl"], ["solo", "censored"]],
        size=SQUARE,
        bars={0: "letterboxed", 1: "letterboxed", 2: "pillarboxed"},
    )
    report = run_check(project)
    letterboxed = finding(report, "letterboxed-untagged")
    assert letterboxed.severity == "warning" and letterboxed.rule == "T4"
    # the same bars were given to both sets' pictures 0 and 1, and to picture 2 (target only)
    assert letterboxed.files == [
        "dataset/train/2_mzh_style/t000.png",
        "dataset/reg/2_reg/r000.png",
        "dataset/reg/2_reg/r001.png",
    ]
    assert "--picture 2_mzh_style/t000.png 2_reg/r000.png 2_reg/r001.png`" in letterboxed.hint
    assert finding(report, "pillarboxed-untagged").files == ["dataset/train/2_mzh_style/t002.png"]
    assert report.unwanted["letterboxed"] == {"target": 1, "reg": 0}
    assert report.unwanted["censored"] == {"target": 0, "reg": 1}


@pytest.mark.parametrize(
    ("size", "mode", "problems"),
    [
        ((1024, 1024), "pad", []),
        ((1536, 1536), "pad", []),
        ((1024, 768), "pad", ["not-square"]),
        ((768, 768), "pad", ["too-small"]),
        ((2048, 2048), "pad", ["too-large"]),
        ((1024, 1536), "bucket", []),
        ((1000, 1024), "bucket", ["not-multiple-of-64"]),
        ((1600, 1024), "bucket", ["too-large"]),
        ((640, 512), "bucket", ["too-small"]),
    ],
)
def test_size_rules(size, mode, problems):
    assert size_problems(size, mode) == problems


def test_sizes_are_checked_for_the_mode_in_use(make_captioned_project):
    project = make_captioned_project([["mzh_style", "a"], ["mzh_style", "b"]], [], size=(1024, 832))
    assert finding(run_check(project), "not-square").files == [
        "dataset/train/2_mzh_style/t000.png",
        "dataset/train/2_mzh_style/t001.png",
    ]
    project.config.prep.mode = "bucket"
    assert not {"not-square", "not-multiple-of-64", "too-small"} & codes(run_check(project))
    project.config.prep.max_side = 960
    too_large = finding(run_check(project), "too-large")
    assert too_large.message.startswith("a side over 960: 2 pictures")
    assert "[prep] max_side = 960" in too_large.hint  # the setting behind the finding
    project.config.prep.mode = "pad"
    assert '[prep] mode = "pad"' in finding(run_check(project), "not-square").hint


def test_a_bars_tag_left_from_pad_mode_is_a_warning(make_project, tiny_tagger):
    from gafu.prep.prepare import prepare
    from gafu.project import Project
    from gafu.tagging.tag import tag_project

    project = make_project(n_target=2, n_reg=0)  # 96×64 originals: padded, they get top/bottom bars
    project.config.tag.tagger = str(tiny_tagger)
    save_config(project.config, project.config_path)
    project = Project.open(project.root)
    prepare(project, workers=1)
    tag_project(project)
    names = [p.path.relative_to(project.root).as_posix() for p in project.pictures("target")]
    assert "letterboxed-without-bars" not in codes(run_check(project))
    project.config.prep.mode = "bucket"  # switched: the pictures are remade without bars
    save_config(project.config, project.config_path)
    project = Project.open(project.root)
    prepare(project, workers=1)
    stale = finding(run_check(project), "letterboxed-without-bars")
    assert stale.severity == "warning" and stale.rule == "T4" and stale.files == names
    assert stale.hint.startswith("`gafu tags remove letterboxed --picture 2_mzh_style/t000.png")
    command = stale.hint.split("`")[1].split()[1:]
    assert main([*command, "-p", str(project.root)]) == 0  # the fix it suggests works
    assert "letterboxed-without-bars" not in codes(run_check(project))


def test_layout_problems(project):
    target = project.concept_dir("target")
    (project.set_dir("target") / "mzh_style").mkdir()
    write_picture(project.set_dir("target") / "loose.png")
    (target / "gone.txt").write_text("mzh_style, 1girl\n", encoding="utf-8")
    write_picture(target / "t100.png", SQUARE, seed=77)  # no caption
    (target / "t000.txt").write_text(" , \n", encoding="utf-8")  # empty
    (target / "t001.txt").write_bytes("mzh_style, café".encode("cp1252"))  # not UTF-8
    (target / "t002.txt").write_bytes(b"\xef\xbb\xbfmzh_style, solo,\r\n")  # BOM, CRLF, trailing comma
    report = run_check(project)
    assert finding(report, "folder-name").files == ["dataset/train/mzh_style"]
    assert finding(report, "stray-picture").files == ["dataset/train/loose.png"]
    assert finding(report, "caption-without-picture").files == ["dataset/train/2_mzh_style/gone.txt"]
    assert finding(report, "caption-missing").files == ["dataset/train/2_mzh_style/t100.png"]
    assert finding(report, "caption-empty").files == ["dataset/train/2_mzh_style/t000.png"]
    unreadable = finding(report, "caption-unreadable")
    assert unreadable.severity == "error" and "t001.txt" in unreadable.message
    assert "UTF-8" in unreadable.message
    text = {f.message: f.files for f in report.findings if f.code == "caption-text"}
    assert text["1 target caption: starts with a byte-order mark"] == ["dataset/train/2_mzh_style/t002.png"]
    assert any("CRLF" in m for m in text) and any("ends with a comma" in m for m in text)
    assert report.exit_code == 1


def test_a_caption_with_more_lines_warns_that_only_the_first_is_trained(project):
    """P7: trainers train the first line (sd-scripts reads `lines[0]`, train_util.py line 1968)."""
    caption = project.concept_dir("target") / "t000.txt"
    caption.write_text("mzh_style, 1girl\nwhite dress\n", encoding="utf-8")
    [warning] = [f for f in run_check(project).findings if f.code == "caption-text"]
    assert warning.severity == "warning" and warning.files == ["dataset/train/2_mzh_style/t000.png"]
    assert "has 2 lines" in warning.message and "train only the first line" in warning.message


def test_a_set_with_no_captions_yet_is_one_clear_finding(make_captioned_project):
    project = make_captioned_project([None, None], [None], size=SQUARE)
    report = run_check(project)
    no_captions = [f for f in report.findings if f.code == "no-captions"]
    assert [f.message for f in no_captions] == [
        "no target picture has a caption yet (2 pictures)",
        "no regularization picture has a caption yet (1 picture)",
    ]
    assert all(f.hint == "run `gafu tag`" for f in no_captions)
    assert report.coverage.share is None and "no captions yet" in report.coverage.reason
    assert "caption-missing" not in codes(report) and "trigger-missing" not in codes(report)


def test_a_project_not_prepared_yet(make_project):
    report = run_check(make_project())
    assert finding(report, "no-target-pictures").hint == "run `gafu prep`"
    assert "regularization folder" in finding(report, "no-regularization").hint


def test_regularization_counts(make_captioned_project):
    without = make_captioned_project([["mzh_style", "a"]], [], size=SQUARE)
    message = finding(run_check(without), "no-regularization").message
    assert "leaks into every tag" in message and "RECIPE D2" in message
    shutil.rmtree(without.root.parent / "originals")
    shutil.rmtree(without.root)
    lopsided = make_captioned_project([["mzh_style", "a"]], [["a"], ["b"], ["c"]], size=SQUARE)
    assert "3 pictures for 1 target picture" in finding(run_check(lopsided), "regularization-count").message


def test_target_picture_in_regularization_set(project):
    target = project.pictures("target")
    shutil.copy(target[0].path, project.concept_dir("reg") / "copy.png")
    with Image.open(target[1].path) as image:  # re-encoded at another size: a near-duplicate
        image.resize((900, 900)).save(project.concept_dir("reg") / "near.jpg", quality=90)
    shutil.copy(target[2].path, project.concept_dir("target") / "twice.png")
    report = run_check(project)
    pairs = sorted(f.files for f in report.findings if f.code == "target-in-regularization")
    assert pairs == [
        ["dataset/train/2_mzh_style/t000.png", "dataset/reg/2_reg/copy.png"],
        ["dataset/train/2_mzh_style/t001.png", "dataset/reg/2_reg/near.jpg"],
    ]
    duplicates = [f for f in report.findings if f.code == "target-in-regularization"]
    assert all(f.severity == "error" and f.rule == "D2" for f in duplicates)
    assert finding(report, "target-duplicate").files == [
        "dataset/train/2_mzh_style/t002.png",
        "dataset/train/2_mzh_style/twice.png",
    ]


def test_flat_pictures_of_other_colours_are_not_the_same_picture(project):
    """D2: the perceptual hash sees no colour; gafu check confirms a hash match by the colours."""
    side = project.pictures("target")[0]
    with Image.open(side.path) as image:
        size = image.size
    Image.new("RGB", size, (30, 60, 200)).save(project.concept_dir("target") / "blue.png")
    Image.new("RGB", size, (200, 30, 30)).save(project.concept_dir("reg") / "red.png")
    (project.concept_dir("target") / "blue.txt").write_text("mzh_style, a", encoding="utf-8")
    (project.concept_dir("reg") / "red.txt").write_text("a", encoding="utf-8")
    codes = {f.code for f in run_check(project).findings}
    assert "target-in-regularization" not in codes


def test_caption_dropout_is_an_error(project):
    project.config.train.caption_dropout_rate = 0.1
    project.config.train.caption_tag_dropout_rate = 0.05
    project.config.train.keep_tokens = 0
    report = run_check(project)
    dropout = [f for f in report.findings if f.code == "caption-dropout"]
    assert [f.message.split(":")[0] for f in dropout] == [
        "[train] caption_dropout_rate = 0.1",
        "[train] caption_tag_dropout_rate = 0.05",
    ]
    assert all(f.severity == "error" and "RECIPE P7" in f.message for f in dropout)
    assert finding(report, "keep-tokens").severity == "warning"


# --- the picture cache -------------------------------------------------------------------------
def test_picture_facts_are_cached_by_content(project):
    paths = [p.path for w in ("target", "reg") for p in project.pictures(w)]
    first = picture_facts(project, paths)
    assert first.opened == 6 and first.facts[paths[0]].size == SQUARE
    again = picture_facts(project, paths)
    assert again.opened == 0 and again.facts == first.facts
    write_picture(paths[0], SQUARE, seed=4242)  # new content
    changed = picture_facts(project, paths)
    assert changed.opened == 1 and changed.facts[paths[0]].phash != first.facts[paths[0]].phash
    shutil.copy(paths[1], project.concept_dir("reg") / "copy.png")  # known content under a new name
    assert picture_facts(project, [*paths, project.concept_dir("reg") / "copy.png"]).opened == 0
    cache_path(project).write_text("{damaged", encoding="utf-8")
    assert picture_facts(project, paths).opened == 6


def test_unreadable_picture_and_unwritable_cache_and_report(project, write_failure):
    broken = project.pictures("reg")[0].path
    broken.write_bytes(b"not a picture")
    write_failure.under(project.root, errno.EROFS)
    report = run_check(project)
    unreadable = finding(report, "unreadable-picture")
    assert unreadable.files == ["dataset/reg/2_reg/r000.png"] and str(broken) in unreadable.message
    assert report.report_path == "" and any("permission denied" in n for n in report.notes)
    assert any("picture cache was not saved" in n for n in report.notes)


# --- the command line ------------------------------------------------------------------------
def test_cli_check_text_and_exit_codes(project, capsys):
    assert main(["check", str(project.root)]) == 0
    out = capsys.readouterr().out
    assert "D3 coverage: 83% of target tag occurrences (5 of 6)" in out
    assert "uncovered (1 tags): school uniform ×1" in out and "0 errors, 2 warnings" in out
    project.config.train.caption_dropout_every_n_epochs = 3
    save_config(project.config, project.config_path)
    assert main(["check", str(project.root), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["summary"]["error"] == 1 and data["findings"][0]["code"] == "caption-dropout"
    assert data["coverage"]["uncovered"][0]["tag"] == "school uniform"
