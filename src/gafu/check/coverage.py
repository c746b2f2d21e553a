"""D3 coverage: how much of the target's tagging the regularization set also carries.

Every caption tag soaks up what the picture shows beyond the other tags. A target tag that
also appears on regularization pictures (other styles, no trigger) is pushed back toward "no
particular style", so the style gathers in the trigger; a target tag the regularization set
never has keeps a share of the style, and the style then leaks into prompts that use it.

Counted: every tag occurrence in a target caption, except
- the trigger, which by T3 is never in a regularization caption, and
- the `[check] unwanted` tags (T4: censored, letterboxed, …), which exist to soak up features
  nobody prompts for: style that leaks into them does no harm.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from gafu.captions.dataset import CaptionedPicture
from gafu.captions.text import tag_key
from gafu.check.report import Coverage, UncoveredTag


def not_counted_keys(trigger: str, unwanted: list[str]) -> set[str]:
    """Keys of the tags D3 coverage leaves out: the trigger and the T4 unwanted tags."""
    return {tag_key(t) for t in [trigger, *unwanted] if t.strip()}


def compute_coverage(
    target: list[CaptionedPicture],
    reg: list[CaptionedPicture],
    *,
    trigger: str,
    unwanted: list[str],
    name_of: Callable[[Path], str] = Path.as_posix,
) -> Coverage:
    """The D3 coverage of `target` captions by `reg` captions, with the uncovered tags by count.

    `name_of` names a picture in the uncovered tags' file lists.
    """
    skipped = not_counted_keys(trigger, unwanted)
    not_counted = [t for t in [trigger, *unwanted] if t.strip()]
    if not any(c.has_caption for c in target):
        return Coverage(share=None, not_counted=not_counted, reason="the target set has no captions yet")
    if reg and not any(c.has_caption for c in reg):
        return Coverage(
            share=None, not_counted=not_counted, reason="the regularization set has no captions yet"
        )
    reg_keys = {tag_key(t) for c in reg for t in c.tags}
    files, spelling = target_tag_files(target, skipped, name_of)
    occurrences = sum(len(f) for f in files.values())
    covered_keys = [k for k in files if k in reg_keys]
    covered = sum(len(files[k]) for k in covered_keys)
    uncovered = [UncoveredTag(spelling[k], len(f), f) for k, f in files.items() if k not in reg_keys]
    uncovered.sort(key=lambda u: (-u.count, tag_key(u.tag)))
    return Coverage(
        share=covered / occurrences if occurrences else 1.0,
        occurrences=occurrences,
        covered=covered,
        distinct=len(files),
        distinct_covered=len(covered_keys),
        uncovered=uncovered,
        not_counted=not_counted,
    )


def target_tag_files(
    target: list[CaptionedPicture], skipped: set[str], name_of: Callable[[Path], str] = Path.as_posix
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """The target captions' counted tags: key → the pictures holding it, and key → its first spelling."""
    files: dict[str, list[str]] = defaultdict(list)
    spelling: dict[str, str] = {}
    for item in target:
        for tag in item.tags:
            key = tag_key(tag)
            if key not in skipped:
                files[key].append(name_of(item.picture.path))
                spelling.setdefault(key, tag)
    return files, spelling
