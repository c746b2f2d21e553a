"""User-facing errors: one line that names the file and says what to do."""

from __future__ import annotations

import errno
from pathlib import Path


class GafuError(Exception):
    """An error the user can fix; its message is one line, shown without a traceback."""

    def __init__(self, message: str, *, path: Path | str | None = None, hint: str | None = None):
        self.path = Path(path) if path is not None else None
        self.hint = hint
        text = message.rstrip(". ")
        if hint:
            text += "; " + hint.rstrip(". ")
        super().__init__(text)


class ConfigError(GafuError):
    """A `gafu.toml` (or an override) that cannot be used as written."""


def os_error_message(exc: OSError, path: Path | str, action: str = "write") -> GafuError:
    """Turn an OSError into a one-line GafuError saying what happened to which file and what to do."""
    where = str(path)
    code = exc.errno
    if code == errno.ENOSPC or code == getattr(errno, "EDQUOT", -1):
        return GafuError(
            f"disk full while trying to {action} {where}",
            path=path,
            hint="free some space and run the same command again (earlier results are kept)",
        )
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return GafuError(
            f"permission denied: cannot {action} {where}",
            path=path,
            hint="make the folder writable (or close the program holding the file) and run again",
        )
    if code == errno.ENOENT:
        return GafuError(f"no such file or folder: {where}", path=path, hint="check the path")
    reason = exc.strerror or exc.__class__.__name__
    return GafuError(f"cannot {action} {where}: {reason}", path=path)
