"""The settings one prep run uses: gafu.toml's [prep], the command line's overrides, checked (D4)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from gafu import recipe
from gafu.errors import ConfigError
from gafu.images import BLACK, RGB, WHITE
from gafu.project import Project

# Bump when the pixels prep writes for the same source and settings change (filter, rounding,
# placement), so every picture is redone once with the new algorithm.
ALGORITHM_VERSION = 1
# gafu's choice: zlib level 1 writes PNGs 3–4× faster than Pillow's default 6 for ~25 % more
# bytes (see docs/benchmarks.md); pixels are identical, so it is not part of the settings key.
PNG_COMPRESS_LEVEL = 1

Mode = Literal["pad", "bucket"]
Background = Literal["white", "black"]
OnRegDuplicate = Literal["error", "drop"]


@dataclass(frozen=True)
class PrepSettings:
    """Everything that decides how an original becomes a training picture."""

    mode: Mode
    background: Background
    side: int  # pad mode: side of the square (D4a)
    max_side: int  # bucket mode: longest side (D4b)
    max_area: int  # bucket mode: training side², so a trainer's bucketing keeps the picture whole
    upscale_warn: float
    on_reg_duplicate: OnRegDuplicate

    @property
    def background_rgb(self) -> RGB:
        """The padding and transparency colour."""
        return WHITE if self.background == "white" else BLACK

    def key(self, *, transparent: bool) -> str:
        """The settings that shape one output; an output made under another key is redone.

        In bucket mode the background only shows through transparency, so it is part of the
        key of transparent pictures only.
        """
        if self.mode == "pad":
            return f"v{ALGORITHM_VERSION}/pad/side={self.side}/background={self.background}"
        key = f"v{ALGORITHM_VERSION}/bucket/max_side={self.max_side}/max_area={self.max_area}"
        return key + (f"/background={self.background}" if transparent else "")

    def matches(self, key: str) -> bool:
        """True when an output made under `key` is what these settings would make."""
        return key in (self.key(transparent=False), self.key(transparent=True))

    def to_dict(self) -> dict[str, Any]:
        """Plain data, for reports."""
        return asdict(self)


def resolve_settings(
    project: Project,
    *,
    mode: Mode | None = None,
    background: Background | None = None,
    side: int | None = None,
    max_side: int | None = None,
    on_reg_duplicate: OnRegDuplicate | None = None,
) -> PrepSettings:
    """gafu.toml's [prep] with this run's overrides applied, validated against D4."""
    prep = project.config.prep
    training_side = project.config.train.resolution or project.family.training_side
    settings = PrepSettings(
        mode=mode or prep.mode,
        background=background or prep.background,
        side=side or prep.side or training_side,
        max_side=max_side or prep.max_side,
        max_area=training_side * training_side,
        upscale_warn=prep.upscale_warn,
        on_reg_duplicate=on_reg_duplicate or prep.on_reg_duplicate,
    )
    if (side and settings.mode != "pad") or (max_side and settings.mode != "bucket"):
        given = "--side is for pad mode" if side else "--max-side is for bucket mode"
        raise ConfigError(
            f"{given}, and this run is in {settings.mode} mode", hint="drop it or change --mode"
        )
    if settings.mode == "pad":
        _check_side(settings.side, "prep.side (--side)", *recipe.PAD_SIDE_RANGE, rule="D4a")
    else:
        _check_side(
            settings.max_side,
            "prep.max_side (--max-side)",
            recipe.MIN_TRAINING_SIDE,
            recipe.BUCKET_MAX_SIDE,
            rule="D4b",
        )
        _check_side(
            training_side,
            "the training side (train.resolution)",
            recipe.MIN_TRAINING_SIDE,
            recipe.BUCKET_MAX_SIDE * 2,
            rule="D4b",
        )
    return settings


def _check_side(value: int, name: str, low: int, high: int, *, rule: str) -> None:
    step = recipe.BUCKET_STEP
    if not low <= value <= high or value % step:
        raise ConfigError(
            f"{name} = {value} is not a multiple of {step} between {low} and {high} (RECIPE {rule})",
            hint=f"use e.g. {low} or {high}",
        )
