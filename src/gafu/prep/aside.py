"""Setting pictures aside (`[sources] exclude`, RECIPE D1) without deleting anything, and bringing them back.

A prepared picture whose original gafu.toml leaves out (an exclude pattern names it, or an
include list does not) leaves the dataset, so no trainer sees it: the picture and its caption
move to `set-aside/<train|reg>/` in the project, and prep's record of it moves to the
manifest's `aside` table. Taking the pattern out of gafu.toml brings both back, byte for byte,
the next time `gafu prep` runs (or at once, through `bring_back`). Originals are never touched.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from gafu.config import SETS, SetName, save_config
from gafu.errors import GafuError, os_error_message
from gafu.layout import CAPTION_SUFFIX
from gafu.prep.manifest import Manifest, ManifestEntry, load_manifest, save_manifest
from gafu.prep.selection import normal_pattern, relative_source, set_selection
from gafu.project import Project

Row = dict[str, Any]


@dataclass
class AsideResult:
    """Pictures moved out of the dataset and back, and what could not be moved."""

    set_aside: list[Row] = field(default_factory=list)
    restored: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, other: AsideResult) -> None:
        """Take in another result's rows and notes."""
        self.set_aside += other.set_aside
        self.restored += other.restored
        self.notes += other.notes

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return dataclasses.asdict(self)


def aside_picture(project: Project, which: SetName, key: str) -> Path:
    """Where the picture at dataset key `key` goes when it is set aside: `set-aside/<outer>/<file>`."""
    return project.aside_dir(which) / PurePosixPath(key).name


def apply_selection(project: Project, manifest: Manifest) -> AsideResult:
    """Move prepared pictures out of the dataset or back, as gafu.toml's include/exclude lists say.

    Changes `manifest` (entries move between `entries` and `aside`); the caller saves it.
    """
    result = AsideResult()
    for which in SETS:
        if project.source_dir(which) is None:
            continue
        selection = set_selection(project.config, which)
        for key, entry in sorted(manifest.aside.items()):
            relative = relative_source(project, which, entry.source)
            wanted = entry.set == which and relative is not None and selection.wants(relative)
            if wanted and _move_pair(aside_picture(project, which, key), project.root / key, result):
                manifest.entries[key] = manifest.aside.pop(key)
                result.restored.append(_row(project, which, key, entry, relative, "brought back"))
        for key, entry in sorted(manifest.entries.items()):
            relative = relative_source(project, which, entry.source)
            if entry.set != which or relative is None or selection.wants(relative):
                continue
            if _move_pair(project.root / key, aside_picture(project, which, key), result):
                manifest.aside[key] = manifest.entries.pop(key)
                row = _row(project, which, key, entry, relative, selection.reason(relative) or "")
                result.set_aside.append(row)
    return result


def restore_orphan_caption(project: Project, which: SetName, output: Path) -> bool:
    """Bring back a set-aside caption for a picture prep is about to make again (the manifest was lost)."""
    aside = aside_picture(project, which, output.name)
    caption = aside.with_suffix(CAPTION_SUFFIX)
    if output.exists() or output.with_suffix(CAPTION_SUFFIX).exists() or not caption.is_file():
        return False
    return _move_pair(aside, output, AsideResult())


def set_aside(project: Project, names: list[str]) -> AsideResult:
    """Add the originals of these dataset pictures (project-relative names) to `[sources] exclude`, and move
    them out of the dataset now."""
    manifest = load_manifest(project.prep_manifest_path)
    config = project.config
    for name in names:
        entry = manifest.entries.get(name)
        if entry is None:
            raise GafuError(
                f"{name} is not a picture `gafu prep` made, so gafu cannot tell which original to exclude",
                hint="run `gafu prep` first, or add the original's name to [sources.exclude] in gafu.toml",
            )
        relative = relative_source(project, entry.set, entry.source)
        if relative is None:
            raise GafuError(f"the original of {name} ({entry.source}) is no longer in its set's folder")
        patterns = config.sources.exclude.for_set(entry.set)
        if not set_selection(config, entry.set).excluded_by(relative):
            patterns.append(relative)
    return _save_and_apply(project, manifest)


def bring_back(project: Project, names: list[str]) -> AsideResult:
    """Take set-aside pictures (dataset keys, as `set_aside` named them) off `[sources] exclude` and move
    them back into the dataset now; a picture a wider pattern still excludes stays aside, with a note."""
    manifest = load_manifest(project.prep_manifest_path)
    config = project.config
    notes = []
    for name in names:
        entry = manifest.aside.get(name)
        if entry is None:
            raise GafuError(f"{name} is not set aside", hint="see `gafu check` for the pictures set aside")
        relative = relative_source(project, entry.set, entry.source)
        patterns = config.sources.exclude.for_set(entry.set)
        if relative is not None:
            patterns[:] = [p for p in patterns if normal_pattern(p) != normal_pattern(relative)]
            still = set_selection(config, entry.set).reason(relative)
            if still:
                notes.append(f"{name} stays aside: its original is {still}")
    result = _save_and_apply(project, manifest)
    result.notes += notes
    return result


def _save_and_apply(project: Project, manifest: Manifest) -> AsideResult:
    save_config(project.config, project.config_path)
    result = apply_selection(Project.open(project.root), manifest)
    save_manifest(manifest, project.prep_manifest_path)
    return result


def _row(project: Project, which: SetName, key: str, entry: ManifestEntry, relative: str, why: str) -> Row:
    return {
        "set": which,
        "original": relative,
        "picture": key,
        "aside": aside_picture(project, which, key).relative_to(project.root).as_posix(),
        "reason": why,
    }


def _move_pair(picture: Path, destination: Path, result: AsideResult) -> bool:
    """Move a picture and its caption (when there is one) to `destination`; never over an existing file.

    The caption moves first and comes back if the picture cannot follow, so the two stay together.
    """
    caption, caption_to = picture.with_suffix(CAPTION_SUFFIX), destination.with_suffix(CAPTION_SUFFIX)
    taken = [p for p in (destination, caption_to) if p.exists()]
    if taken:
        result.notes.append(f"{picture} was not moved: {taken[0]} is in the way (move one of them yourself)")
        return False
    moved = []
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        for source, target in ((caption, caption_to), (picture, destination)):
            if source.is_file():
                os.replace(source, target)
                moved.append((source, target))
    except OSError as exc:
        for source, target in reversed(moved):
            os.replace(target, source)
        raise os_error_message(exc, picture, "move") from exc
    return True
