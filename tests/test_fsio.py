import errno
import os

import pytest

from gafu.errors import GafuError
from gafu.fsio import atomic_path, read_json, read_text_utf8, write_json_atomic, write_text_atomic


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
