"""Which files the UI may serve: only files inside the project folder, named by a relative path."""

from __future__ import annotations

import mimetypes
from pathlib import Path, PurePosixPath
from urllib.parse import quote, unquote

from gafu.errors import GafuError

# Types a browser may show inline; anything else is sent as a download.
INLINE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".txt": "text/plain; charset=utf-8",
    ".json": "application/json; charset=utf-8",
    ".jsonl": "text/plain; charset=utf-8",
    ".toml": "text/plain; charset=utf-8",
    ".html": "text/html; charset=utf-8",
}


class OutsideProject(GafuError):
    """A path that names no file inside the project (traversal, absolute, a link out, missing)."""


def project_file(root: Path, relative: str) -> Path:
    """The file `relative` (URL-encoded, POSIX) names inside `root`, after every link is followed.

    `relative` is the raw URL path, decoded here exactly once (so `%2e%2e%2f` is `../` and is
    refused, while `%252e` stays a literal `%2e`). Refuses `..`, absolute and drive paths,
    backslashes, NUL bytes, and links that lead out of the project.
    """
    text = unquote(relative)
    if "\x00" in text or "\\" in text:
        raise OutsideProject(f"not a project file: {relative!r}")
    pure = PurePosixPath(text)
    if pure.is_absolute() or ".." in pure.parts or (pure.parts and ":" in pure.parts[0]):
        raise OutsideProject(f"not a project file: {relative!r}")
    base = root.resolve()
    path = (base / pure).resolve()
    if not path.is_relative_to(base) or not path.is_file():
        raise OutsideProject(f"not a project file: {relative!r}")
    return path


def content_type(path: Path) -> str:
    """The Content-Type to send `path` with."""
    suffix = path.suffix.lower()
    if suffix in INLINE_TYPES:
        return INLINE_TYPES[suffix]
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def relative_url(root: Path, path: Path, route: str = "files") -> str:
    """The `/files/…` URL (`/thumb/…` with route="thumb") of a file inside the project, URL-encoded."""
    return url_of_name(path.resolve().relative_to(root.resolve()).as_posix(), route)


def url_of_name(name: str, route: str = "files") -> str:
    """`/<route>/<name>` with the name URL-encoded (a `#`, `?` or `%` in a file name stays part of it)."""
    return f"/{route}/" + quote(name)
