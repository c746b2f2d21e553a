"""`gafu tag` on prepared projects: T2–T4 in written captions, existing captions, rethreshold, failures."""

import errno
import json
import shutil

import numpy as np
import pytest

from gafu.captions.text import read_caption, tag_key, tag_to_text
from gafu.cli import main
from gafu.config import save_config
from gafu.errors import GafuError
from gafu.project import Project
from gafu.tagging.labels import CHARACTER, GENERAL
from gafu.tagging.scores import load_scores, scores_path
from gafu.tagging.tag import TagOptions, rethreshold_project, tag_project
from gafu.tagging.tiny import DEFAULT_TINY_TAGS, TinyTag, build_tiny_tagger, tiny_probabilities
from tests.conftest import add_prepared_picture, fake_hub_cache

WHITE, BLUE, GREY = (255, 255, 255), (0, 0, 255), (128, 128, 128)


@pytest.fixture
def project(make_project, tiny_tagger):
    made = make_project(n_target=0, n_reg=0)
    return _configure(made, tagger=str(tiny_tagger))


def _configure(project, **tag_settings):
    """Change [tag] (and `target.*` / `reg.*`) settings in gafu.toml and reopen the project."""
    for key, value in tag_settings.items():
        section, _, name = key.rpartition("__")
        owner = getattr(project.config.tag, section) if section else project.config.tag
        setattr(owner, name, value)
    save_config(project.config, project.config_path)
    return Project.open(project.root)


def _expected_tags(rgb, threshold, tags=DEFAULT_TINY_TAGS, character_threshold=0.85):
    """Caption texts the tiny tagger's documented function gives a flat picture of colour `rgb`."""
    bgr = np.full((448, 448, 3), rgb[::-1], dtype=np.float32)
    chosen = set()
    for tag, p in zip(tags, tiny_probabilities(bgr, tags), strict=True):
        cut = {GENERAL: threshold, CHARACTER: character_threshold}.get(tag.category)
        if cut is not None and p >= cut:
            chosen.add(tag_to_text(tag.name))
    return chosen


def _caption(picture_path):
    return read_caption(picture_path.with_suffix(".txt")).tags


def test_captions_follow_the_thresholds_per_set_and_the_trigger(project):
    target = add_prepared_picture(project, "target", "a.png", WHITE)
    reg = add_prepared_picture(project, "reg", "b.png", WHITE)
    result = tag_project(project)
    assert result.failed == 0 and result.provider == "CPUExecutionProvider"
    target_tags, reg_tags = _caption(target), _caption(reg)
    assert target_tags[0] == "mzh_style" and "mzh_style" not in reg_tags  # T3
    assert set(target_tags[1:]) == _expected_tags(WHITE, 0.5)  # T2
    assert set(reg_tags) == _expected_tags(WHITE, 0.35)
    assert "looking at viewer" in reg_tags and "looking at viewer" not in target_tags  # p ≈ 0.45
    scores = load_scores(scores_path(project.tag_scores_dir, "reg"), "reg").pictures
    kept = scores[reg.relative_to(project.root).as_posix()].scores.general
    assert min(kept.values()) >= 0.05 and "traditional_media" not in kept  # p ≈ 0.047, below the floor
    assert json.loads((project.reports_dir / "tag.json").read_text(encoding="utf-8"))["stage"] == "tag"


def test_the_trigger_stays_off_reg_captions_when_the_model_predicts_it(project, tmp_path):
    tags = [TinyTag("1girl", bias=2.0), TinyTag("mzh_style", bias=4.0), TinyTag("Mzh Style", bias=3.0)]
    project = _configure(project, tagger=str(build_tiny_tagger(tmp_path / "t", tags)))
    target = add_prepared_picture(project, "target", "a.png", GREY)
    reg = add_prepared_picture(project, "reg", "b.png", GREY)
    tag_project(project)
    assert _caption(target) == ["mzh_style", "1girl"]
    assert _caption(reg) == ["1girl"]


def test_bars_from_the_prep_manifest_become_tags(project):
    letter = add_prepared_picture(project, "target", "l.png", GREY, bars="letterboxed")
    pillar = add_prepared_picture(project, "reg", "p.png", GREY, bars="pillarboxed")
    plain = add_prepared_picture(project, "target", "n.png", GREY)
    tag_project(project)
    assert "letterboxed" in _caption(letter) and "pillarboxed" not in _caption(letter)
    assert "pillarboxed" in _caption(pillar)
    assert not {"letterboxed", "pillarboxed"} & set(_caption(plain))


