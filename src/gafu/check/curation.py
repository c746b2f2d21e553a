"""D1 in `gafu check`: pictures of another period or technique, and the pictures set aside."""

from __future__ import annotations

from dataclasses import asdict

from gafu.check.report import Finding, count_of
from gafu.curation.consistency import MIN_PICTURES, StyleGroup, find_style_groups
from gafu.curation.table import StyleTable, style_table
from gafu.prep.manifest import Manifest
from gafu.prep.selection import relative_source, set_selection
from gafu.project import Project

STYLE_CODES = ("style-groups", "style-apart")  # what `gafu check --exclude-outliers` sets aside
SET_WORDS = {"target": "target", "reg": "regularization"}


def style_findings(table: StyleTable) -> tuple[list[Finding], dict]:
    """D1: findings for the target pictures that stand apart, and what the comparison used."""
    groups = find_style_groups(table.values, table.cues)
    summary = {
        "pictures": len(table.values),
        "cues": [cue.name for cue in table.cues],
        "style_model": table.model or None,
        "measured": table.measured,
        "compared": len(table.values) >= MIN_PICTURES,
    }
    return [_finding(group, len(table.values)) for group in groups], summary


def measure_style(project: Project, manifest: Manifest) -> StyleTable:
    """The target set's cue table (`gafu.curation.table`)."""
    return style_table(project, [p.path for p in project.pictures("target")], manifest)


def _finding(group: StyleGroup, total: int) -> Finding:
    also = [d for d in group.differences[1:] if d.words != group.differences[0].words][:2]
    more = "".join(f"; also {d.words}: {d.text}" for d in also)
    main = group.differences[0]
    count = len(group.pictures)
    if group.kind == "groups":
        message = (
            f"{count} of the {total} target pictures form a group of their own, {main.words}: {main.text} "
            f"for the other {group.rest}{more}. Two periods of the artist? Pictures of the period you "
            "do not want pollute the style (RECIPE D1)"
        )
    else:
        who = "1 target picture stands" if count == 1 else f"{count} target pictures stand"
        message = f"{who} apart, {main.words}: {main.text} for the other {group.rest}{more} (RECIPE D1)"
    finding = Finding(
        "warning",
        "D1",
        "style-groups" if group.kind == "groups" else "style-apart",
        message,
        list(group.pictures),
        "look at them beside the rest (gafu ui, Dataset page); if they are not the style you want, "
        "`gafu check --exclude-outliers` sets them aside (undo: delete them from [sources.exclude] "
        "target in gafu.toml, then `gafu prep`)",
    )
    finding.details = {
        "kind": group.kind,
        "rest": group.rest,
        "differences": [asdict(d) for d in group.differences],
    }
    return finding


def aside_findings(project: Project, manifest: Manifest) -> list[Finding]:
    """The pictures `[sources] exclude` set aside (info), and excluded ones prep has not moved yet."""
    found = []
    for which in ("target", "reg"):
        aside = sorted(
            project.aside_dir(which).joinpath(key.rsplit("/", 1)[-1]).relative_to(project.root).as_posix()
            for key, entry in manifest.aside.items()
            if entry.set == which
        )
        if aside:
            found.append(
                Finding(
                    "info",
                    "D1" if which == "target" else "D2",
                    "set-aside",
                    f"{count_of(len(aside), SET_WORDS[which] + ' picture')} set aside by gafu.toml's "
                    f"[sources] lists (not in the dataset; pictures and captions kept in "
                    f"{project.aside_dir(which).relative_to(project.root).as_posix()}/)",
                    aside,
                    f"to bring them back, delete them from [sources.exclude] {which} and run `gafu prep`",
                )
            )
        selection = set_selection(project.config, which)
        pending = sorted(
            key
            for key, entry in manifest.entries.items()
            if entry.set == which
            and (project.root / key).is_file()
            and (relative := relative_source(project, which, entry.source)) is not None
            and not selection.wants(relative)
        )
        if pending:
            found.append(
                Finding(
                    "warning",
                    "D1" if which == "target" else "D2",
                    "excluded-in-dataset",
                    f"{count_of(len(pending), SET_WORDS[which] + ' picture')} left out by gafu.toml's "
                    "[sources] lists but still in the dataset, so trainers still see them",
                    pending,
                    "run `gafu prep` to set them aside",
                )
            )
    return found
