"""Kohya concept folders (D5: `<repeats>_<name>`) among the originals keep their repeats and names."""

import dataclasses

import pytest

from gafu.config import ConceptSource, save_config
from gafu.errors import GafuError
from gafu.init import init_project
from gafu.kohya.export import kohya_dataset_config
from gafu.plan import resolve_plan
from gafu.prep.prepare import prepare
from gafu.project import Project
from tests.conftest import write_picture


def _kohya_tree(root):
    """`img/10_mzh/`, `img/5_mzh sketch/sub/` and `reg/1_other/`, as kohya_ss lays them out."""
    img, reg = root / "img", root / "reg"
    for i in range(3):
        write_picture(img / "10_mzh" / f"a{i}.png", seed=10 + i)
    write_picture(img / "5_mzh sketch" / "sub" / "b0.png", seed=20)
    write_picture(img / "5_mzh sketch" / "a0.png", seed=21)  # same stem as in 10_mzh: another folder
    for i in range(4):
        write_picture(reg / "1_other" / f"r{i}.png", seed=30 + i)
    return img, reg


def _folders(project, which):
    return {
        folder.name: sorted(p.name for p in folder.glob("*.png"))
        for folder in sorted(project.set_dir(which).iterdir())
    }


def test_concept_folders_keep_their_repeats_and_names(tmp_path):
    img, reg = _kohya_tree(tmp_path)
    init_project(tmp_path / "p", target=img, reg=reg, trigger="mzh_style", family="sdxl")
    project = Project.open(tmp_path / "p")
    summary = prepare(project, workers=1)
    assert summary.exit_code == 0
    assert _folders(project, "target") == {
        "10_mzh": ["a0.png", "a1.png", "a2.png"],
        "5_mzh sketch": ["a0.png", "b0.png"],
    }
    assert _folders(project, "reg") == {"1_other": ["r0.png", "r1.png", "r2.png", "r3.png"]}
    assert {p.repeats for p in project.pictures("target")} == {10, 5}
    concepts = {row["folder"]: (row["repeats"], row["originals"], row["from"]) for row in summary.concepts}
    assert concepts == {
        "dataset/train/10_mzh": (10, 3, "sources.target/10_mzh"),
        "dataset/train/5_mzh sketch": (5, 2, "sources.target/5_mzh sketch"),
        "dataset/reg/1_other": (1, 4, "sources.reg/1_other"),
    }
    assert not any("outside its" in w for w in summary.warnings)


def test_the_plan_and_the_kohya_export_see_each_concept_folder(tmp_path):
    img, reg = _kohya_tree(tmp_path)
    init_project(tmp_path / "p", target=img, reg=reg, trigger="mzh_style", family="sdxl", repeats=10)
    project = Project.open(tmp_path / "p")
    prepare(project, workers=1)
    plan = resolve_plan(project, 24.0, describe=lambda s: None)
    assert plan.dataset.target.concept_folders == ["dataset/train/10_mzh", "dataset/train/5_mzh sketch"]
    assert not any("says repeats" in w for w in plan.warnings)  # their own repeats are not stale
    subsets = kohya_dataset_config(plan, project.root)["datasets"][0]["subsets"]
    assert [(s["image_dir"].rsplit("/", 1)[1], s["num_repeats"], s["is_reg"]) for s in subsets] == [
        ("10_mzh", 10, False),
        ("5_mzh sketch", 5, False),
        ("1_other", 1, True),
    ]


def test_loose_pictures_go_to_the_sets_own_folder_with_a_warning(tmp_path):
    img, reg = _kohya_tree(tmp_path)
    write_picture(img / "loose.png", seed=40)
    write_picture(img / "notes" / "ref.png", seed=41)
    init_project(tmp_path / "p", target=img, reg=reg, trigger="mzh_style", family="sdxl")
    project = Project.open(tmp_path / "p")
    summary = prepare(project, workers=1)
    assert _folders(project, "target")["2_mzh_style"] == ["loose.png", "ref.png"]
    [warning] = [w for w in summary.warnings if "outside its" in w]
    assert "sources.target holds 2 picture(s)" in warning and "2_mzh_style" in warning