def test_kaomoji_escaping_and_exclude_lists_in_written_captions(project, tmp_path):
    tags = [TinyTag("^_^", bias=3.0), TinyTag("star_(symbol)", bias=3.0), TinyTag("long_hair", bias=3.0)]
    project = _configure(
        project,
        tagger=str(build_tiny_tagger(tmp_path / "t", tags)),
        escape_parentheses=True,
        reg__exclude=["star (symbol)"],
        reg__add=["mosaic_censoring"],
    )
    target = add_prepared_picture(project, "target", "a.png", GREY)
    reg = add_prepared_picture(project, "reg", "b.png", GREY)
    tag_project(project)
    assert set(_caption(target)) == {"mzh_style", "^_^", r"star \(symbol\)", "long hair"}
    assert set(_caption(reg)) == {"^_^", "long hair", "mosaic censoring"}


def test_existing_captions_are_skipped_overwritten_or_merged(project):
    picture = add_prepared_picture(project, "target", "a.png", WHITE)
    empty = add_prepared_picture(project, "target", "e.png", WHITE)
    picture.with_suffix(".txt").write_text("my tag, flat_color\n", encoding="utf-8")
    empty.with_suffix(".txt").write_text("\n", encoding="utf-8")  # an empty caption counts as none

    skipped = tag_project(project)
    assert _caption(picture) == ["my tag", "flat_color"]
    assert skipped.sets["target"].skipped == {"has a caption": ["2_mzh_style/a.png"]}
    assert _caption(empty)[0] == "mzh_style"

    merged = tag_project(project, TagOptions(mode="merge"))
    fresh = _expected_tags(WHITE, 0.5)
    tags = _caption(picture)
    assert tags[:3] == ["mzh_style", "my tag", "flat_color"]  # existing tags kept, in their order
    assert {tag_key(t) for t in tags[1:]} == {tag_key(t) for t in fresh | {"my tag"}}  # no repeats
    assert merged.sets["target"].tagged == 1 and merged.sets["target"].unchanged == 1

    tag_project(project, TagOptions(mode="overwrite"))
    assert set(_caption(picture)) == fresh | {"mzh_style"} and "my tag" not in _caption(picture)


def test_rethreshold_rewrites_captions_without_the_model(project, tiny_tagger, tmp_path, monkeypatch):
    tagger = shutil.copytree(tiny_tagger, tmp_path / "tagger")
    project = _configure(project, tagger=str(tagger))
    pictures = [add_prepared_picture(project, "target", f"{i}.png", c) for i, c in enumerate((WHITE, BLUE))]
    tag_project(project)
    assert all("looking at viewer" not in _caption(p) for p in pictures)
    edited = pictures[1].with_suffix(".txt")
    edited.write_text("mzh_style, hand edited\n", encoding="utf-8")

    shutil.rmtree(tagger)  # no model on disk, and any attempt to find or open one fails the test
    monkeypatch.setattr("gafu.tagging.tag.locate_tagger", _must_not_run)
    monkeypatch.setattr("gafu.tagging.model.open_tagger", _must_not_run)
    project = _configure(project, target__threshold=0.4)
    result = rethreshold_project(project)
    assert set(_caption(pictures[0])) == _expected_tags(WHITE, 0.4) | {"mzh_style"}
    assert "looking at viewer" in _caption(pictures[0])
    assert _caption(pictures[1]) == ["mzh_style", "hand edited"]  # edited since: left alone
    assert list(result.sets["target"].skipped.values()) == [["2_mzh_style/1.png"]]

    rethreshold_project(project, mode="merge")
    assert _caption(pictures[1])[:2] == ["mzh_style", "hand edited"]
    assert "looking at viewer" in _caption(pictures[1])
    rethreshold_project(project, mode="overwrite")
    assert set(_caption(pictures[1])) == _expected_tags(BLUE, 0.4) | {"mzh_style"}
    again = rethreshold_project(project)
    assert again.sets["target"].unchanged == 2 and not again.sets["target"].skipped


def _must_not_run(*args, **kwargs):
    raise AssertionError("the tagger model was used")


