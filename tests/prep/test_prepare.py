import errno
import os
import shutil
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from gafu import recipe
from gafu.config import load_config, save_config
from gafu.errors import GafuError
from gafu.init import init_project
from gafu.prep.manifest import load_manifest
from gafu.prep.prepare import prepare
from gafu.prep.settings import resolve_settings
from gafu.project import Project
from tests.conftest import snapshot_files, write_picture


def _outputs(project: Project, which: str = "target") -> dict[str, Path]:
    return {path.name: path for path in sorted(project.concept_dir(which).glob("*.png"))}


def _awkward_project(tmp_path: Path, originals: Path, **kwargs) -> Project:
    reg = tmp_path / "reg"
    for i in range(3):
        write_picture(reg / f"r{i}.png", (640, 480), seed=900 + i)
    init_project(
        tmp_path / "project", target=originals, reg=reg, trigger="mzh_style", family="sdxl", **kwargs
    )
    return Project.open(tmp_path / "project")


def _expected_names(sizes: dict[str, tuple[int, int]]) -> set[str]:
    renamed = {"a.jpg": "a_jpg", "a.png": "a_png", "sub/a.png": "sub_a"}
    return {renamed.get(name, Path(name).stem) + ".png" for name in sizes}


# --- the "done when" ------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["pad", "bucket"])
def test_awkward_originals_become_the_layout_and_a_rerun_rewrites_nothing(tmp_path, awkward_originals, mode):
    originals, sizes = awkward_originals
    before = snapshot_files(originals)
    project = _awkward_project(tmp_path, originals)
    summary = prepare(project, resolve_settings(project, mode=mode), workers=1)

    assert summary.failed == [] and summary.exit_code == 0
    outputs = _outputs(project)
    assert set(outputs) == _expected_names(sizes)
    assert set(_outputs(project, "reg")) == {"r0.png", "r1.png", "r2.png"}
    assert project.concept_dir("target").relative_to(project.root).as_posix() == "dataset/train/2_mzh_style"
    for path in outputs.values():
        with Image.open(path) as image:
            assert image.format == "PNG" and image.mode == "RGB"
            width, height = image.size
        if mode == "pad":
            assert (width, height) == (1024, 1024), path.name
        else:
            assert width % 64 == 0 and height % 64 == 0 and max(width, height) <= 1536, path.name
            assert width * height <= 1024 * 1024, path.name
    assert snapshot_files(originals) == before  # originals byte-for-byte unchanged (and untouched)

    manifest = load_manifest(project.prep_manifest_path)
    key = "dataset/train/2_mzh_style/{}.png".format
    assert manifest.entries[key("rotated")].source_size == (200, 400)  # EXIF orientation applied
    assert any("first frame" in note for note in manifest.entries[key("animated")].notes)
    assert any("animated.gif: animated (3 frames)" in warning for warning in summary.warnings)
    assert {row["output"] for row in summary.upscaled} >= {key("tiny")}
    assert {row["source"] for row in summary.renamed} == {
        (originals / n).as_posix() for n in ("a.jpg", "a.png")
    } | {(originals / "sub" / "a.png").as_posix()}
    if mode == "pad":
        assert manifest.bars_for(key("landscape")) == "letterboxed"
        assert manifest.bars_for(key("portrait")) == "pillarboxed"
        assert manifest.bars_for(key("rotated")) == "pillarboxed"
        assert manifest.bars_for(key("near_square")) is None
        with Image.open(outputs["landscape.png"]) as image:
            assert image.getpixel((512, 2)) == (255, 255, 255)  # white bar on top
        with Image.open(outputs["alpha.png"]) as image:
            assert image.getpixel((512, 0)) == (255, 255, 255)  # fully transparent top row → background
    else:
        assert all(entry.bars is None for entry in manifest.entries.values())
        assert key("panorama") in {row["output"] for row in summary.cropped}

    after_first = snapshot_files(project.root / "dataset"), snapshot_files(project.state_dir)
    again = prepare(project, resolve_settings(project, mode=mode), workers=1)
    assert again.prepared == [] and again.failed == []
    assert {row["reason"] for row in again.skipped} == {"unchanged (same original and settings)"}
    assert (snapshot_files(project.root / "dataset"), snapshot_files(project.state_dir)) == after_first
    assert snapshot_files(originals) == before


