"""`selected_tags.csv`: the names and categories of a WD tagger's outputs, in output order.

The WD taggers (v2 and v3 alike) ship it with the columns `tag_id,name,category,count`; row i
names output i of `model.onnx`. Categories are Danbooru's: 9 rating, 0 general, 4 character.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from gafu.errors import GafuError
from gafu.fsio import read_text_utf8

LABELS_FILE = "selected_tags.csv"
GENERAL = 0
CHARACTER = 4
RATING = 9
CATEGORY_NAMES = {GENERAL: "general", CHARACTER: "character", RATING: "rating"}


@dataclass(frozen=True)
class TaggerLabels:
    """The tagger's output names and their categories, index i describing output i."""

    names: tuple[str, ...]
    categories: tuple[int, ...]
    path: Path

    def __len__(self) -> int:
        return len(self.names)

    @cached_property
    def by_category(self) -> dict[int, np.ndarray]:
        """Output indices of each category, e.g. `by_category[GENERAL]`."""
        categories = np.asarray(self.categories)
        return {c: np.flatnonzero(categories == c) for c in (GENERAL, CHARACTER, RATING)}


def read_labels(path: Path) -> TaggerLabels:
    """Read a `selected_tags.csv`; a file without `name` and `category` columns is a clear error."""
    path = Path(path)
    text = read_text_utf8(path, what="tagger label file")
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip() for c in reader.fieldnames or []]
    if "name" not in columns or "category" not in columns:
        raise GafuError(
            f"{path} has no `name` and `category` columns (found: {', '.join(columns) or 'none'}), "
            "so it is not a WD tagger's selected_tags.csv",
            path=path,
            hint="use the selected_tags.csv that came with the model",
        )
    reader.fieldnames = columns
    names: list[str] = []
    categories: list[int] = []
    try:
        for row in reader:
            names.append((row["name"] or "").strip())
            categories.append(int(row["category"]))
    except (TypeError, ValueError, csv.Error) as exc:
        raise GafuError(
            f"{path} line {reader.line_num}: category is not a whole number ({exc})",
            path=path,
            hint="use the selected_tags.csv that came with the model",
        ) from exc
    if not names:
        raise GafuError(f"{path} lists no tags", path=path, hint="use the file that came with the model")
    return TaggerLabels(names=tuple(names), categories=tuple(categories), path=path)
