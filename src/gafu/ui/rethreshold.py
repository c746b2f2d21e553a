"""The tagging page's preview: the captions stored scores give at other thresholds, before writing.

It builds each caption exactly as `gafu tag --rethreshold` would (`select_tags`, then
`build_caption` with the set's rules and the bars prep added) and writes nothing; applying the
thresholds is `rethreshold_project` itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gafu.captions.text import format_caption, read_caption
from gafu.config import SETS, SetName
from gafu.errors import GafuError
from gafu.fsio import sha256_file
from gafu.prep.manifest import Manifest, load_manifest
from gafu.project import Project
from gafu.tagging.captions import build_caption, caption_rules
from gafu.tagging.scores import load_scores, scores_path
from gafu.tagging.select import select_tags
from gafu.tagging.tag import set_thresholds
from gafu.ui.files import url_of_name


def preview_captions(project: Project) -> dict[str, Any]:
    """Per set: each picture's current caption and the one its stored scores give under `project.config`."""
    manifest = load_manifest(project.prep_manifest_path)
    sets = {which: _preview_set(project, which, manifest) for which in SETS if project.pictures(which)}
    return {"character_threshold": project.config.tag.character_threshold, "sets": sets}


def _preview_set(project: Project, which: SetName, manifest: Manifest) -> dict[str, Any]:
    config = project.config
    thresholds, rules = set_thresholds(config, which), caption_rules(config, which)
    scores = load_scores(scores_path(project.tag_scores_dir, which), which)
    rows = []
    for picture in project.pictures(which):
        key = picture.path.relative_to(project.root).as_posix()
        entry = scores.pictures.get(key)
        current = _current_tags(picture.caption_path)
        row: dict[str, Any] = {"name": key, "thumb": url_of_name(key, "thumb"), "current": current}
        if entry is None:
            row.update(preview=None, changed=False, edited=False, note="no stored scores")
        else:
            names = select_tags(entry.scores, thresholds, entry.floor)
            preview = build_caption(names, rules, manifest.bars_for(key))
            edited = current is not None and _sha(picture.caption_path) != entry.caption_sha256
            changed = format_caption(preview) != format_caption(current or [])
            row.update(preview=preview, changed=changed, edited=edited, note="")
        rows.append(row)
    section = config.tag.for_set(which)
    return {
        "threshold": section.threshold,
        "mcut": section.mcut,
        "pictures": rows,
        "changed": sum(1 for r in rows if r["changed"] and not r["edited"]),
        "edited": sum(1 for r in rows if r["edited"]),
    }


def _current_tags(path: Path) -> list[str] | None:
    try:
        return read_caption(path).tags if path.is_file() else None
    except GafuError:
        return None


def _sha(path: Path) -> str | None:
    try:
        return sha256_file(path)
    except GafuError:
        return None
