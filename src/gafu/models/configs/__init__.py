"""Architecture configs gafu ships, so a single-file checkpoint loads with no network."""

from __future__ import annotations

import json
from pathlib import Path


def sdxl_config_dir() -> Path:
    """The published SDXL base 1.0 configs (model_index, unet, vae, both text encoders, scheduler)."""
    return Path(__file__).parent / "sdxl"


def native_side(config_dir: Path | None) -> int:
    """The picture side the model in `config_dir` was built for (its U-Net's sample size × 8; SDXL: 1024)."""
    path = (config_dir or sdxl_config_dir()) / "unet" / "config.json"
    if not path.is_file():
        path = sdxl_config_dir() / "unet" / "config.json"
    return 8 * int(json.loads(path.read_text("utf-8"))["sample_size"])
