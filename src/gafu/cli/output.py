"""Printing for the CLI (plain lines for people, JSON for tools) and its shared argument types."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def print_json(data: Any) -> None:
    """Print `data` as indented JSON on stdout."""
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def warn(message: str) -> None:
    """Print a warning line on stderr."""
    print(f"gafu: warning: {message}", file=sys.stderr)


def number_list(kind: type):
    """An argparse type: `0,0.5,1` → [0.0, 0.5, 1.0]."""

    def parse(text: str) -> list:
        try:
            values = [kind(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None
        if not values:
            raise argparse.ArgumentTypeError("give at least one number")
        return values

    return parse