def test_a_pool_of_spawned_workers_makes_the_same_pictures(tmp_path, make_project):
    project = make_project(n_target=6, n_reg=2, family="sdxl")
    in_process = prepare(project, workers=1)
    pictures = {name: path.read_bytes() for name, path in _outputs(project).items()}
    shutil.rmtree(project.root / "dataset")
    project.prep_manifest_path.unlink()
    pooled = prepare(project, workers=2)
    assert {name: path.read_bytes() for name, path in _outputs(project).items()} == pictures
    assert len(pooled.prepared) == len(in_process.prepared) == 8


def test_progress_reaches_the_total(make_project):
    project = make_project(n_target=3, n_reg=2, family="sdxl")
    calls = []
    prepare(project, workers=1, on_progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (5, 5) and [done for done, _ in calls] == sorted(done for done, _ in calls)
    calls.clear()
    prepare(project, workers=1, on_progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (5, 5)


def test_report_is_written(make_project):
    project = make_project(n_target=2, n_reg=0, family="sdxl")
    summary = prepare(project, workers=1)
    report = (project.reports_dir / "prep.json").read_text(encoding="utf-8")
    assert summary.report_path.endswith("reports/prep.json")
    assert '"stage": "prep"' in report and '"prepared"' in report


# --- incremental ------------------------------------------------------------------------------


def test_changed_original_is_redone_and_its_caption_kept(make_project):
    project = make_project(n_target=3, n_reg=0, family="sdxl")
    prepare(project, workers=1)
    output = _outputs(project)["t001.png"]
    caption = output.with_suffix(".txt")
    caption.write_text("mzh_style, 1girl", encoding="utf-8")
    old_picture = output.read_bytes()
    untouched = _outputs(project)["t000.png"].stat().st_mtime_ns

    write_picture(project.source_dir("target") / "t001.png", seed=77)
    summary = prepare(project, workers=1)
    assert [row["output"] for row in summary.prepared] == ["dataset/train/2_mzh_style/t001.png"]
    assert any("caption kept" in note for note in summary.prepared[0]["notes"])
    assert output.read_bytes() != old_picture
    assert caption.read_text(encoding="utf-8") == "mzh_style, 1girl"
    assert _outputs(project)["t000.png"].stat().st_mtime_ns == untouched


def test_touched_but_unchanged_original_is_not_rewritten(make_project):
    project = make_project(n_target=2, n_reg=0, family="sdxl")
    prepare(project, workers=1)
    before = snapshot_files(project.concept_dir("target"))
    source = project.source_dir("target") / "t000.png"
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 5_000_000_000))
    summary = prepare(project, workers=1)
    assert summary.prepared == [] and len(summary.skipped) == 2
    assert snapshot_files(project.concept_dir("target")) == before
    entry = load_manifest(project.prep_manifest_path).entries["dataset/train/2_mzh_style/t000.png"]
    assert entry.source_mtime_ns == source.stat().st_mtime_ns  # next run skips it without hashing


def test_a_changed_setting_redoes_what_it_affects(make_project):
    project = make_project(n_target=2, n_reg=1, family="sdxl")
    Image.new("RGBA", (64, 64), (255, 0, 0, 0)).save(project.source_dir("target") / "clear.png")
    prepare(project, resolve_settings(project, mode="bucket"), workers=1)
    opaque = _outputs(project)["t000.png"].stat().st_mtime_ns

    black = prepare(project, resolve_settings(project, mode="bucket", background="black"), workers=1)
    # in bucket mode the background only shows through transparency
    assert [row["output"] for row in black.prepared] == ["dataset/train/2_mzh_style/clear.png"]
    assert _outputs(project)["t000.png"].stat().st_mtime_ns == opaque
    with Image.open(_outputs(project)["clear.png"]) as image:
        assert image.getpixel((0, 0)) == (0, 0, 0)

    pad = prepare(project, resolve_settings(project, mode="pad", side=1088), workers=1)
    assert len(pad.prepared) == 4
    with Image.open(_outputs(project)["t000.png"]) as image:
        assert image.size == (1088, 1088)


def test_deleted_output_is_made_again(make_project):
    project = make_project(n_target=2, n_reg=0, family="sdxl")
    prepare(project, workers=1)
    _outputs(project)["t000.png"].unlink()
    summary = prepare(project, workers=1)
    assert [row["output"] for row in summary.prepared] == ["dataset/train/2_mzh_style/t000.png"]
    assert _outputs(project)["t000.png"].is_file()


