"""Where a regularization choice goes: gafu.toml's `[sources]`, and optionally a copy of the pictures.

Either `[sources] reg` names the pool and `[sources.include] reg` lists the chosen pictures (the
pool stays as it is), or the chosen pictures are copied into a folder the user names, which then
becomes `[sources] reg`. The user's files are never moved or overwritten.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gafu.config import load_config, save_config
from gafu.errors import GafuError
from gafu.fsio import atomic_path, sha256_file
from gafu.project import Project
from gafu.reg.pick import PickResult


@dataclass
class Written:
    """What a choice changed."""

    reg: str  # [sources] reg now
    include: int  # pictures in [sources.include] reg (0: every picture of the folder)
    previous_reg: str
    copied: list[str] = field(default_factory=list)  # files written into the copy folder
    lines: list[str] = field(default_factory=list)  # what to tell the user

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return asdict(self)


def write_choice(project: Project, result: PickResult, *, copy_to: Path | None = None) -> Written:
    """Record `result`'s pictures as the regularization set in gafu.toml (copying them first if asked)."""
    if not result.picks:
        raise GafuError("nothing was chosen, so gafu.toml is left as it is")
    pool = Path(result.pool)
    config = load_config(project.config_path)
    previous = config.sources.reg
    lines = []
    if copy_to is not None:
        folder = _copy_folder(project, pool, Path(copy_to))
        copied = copy_pictures(pool, result.chosen, folder)
        config.sources.reg = folder.as_posix()
        config.sources.include.reg = []
        lines.append(f"copied {len(copied)} new pictures into {folder} ({len(result.chosen)} chosen)")
    else:
        copied = []
        config.sources.reg = pool.as_posix()
        config.sources.include.reg = list(result.chosen)
    if previous and Path(previous).expanduser() != Path(config.sources.reg) and config.sources.exclude.reg:
        lines.append(
            f"[sources.exclude] reg cleared: its patterns named pictures of {previous}, not of the new folder"
        )
        config.sources.exclude.reg = []
    save_config(config, project.config_path)
    include = len(config.sources.include.reg)
    what = f"[sources.include] reg lists the {include} chosen pictures" if include else "every picture in it"
    lines.insert(0, f"gafu.toml: [sources] reg = {config.sources.reg} ({what})")
    if previous and previous != config.sources.reg:
        lines.append(f"  (it was {previous})")
        stale = _prepared_from_elsewhere(project, Path(config.sources.reg))
        if stale:
            lines.append(
                f"  {stale} regularization pictures prepared from the old folder stay in dataset/reg until "
                "`gafu prep --prune` (their captions are kept)"
            )
    return Written(config.sources.reg, include, previous, copied, lines)


def _prepared_from_elsewhere(project: Project, folder: Path) -> int:
    """Prepared regularization pictures whose original is not in `folder`."""
    from gafu.prep.manifest import load_manifest

    resolved = folder.resolve()
    return sum(
        1
        for key, entry in load_manifest(project.prep_manifest_path).entries.items()
        if entry.set == "reg"
        and (project.root / key).is_file()
        and resolved not in Path(entry.source).resolve().parents
    )


def _copy_folder(project: Project, pool: Path, folder: Path) -> Path:
    folder = folder.expanduser().resolve()
    protected = [("the pool", pool.resolve()), ("the project", project.root)]
    target = project.source_dir("target")
    if target is not None:
        protected.append(("the target folder", target.resolve()))
    for what, path in protected:
        if folder == path or path in folder.parents:
            raise GafuError(f"--copy-to {folder} is inside {what}", hint="name a folder of its own")
    return folder


def copy_pictures(pool: Path, chosen: list[str], folder: Path) -> list[str]:
    """Copy the chosen pool pictures into `folder`, keeping their subfolders; returns those copied.

    A file already there with the same content is left alone; one with other content stops the
    copy before anything is written, naming it.
    """
    plan = []
    for relative in chosen:
        source, target = pool / relative, folder / relative
        if target.exists():
            if sha256_file(target) != sha256_file(source):
                raise GafuError(
                    f"{target} already exists with other content; gafu does not overwrite it",
                    path=target,
                    hint="choose an empty folder for --copy-to, or move that file",
                )
            continue
        plan.append((relative, source, target))
    for _, source, target in plan:
        with atomic_path(target, action="copy to") as tmp:
            shutil.copy2(source, tmp)
    return [relative for relative, _, _ in plan]
