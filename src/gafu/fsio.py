"""File I/O every stage uses: atomic writes (temp file + rename), UTF-8 text, content hashes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gafu.errors import GafuError, os_error_message


@contextlib.contextmanager
def atomic_path(path: Path, *, action: str = "write") -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename.

    On any failure the temporary file is removed and `path` is left as it was, so an
    interrupted or failed write never leaves a half-written output behind. The file gets the
    permissions any new file gets under the user's umask (0644 under 022), not mkstemp's 0600, so
    other users' programs (a ComfyUI or web UI service) can read what gafu writes.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise os_error_message(exc, path, action) from exc
    tmp = Path(tmp_name)
    try:
        yield tmp
        if os.name != "nt":  # Windows has no mode bits beyond read-only; files inherit the folder's ACL
            os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except OSError as exc:
        _remove_quietly(tmp)
        raise os_error_message(exc, path, action) from exc
    except BaseException:
        _remove_quietly(tmp)
        raise


def current_umask() -> int:
    """The process's umask, read without changing it where the OS allows (Linux: /proc)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text("ascii", "replace").splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    with _UMASK_LOCK:  # elsewhere: set and put back (the only way POSIX offers)
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


_UMASK_LOCK = threading.Lock()


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` atomically as UTF-8 with `\\n` line ends."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, data: Any) -> None:
    """Write `data` as pretty, UTF-8 JSON atomically."""
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def read_text_utf8(path: Path, *, what: str = "file") -> str:
    """Read a UTF-8 text file (a BOM is dropped); a wrong encoding is a GafuError naming the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise os_error_message(exc, path, "read") from exc
    return decode_utf8(data, path, what=what)


def decode_utf8(data: bytes, path: Path, *, what: str = "file") -> str:
    """Decode UTF-8 bytes read from `path` (a BOM is dropped), or raise a GafuError naming it."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise GafuError(
            f"{what} {path} is not UTF-8 text (bad byte at position {exc.start})",
            path=path,
            hint="re-save it as UTF-8 in a text editor",
        ) from exc


def read_json(path: Path, *, what: str = "file") -> Any:
    """Read a JSON file; bad JSON is a GafuError naming the file."""
    text = read_text_utf8(path, what=what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise GafuError(
            f"{what} {path} is not valid JSON (line {exc.lineno}: {exc.msg})",
            path=path,
            hint="delete it to have gafu rebuild it, or fix it by hand",
        ) from exc


def sha256_file(path: Path, *, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's content."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while block := fh.read(chunk):
                digest.update(block)
    except OSError as exc:
        raise os_error_message(exc, path, "read") from exc
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of bytes."""
    return hashlib.sha256(data).hexdigest()