def test_a_subfolder_named_like_the_sets_own_folder_is_that_folder(tmp_path):
    img = tmp_path / "img"
    write_picture(img / "2_mzh_style" / "a.png", seed=1)
    write_picture(img / "a.png", seed=2)
    init_project(tmp_path / "p", target=img, trigger="mzh_style", family="sdxl")
    project = Project.open(tmp_path / "p")
    summary = prepare(project, workers=1)
    assert _folders(project, "target") == {"2_mzh_style": ["2_mzh_style_a.png", "a.png"]}
    assert summary.exit_code == 0


def _with_concepts(project, concepts, **sources):
    config = project.config
    config = dataclasses.replace(
        config, sources=dataclasses.replace(config.sources, concepts=concepts, **sources)
    )
    save_config(config, project.config_path)
    return Project.open(project.root)


def test_sources_concepts_become_their_own_folders_and_follow_new_repeats(tmp_path):
    a, b, reg = tmp_path / "mizuha", tmp_path / "extra" / "3_sketches", tmp_path / "others"
    write_picture(a / "x.png", seed=1)
    write_picture(b / "y.png", seed=2)
    write_picture(reg / "r.png", seed=3)
    init_project(tmp_path / "p", target=a, trigger="mzh_style", family="sdxl")
    project = _with_concepts(
        Project.open(tmp_path / "p"),
        [
            ConceptSource(folder=b.as_posix(), repeats=3),
            ConceptSource(folder=reg.as_posix(), set="reg", repeats=1, name="other styles"),
        ],
    )
    summary = prepare(project, workers=1)
    assert summary.exit_code == 0
    assert _folders(project, "target") == {"2_mzh_style": ["x.png"], "3_sketches": ["y.png"]}
    assert _folders(project, "reg") == {"1_other_styles": ["r.png"]}
    (project.set_dir("target") / "3_sketches" / "y.txt").write_text("mzh_style, 1girl", encoding="utf-8")

    concepts = [
        dataclasses.replace(project.config.sources.concepts[0], repeats=6),
        project.config.sources.concepts[1],
    ]
    project = _with_concepts(project, concepts)
    summary = prepare(project, workers=1)
    assert summary.moved == [
        {"set": "target", "from": "dataset/train/3_sketches", "to": "dataset/train/6_sketches"}
    ]
    assert (project.set_dir("target") / "6_sketches" / "y.txt").read_text(
        encoding="utf-8"
    ) == "mzh_style, 1girl"
    assert summary.prepared == []  # moved, not redone


def _one_picture_project(tmp_path, *concepts, **sources):
    img = tmp_path / "img"
    write_picture(img / "3_sketches" / "a.png", seed=1)
    init_project(tmp_path / "p", target=img, trigger="mzh_style", family="sdxl")
    return img, _with_concepts(Project.open(tmp_path / "p"), list(concepts), **sources)


@pytest.mark.parametrize(
    ("folder", "needle"),
    [
        ("elsewhere/sketches", r"sources.target/3_sketches and sources.concepts\[0\] would both become"),
        ("gone", r"does not exist; fix sources.concepts\[0\].folder"),
    ],
)
def test_bad_concept_sources_are_errors_naming_the_key(tmp_path, folder, needle):
    if folder != "gone":
        write_picture(tmp_path / folder / "b.png", seed=2)
    concept = ConceptSource(folder=(tmp_path / folder).as_posix(), repeats=3)
    _, project = _one_picture_project(tmp_path, concept)
    with pytest.raises(GafuError, match=needle):
        prepare(project, workers=1)


def test_concepts_alone_without_a_target_folder(tmp_path):
    img = tmp_path / "mzh"
    write_picture(img / "a.png", seed=3)
    _, project = _one_picture_project(tmp_path, ConceptSource(folder=img.as_posix(), repeats=4), target="")
    assert project.has_sources("target") and project.source_folders("target") == [img]
    prepare(project, workers=1)
    assert _folders(project, "target") == {"4_mzh": ["a.png"]}


def test_new_repeats_without_a_new_prep_are_still_flagged_by_the_plan(make_project):
    project = make_project(n_target=2, n_reg=0, family="sdxl")
    prepare(project, workers=1)
    config = project.config
    save_config(
        dataclasses.replace(config, project=dataclasses.replace(config.project, repeats=4)),
        project.config_path,
    )
    plan = resolve_plan(Project.open(project.root), 24.0, describe=lambda s: None)
    assert any(
        "says repeats = 4 but the dataset's folder dataset/train/2_mzh_style" in w for w in plan.warnings
    )
