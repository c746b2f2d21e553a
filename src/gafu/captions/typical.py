"""The dataset's most typical target captions, as default sample prompts (P10).

`gafu plan` resolves `[sample] prompts` from them when gafu.toml names none, so sampling during
training and `gafu sample` show the style on pictures like the dataset's own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from gafu.captions.dataset import load_captions
from gafu.captions.text import tag_key
from gafu.project import Project

# gafu's choices for the default prompts (P10 leaves them to the tool): two prompts, each a real
# target caption (coherent, unlike a list of the most frequent tags, which can contradict itself)
# of the most typical pictures, cut to its most common tags.
DEFAULT_PROMPT_COUNT = 2
PROMPT_TAGS = 20
DISTINCT_OVERLAP = 0.5  # a later prompt shares less than half its tags with earlier ones


def typical_prompts(
    captions: Iterable[list[str]], *, trigger: str, unwanted: Iterable[str], count: int = DEFAULT_PROMPT_COUNT
) -> list[str]:
    """Prompts from the most typical target captions (tags by how many captions hold them).

    The trigger and the T4 unwanted tags (bars, censoring, watermarks) are left out.
    """
    skipped = {tag_key(t) for t in [trigger, *unwanted] if t.strip()}
    tag_lists = [[t for t in tags if tag_key(t) not in skipped] for tags in captions]
    tag_lists = [tags for tags in tag_lists if tags]
    counts = Counter(tag_key(t) for tags in tag_lists for t in tags)

    def typicality(tags: list[str]) -> float:
        return sum(counts[tag_key(t)] for t in tags) / len(tags)

    ranked = sorted(tag_lists, key=typicality, reverse=True)  # stable: file order breaks ties
    chosen: list[list[str]] = []
    for tags in ranked:
        if len(chosen) == count:
            break
        common = sorted(tags, key=lambda t: -counts[tag_key(t)])[:PROMPT_TAGS]
        if all(_overlap(common, earlier) < DISTINCT_OVERLAP for earlier in chosen):
            chosen.append(common)
    for tags in ranked:  # too few distinct captions: take the next most typical ones
        common = sorted(tags, key=lambda t: -counts[tag_key(t)])[:PROMPT_TAGS]
        if len(chosen) < count and common not in chosen:
            chosen.append(common)
    return [", ".join(tags) for tags in chosen]


def _overlap(a: list[str], b: list[str]) -> float:
    keys_a, keys_b = {tag_key(t) for t in a}, {tag_key(t) for t in b}
    return len(keys_a & keys_b) / len(keys_a | keys_b)


def dataset_prompts(project: Project, count: int = DEFAULT_PROMPT_COUNT) -> list[str]:
    """Default prompts from a project's target captions (empty when none are readable)."""
    captions = [c.tags for c in load_captions(project, ("target",)) if c.has_caption]
    config = project.config
    return typical_prompts(
        captions, trigger=config.project.trigger, unwanted=config.check.unwanted, count=count
    )
