"""`.gafu/tag-scores/<set>.json`: every probability above the floor, per picture, for re-thresholding.

Each entry also records the picture's hash (scores of a changed picture are not used), the
tagger that made them, and the hash of the caption gafu last wrote from them: a caption whose
file no longer has that hash was edited since, and `--rethreshold` leaves it alone unless told.
The files are bookkeeping: deleting them only means the next run needs the model again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gafu.config import SetName
from gafu.errors import GafuError
from gafu.fsio import read_json, write_json_atomic
from gafu.tagging.select import PictureScores

SCORES_VERSION = 1
_DAMAGED_HINT = "delete it; the next `gafu tag --overwrite` rebuilds it"


@dataclass
class ScoredPicture:
    """One picture's kept scores and what they were made from."""

    picture_sha256: str
    tagger: str  # a key of ScoreFile.taggers
    floor: float  # scores below this were not kept
    scores: PictureScores
    caption_sha256: str | None = None  # the caption gafu last wrote from these scores


@dataclass
class TaggerIdentity:
    """Which tagger made a set of scores (by content, so a re-downloaded copy is the same tagger)."""

    reference: str
    model_sha256: str
    labels_sha256: str

    @property
    def key(self) -> str:
        """A short name for it, used in every entry."""
        return f"{self.model_sha256[:12]}-{self.labels_sha256[:12]}"


@dataclass
class ScoreFile:
    """One set's scores, keyed by picture path relative to the project root (POSIX)."""

    which: SetName
    pictures: dict[str, ScoredPicture] = field(default_factory=dict)
    taggers: dict[str, TaggerIdentity] = field(default_factory=dict)


def scores_path(scores_dir: Path, which: SetName) -> Path:
    """`.gafu/tag-scores/target.json` or `reg.json`."""
    return scores_dir / f"{which}.json"


def load_scores(path: Path, which: SetName) -> ScoreFile:
    """Read a set's score file; a missing file is empty, a damaged one a clear error."""
    if not path.exists():
        return ScoreFile(which)
    data = read_json(path, what="tag score file")
    if not isinstance(data, dict) or data.get("version") != SCORES_VERSION or data.get("set") != which:
        raise GafuError(
            f"{path} is not a {which} tag score file of version {SCORES_VERSION}", hint=_DAMAGED_HINT
        )
    try:
        taggers = {key: TaggerIdentity(**value) for key, value in data["taggers"].items()}
        pictures = {
            key: ScoredPicture(
                picture_sha256=value["picture_sha256"],
                tagger=value["tagger"],
                floor=float(value["floor"]),
                scores=PictureScores(**value["scores"]),
                caption_sha256=value.get("caption_sha256"),
            )
            for key, value in data["pictures"].items()
        }
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise GafuError(f"{path} has a damaged entry ({exc!r})", path=path, hint=_DAMAGED_HINT) from exc
    return ScoreFile(which, pictures, taggers)


def save_scores(score_file: ScoreFile, path: Path) -> None:
    """Write a set's score file atomically (taggers no entry uses any more are dropped)."""
    used = {entry.tagger for entry in score_file.pictures.values()}
    data = {
        "version": SCORES_VERSION,
        "set": score_file.which,
        "taggers": {key: vars(t) for key, t in sorted(score_file.taggers.items()) if key in used},
        "pictures": {
            key: {
                "picture_sha256": entry.picture_sha256,
                "tagger": entry.tagger,
                "floor": entry.floor,
                "caption_sha256": entry.caption_sha256,
                "scores": vars(entry.scores),
            }
            for key, entry in sorted(score_file.pictures.items())
        },
    }
    write_json_atomic(path, data)
