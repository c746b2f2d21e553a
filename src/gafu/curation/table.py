"""The style-cue table of the target set: pixel cues, the tagger's style tags, the optional image model.

Pixel cues and embeddings are kept in `.gafu/cache/style-cues.json` by picture name, size and
modification time, so a re-check measures only new or changed pictures. Deleting the cache only
makes the next check slower.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from gafu.captions.dataset import relative_name
from gafu.curation.consistency import PIXEL_CUES, Cue, tag_cue
from gafu.curation.cues import Box, picture_cues
from gafu.errors import GafuError
from gafu.fsio import read_json, sha256_file, write_json_atomic
from gafu.images import PictureError, load_picture
from gafu.prep.geometry import pad_placement
from gafu.prep.manifest import Manifest, ManifestEntry
from gafu.project import Project
from gafu.tagging.scores import load_scores, scores_path

CACHE_VERSION = 1
# An image model's embedding mostly says what a picture shows, so its cues support a finding
# (they are listed with it when they find the same pictures) but never make one alone.
MODEL_WORDS = "set apart by the image model"
EMBEDDING_CUES = (
    Cue("model_axis", "position on the image model's main axis", MODEL_WORDS, MODEL_WORDS, 0.05, style=False),
    Cue(
        "model_distance",
        "image-model distance from the set",
        "closer to the rest",
        MODEL_WORDS,
        0.03,
        style=False,
    ),
)


@dataclass
class StyleTable:
    """Cue values per picture (project-relative name → cue → value) and the cues that describe them."""

    values: dict[str, dict[str, float]] = field(default_factory=dict)
    cues: list[Cue] = field(default_factory=list)
    measured: int = 0  # pictures whose pixels were read this time
    notes: list[str] = field(default_factory=list)
    model: str = ""  # the image model used, if any
    sha256: dict[str, str] = field(default_factory=dict)  # each picture's content hash


def cache_path(project: Project) -> Path:
    """`.gafu/cache/style-cues.json`."""
    return project.state_dir / "cache" / "style-cues.json"


def content_box(entry: ManifestEntry | None) -> Box | None:
    """The part of a prepared picture that holds the original (pad mode adds bars around it)."""
    if entry is None or "/pad/" not in entry.settings:
        return None
    placement = pad_placement(*entry.source_size, entry.output_size[0])
    left, top = placement.offset
    return Box(left, top, left + placement.content_size[0], top + placement.content_size[1])


def style_table(project: Project, paths: list[Path], manifest: Manifest) -> StyleTable:
    """The cue table of the pictures at `paths` (a set's prepared pictures)."""
    table = StyleTable()
    cache = _load_cache(cache_path(project))
    kept: dict[str, dict] = {}
    images: dict[str, Path] = {}
    for path in paths:
        name = relative_name(project, path)
        try:
            stat = path.stat()
            known = cache["pictures"].get(name)
            known = known if isinstance(known, dict) else {}
            same_file = (known.get("size"), known.get("mtime_ns")) == (stat.st_size, stat.st_mtime_ns)
            sha = known.get("sha256") if same_file else sha256_file(path)  # touched, not changed: reused
        except (OSError, GafuError):
            continue  # the D5 rule reports unreadable pictures
        box = content_box(manifest.entries.get(name))
        where = [box.left, box.top, box.right, box.bottom] if box else None
        if known.get("sha256") == sha and known.get("box") == where and isinstance(known.get("cues"), dict):
            cues = {k: (math.nan if v is None else float(v)) for k, v in known["cues"].items()}
        else:
            try:
                cues = picture_cues(load_picture(path).image, box)
            except PictureError:
                continue
            table.measured += 1
        stored = {k: (None if math.isnan(v) else round(v, 5)) for k, v in cues.items()}
        kept[name] = {
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "sha256": sha,
            "box": where,
            "cues": stored,
        }
        table.values[name] = cues
        table.sha256[name] = str(sha)
        images[name] = path
    table.cues = list(PIXEL_CUES)
    _add_tags(project, table)
    embeddings = _add_embeddings(project, table, images, manifest, cache)
    if kept != cache["pictures"] or embeddings != cache["embeddings"]:
        try:
            write_json_atomic(
                cache_path(project), {"version": CACHE_VERSION, "pictures": kept, "embeddings": embeddings}
            )
        except GafuError as exc:
            table.notes.append(
                f"note: the style-cue cache was not saved ({exc}); the next check measures again"
            )
    return table


def _add_tags(project: Project, table: StyleTable) -> None:
    """The tagger's style-tag probabilities from the score files (a picture changed since is left out)."""
    try:
        scores = load_scores(scores_path(project.tag_scores_dir, "target"), "target").pictures
    except GafuError as exc:
        table.notes.append(f"note: style tags not compared ({exc})")
        return
    present: set[str] = set()
    for name, cues in table.values.items():
        entry = scores.get(name)
        if entry is None or entry.picture_sha256 != table.sha256.get(name):
            continue
        for tag in project.config.check.style_tags:
            probability = entry.scores.general.get(tag, 0.0)  # under the floor: as good as 0
            cues[f"tag:{tag}"] = probability
            if probability >= entry.floor:
                present.add(tag)
    table.cues += [tag_cue(tag) for tag in project.config.check.style_tags if tag in present]


def _add_embeddings(
    project: Project, table: StyleTable, images: dict[str, Path], manifest: Manifest, cache: dict
) -> dict:
    """The image model's embeddings as two cues: the main axis, and the distance from the set's middle."""
    import numpy as np

    reference = project.config.check.style_model.strip()
    if not reference or not images:
        return {}
    from gafu.curation.embed import embed_pictures, load_embedder

    try:
        embedder = load_embedder(reference, base=project.root)
    except GafuError as exc:
        table.notes.append(f"note: {exc} — the style comparison ran without it")
        return {}
    table.model = reference
    known = cache["embeddings"] if cache["embeddings"].get("identity") == embedder.identity else {}
    stored = known.get("pictures", {})
    vectors, missing = {}, []
    for name in images:
        entry = stored.get(name)
        if isinstance(entry, dict) and entry.get("sha256") == table.sha256[name]:
            vectors[name] = np.asarray(entry["vector"], dtype=np.float64)
        else:
            missing.append(name)
    for start in range(0, len(missing), 16):
        batch = missing[start : start + 16]
        pictures = []
        for name in batch:
            image = load_picture(images[name]).image
            box = content_box(manifest.entries.get(name))
            pictures.append(image.crop((box.left, box.top, box.right, box.bottom)) if box else image)
        for name, vector in zip(batch, embed_pictures(embedder, pictures), strict=True):
            vectors[name] = vector.astype(np.float64)
    kept = {
        name: {"sha256": table.sha256[name], "vector": [round(float(v), 5) for v in vectors[name]]}
        for name in images
    }
    names = sorted(vectors)
    matrix = np.array([vectors[n] for n in names])  # (N, D), unit rows
    centred = matrix - matrix.mean(axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    axis = centred @ components[0]  # (N,): the main direction the pictures differ in
    centre = np.median(matrix, axis=0)
    centre /= np.linalg.norm(centre) or 1.0
    distance = 1.0 - matrix @ centre  # (N,): cosine distance from the set's middle
    for i, name in enumerate(names):
        table.values[name]["model_axis"] = float(axis[i])
        table.values[name]["model_distance"] = float(distance[i])
    table.cues += list(EMBEDDING_CUES)
    return {"identity": embedder.identity, "model": reference, "pictures": kept}


def _load_cache(path: Path) -> dict:
    empty: dict = {"pictures": {}, "embeddings": {}}
    if not path.exists():
        return empty
    try:
        data = read_json(path, what="style-cue cache")
    except GafuError:
        return empty
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
        return empty
    pictures, embeddings = data.get("pictures"), data.get("embeddings")
    return {
        "pictures": pictures if isinstance(pictures, dict) else {},
        "embeddings": embeddings if isinstance(embeddings, dict) else {},
    }
