"""Versioned files (gafu.toml, plans): bring older data up to the current version, step by step."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gafu.errors import GafuError

Migration = Callable[[dict[str, Any]], dict[str, Any]]


def upgrade(
    data: dict[str, Any],
    *,
    current: int,
    migrations: Mapping[int, Migration],
    source: str,
    kind: str,
    missing: int | None = None,
    error: type[GafuError] = GafuError,
) -> dict[str, Any]:
    """`data` migrated from its `version` to `current` (`migrations[n]` turns version n into n + 1).

    A missing version counts as `missing` (None: an error); a version newer than `current` is an
    error, as is one that is not a whole number ≥ 1.
    """
    version = data.get("version", missing)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise error(f"{source}: `version` must be a whole number ≥ 1, not {version!r}")
    if version > current:
        raise error(
            f"{source} was written by a newer gafu ({kind} version {version}, "
            f"this gafu reads up to {current})",
            hint="upgrade gafu",
        )
    while version < current:
        data = migrations[version](dict(data))
        version += 1
        data["version"] = version
    return data
