import errno
import os
import stat
from pathlib import Path

import pytest

from gafu.config import save_config
from gafu.errors import GafuError
from gafu.fsio import (
    atomic_path,
    current_umask,
    read_json,
    read_text_utf8,
    write_json_atomic,
    write_text_atomic,
)
from gafu.init import init_project
from gafu.project import Project
from tests.conftest import write_picture


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    path = tmp_path / "sub" / "a.txt"
    write_text_atomic(path, "one")
    write_text_atomic(path, "two ✓")
    assert path.read_text(encoding="utf-8") == "two ✓"
    assert [p.name for p in path.parent.iterdir()] == ["a.txt"]


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "a.txt"
    write_text_atomic(path, "good")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half", encoding="utf-8")
        raise RuntimeError("interrupted")
    assert path.read_text(encoding="utf-8") == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_disk_full_is_a_one_line_error_naming_the_file(tmp_path, monkeypatch):
    path = tmp_path / "a.txt"
    write_text_atomic(path, "good")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(GafuError) as err:
        write_text_atomic(path, "new")
    message = str(err.value)
    assert "disk full" in message and str(path) in message and "\n" not in message
    assert path.read_text(encoding="utf-8") == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_read_only_folder(tmp_path, write_failure):
    folder = tmp_path / "ro"
    write_text_atomic(folder / "a.txt", "kept")
    write_failure.under(folder, errno.EACCES)
    with pytest.raises(GafuError, match="permission denied") as err:
        write_text_atomic(folder / "a.txt", "x")
    assert "writable" in str(err.value)
    assert (folder / "a.txt").read_text(encoding="utf-8") == "kept"


def test_utf8_reading(tmp_path):
    good = tmp_path / "good.txt"
    good.write_bytes("\ufeffé".encode())
    assert read_text_utf8(good) == "é"
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"caf\xe9")
    with pytest.raises(GafuError, match=r"bad\.txt is not UTF-8"):
        read_text_utf8(bad)


def test_json_round_trip_and_bad_json(tmp_path):
    path = tmp_path / "a.json"
    write_json_atomic(path, {"名前": [1, 2]})
    assert read_json(path) == {"名前": [1, 2]}
    path.write_text("{", encoding="utf-8")
    with pytest.raises(GafuError, match="not valid JSON"):
        read_json(path)


# --- permissions: what gafu writes, other users' programs can read ------------------------------
@pytest.fixture
def umask():
    """Set the process's umask for a test (spawned workers inherit it); the old one is put back."""
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


@pytest.mark.skipif(os.name == "nt", reason="Windows files have no POSIX mode bits")
@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_written_files_get_the_mode_of_a_new_file_under_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    path = tmp_path / "a.txt"
    write_text_atomic(path, "one")
    assert stat.S_IMODE(path.stat().st_mode) == mode  # not mkstemp's 0600
    path.chmod(0o600)
    write_text_atomic(path, "two")  # a file written again gets the umask's mode too
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert current_umask() == mask


@pytest.mark.slow
@pytest.mark.skipif(os.name == "nt", reason="Windows files have no POSIX mode bits")
def test_every_output_of_a_run_is_readable_as_a_normal_file(umask, train_project, tiny_tagger, tmp_path):
    """Prepared pictures, captions, reports, the kohya export, LoKr files, states, samples: 0640 under 027.

    027 rather than the usual 022, so a mode written by hand (0644) cannot pass for the umask's.
    """
    from gafu.kohya.export import export_kohya
    from gafu.plan import resolve_plan
    from gafu.prep.prepare import prepare
    from gafu.sample.samples import SampleRequest, render_samples
    from gafu.tagging.tag import tag_project
    from gafu.train import train

    umask(0o027)
    for i, which in enumerate(("target", "target", "reg")):
        write_picture(tmp_path / "pictures" / which / f"{i}.png", seed=i)
    init_project(
        tmp_path / "prepped",
        target=tmp_path / "pictures" / "target",
        reg=tmp_path / "pictures" / "reg",
        trigger="mzh",
    )
    prepped = Project.open(tmp_path / "prepped")
    prepped.config.tag.tagger = str(tiny_tagger)
    save_config(prepped.config, prepped.config_path)
    prepped = Project.open(prepped.root)
    prepare(prepped, workers=2)  # spawned workers write the pictures
    tag_project(prepped)
    trained = train_project(n_target=2, n_reg=2, epochs=1)
    written = set(_files(trained.root))  # the dataset the fixture wrote itself, not gafu
    export_kohya(resolve_plan(trained), trained.root, trained.root / "kohya")
    lokr = train(trained).lokr
    render_samples(trained, SampleRequest(lokr_files=[lokr], weights=[1.0]))

    outputs = [*_files(prepped.root), *(p for p in _files(trained.root) if p not in written)]
    kinds = {p.suffix for p in outputs}
    assert {".png", ".txt", ".json", ".toml", ".safetensors", ".html"} <= kinds
    assert any(p.parent.name == "kohya" for p in outputs) and lokr in outputs
    wrong = {
        str(p): oct(stat.S_IMODE(p.stat().st_mode))
        for p in outputs
        if stat.S_IMODE(p.stat().st_mode) != 0o640
    }
    assert not wrong


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]
