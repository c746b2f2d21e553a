"""`gafu reg pick`: a regularization set from a pool that covers the target's tags, never a target picture."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from gafu.captions.text import tag_key, write_caption
from gafu.check import run_check
from gafu.cli import main
from gafu.config import load_config, save_config
from gafu.errors import GafuError
from gafu.prep.prepare import prepare
from gafu.project import Project
from gafu.reg import pool as pool_module
from gafu.reg.pick import BAND, PickOptions, pick_regularization
from gafu.reg.pool import pool_file
from gafu.reg.write import write_choice
from gafu.tagging.preprocess import prepare_picture
from gafu.tagging.tag import TagEvents, tag_project
from gafu.tagging.tiny import DEFAULT_TINY_TAGS, tiny_probabilities
from tests.conftest import snapshot_files
from tests.drawings import STYLES, draw

ALWAYS = {"1girl", "solo", "looking at viewer"}  # the tiny tagger puts these on every reg caption


def reg_tags(image: Image.Image) -> set[str]:
    """The caption keys the tiny tagger gives a picture at the reg threshold (T2: 0.35), worked out here."""
    probabilities = tiny_probabilities(prepare_picture(image.convert("RGB"), 448, 448))
    return {
        tag_key(tag.name)
        for tag, p in zip(DEFAULT_TINY_TAGS, probabilities, strict=True)
        if tag.category == 0 and p >= 0.35
    }


@pytest.fixture
def pool_dir(tmp_path):
    """Twelve pictures in four styles (subfolders too), with the tags each one's caption would get."""
    folder = tmp_path / "pool"
    tags = {}
    for i in range(12):
        style = STYLES[i % 4]
        name = f"{style.name.split(',')[0].replace(' ', '_')}/p{i:02d}.png"
        picture = draw(style.but(palette_seed=20 + i), seed=500 + i, size=(320, 256))
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        picture.save(folder / name)
        tags[name] = reg_tags(picture)
    return folder, tags


@pytest.fixture
def target_project(make_project, tiny_tagger):
    """Prepared target pictures (originals in the target folder), captioned by hand; no reg set."""

    def make(target_tags: list[list[str]]) -> Project:
        project = make_project(n_target=len(target_tags), n_reg=0, family="sdxl")
        config = load_config(project.config_path)
        config.tag.tagger = str(tiny_tagger)
        save_config(config, project.config_path)
        project = Project.open(project.root)
        prepare(project, workers=1)
        for picture, tags in zip(project.pictures("target"), target_tags, strict=True):
            write_caption(picture.caption_path, ["mzh_style", *tags])
        return project

    return make


def test_a_subset_covering_every_target_tag_gives_full_coverage(target_project, pool_dir):
    folder, tags = pool_dir
    names = sorted(tags)
    known = [names[1], names[6], names[11]]  # their tags together are the target's
    wanted = sorted(set().union(*(tags[n] for n in known)) - ALWAYS)
    assert len(wanted) >= 3  # the test means something only if there are tags to cover
    target = [[*wanted[i::2], "1girl"] for i in range(2)] + [wanted[:1]] * 4
    project = target_project(target)
    result = pick_regularization(project, folder, PickOptions(count=6))
    assert result.coverage_possible == 1.0 and result.coverage_after == 1.0
    assert result.coverage_before == 0.0  # no regularization set yet
    assert len(result.picks) == 6 and len(set(result.chosen)) == 6
    covered: set[str] = set()
    for pick in result.picks:  # each pick's caption is the one the tagger gives it, and adds what it says
        assert {tag_key(t) for t in pick.tags} == tags[pick.picture]
        added = {tag_key(a.rsplit(" ×", 1)[0]) for a in pick.adds}
        assert added == (tags[pick.picture] & {*wanted, "1girl"}) - covered
        covered |= added
    coverages = [pick.coverage for pick in result.picks]
    assert coverages == sorted(coverages) and coverages[-1] == 1.0
    uses = sum(len(t) for t in target)
    first = result.picks[0]  # the first pick covers nearly the most target tag uses (then style decides)
    best = max(sum(tag_key(tag) in tags[n] for t in target for tag in t) for n in names)
    assert BAND * best <= round(first.coverage * uses) <= best


