"""D1 in `gafu check`: target pictures of another period (planted drifts) are found, named and explained."""

import json
import math

import numpy as np
import pytest

from gafu.check import run_check
from gafu.cli import main
from gafu.config import load_config, save_config
from gafu.curation.consistency import PIXEL_CUES, find_style_groups
from gafu.curation.cues import picture_cues
from gafu.curation.table import cache_path
from gafu.prep.manifest import ManifestEntry, load_manifest, save_manifest
from gafu.project import Project
from tests.drawings import STYLES, drawing_set

FLAT = STYLES[0]  # flat fills, thick outlines
COUNT = 24


def write_target(project: Project, pictures) -> list[str]:
    """Pictures where prep puts them, with manifest entries naming originals in the target folder."""
    folder = project.concept_dir("target")
    folder.mkdir(parents=True, exist_ok=True)
    manifest = load_manifest(project.prep_manifest_path)
    names = []
    for i, picture in enumerate(pictures):
        path = folder / f"t{i:03d}.png"
        picture.save(path)
        name = path.relative_to(project.root).as_posix()
        manifest.entries[name] = ManifestEntry(
            "target", (project.source_dir("target") / path.name).as_posix(), f"{i:064x}", picture.size,
            "test", picture.size,
        )  # fmt: skip
        names.append(name)
    save_manifest(manifest, project.prep_manifest_path)
    return names


def style_findings(report):
    return [f for f in report.findings if f.code in ("style-groups", "style-apart")]


@pytest.fixture
def target_project(make_project):
    def make(drift=None, drifted=0, seed=4, style=FLAT):
        project = make_project(n_target=1, n_reg=0)
        pictures, chosen = drawing_set(style, COUNT, seed=seed, drift=drift, drifted=drifted)
        names = write_target(project, pictures)
        return project, [names[i] for i in chosen]

    return make


