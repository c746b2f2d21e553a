"""The trigger word (T3): refuse one that cannot work, warn about one that may not."""

from __future__ import annotations

from functools import cache
from importlib import resources

from gafu.captions.text import tag_key
from gafu.errors import GafuError


@cache
def _shipped_list(name: str) -> frozenset[str]:
    text = resources.files("gafu.data").joinpath(name).read_text(encoding="utf-8")
    return frozenset(tag_key(line) for line in text.splitlines() if line.strip() and not line.startswith("#"))


def common_tags() -> frozenset[str]:
    """Keys of common Danbooru tags shipped with gafu."""
    return _shipped_list("common_tags.txt")


def common_words() -> frozenset[str]:
    """Common English words shipped with gafu."""
    return _shipped_list("common_words.txt")


def tagger_vocabulary(tagger: str) -> frozenset[str]:
    """Keys of every tag the WD tagger can write, if its `selected_tags.csv` is on disk; else empty.

    Looks in a local tagger folder, or in the hub cache for a repo id (never downloads).
    """
    from gafu.tagging.labels import read_labels
    from gafu.tagging.locate import find_labels_on_disk

    csv_path = find_labels_on_disk(tagger)
    if csv_path is None:
        return frozenset()
    try:
        return frozenset(tag_key(name) for name in read_labels(csv_path).names if name)
    except GafuError:
        return frozenset()


def validate_trigger(trigger: str, known_tags: frozenset[str] = frozenset()) -> list[str]:
    """Raise GafuError for a trigger word that cannot work (T3); return warnings for a doubtful one.

    Refused: empty, a comma or line break (it would split into several tags), or an ordinary
    tag that regularization captions could contain (the trigger must appear on no reg caption).
    """
    word = trigger.strip()
    if not word:
        raise GafuError("the trigger word is empty", hint="choose a made-up word, e.g. `mzh_style`")
    if "," in word or "\n" in word or "\r" in word:
        raise GafuError(
            f"the trigger word {trigger!r} contains a comma or line break, which splits it into several tags",
            hint="use one tag without commas",
        )
    key = tag_key(word)
    if key in common_tags() or key in known_tags:
        raise GafuError(
            f"the trigger word {word!r} is an ordinary tag that regularization captions can contain, "
            "so the style would not collect in it (RECIPE T3)",
            hint="choose a made-up word, e.g. the artist's name plus `_style`",
        )
    warnings = []
    if key in common_words():
        warnings.append(
            f"the trigger word {word!r} is a common English word; the text encoders already give it "
            "a meaning that will mix with the style (a made-up word works better)"
        )
    if any(c in word for c in "()[]{}<>:"):
        warnings.append(
            f"the trigger word {word!r} contains prompt syntax characters; users must escape them in prompts"
        )
    if len(key) < 3:
        warnings.append(f"the trigger word {word!r} is very short and easily collides with other text")
    return warnings
