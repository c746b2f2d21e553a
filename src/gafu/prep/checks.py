"""The recipe's checks on the prepared sets: no target picture in reg (D2), duplicates, counts (D1, D2)."""

from __future__ import annotations

from collections import defaultdict

from gafu import recipe
from gafu.config import SETS, SetName
from gafu.images import near_duplicate_pairs
from gafu.prep.manifest import Manifest
from gafu.prep.summary import PrepSummary
from gafu.prep.work import TargetHashes, TargetMatch, find_target_duplicate, picture_hash, remove_output
from gafu.project import Project


def target_hashes(project: Project, manifest: Manifest) -> TargetHashes:
    """Content and perceptual hashes of the target pictures in the dataset."""
    entries = [
        e for key, e in manifest.entries.items() if e.set == "target" and (project.root / key).is_file()
    ]
    return TargetHashes(
        exact={e.source_sha256: e.source for e in entries},
        perceptual={e.source: e.source_phash for e in entries if e.source_phash},
    )


def remove_reg_duplicates(project: Project, manifest: Manifest, summary: PrepSummary) -> None:
    """Check reg pictures prepared earlier against today's target set (a target may be new)."""
    hashes = target_hashes(project, manifest)
    for key, entry in sorted(manifest.entries.items()):
        if entry.set != "reg":
            continue
        match = find_target_duplicate(entry.source_sha256, entry.source_phash, hashes)
        if match is not None:
            reg_duplicate(project, key, entry.source, match, manifest, summary)


def reg_duplicate(
    project: Project, key: str, source: str, match: TargetMatch, manifest: Manifest, summary: PrepSummary
) -> None:
    """A reg original that is a target picture: never in the dataset; an error unless dropping (D2)."""
    removed = remove_output(project.root / key) if manifest.entries.pop(key, None) else False
    drop = summary.settings.on_reg_duplicate == "drop"
    summary.reg_duplicates.append(
        {
            "target": match.target,
            "reg": source,
            "kind": match.kind,
            "distance": match.distance,
            "action": "dropped" if drop else "error",
            "output_removed": key if removed else None,
        }
    )
    what = "a copy of" if match.kind == "exact" else f"a near-duplicate (distance {match.distance}) of"
    if drop:
        reason = f"{what} target picture {match.target}: dropped from reg (RECIPE D2)"
        summary.skipped.append({"set": "reg", "source": source, "output": key, "reason": reason})
        return
    reason = (
        f"{source} is {what} target picture {match.target}, and the regularization set must not "
        "contain target pictures (RECIPE D2); remove it from the regularization folder, or pass "
        '--drop-reg-duplicates (prep.on_reg_duplicate = "drop")'
    )
    summary.failed.append({"set": "reg", "source": source, "reason": reason})


def find_duplicates(which: SetName, manifest: Manifest, summary: PrepSummary) -> None:
    """Exact (same content) and near (perceptual hash) duplicates within one set."""
    entries = {e.source: e for e in manifest.entries.values() if e.set == which}
    by_content: dict[str, list[str]] = defaultdict(list)
    for source, entry in sorted(entries.items()):
        by_content[entry.source_sha256].append(source)
    for sources in by_content.values():
        summary.duplicates.extend(
            {"set": which, "kind": "exact", "a": sources[0], "b": other, "distance": 0}
            for other in sources[1:]
        )
    hashes = {source: picture_hash(e.source_phash) for source, e in entries.items() if e.source_phash}
    for a, b, distance in near_duplicate_pairs(hashes):
        if entries[a].source_sha256 != entries[b].source_sha256:
            summary.duplicates.append({"set": which, "kind": "near", "a": a, "b": b, "distance": distance})


def count_pictures(project: Project, originals: dict[SetName, int], summary: PrepSummary) -> None:
    """Per-set counts, and the recipe's warnings about them (D1, D2)."""
    in_dataset = {which: len(project.pictures(which)) for which in SETS}
    for which, found in originals.items():
        summary.sets[which] = {
            "originals": found,
            "prepared": sum(1 for row in summary.prepared if row["set"] == which),
            "unchanged": sum(
                1 for row in summary.skipped if row["set"] == which and row["reason"].startswith("unchanged")
            ),
            "failed": sum(1 for row in summary.failed if row["set"] == which),
            "dropped": sum(
                1 for row in summary.reg_duplicates if which == "reg" and row["action"] == "dropped"
            ),
            "in_dataset": in_dataset[which],
            "left_out": summary.left_out.get(which, 0),
        }
    target, reg = in_dataset["target"], in_dataset["reg"]
    if target < recipe.TARGET_MIN_PICTURES:
        summary.warnings.append(
            f"the target set has {_pictures(target)}; {recipe.TARGET_MIN_PICTURES} or more is typical "
            "(RECIPE D1) — add more of the style if you have them"
        )
    low, high = recipe.REG_TO_TARGET_RATIO
    if "reg" not in originals:
        summary.warnings.append(
            "no regularization set: the style will leak into every tag of the target set (RECIPE D2); "
            "set sources.reg in gafu.toml"
        )
    elif target and not low * target <= reg <= high * target:
        summary.warnings.append(
            f"the regularization set has {_pictures(reg)} for {_pictures(target)} in the target set; "
            f"about as many ({low:g}–{high:g}×) is the recipe (RECIPE D2)"
        )


def _pictures(count: int) -> str:
    return f"{count} picture" if count == 1 else f"{count} pictures"