def test_a_target_picture_hidden_in_the_pool_is_never_picked(target_project, pool_dir):
    folder, _ = pool_dir
    project = target_project([["1girl", "flat color"]] * 6)
    original = sorted(project.source_dir("target").iterdir())[0]
    shutil.copy(original, folder / "copy_of_target.png")  # the very file
    with Image.open(project.pictures("target")[1].path) as prepared:  # the prepared picture, resized, as JPEG
        prepared.convert("RGB").resize((200, 200)).save(folder / "resized_target.jpg", quality=85)
    result = pick_regularization(project, folder, PickOptions(count=50))  # more than the pool: all usable
    assert "copy_of_target.png" not in result.chosen and "resized_target.jpg" not in result.chosen
    assert result.left_out["a copy of a target picture (D2)"] == ["copy_of_target.png"]
    assert result.left_out["a near-duplicate of a target picture (D2)"] == ["resized_target.jpg"]
    assert len(result.picks) == 12 == result.candidates


def test_the_pool_is_tagged_once_and_a_rerun_reuses_the_scores(target_project, pool_dir):
    folder, _ = pool_dir
    project = target_project([["1girl"]] * 6)
    first = pick_regularization(project, folder, PickOptions(count=4))
    assert first.tagged_now == 12 and first.reused == 0 and pool_file(project, folder).is_file()
    again = pick_regularization(project, folder, PickOptions(count=4))
    assert again.tagged_now == 0 and again.reused == 12 and again.chosen == first.chosen
    (folder / "flat/p00.png").write_bytes((folder / "flat/p04.png").read_bytes())  # a changed file
    assert pick_regularization(project, folder, PickOptions(count=4)).tagged_now == 1


def test_an_interrupted_tagging_run_continues_where_it_stopped(target_project, pool_dir, monkeypatch):
    folder, _ = pool_dir
    project = target_project([["1girl"]] * 6)
    monkeypatch.setattr(pool_module, "SAVE_EVERY", 4)
    seen = []

    def on_progress(count: int) -> None:
        seen.append(count)
        if len(seen) == 9:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pick_regularization(project, folder, PickOptions(count=4), TagEvents(on_progress=on_progress))
    kept = json.loads(pool_file(project, folder).read_text(encoding="utf-8"))["pictures"]
    assert len(kept) >= 8  # saved every 4 pictures, and once more on the way out
    result = pick_regularization(project, folder, PickOptions(count=4))
    assert result.reused == len(kept) and result.tagged_now == 12 - len(kept)


def test_styles_are_varied_and_unlike_the_target(target_project, tmp_path):
    folder = tmp_path / "pool"
    target_style = STYLES[0]
    project = target_project([["1girl"]] * 6)
    for i, picture in enumerate(project.pictures("target")):  # a target set in one style
        draw(target_style, seed=800 + i, size=(320, 256)).save(picture.path)
    folder.mkdir()
    for i in range(4):  # candidates in the target's own style …
        draw(target_style, seed=900 + i, size=(320, 256)).save(folder / f"same_{i}.png")
    for i, style in enumerate(STYLES[2:6]):  # … and in four other styles
        draw(style, seed=950 + i, size=(320, 256)).save(folder / f"other_{i}.png")
    result = pick_regularization(project, folder, PickOptions(count=4))
    assert sorted(result.chosen) == [f"other_{i}.png" for i in range(4)]  # D2: many other styles


