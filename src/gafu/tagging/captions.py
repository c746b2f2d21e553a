"""Tags → caption: trigger placement (T3), bars tags (T4), per-set exclude and add lists, merging.

A caption is built in this order: the model's tags as caption text (underscores → spaces
except in kaomoji, parentheses escaped if asked), the bars tag prep's padding calls for, minus
the set's exclude list, plus its add list; then the trigger goes first on a target caption
and is removed from a regularization caption, also when the model itself predicted it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gafu.captions.text import contains_tag, remove_tags, tag_key, tag_to_text, with_trigger_first
from gafu.config import Config, SetName
from gafu.errors import ConfigError
from gafu.prep.manifest import Bars


@dataclass(frozen=True)
class CaptionRules:
    """How one set's captions are written."""

    which: SetName
    trigger: str
    exclude: tuple[str, ...] = ()  # never written, in any spelling (T5: features that are the style)
    add: tuple[str, ...] = ()  # written on every caption of the set (T4: e.g. `censored`)
    escape_parentheses: bool = False


def caption_rules(config: Config, which: SetName) -> CaptionRules:
    """The set's rules from gafu.toml; contradictions (a tag both added and excluded) are errors."""
    section = config.tag.for_set(which)
    trigger = config.project.trigger.strip()
    where = f"[tag.{which}]"
    if not trigger:
        raise ConfigError("gafu.toml has no trigger word", hint="set `trigger` under [project] (RECIPE T3)")
    both = [tag for tag in section.add if contains_tag(section.exclude, tag)]
    if both:
        raise ConfigError(
            f"gafu.toml {where} lists {', '.join(map(repr, both))} under both `add` and `exclude`",
            hint="keep each tag in one of the two lists",
        )
    if which == "target" and contains_tag(section.exclude, trigger):
        raise ConfigError(
            f"gafu.toml {where} excludes the trigger word {trigger!r}, which leads every target caption (T3)",
            hint="remove it from `exclude`",
        )
    if which == "reg" and contains_tag(section.add, trigger):
        raise ConfigError(
            f"gafu.toml {where} adds the trigger word {trigger!r}, "
            "which no regularization caption may hold (T3)",
            hint="remove it from `add`",
        )
    return CaptionRules(
        which=which,
        trigger=trigger,
        exclude=tuple(section.exclude),
        add=tuple(section.add),
        escape_parentheses=config.tag.escape_parentheses,
    )


def build_caption(tag_names: Iterable[str], rules: CaptionRules, bars: Bars | None = None) -> list[str]:
    """The caption's tags for the model's chosen tag names and the bars prep added (T3, T4)."""
    tags = [tag_to_text(name, escape_parentheses=rules.escape_parentheses) for name in tag_names]
    if bars:
        tags.append(bars)  # T4: `letterboxed` (top/bottom bars) or `pillarboxed` (left/right)
    tags = remove_tags(tags, rules.exclude)
    tags += [tag_to_text(tag, escape_parentheses=rules.escape_parentheses) for tag in rules.add]
    return place_trigger(tags, rules)


def merge_caption(existing: Iterable[str], fresh: Iterable[str], rules: CaptionRules) -> list[str]:
    """`--merge`: the existing tags as they are, then the fresh tags they lack; the trigger placed (T3)."""
    kept = list(existing)
    keys = {tag_key(tag) for tag in kept}
    return place_trigger(kept + [tag for tag in fresh if tag_key(tag) not in keys], rules)


def place_trigger(tags: Iterable[str], rules: CaptionRules) -> list[str]:
    """T3: the trigger first on a target caption, absent from a regularization one; repeats dropped."""
    unique: list[str] = []
    seen: set[str] = set()
    for tag in tags:
        if tag and tag_key(tag) not in seen:
            seen.add(tag_key(tag))
            unique.append(tag)
    if rules.which == "target":
        return with_trigger_first(unique, rules.trigger)
    return remove_tags(unique, [rules.trigger])
