"""Data files shipped with gafu."""