def test_a_third_desaturated_is_found_and_named_as_more_muted(target_project):
    project, drifted = target_project(FLAT.but(saturation=0.2), COUNT // 3)
    report = run_check(project)
    found = style_findings(report)
    assert len(found) == 1, [f.message for f in found]
    finding = found[0]
    assert finding.rule == "D1" and finding.severity == "warning" and finding.code == "style-groups"
    assert sorted(finding.files) == sorted(drifted)
    assert "more muted" in finding.message and "saturation" in finding.message
    main_cue = finding.details["differences"][0]
    assert main_cue["cue"] in ("saturation", "vivid") and main_cue["group"] < main_cue["rest"]
    assert f"{main_cue['group']:.2f} vs {main_cue['rest']:.2f}" in finding.message
    assert "--exclude-outliers" in finding.hint


def test_thin_outlines_instead_of_thick_are_found_as_thinner_lines(target_project):
    project, drifted = target_project(FLAT.but(outline=1), COUNT // 3)
    found = style_findings(run_check(project))
    assert len(found) == 1, [f.message for f in found]
    assert sorted(found[0].files) == sorted(drifted)
    assert "thinner lines" in found[0].message and " px vs " in found[0].message


@pytest.mark.parametrize("style", [STYLES[0], STYLES[2], STYLES[5]], ids=lambda s: s.name)
def test_homogeneous_sets_give_no_finding(target_project, style):
    project, _ = target_project(style=style, seed=8)
    report = run_check(project)
    assert style_findings(report) == [], [f.message for f in style_findings(report)]
    assert report.style["compared"] and "saturation" in report.style["cues"]


def test_one_picture_apart_is_named(target_project):
    project, _ = target_project()
    odd = project.concept_dir("target") / "t005.png"
    picture = drawing_set(FLAT.but(saturation=0.0, outline=0, fill="textured", grain=20), 1, seed=99)[0][0]
    picture.save(odd)
    found = style_findings(run_check(project))
    assert [f.files for f in found] == [["dataset/train/2_mzh_style/t005.png"]]
    assert found[0].code == "style-apart" and "stands apart" in found[0].message


def test_cues_are_cached_and_measured_again_only_when_a_picture_changes(target_project):
    project, _ = target_project()
    first = run_check(project)
    assert first.style["measured"] == COUNT and cache_path(project).is_file()
    assert run_check(project).style["measured"] == 0
    (project.concept_dir("target") / "t003.png").touch()  # touched, not changed: the content hash says so
    assert run_check(project).style["measured"] == 0
    drawing_set(FLAT, 1, seed=77)[0][0].save(project.concept_dir("target") / "t004.png")
    assert run_check(project).style["measured"] == 1


def test_padding_bars_are_left_out_of_the_cues():
    picture = drawing_set(FLAT, 1, seed=3)[0][0]
    from PIL import Image

    padded = Image.new("RGB", (picture.width, picture.width + 200), (255, 255, 255))
    padded.paste(picture, (0, 100))
    from gafu.curation.cues import Box

    inside = picture_cues(padded, Box(0, 100, picture.width, 100 + picture.height))
    assert inside["saturation"] == pytest.approx(picture_cues(picture)["saturation"], abs=1e-6)
    assert picture_cues(padded)["brightness"] > inside["brightness"]  # the white bars would count


def test_too_few_pictures_are_not_compared():
    table = {f"p{i}": {"saturation": 0.5 if i else 0.0} for i in range(5)}
    assert find_style_groups(table, list(PIXEL_CUES)) == []


def test_a_dark_picture_has_no_saturation_to_compare():
    cues = picture_cues(drawing_set(FLAT, 1, seed=1)[0][0].point(lambda v: v // 8))
    assert math.isnan(cues["saturation"])


def test_style_tags_from_the_score_files_are_cues(target_project, tiny_tagger):
    from gafu.tagging.tag import tag_project

    project, drifted = target_project(FLAT.but(saturation=0.2), COUNT // 3)
    config = load_config(project.config_path)
    config.tag.tagger = str(tiny_tagger)
    save_config(config, project.config_path)
    project = Project.open(project.root)
    tag_project(project)
    report = run_check(project)
    assert {"tag:monochrome", "tag:flat_color"} <= set(report.style["cues"])
    found = style_findings(report)
    assert len(found) == 1 and sorted(found[0].files) == sorted(drifted)
    cues = {d["cue"] for d in found[0].details["differences"]}
    assert cues & {"tag:monochrome", "tag:colorful"}, cues  # the tagger agrees: less colourful


def test_the_image_model_is_one_more_cue(target_project, tiny_clip):
    project, drifted = target_project(FLAT.but(saturation=0.2), COUNT // 3)
    config = load_config(project.config_path)
    config.check.style_model = str(tiny_clip)
    save_config(config, project.config_path)
    report = run_check(Project.open(project.root))
    assert report.style["style_model"] == str(tiny_clip)
    assert {"model_axis", "model_distance"} <= set(report.style["cues"])
    found = style_findings(report)
    assert len(found) == 1 and sorted(found[0].files) == sorted(drifted)
    cache = json.loads(cache_path(project).read_text(encoding="utf-8"))
    vectors = [p["vector"] for p in cache["embeddings"]["pictures"].values()]
    assert len(vectors) == COUNT and all(abs(np.linalg.norm(v) - 1) < 1e-3 for v in vectors)


def test_an_image_model_that_cannot_load_is_a_note_and_the_check_goes_on(target_project, tmp_path):
    project, drifted = target_project(FLAT.but(saturation=0.2), COUNT // 3)
    config = load_config(project.config_path)
    config.check.style_model = str(tmp_path / "no-such-model")
    save_config(config, project.config_path)
    report = run_check(Project.open(project.root))
    assert any("cannot load the style model" in note for note in report.notes)
    assert sorted(style_findings(report)[0].files) == sorted(drifted)


def test_exclude_outliers_sets_the_group_aside_and_check_shows_it(target_project, capsys):
    project, drifted = target_project(FLAT.but(saturation=0.2), COUNT // 3)
    assert main(["check", str(project.root), "--exclude-outliers"]) == 1  # D5 errors: no captions yet
    out = capsys.readouterr().out
    assert f"--exclude-outliers: {len(drifted)} target pictures set aside" in out
    config = load_config(project.config_path)
    assert sorted(config.sources.exclude.target) == sorted(n.rsplit("/", 1)[1] for n in drifted)
    assert not any((project.root / name).exists() for name in drifted)
    assert all((project.aside_dir("target") / name.rsplit("/", 1)[1]).is_file() for name in drifted)
    report = run_check(Project.open(project.root))
    aside = [f for f in report.findings if f.code == "set-aside"]
    assert len(aside) == 1 and aside[0].severity == "info" and len(aside[0].files) == len(drifted)
    assert style_findings(report) == []  # what is left is one style
