"""`gafu tags stats` and `gafu tags show`: tag frequencies per set, and one picture's caption."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from gafu.captions.dataset import (
    CaptionedPicture,
    SetChoice,
    chosen_sets,
    find_picture,
    load_captions,
    read_picture_caption,
    relative_name,
)
from gafu.captions.text import tag_key
from gafu.check.coverage import not_counted_keys
from gafu.config import SetName
from gafu.prep.manifest import load_manifest
from gafu.project import Project


@dataclass
class TagCount:
    """How many captions of each set hold one tag (in any spelling)."""

    tag: str  # the spelling seen most often
    counts: dict[SetName, int]

    def to_dict(self) -> dict:
        """Plain data for `--json`."""
        return {"tag": self.tag, **self.counts}


@dataclass
class TagStats:
    """Tag frequencies of the chosen sets, side by side, most frequent first."""

    sets: tuple[SetName, ...]
    pictures: dict[SetName, int]
    captioned: dict[SetName, int]
    tags: list[TagCount] = field(default_factory=list)

    def share(self, count: int, which: SetName) -> float:
        """`count` as a share of the set's captioned pictures."""
        return count / self.captioned[which] if self.captioned[which] else 0.0

    def to_dict(self, top: int = 0) -> dict:
        """Plain data for `--json` (the first `top` tags; 0 = all)."""
        shown = self.tags[:top] if top else self.tags
        return {
            "sets": list(self.sets),
            "pictures": self.pictures,
            "captioned": self.captioned,
            "distinct_tags": len(self.tags),
            "tags": [t.to_dict() for t in shown],
        }


def count_tags(captioned: list[CaptionedPicture], which: SetName) -> Counter[str]:
    """Captions of set `which` holding each tag, by `tag_key`."""
    return Counter(tag_key(t) for c in captioned if c.set == which for t in c.tags)


def tag_stats(project: Project, sets: SetChoice = "both") -> TagStats:
    """Tag frequencies of the chosen sets (unreadable captions count as uncaptioned)."""
    which_sets = chosen_sets(sets)
    captioned = load_captions(project, which_sets)
    spellings: dict[str, Counter[str]] = {}
    for item in captioned:
        for tag in item.tags:
            spellings.setdefault(tag_key(tag), Counter())[tag] += 1
    per_set = {which: count_tags(captioned, which) for which in which_sets}
    counts = [
        TagCount(tag=spelled.most_common(1)[0][0], counts={w: per_set[w][key] for w in which_sets})
        for key, spelled in spellings.items()
    ]
    counts.sort(key=lambda t: ([-t.counts[w] for w in which_sets], tag_key(t.tag)))
    return TagStats(
        sets=which_sets,
        pictures={w: sum(1 for c in captioned if c.set == w) for w in which_sets},
        captioned={w: sum(1 for c in captioned if c.set == w and c.has_caption) for w in which_sets},
        tags=counts,
    )


@dataclass
class PictureTags:
    """One picture's caption, for `gafu tags show`."""

    set: SetName
    picture: str
    caption: str
    exists: bool
    tags: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # BOM, CRLF, … (already repaired in `tags`)
    bars: str | None = None  # T4: bars prep added (from the prep manifest)
    uncovered: list[str] = field(default_factory=list)  # D3: target tags no regularization caption holds
    # (counted as `gafu check` counts coverage: the trigger and T4 unwanted tags left out)

    def to_dict(self) -> dict:
        """Plain data for `--json`."""
        return dict(self.__dict__)


def picture_tags(project: Project, name: str | Path) -> PictureTags:
    """The caption of the picture `name` (see `find_picture`), with its T4 bars and D3 uncovered tags."""
    picture = find_picture(project, name)
    item = read_picture_caption(picture)
    if item.error is not None:
        raise item.error
    relative = relative_name(project, picture.path)
    shown = PictureTags(
        set=picture.set,
        picture=relative,
        caption=relative_name(project, picture.caption_path),
        exists=item.has_caption,
        tags=item.tags,
        problems=item.caption.problems if item.caption else [],
        bars=load_manifest(project.prep_manifest_path).bars_for(relative),
    )
    if picture.set == "target" and project.pictures("reg"):
        covered = count_tags(load_captions(project, ("reg",)), "reg")
        skipped = not_counted_keys(project.config.project.trigger, project.config.check.unwanted)
        shown.uncovered = [t for t in item.tags if tag_key(t) not in covered and tag_key(t) not in skipped]
    return shown