def test_write_choice_sets_the_pool_and_an_include_list_and_prep_takes_only_those(target_project, pool_dir):
    folder, _ = pool_dir
    project = target_project([["1girl"]] * 6)
    before = snapshot_files(folder)
    result = pick_regularization(project, folder, PickOptions(count=5))
    written = write_choice(project, result)
    config = load_config(project.config_path)
    assert config.sources.reg == folder.resolve().as_posix() and written.include == 5
    assert sorted(config.sources.include.reg) == sorted(result.chosen)
    project = Project.open(project.root)
    summary = prepare(project, workers=1)
    assert summary.sets["reg"]["in_dataset"] == 5 and summary.sets["reg"]["left_out"] == 7
    assert {p.path.stem for p in project.pictures("reg")} == {n.rsplit("/", 1)[1][:-4] for n in result.chosen}
    tag_project(project)
    assert run_check(project).coverage.share is not None
    assert snapshot_files(folder) == before  # the pool: read, never changed
    other = folder.parent / "other-pool"
    shutil.copytree(folder / "flat", other)
    again = write_choice(project, pick_regularization(project, other, PickOptions(count=2)))
    assert any("5 regularization pictures prepared from the old folder" in line for line in again.lines)


def test_copy_to_copies_the_chosen_pictures_and_never_overwrites(target_project, pool_dir, tmp_path):
    folder, _ = pool_dir
    project = target_project([["1girl"]] * 6)
    before = snapshot_files(folder)
    result = pick_regularization(project, folder, PickOptions(count=3))
    copy = tmp_path / "my-reg"
    written = write_choice(project, result, copy_to=copy)
    assert sorted(written.copied) == sorted(result.chosen)
    assert all((copy / n).read_bytes() == (folder / n).read_bytes() for n in result.chosen)
    config = load_config(project.config_path)
    assert config.sources.reg == copy.resolve().as_posix() and config.sources.include.reg == []
    assert write_choice(project, result, copy_to=copy).copied == []  # the same files again: nothing to do
    (copy / result.chosen[0]).write_bytes(b"mine")
    with pytest.raises(GafuError, match="already exists with other content"):
        write_choice(project, result, copy_to=copy)
    assert (copy / result.chosen[0]).read_bytes() == b"mine"
    with pytest.raises(GafuError, match="inside the pool"):
        write_choice(project, result, copy_to=folder / "sub")
    assert snapshot_files(folder) == before


def test_no_target_captions_is_a_clear_error(make_project, pool_dir):
    project = make_project(n_target=3, n_reg=0)
    with pytest.raises(GafuError, match="no captions yet"):
        pick_regularization(project, pool_dir[0])


def test_the_target_folder_is_not_a_pool(target_project):
    project = target_project([["1girl"]] * 6)
    with pytest.raises(GafuError, match="is the target folder"):
        pick_regularization(project, project.source_dir("target"))


def test_cli_prints_coverage_and_what_each_pick_adds_and_writes_gafu_toml(target_project, pool_dir, capsys):
    folder, tags = pool_dir
    wanted = sorted(set().union(*tags.values()) - ALWAYS)[:3]
    project = target_project([wanted] * 6)
    assert main(["reg", "pick", str(project.root), str(folder), "--count", "4", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "D3 coverage now: 0%" in out  # no regularization set yet
    assert "D3 coverage with these 4 pictures: 100%" in out and "dry run: gafu.toml unchanged" in out
    assert "  1. " in out and " ×6" in out  # the first pick adds a target tag every caption has
    assert load_config(project.config_path).sources.reg == ""
    assert main(["reg", "pick", str(project.root), str(folder), "--count", "4", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["written"]["include"] == 4 and len(data["picks"]) == 4
    assert (project.reports_dir / "reg-pick.json").is_file()
    assert load_config(project.config_path).sources.include.reg == [p["picture"] for p in data["picks"]]


def test_pool_pictures_that_cannot_be_read_are_reported(target_project, pool_dir):
    folder, _ = pool_dir
    (folder / "broken.png").write_bytes(b"\x89PNG broken")
    result = pick_regularization(target_project([["1girl"]] * 6), folder, PickOptions(count=3))
    assert "broken.png" in result.failed and "broken.png" not in result.chosen
    assert np.isfinite(result.coverage_after)