def test_missing_original_is_reported_kept_and_pruned_on_request(make_project):
    project = make_project(n_target=3, n_reg=0, family="sdxl")
    prepare(project, workers=1)
    output = _outputs(project)["t002.png"]
    output.with_suffix(".txt").write_text("mzh_style", encoding="utf-8")
    (project.source_dir("target") / "t002.png").unlink()

    kept = prepare(project, workers=1)
    assert [(row["output"], row["pruned"]) for row in kept.missing] == [
        ("dataset/train/2_mzh_style/t002.png", False)
    ]
    assert output.is_file()

    pruned = prepare(project, workers=1, prune=True)
    assert pruned.missing[0]["pruned"] is True
    assert pruned.missing[0]["caption_kept"] == "dataset/train/2_mzh_style/t002.txt"
    assert not output.exists() and output.with_suffix(".txt").read_text(encoding="utf-8") == "mzh_style"
    assert "dataset/train/2_mzh_style/t002.png" not in load_manifest(project.prep_manifest_path).entries
    assert prepare(project, workers=1).missing == []


def test_new_repeats_rename_the_concept_folder_with_its_captions(make_project):
    project = make_project(n_target=2, n_reg=1, family="sdxl")
    prepare(project, workers=1)
    _outputs(project)["t000.png"].with_suffix(".txt").write_text("mzh_style, smile", encoding="utf-8")
    before = snapshot_files(project.concept_dir("target"))
    config = load_config(project.config_path)
    config.project.repeats = 3
    save_config(config, project.config_path)
    project = Project.open(project.root)

    summary = prepare(project, workers=1)
    assert summary.prepared == []
    assert {row["to"] for row in summary.moved} == {"dataset/train/3_mzh_style", "dataset/reg/3_reg"}
    assert snapshot_files(project.concept_dir("target")) == before  # same files, same mtimes, captions too
    assert not (project.set_dir("target") / "2_mzh_style").exists()
    assert set(load_manifest(project.prep_manifest_path).entries) == {
        "dataset/train/3_mzh_style/t000.png",
        "dataset/train/3_mzh_style/t001.png",
        "dataset/reg/3_reg/r000.png",
    }


def test_a_colliding_newcomer_does_not_rename_an_existing_output(make_project):
    project = make_project(n_target=2, n_reg=0, family="sdxl")
    prepare(project, workers=1)
    write_picture(project.source_dir("target") / "t000.jpg", seed=55, fmt="JPEG")
    summary = prepare(project, workers=1)
    assert [row["output"] for row in summary.prepared] == ["dataset/train/2_mzh_style/t000_jpg.png"]
    assert set(_outputs(project)) == {"t000.png", "t000_jpg.png", "t001.png"}


# --- bad input --------------------------------------------------------------------------------


def test_missing_and_empty_folders_stop_the_run(make_project):
    project = make_project(n_target=2, n_reg=1, family="sdxl")
    reg = project.source_dir("reg")
    shutil.rmtree(reg)
    with pytest.raises(GafuError, match="does not exist") as err:
        prepare(project, workers=1)
    assert str(reg) in str(err.value) and "\n" not in str(err.value)
    reg.mkdir()
    (reg / "notes.txt").write_text("not a picture", encoding="utf-8")
    with pytest.raises(GafuError, match="holds no pictures"):
        prepare(project, workers=1)
    assert not project.root.joinpath("dataset").exists()  # nothing half-done


