"""Which originals of a set go into the dataset: `[sources] include` and `[sources] exclude`.

Both take file names or globs (`*`, `?`, `[…]`) relative to the set's folder of originals,
written with `/` and compared without regard to case (as Windows and macOS compare names).
A pattern without a `/` also matches a file's bare name in any subfolder: `t003.png` and
`*.jpg` find the file wherever it is; `old/*` names a subfolder. An empty include list means
every picture of the folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from gafu.config import Config, SetName
from gafu.project import Project


def normal_pattern(pattern: str) -> str:
    """A pattern as compared: `/` separators, no leading `./`, lower case."""
    return pattern.strip().replace("\\", "/").removeprefix("./").casefold()


def pattern_matches(pattern: str, relative: str) -> bool:
    """True when `pattern` names the original at `relative` (its path in the set's folder)."""
    wanted, name = normal_pattern(pattern), relative.replace("\\", "/").casefold()
    if not wanted:
        return False
    return fnmatchcase(name, wanted) or ("/" not in wanted and fnmatchcase(name.rsplit("/", 1)[-1], wanted))


@dataclass(frozen=True)
class Selection:
    """One set's include and exclude lists."""

    which: SetName
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def excluded_by(self, relative: str) -> str | None:
        """The first exclude pattern that names `relative`, else None."""
        return next((p for p in self.exclude if pattern_matches(p, relative)), None)

    def reason(self, relative: str) -> str | None:
        """Why the original at `relative` stays out of the dataset, or None when it goes in."""
        pattern = self.excluded_by(relative)
        if pattern is not None:
            return f"excluded by {pattern!r} ([sources.exclude] {self.which})"
        if self.include and not any(pattern_matches(p, relative) for p in self.include):
            return f"not in [sources.include] {self.which}"
        return None

    def wants(self, relative: str) -> bool:
        """True when the original at `relative` goes into the dataset."""
        return self.reason(relative) is None


def set_selection(config: Config, which: SetName) -> Selection:
    """The include and exclude lists gafu.toml gives a set."""
    sources = config.sources
    return Selection(which, tuple(sources.include.for_set(which)), tuple(sources.exclude.for_set(which)))


def relative_source(project: Project, which: SetName, source: str | Path) -> str | None:
    """An original's path in its set's folder (POSIX), or None when it is not in that folder."""
    folder = project.source_dir(which)
    if folder is None:
        return None
    try:
        return Path(source).relative_to(folder).as_posix()
    except ValueError:
        try:
            return Path(source).resolve().relative_to(folder.resolve()).as_posix()
        except (ValueError, OSError):
            return None
