"""Reading kohya's files: sd-scripts' `--config_file` and `--dataset_config` TOMLs, or kohya_ss's JSON.

A training config becomes one flat table of sd-scripts options (sd-scripts flattens the TOML's
tables the same way; the GUI's own key names are translated in `gafu.kohya.gui`). The dataset
comes from the dataset TOML (`[general]`, `[[datasets]]`, `[[datasets.subsets]]`, each level
inheriting from the one above and from the training config, as sd-scripts' `config_util`
does) or, without one, from `train_data_dir` / `reg_data_dir` and their `<repeats>_<name>`
folders (D5).
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gafu.errors import GafuError
from gafu.fsio import read_text_utf8
from gafu.kohya.gui import gui_options

# sd-scripts' dataset options that a `[[datasets]]` table sets for all its subsets
# (config_util.ConfigSanitizer.DATASET_ASCENDABLE_SCHEMA).
DATASET_OPTIONS = frozenset(
    {
        "batch_size",
        "bucket_no_upscale",
        "bucket_reso_steps",
        "enable_bucket",
        "max_bucket_reso",
        "min_bucket_reso",
        "resolution",
        "network_multiplier",
        "validation_seed",
        "validation_split",
        "resize_interpolation",
    }
)
# What makes a subset a subset rather than a setting it inherits.
SUBSET_KEYS = frozenset({"image_dir", "is_reg", "num_repeats"})


@dataclass
class Subset:
    """One folder of training pictures, as sd-scripts' DreamBooth subsets have them."""

    image_dir: Path
    is_reg: bool
    num_repeats: int
    where: str  # for messages: `dataset.toml datasets[0].subsets[1]` or `train_data_dir 10_mzh`
    from_folder_name: bool = False  # repeats from a `<repeats>_<name>` folder under train/reg_data_dir


@dataclass
class Setting:
    """One value a dataset TOML sets, and where (for listing what gafu does not use)."""

    key: str
    value: Any
    where: str  # `general`, `datasets[0]`, `datasets[0].subsets[1]`
    is_reg: bool = False  # set in a regularization subset


@dataclass
class KohyaFiles:
    """What the kohya files say: options by sd-scripts name, and the subsets to train on."""

    config_path: Path
    dataset_path: Path | None
    options: dict[str, Any]  # the training config (GUI keys translated), then the dataset's values
    subsets: list[Subset]
    settings: list[Setting] = field(default_factory=list)  # every value the dataset TOML sets
    origin: dict[str, str] = field(default_factory=dict)  # option → where the dataset TOML sets it
    gui: bool = False  # the config is kohya_ss's JSON
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """The files, for messages."""
        names = [self.config_path.name] + ([self.dataset_path.name] if self.dataset_path else [])
        return " + ".join(names)


def read_kohya_files(config_path: Path, dataset_path: Path | None = None) -> KohyaFiles:
    """Read a kohya training config (and its dataset config) into options and subsets."""
    config_path = Path(config_path).expanduser()
    options, gui = read_training_config(config_path)
    if dataset_path is None and options.get("dataset_config"):
        dataset_path = existing_path(str(options["dataset_config"]), config_path.parent)
        if dataset_path is None:
            raise GafuError(
                f"{config_path}: dataset_config {options['dataset_config']} does not exist here",
                path=config_path,
                hint="pass the dataset TOML with --dataset",
            )
    files = KohyaFiles(config_path, dataset_path, options, [], gui=gui)
    if dataset_path is not None:
        _read_dataset_toml(files, Path(dataset_path).expanduser())
    else:
        _read_data_dirs(files)
    if not any(not subset.is_reg for subset in files.subsets):
        raise GafuError(
            f"{files.describe()} name no training pictures (no subset without is_reg)",
            path=dataset_path or config_path,
            hint="give the dataset TOML with --dataset, or set train_data_dir in the config",
        )
    return files


def read_training_config(path: Path) -> tuple[dict[str, Any], bool]:
    """The options of an sd-scripts config TOML (tables flattened), or of kohya_ss's JSON; and
    whether it was the GUI's JSON."""
    text = read_text_utf8(path, what="kohya config")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise GafuError(
                f"{path} is not valid JSON (line {exc.lineno}: {exc.msg})", path=path, hint="fix the file"
            ) from exc
        if not isinstance(data, dict):
            raise GafuError(f"{path} is not a kohya_ss config (expected a JSON object)", path=path)
        return gui_options(data), True
    data = _load_toml(path, text)
    flat: dict[str, Any] = {}
    for key, value in data.items():  # sd-scripts' read_config_from_file: tables are for reading only
        flat.update(value if isinstance(value, dict) else {key: value})
    return flat, False


