"""Printing for the CLI: plain lines for people, JSON for tools."""

from __future__ import annotations

import json
import sys
from typing import Any


def print_json(data: Any) -> None:
    """Print `data` as indented JSON on stdout."""
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def warn(message: str) -> None:
    """Print a warning line on stderr."""
    print(f"gafu: warning: {message}", file=sys.stderr)
