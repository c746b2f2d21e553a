"""Probe losses kept on disk (`.gafu/cache/eval/`), so the base model is measured once and a LoKr
file at a weight once: `gafu eval` run again answers from here, and a run's training and `gafu
eval` share the base model's losses. Safe to delete; a write that fails only costs time.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

from gafu.errors import GafuError
from gafu.eval.probe import CASES, ProbeLosses
from gafu.fsio import read_json, write_json_atomic


class LossCache:
    """Losses of one probe on one base model (in one precision, on one kind of device)."""

    def __init__(self, folder: Path, probe_key: str, model_key: str):
        self.folder, self.probe_key, self.model_key = Path(folder), probe_key, model_key

    def path(self, *parts: object) -> Path:
        """The file for an entry: the base model (`"base"`) or a LoKr file at a weight."""
        what = "|".join([self.probe_key, self.model_key, *map(str, parts)])
        return self.folder / f"{hashlib.sha256(what.encode('utf-8')).hexdigest()[:32]}.json"

    def get(self, *parts: object) -> ProbeLosses | None:
        """The losses stored for the entry, or None."""
        path = self.path(*parts)
        if not path.is_file():
            return None
        try:
            data = read_json(path, what="probe cache")
            return ProbeLosses.from_dict(data["losses"])
        except (GafuError, KeyError, TypeError, ValueError, AttributeError):
            return None  # a broken entry is measured again

    def put(self, losses: ProbeLosses, *parts: object) -> None:
        """Store the entry's losses (atomically; a full disk is not an error here)."""
        with contextlib.suppress(GafuError, OSError):
            data = {"entry": [str(p) for p in parts], "losses": losses.to_dict()}
            write_json_atomic(self.path(*parts), data)


def model_key(base, mixed_precision: str, device) -> str:
    """The base model's identity for the cache: its file (path, size, time), dtype, precision, device."""
    source = Path(base.source.path)
    stat = source.stat() if source.exists() else None
    stamp = f"{stat.st_size}:{stat.st_mtime_ns}" if stat else ""
    kind = getattr(device, "type", str(device))
    return f"{source.resolve().as_posix()}:{stamp}|{base.unet.dtype}|{mixed_precision}|{kind}|{CASES}"