def _load_toml(path: Path, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        hint = "Windows paths need forward slashes or 'single quotes' in TOML" if "\\" in text else "fix it"
        raise GafuError(f"{path} is not valid TOML ({exc})", path=path, hint=hint) from exc


def _read_dataset_toml(files: KohyaFiles, path: Path) -> None:
    """Subsets and their inherited settings from an sd-scripts dataset config."""
    files.dataset_path = path
    data = _load_toml(path, read_text_utf8(path, what="kohya dataset config"))
    general = data.get("general", {})
    datasets = data.get("datasets", [])
    levels: list[tuple[dict[str, Any], str]] = [(general, "general")]
    if not isinstance(general, dict) or not isinstance(datasets, list) or not datasets:
        raise GafuError(
            f"{path} is not an sd-scripts dataset config (no [[datasets]])",
            path=path,
            hint="give the TOML that sd-scripts takes as --dataset_config",
        )
    files.settings += [Setting(key, value, "general") for key, value in general.items()]
    for d, dataset in enumerate(datasets):
        where = f"datasets[{d}]"
        files.settings += [Setting(k, v, where) for k, v in dataset.items() if k != "subsets"]
        for s, subset in enumerate(dataset.get("subsets", [])):
            sub_where = f"{where}.subsets[{s}]"
            is_reg = bool(subset.get("is_reg", False))
            files.settings += [
                Setting(k, v, sub_where, is_reg) for k, v in subset.items() if k not in SUBSET_KEYS
            ]
            if "metadata_file" in subset or "conditioning_data_dir" in subset:
                raise GafuError(
                    f"{path} {sub_where} is a fine-tuning or ControlNet subset; gafu trains DreamBooth-style "
                    "folders of pictures and captions (D5)",
                    path=path,
                    hint="describe the pictures as image_dir subsets",
                )
            files.subsets.append(_subset(files, path, subset, sub_where, is_reg))
            if not is_reg and len(levels) == 1:  # the first target subset gives gafu's values
                levels += [(_dataset_values(dataset), where), (subset, sub_where)]
    # sd-scripts' fallbacks: subset > dataset > general > the training config's options
    for values, where in levels:
        for key, value in values.items():
            if key not in SUBSET_KEYS:
                files.options[key], files.origin[key] = value, where


def _dataset_values(dataset: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in dataset.items() if k != "subsets"}


def _subset(files: KohyaFiles, path: Path, subset: dict[str, Any], where: str, is_reg: bool) -> Subset:
    raw = subset.get("image_dir")
    if not isinstance(raw, str) or not raw:
        raise GafuError(f"{path} {where} has no image_dir", path=path, hint="give each subset its folder")
    image_dir = existing_path(raw, path.parent, files.config_path.parent)
    if image_dir is None or not image_dir.is_dir():
        raise GafuError(
            f"{path} {where}: the folder {raw} does not exist here",
            path=path,
            hint="fix image_dir (a relative path is read from the TOML's folder)",
        )
    repeats = subset.get("num_repeats", 1)  # sd-scripts' default
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise GafuError(f"{path} {where}: num_repeats = {repeats!r} is not a whole number ≥ 1", path=path)
    return Subset(image_dir, is_reg, repeats, f"{path.name} {where}")


def _read_data_dirs(files: KohyaFiles) -> None:
    """DreamBooth-style folders: `<repeats>_<name>` folders under train_data_dir and reg_data_dir."""
    from gafu.layout import parse_concept_folder

    for key, is_reg in (("train_data_dir", False), ("reg_data_dir", True)):
        raw = files.options.get(key)
        if not raw:
            continue
        folder = existing_path(str(raw), files.config_path.parent)
        if folder is None or not folder.is_dir():
            raise GafuError(
                f"{files.config_path}: {key} {raw} does not exist here",
                path=files.config_path,
                hint=f"fix {key} (a relative path is read from the config's folder)",
            )
        concepts = sorted(p for p in folder.iterdir() if p.is_dir() and parse_concept_folder(p.name))
        if not concepts:
            raise GafuError(
                f"{key} {folder} holds no `<repeats>_<name>` folders, which is where sd-scripts looks",
                path=folder,
                hint="put the pictures in e.g. 10_mystyle/ inside it (D5)",
            )
        for concept in concepts:
            repeats = parse_concept_folder(concept.name)[0]  # type: ignore[index]
            files.subsets.append(
                Subset(concept, is_reg, repeats, f"{key} {concept.name}", from_folder_name=True)
            )
    if not files.subsets:
        raise GafuError(
            f"{files.config_path} names no dataset (no dataset_config, no train_data_dir)",
            path=files.config_path,
            hint="pass the dataset TOML with --dataset",
        )


def existing_path(raw: str, *bases: Path) -> Path | None:
    """`raw` as given if it exists, else relative to each of `bases` (a kohya path is relative to
    the folder sd-scripts ran in, which gafu cannot know); None when none exists."""
    path = Path(raw).expanduser()
    candidates = [path] if path.is_absolute() else [path, *(base / path for base in bases)]
    return next((candidate.resolve() for candidate in candidates if candidate.exists()), None)
