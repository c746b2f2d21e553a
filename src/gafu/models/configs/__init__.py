"""Architecture configs gafu ships, so a single-file checkpoint loads with no network."""

from __future__ import annotations

from pathlib import Path


def sdxl_config_dir() -> Path:
    """The published SDXL base 1.0 configs (model_index, unet, vae, both text encoders, scheduler)."""
    return Path(__file__).parent / "sdxl"
