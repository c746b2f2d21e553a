import json
import subprocess
import sys

import pytest
from PIL import Image

from gafu.cli import main
from gafu.prep.manifest import load_manifest
from tests.conftest import gafu_env, snapshot_files, write_picture


def _init(tmp_path, originals, *extra):
    reg = tmp_path / "reg"
    write_picture(reg / "r0.png", (640, 480), seed=901)
    args = [
        "init",
        str(tmp_path / "p"),
        "--target",
        str(originals),
        "--reg",
        str(reg),
        "--trigger",
        "mzh_style",
    ]
    assert main([*args, "--family", "sdxl", *extra]) == 0
    return tmp_path / "p"


def test_init_then_prep_in_bucket_mode_prints_json(tmp_path, awkward_originals, capsys):
    originals, sizes = awkward_originals
    project = _init(tmp_path, originals)
    capsys.readouterr()
    assert main(["prep", str(project), "--mode", "bucket", "--workers", "1", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["settings"]["mode"] == "bucket" and summary["exit_code"] == 0
    assert summary["sets"]["target"]["prepared"] == len(sizes)
    for row in summary["prepared"]:
        width, height = row["size"]
        assert width % 64 == 0 and height % 64 == 0 and max(width, height) <= 1536
    assert summary["cropped"] and all(row["percent"] > 0 for row in summary["cropped"])
    report = json.loads((project / "reports" / "prep.json").read_text(encoding="utf-8"))
    assert report["prepared"] == summary["prepared"]


def test_prep_prints_a_summary_and_says_overrides_are_for_this_run(tmp_path, awkward_originals, capsys):
    originals, sizes = awkward_originals
    project = _init(tmp_path, originals)
    capsys.readouterr()
    assert main(["prep", str(project), "--workers", "1", "--background", "black"]) == 0
    out, err = capsys.readouterr()
    assert (
        f"target {len(sizes)} originals: {len(sizes)} prepared" in out and "report: reports/prep.json" in out
    )
    assert "renamed" in out and "a_jpg.png" in out
    assert "this run only" in out
    assert "RECIPE D1" in err  # fewer than 40 target pictures
    with Image.open(project / "dataset" / "train" / "2_mzh_style" / "landscape.png") as image:
        assert image.getpixel((512, 2)) == (0, 0, 0)
    before = snapshot_files(project / "dataset"), snapshot_files(project / ".gafu"), snapshot_files(originals)
    assert main(["prep", str(project), "--workers", "1", "--background", "black"]) == 0
    assert f"{len(sizes)} unchanged" in capsys.readouterr().out
    assert (
        snapshot_files(project / "dataset"),
        snapshot_files(project / ".gafu"),
        snapshot_files(originals),
    ) == before


def test_failed_pictures_give_exit_code_1(tmp_path, capsys):
    target = tmp_path / "target"
    write_picture(target / "good.png")
    (target / "bad.png").write_bytes(b"not a picture")
    project = _init(tmp_path, target)
    assert main(["prep", str(project), "--workers", "1"]) == 1
    out = capsys.readouterr().out
    assert "failed (1)" in out and "bad.png is not a picture" in out
    assert (project / "dataset" / "train" / "2_mzh_style" / "good.png").is_file()


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["--side", "1000"], "prep.side"), (["--workers", "-1"], "--workers"), ([], "does not exist")],
)
def test_fatal_errors_are_one_line_with_exit_code_2(tmp_path, capsys, args, needle):
    target = tmp_path / "target"
    write_picture(target / "good.png")
    project = _init(tmp_path, target)
    if not args:
        (target / "good.png").unlink()
        target.rmdir()
    capsys.readouterr()
    assert main(["prep", str(project), "--workers", "1", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gafu: error:") and needle in err and "\n" not in err


@pytest.mark.slow
def test_the_gafu_command_prepares_with_a_pool_of_workers(tmp_path):
    target = tmp_path / "target"
    for i in range(4):
        write_picture(target / f"t{i}.png", (700, 500), seed=i)
    project = _init(tmp_path, target)
    env = gafu_env()
    command = [sys.executable, "-m", "gafu", "prep", str(project), "--workers", "2"]
    first = subprocess.run(command, env=env, capture_output=True, text=True, encoding="utf-8", timeout=300)
    assert first.returncode == 0, first.stderr
    manifest = load_manifest(project / ".gafu" / "prep-manifest.json")
    assert len(manifest.entries) == 5
    again = subprocess.run(command, env=env, capture_output=True, text=True, encoding="utf-8", timeout=300)
    assert again.returncode == 0 and "5 unchanged" not in again.stdout
    assert "4 unchanged" in again.stdout and "1 unchanged" in again.stdout