def test_kept_scores_are_reused_instead_of_running_the_model_again(project, monkeypatch):
    picture = add_prepared_picture(project, "target", "a.png", BLUE)
    tag_project(project)
    first = picture.with_suffix(".txt").read_bytes()
    picture.with_suffix(".txt").unlink()
    monkeypatch.setattr("gafu.tagging.model.open_tagger", _must_not_run)
    result = tag_project(project)
    assert result.sets["target"].reused_scores == 1 and result.provider is None
    assert picture.with_suffix(".txt").read_bytes() == first


def test_a_corrupt_picture_is_reported_and_the_run_continues(project, capsys):
    good = add_prepared_picture(project, "target", "good.png", WHITE)
    (project.concept_dir("target") / "bad.png").write_bytes(b"not a picture")
    truncated = project.concept_dir("reg") / "cut.png"
    add_prepared_picture(project, "reg", "whole.png", WHITE)
    truncated.write_bytes((project.concept_dir("reg") / "whole.png").read_bytes()[:60])

    code = main(["tag", str(project.root)])
    assert code == 1
    assert _caption(good)[0] == "mzh_style" and _caption(project.concept_dir("reg") / "whole.png")
    assert not (project.concept_dir("target") / "bad.txt").exists()
    assert not truncated.with_suffix(".txt").exists()
    err = capsys.readouterr().err
    assert "bad.png" in err and "cut.png" in err
    report = json.loads((project.reports_dir / "tag.json").read_text(encoding="utf-8"))
    assert report["failed"] == 2 and "2_mzh_style/bad.png" in report["sets"]["target"]["failed_pictures"]


def test_json_summary_counts_and_tags_per_caption(project, capsys):
    for i, colour in enumerate((WHITE, BLUE, GREY)):
        add_prepared_picture(project, "target", f"t{i}.png", colour)
    add_prepared_picture(project, "reg", "r.png", BLUE)
    assert main(["tag", str(project.root), "--json", "--batch-size", "2"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["tagged"], summary["skipped"], summary["failed"]) == (4, 0, 0)
    assert summary["batch_size"] == 2 and summary["model_pictures"] == 4
    counts = [len(_caption(p.path)) for p in Project.open(project.root).pictures("target")]
    stats = summary["sets"]["target"]["tags_per_caption"]
    assert (stats["min"], stats["max"], stats["captions"]) == (min(counts), max(counts), 3)
    assert stats["mean"] == pytest.approx(sum(counts) / 3, abs=0.01)

    assert main(["tag", str(project.root), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["tagged"], again["skipped"], again["tagger"]) == (0, 4, None)  # model not needed


def test_a_hub_id_in_gafu_toml_is_read_from_the_cache(project, tiny_tagger):
    fake_hub_cache("gafu-test/stage-tagger", tiny_tagger)
    project = _configure(project, tagger="gafu-test/stage-tagger")
    picture = add_prepared_picture(project, "target", "a.png", WHITE)
    result = tag_project(project)
    assert result.tagger == "gafu-test/stage-tagger" and _caption(picture)[0] == "mzh_style"


def test_a_fixed_batch_export_runs_at_its_own_batch_size(project, tmp_path):
    project = _configure(project, tagger=str(build_tiny_tagger(tmp_path / "t", batch=2)))
    pictures = [add_prepared_picture(project, "target", f"{i}.png", WHITE) for i in range(3)]
    result = tag_project(project)
    assert result.batch_size == 2 and all(_caption(p) for p in pictures)


def test_disk_full_while_writing_captions_stops_cleanly(project, write_failure):
    picture = add_prepared_picture(project, "target", "a.png", WHITE)
    write_failure.under(project.concept_dir("target"), errno.ENOSPC)
    with pytest.raises(GafuError, match="disk full"):
        tag_project(project)
    assert sorted(p.name for p in project.concept_dir("target").iterdir()) == [picture.name]


def test_no_prepared_pictures_says_to_run_prep(project, capsys):
    assert main(["tag", str(project.root)]) == 0
    assert "gafu prep" in capsys.readouterr().out


def test_thresholds_out_of_range_are_config_errors(project):
    add_prepared_picture(project, "target", "a.png", WHITE)
    with pytest.raises(GafuError, match=r"\[tag\.target\] threshold = 1\.5 must be above 0"):
        tag_project(_configure(project, target__threshold=1.5))
    assert not (project.concept_dir("target") / "a.txt").exists()