def test_bad_files_fail_one_by_one_and_the_rest_is_prepared(make_project, monkeypatch):
    project = make_project(n_target=2, n_reg=0, family="sdxl")
    folder = project.source_dir("target")
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.jpg").write_bytes(b"this is not a picture")
    whole = write_picture(folder / "whole.jpg", (200, 200), seed=5, fmt="JPEG").read_bytes()
    (folder / "whole.jpg").unlink()
    (folder / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    damaged = bytearray(write_picture(folder / "damaged.png", (200, 200), seed=7).read_bytes())
    damaged[60:120] = bytes(60)  # the compressed pixel data, past the header
    (folder / "damaged.png").write_bytes(bytes(damaged))
    write_picture(folder / "bomb.png", (300, 300), seed=6)
    write_picture(folder / "locked.png", seed=8)

    import gafu.images

    monkeypatch.setattr(gafu.images, "MAX_PIXELS", 250 * 250)
    real_read = Path.read_bytes

    def read_bytes(path):
        if path.name == "locked.png":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_read(path)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    summary = prepare(project, workers=1)

    reasons = {Path(row["source"]).name: row["reason"] for row in summary.failed}
    assert set(reasons) == {"empty.png", "text.jpg", "cut.jpg", "damaged.png", "bomb.png", "locked.png"}
    assert "empty (0-byte)" in reasons["empty.png"]
    assert "not a picture" in reasons["text.jpg"]
    assert "corrupt or truncated" in reasons["cut.jpg"]
    assert "corrupt or truncated" in reasons["damaged.png"] or "could not be read" in reasons["damaged.png"]
    assert "decompression bomb" in reasons["bomb.png"]
    assert "permission denied" in reasons["locked.png"]
    for name, reason in reasons.items():
        assert name in reason and "\n" not in reason
    assert summary.exit_code == 1
    assert set(_outputs(project)) == {"t000.png", "t001.png"}


def _png_claiming(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims width × height pixels, with almost no data: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def test_a_real_decompression_bomb_is_refused_without_decoding(make_project):
    project = make_project(n_target=1, n_reg=0, family="sdxl")
    _png_claiming(project.source_dir("target") / "bomb.png", 20_000, 20_000)  # 400 MP, ~1 GB decoded
    summary = prepare(project, workers=1)
    [failure] = summary.failed
    assert "bomb.png" in failure["reason"] and "decompression bomb" in failure["reason"]
    assert set(_outputs(project)) == {"t000.png"}


@pytest.mark.parametrize(
    ("code", "needle"), [(errno.ENOSPC, "disk full"), (errno.EROFS, "permission denied")]
)
def test_disk_full_or_read_only_stops_and_keeps_what_was_prepared(
    make_project, write_failure, monkeypatch, code, needle
):
    project = make_project(n_target=5, n_reg=0, family="sdxl")
    write_failure.under(project.dataset_dir, code, after=2)
    with pytest.raises(GafuError, match=needle) as err:
        prepare(project, workers=1)
    assert "\n" not in str(err.value)
    done = set(_outputs(project))
    assert len(done) == 2
    manifest = load_manifest(project.prep_manifest_path)
    assert {Path(key).name for key in manifest.entries} == done  # what was written is recorded
    assert not list(project.dataset_dir.rglob("*.tmp"))  # no half-written file

    monkeypatch.undo()  # the disk has room again
    summary = prepare(project, workers=1)
    assert len(summary.prepared) == 3 and {Path(row["output"]).name for row in summary.skipped} == done


def test_a_project_inside_its_folder_of_originals_does_not_eat_its_outputs(tmp_path):
    for i in range(2):
        write_picture(tmp_path / "art" / f"p{i}.png", seed=i)
    init_project(tmp_path / "art", target=tmp_path / "art", trigger="mzh_style", family="sdxl")
    project = Project.open(tmp_path / "art")
    prepare(project, workers=1)
    summary = prepare(project, workers=1)
    assert summary.sets["target"]["originals"] == 2 and summary.prepared == []


def test_non_ascii_and_colliding_names_survive(make_project):
    project = make_project(n_target=0, n_reg=0, family="sdxl")
    folder = project.source_dir("target")
    write_picture(folder / "画風.png", seed=1)
    write_picture(folder / "x.jpg", seed=2, fmt="JPEG")
    write_picture(folder / "x.png", seed=3)
    write_picture(folder / "deep" / "x.png", seed=4)
    summary = prepare(project, workers=1)
    assert set(_outputs(project)) == {"画風.png", "x_jpg.png", "x_png.png", "deep_x.png"}
    assert {Path(row["output"]).name for row in summary.renamed} == {"x_jpg.png", "x_png.png", "deep_x.png"}


# --- duplicates (D2) and counts (D1, D2) ------------------------------------------------------


def _near_copy(source: Path, destination: Path) -> None:
    with Image.open(source) as image:
        image.resize((image.width * 3 // 4, image.height * 3 // 4)).save(destination, quality=85)


def test_duplicates_within_a_set_are_reported(make_project):
    project = make_project(n_target=3, n_reg=0, family="sdxl")
    folder = project.source_dir("target")
    shutil.copy(folder / "t000.png", folder / "copy.png")
    _near_copy(folder / "t001.png", folder / "t001_small.jpg")
    summary = prepare(project, workers=1)
    found = {(row["kind"], Path(row["a"]).name, Path(row["b"]).name) for row in summary.duplicates}
    assert ("exact", "copy.png", "t000.png") in found
    assert ("near", "t001.png", "t001_small.jpg") in found
    assert len(summary.prepared) == 5  # reported, not removed: the user decides


@pytest.mark.parametrize("copy", ["exact", "near"])
def test_a_target_picture_in_reg_is_an_error_naming_both(make_project, copy):
    project = make_project(n_target=2, n_reg=2, family="sdxl")
    target = project.source_dir("target") / "t001.png"
    duplicate = project.source_dir("reg") / ("dup.png" if copy == "exact" else "dup.jpg")
    if copy == "exact":
        shutil.copy(target, duplicate)
    else:
        _near_copy(target, duplicate)
    summary = prepare(project, workers=1)
    assert summary.exit_code == 1
    [failure] = summary.failed
    assert str(duplicate.as_posix()) in failure["reason"] and str(target.as_posix()) in failure["reason"]
    assert "D2" in failure["reason"] and "--drop-reg-duplicates" in failure["reason"]
    assert summary.reg_duplicates[0]["kind"] == copy
    assert set(_outputs(project, "reg")) == {"r000.png", "r001.png"}


def test_flat_pictures_of_other_colours_are_not_duplicates(make_project):
    """D2: a solid blue target and a solid red reg picture hash alike; their colours tell them apart."""
    project = make_project(n_target=1, n_reg=1, family="sdxl")
    Image.new("RGB", (96, 64), (30, 60, 200)).save(project.source_dir("target") / "blue.png")
    Image.new("RGB", (96, 64), (200, 30, 30)).save(project.source_dir("reg") / "red.png")
    Image.new("RGB", (96, 64), (200, 30, 30)).save(project.source_dir("reg") / "red_too.jpg", quality=90)
    summary = prepare(project, workers=1)
    assert summary.exit_code == 0 and summary.failed == [] and summary.reg_duplicates == []
    assert "red.png" in _outputs(project, "reg")
    near = [(Path(row["a"]).name, Path(row["b"]).name) for row in summary.duplicates if row["kind"] == "near"]
    assert near == [("red.png", "red_too.jpg")]  # the same flat red: still a duplicate


def test_drop_option_leaves_the_duplicate_out_of_reg(make_project):
    project = make_project(n_target=2, n_reg=2, family="sdxl")
    shutil.copy(project.source_dir("target") / "t000.png", project.source_dir("reg") / "dup.png")
    summary = prepare(project, resolve_settings(project, on_reg_duplicate="drop"), workers=1)
    assert summary.exit_code == 0 and summary.failed == []
    assert any("dropped from reg" in row["reason"] for row in summary.skipped)
    assert summary.sets["reg"]["dropped"] == 1
    assert set(_outputs(project, "reg")) == {"r000.png", "r001.png"}


def test_a_new_target_picture_removes_its_copy_from_reg(make_project):
    project = make_project(n_target=2, n_reg=2, family="sdxl")
    prepare(project, workers=1)
    reg_output = _outputs(project, "reg")["r001.png"]
    reg_output.with_suffix(".txt").write_text("1girl", encoding="utf-8")
    shutil.copy(project.source_dir("reg") / "r001.png", project.source_dir("target") / "new.png")
    summary = prepare(project, resolve_settings(project, on_reg_duplicate="drop"), workers=1)
    assert summary.reg_duplicates[0]["output_removed"] == "dataset/reg/2_reg/r001.png"
    assert not reg_output.exists() and reg_output.with_suffix(".txt").is_file()  # caption kept


def test_counts_warn_per_the_recipe(make_project, monkeypatch):
    monkeypatch.setattr(recipe, "TARGET_MIN_PICTURES", 4)
    project = make_project(n_target=4, n_reg=4, family="sdxl")
    assert prepare(project, workers=1).warnings == []
    (project.source_dir("target") / "t003.png").unlink()
    for name in ("r000.png", "r001.png", "r002.png"):
        (project.source_dir("reg") / name).unlink()
    warnings = prepare(project, workers=1, prune=True).warnings
    assert any("D1" in w and "3 pictures" in w for w in warnings)
    assert any("D2" in w and "1 picture for 3 pictures" in w for w in warnings)
