"""`--where`: pick pictures by the tags of their captions.

The syntax is made of plain words, so it types the same in bash, cmd and PowerShell, with no
`|`, `&`, `!` or `>` to escape:

    long_hair                       has long hair
    long_hair blue_eyes             has both (terms separated by spaces or commas: all of)
    white_dress or black_dress      has at least one of them (any of)
    no:chibi no:sketch              has neither (none of)
    long_hair no:chibi red_dress or blue_dress

Inside a term, write spaces as `_` (matching ignores `_`/space, `\\(`/`(` and case, as everywhere
in gafu). `or` binds tighter than the implicit "and" between terms; `and` may be written and
is ignored; `not:` is the same as `no:`. Several `--where` options are joined with "and".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from gafu.captions.text import tag_key
from gafu.errors import GafuError

SYNTAX_HINT = (
    "write TAG (has it), no:TAG (has not), A or B (has either), terms separated by spaces "
    'and spaces inside a tag written as _, e.g. --where "long_hair no:chibi white_dress or black_dress"'
)
_NEGATIONS = ("no:", "not:")
_SEPARATORS = re.compile(r"[\s,]+")


@dataclass(frozen=True)
class TagTest:
    """One tag a caption must have (`negated`: must not have); `key` is its `tag_key`."""

    key: str
    negated: bool = False


@dataclass(frozen=True)
class TagFilter:
    """All of the `clauses` hold; a clause holds when any of its literals does."""

    clauses: tuple[tuple[TagTest, ...], ...]
    text: str

    def matches(self, tags: Iterable[str]) -> bool:
        """True when a caption with `tags` passes the filter."""
        keys = {tag_key(t) for t in tags}
        return all(any((test.key in keys) != test.negated for test in clause) for clause in self.clauses)

    @property
    def keys(self) -> set[str]:
        """Every tag the filter names (to warn about tags no caption holds)."""
        return {test.key for clause in self.clauses for test in clause}


def parse_where(expressions: str | Iterable[str]) -> TagFilter:
    """Parse one `--where` expression (or several, joined by "and"); a malformed one is a GafuError."""
    texts = [expressions] if isinstance(expressions, str) else list(expressions)
    clauses: list[tuple[TagTest, ...]] = []
    for text in texts:
        clauses.extend(_parse_one(text))
    if not clauses:
        raise GafuError("--where is empty", hint=SYNTAX_HINT)
    return TagFilter(clauses=tuple(clauses), text=" and ".join(t.strip() for t in texts))


def _parse_one(text: str) -> list[tuple[TagTest, ...]]:
    words = [w for w in _SEPARATORS.split(text) if w and w.lower() != "and"]
    clauses: list[tuple[TagTest, ...]] = []
    current: list[TagTest] = []
    expect_tag = True  # after a start or an `or`, a tag must follow
    for word in words:
        if word.lower() == "or":
            if expect_tag:
                raise _malformed(text, "`or` needs a tag on each side")
            expect_tag = True
            continue
        if not expect_tag:  # a new term: the previous clause is complete
            clauses.append(tuple(current))
            current = []
        current.append(_test(word, text))
        expect_tag = False
    if expect_tag and current:
        raise _malformed(text, "`or` needs a tag on each side")
    if current:
        clauses.append(tuple(current))
    return clauses


def _test(word: str, text: str) -> TagTest:
    for prefix in _NEGATIONS:
        if word.lower().startswith(prefix):
            tag = word[len(prefix) :]
            if not tag:
                raise _malformed(text, f"`{prefix}` needs a tag right after it (no space)")
            return TagTest(tag_key(tag), negated=True)
    return TagTest(tag_key(word))


def _malformed(text: str, reason: str) -> GafuError:
    return GafuError(f"malformed --where expression {text!r}: {reason}", hint=SYNTAX_HINT)
