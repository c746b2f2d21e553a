"""Stage reports under `PROJECT/reports/` (what each stage did, as JSON)."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from gafu import __version__
from gafu.fsio import write_json_atomic


def write_report(reports_dir: Path, stage: str, data: dict[str, Any]) -> Path:
    """Write `reports/<stage>.json` atomically, stamped with gafu's version and the time."""
    path = reports_dir / f"{stage}.json"
    stamped = {
        "stage": stage,
        "gafu_version": __version__,
        "written_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        **data,
    }
    write_json_atomic(path, stamped)
    return path
