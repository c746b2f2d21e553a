"""What one prep run did: printed by the CLI, `--json`, and `reports/prep.json`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gafu.prep.settings import PrepSettings

Row = dict[str, Any]


@dataclass
class PrepSummary:
    """What one prep run did: the summary printed, `--json` and `reports/prep.json`."""

    settings: PrepSettings
    sets: dict[str, dict[str, int]] = field(default_factory=dict)  # per set: counts
    prepared: list[Row] = field(default_factory=list)
    skipped: list[Row] = field(default_factory=list)  # with a reason: unchanged, dropped (D2)
    failed: list[Row] = field(default_factory=list)
    duplicates: list[Row] = field(default_factory=list)  # within a set: exact or near
    reg_duplicates: list[Row] = field(default_factory=list)  # D2: target pictures found in reg
    upscaled: list[Row] = field(default_factory=list)  # by more than settings.upscale_warn
    cropped: list[Row] = field(default_factory=list)
    renamed: list[Row] = field(default_factory=list)  # outputs not named after their original
    missing: list[Row] = field(default_factory=list)  # originals gone; outputs kept unless pruned
    moved: list[Row] = field(default_factory=list)  # concept folders renamed (repeats/trigger)
    concepts: list[Row] = field(default_factory=list)  # D5: each concept folder, its repeats and source
    captions_carried: list[Row] = field(default_factory=list)  # captions beside originals, copied
    captions_kept: list[Row] = field(default_factory=list)  # the picture's own caption differs: kept
    caption_failed: list[Row] = field(default_factory=list)  # captions beside originals not readable
    set_aside: list[Row] = field(default_factory=list)  # D1: out of the dataset ([sources] exclude)
    restored: list[Row] = field(default_factory=list)  # back in the dataset (no longer excluded)
    left_out: dict[str, int] = field(default_factory=dict)  # per set: originals include/exclude leave out
    warnings: list[str] = field(default_factory=list)
    report_path: str = ""

    @property
    def exit_code(self) -> int:
        """1 when any picture or caption beside an original failed, else 0."""
        return 1 if self.failed or self.caption_failed else 0

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for `--json` and the report)."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["settings"] = self.settings.to_dict()
        data["exit_code"] = self.exit_code
        return data
