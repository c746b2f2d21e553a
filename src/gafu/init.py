"""`gafu init`: write `PROJECT/gafu.toml` pointing at the user's folders (which are never touched)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from gafu import recipe
from gafu.config import CONFIG_NAME, Config, save_config
from gafu.errors import GafuError
from gafu.families import DEFAULT_FAMILY, get_family
from gafu.trigger import tagger_vocabulary, validate_trigger

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class InitResult:
    """What `init_project` wrote and what the user should know."""

    config_path: Path
    config: Config
    warnings: list[str] = field(default_factory=list)


def init_project(
    project_dir: Path,
    *,
    target: Path,
    trigger: str,
    reg: Path | None = None,
    model: str = "",
    family: str = DEFAULT_FAMILY,
    repeats: int = recipe.REPEATS,
    force: bool = False,
) -> InitResult:
    """Create `project_dir/gafu.toml` for a target folder (and optional reg folder) and a trigger word."""
    project_dir = Path(project_dir)
    config_path = project_dir / CONFIG_NAME
    if config_path.exists() and not force:
        raise GafuError(f"{config_path} already exists", hint="pass --force to overwrite it")
    get_family(family)
    if repeats < 1:
        raise GafuError(f"--repeats must be at least 1, not {repeats}")

    target_dir = _existing_folder(target, "target")
    reg_dir = _existing_folder(reg, "regularization") if reg is not None else None
    check_source_folders(
        project_dir, [target_dir], [reg_dir] if reg_dir else [], hint="point --reg at a separate folder"
    )

    config = Config()
    config.tag.tagger = recipe.TAGGER
    warnings = validate_trigger(trigger, tagger_vocabulary(config.tag.tagger))
    config.project.trigger = trigger.strip()
    config.project.family = family
    config.project.repeats = repeats
    config.sources.target = target_dir.as_posix()
    config.sources.reg = reg_dir.as_posix() if reg_dir else ""
    config.model.path = _model_reference(model)
    if not reg_dir:
        warnings.append(
            "no regularization folder: without one the style leaks into every tag of the target "
            "set and its strength depends on the prompt (RECIPE D2); add one with --reg"
        )
    save_config(config, config_path)
    return InitResult(config_path=config_path, config=config, warnings=warnings)


def check_source_folders(project_dir: Path, targets: list[Path], regs: list[Path], *, hint: str) -> None:
    """No regularization folder overlaps a target folder (D2); none is inside the project's dataset."""
    for reg_dir in regs:
        for target_dir in targets:
            if reg_dir == target_dir or target_dir in reg_dir.parents or reg_dir in target_dir.parents:
                raise GafuError(
                    f"the regularization folder {reg_dir} and the target folder {target_dir} overlap "
                    "(RECIPE D2: no target picture may be in the regularization set)",
                    hint=hint,
                )
    dataset = (Path(project_dir) / "dataset").resolve()
    for folder in [*targets, *regs]:
        if folder == dataset or dataset in folder.parents:
            raise GafuError(
                f"{folder} is inside the project's dataset folder, which gafu writes",
                hint="point at the folder of originals",
            )


def model_reference_or_none(model: str, *bases: Path) -> str | None:
    """An existing checkpoint or folder as an absolute path (relative ones looked for in `bases`
    too), a hub repo id as written, else None."""
    local = Path(model).expanduser()
    for candidate in [local, *(base / local for base in bases if not local.is_absolute())]:
        if candidate.exists():
            return candidate.resolve().as_posix()
    if _HUB_ID.match(model) and not model.endswith((".safetensors", ".ckpt")):
        return model
    return None


def _existing_folder(path: Path, what: str) -> Path:
    folder = Path(path).expanduser()
    if not folder.exists():
        raise GafuError(f"the {what} folder {folder} does not exist", hint="check the path")
    if not folder.is_dir():
        raise GafuError(f"the {what} folder {folder} is a file, not a folder", hint="give its folder")
    return folder.resolve()


def _model_reference(model: str) -> str:
    """A local checkpoint as an absolute path; a hub repo id as written."""
    if not model:
        return ""
    found = model_reference_or_none(model)
    if found is not None:
        return found
    raise GafuError(
        f"the model {model} is neither an existing file or folder nor a hub repo id (owner/name)",
        hint="check the path",
    )
