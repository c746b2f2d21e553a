"""Size and perceptual hash of each prepared picture, cached by file content so re-checks are fast.

The cache (`.gafu/cache/picture-facts.json`) maps a file's SHA-256 to its size and perceptual
hash; a file whose size and modification time are unchanged since the last check is not even
re-hashed. Deleting the cache only makes the next check slower.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gafu.captions.dataset import relative_name
from gafu.errors import GafuError
from gafu.fsio import read_json, sha256_file, write_json_atomic
from gafu.images import PictureError, PictureHash, load_picture, perceptual_hash
from gafu.project import Project

CACHE_VERSION = 2  # 2: hashes carry the pictures' colours


@dataclass(frozen=True)
class PictureFacts:
    """What the checks need to know about a picture's pixels."""

    size: tuple[int, int]  # (width, height)
    phash: PictureHash


@dataclass
class FactsResult:
    """Facts per picture path, the pictures that could not be opened, and notes on the cache."""

    facts: dict[Path, PictureFacts] = field(default_factory=dict)
    failed: dict[Path, PictureError] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    opened: int = 0  # pictures opened this time (the rest came from the cache)


def cache_path(project: Project) -> Path:
    """`.gafu/cache/picture-facts.json`."""
    return project.state_dir / "cache" / "picture-facts.json"


def picture_facts(project: Project, paths: list[Path]) -> FactsResult:
    """Size and perceptual hash of each picture in `paths`, from the cache where the content is known."""
    cache = _load_cache(cache_path(project))
    files, by_content = cache["files"], cache["content"]
    result = FactsResult()
    seen_files: dict[str, dict] = {}
    for path in paths:
        name = relative_name(project, path)
        try:
            stat = path.stat()
            signature = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
            digest = _known_digest(files.get(name), signature) or sha256_file(path)
            facts = _cached_facts(by_content.get(digest))
            if facts is None:
                by_content[digest] = _measure(path)
                facts = _cached_facts(by_content[digest])
                result.opened += 1
        except PictureError as exc:
            result.failed[path] = exc
            continue
        except (GafuError, OSError) as exc:
            result.failed[path] = PictureError(f"cannot read {path} ({exc})", path=path)
            continue
        seen_files[name] = {**signature, "sha256": digest}
        result.facts[path] = facts
    if result.opened or seen_files != files:
        used = {f["sha256"] for f in seen_files.values()}
        kept = {"files": seen_files, "content": {d: e for d, e in by_content.items() if d in used}}
        try:
            write_json_atomic(cache_path(project), {"version": CACHE_VERSION, **kept})
        except GafuError as exc:
            result.notes.append(
                f"note: the picture cache was not saved ({exc}); the next check redoes the work"
            )
    return result


def _known_digest(known: object, signature: dict) -> str | None:
    """The cached SHA-256 of a file whose size and modification time are unchanged, else None."""
    if isinstance(known, dict) and all(known.get(k) == v for k, v in signature.items()):
        digest = known.get("sha256")
        return digest if isinstance(digest, str) else None
    return None


def _cached_facts(entry: object) -> PictureFacts | None:
    """Facts from a cache entry, or None when it is missing or damaged."""
    try:
        width, height = entry["size"]  # type: ignore[index]
        return PictureFacts((int(width), int(height)), PictureHash.parse(entry["phash"]))  # type: ignore[index]
    except (TypeError, KeyError, ValueError):
        return None


def _measure(path: Path) -> dict:
    loaded = load_picture(path)
    return {"size": list(loaded.image.size), "phash": str(perceptual_hash(loaded.image))}


def _load_cache(path: Path) -> dict:
    """The cache, or an empty one when it is missing or unusable (it is only a cache)."""
    empty: dict = {"files": {}, "content": {}}
    if not path.exists():
        return empty
    try:
        data = read_json(path, what="picture cache")
    except GafuError:
        return empty
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
        return empty
    files, content = data.get("files"), data.get("content")
    if not isinstance(files, dict) or not isinstance(content, dict):
        return empty
    return {"files": files, "content": content}
