"""`gafu init --from-kohya`: a project whose `gafu.toml` holds what kohya's files say.

Phases: read the files (`gafu.kohya.files`) → the model family (P9: v-prediction, or the
model's name) → map the options (`gafu.kohya.options`) → the folders of originals: kohya's
subsets, or `train_data_dir` / `reg_data_dir` with their `<repeats>_<name>` folders (D5) →
apply each value the plan would accept (one it refuses is listed with the reason instead) →
the trigger word (T3) → write `gafu.toml`, with a `[kohya]` section recording what was imported
and what gafu does not use, and `reports/kohya-import.json`.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gafu import recipe
from gafu.captions.text import caption_from_bytes, parse_caption, remove_tags, tag_key
from gafu.config import (
    CONFIG_NAME,
    ConceptSource,
    Config,
    KohyaSection,
    default_text,
    save_config,
    toml_value,
)
from gafu.errors import ConfigError, GafuError
from gafu.families import DEFAULT_FAMILY, FAMILIES, get_family
from gafu.fsio import read_text_utf8
from gafu.images import list_source_pictures
from gafu.init import check_source_folders, model_reference_or_none
from gafu.kohya.files import KohyaFiles, existing_path, read_kohya_files
from gafu.kohya.options import REASONS, Mapped, Unused, map_options
from gafu.layout import parse_concept_folder
from gafu.plan.network import layer_widths
from gafu.plan.validate import check_network, check_prediction, check_train
from gafu.prep.captions import caption_beside
from gafu.project import Project
from gafu.reports import write_report
from gafu.trigger import tagger_vocabulary, validate_trigger

# Words in a checkpoint's file name that tell its family (P9), most specific first.
FAMILY_HINTS = (
    ("vpred", "noob-vpred"),
    ("v-pred", "noob-vpred"),
    ("v_pred", "noob-vpred"),
    ("noob", "noob-eps"),
    ("illustrious", "illustrious"),
    ("sd_xl_base", "sdxl"),
    ("sdxl", "sdxl"),
)
V_PREDICTION_FLAGS = ("v_parameterization", "zero_terminal_snr", "scale_v_pred_loss_like_noise_pred")


@dataclass
class ImportedValue:
    """A gafu.toml value the kohya files set, beside the recipe's."""

    key: str  # "train.unet_lr"
    value: Any
    recipe: Any  # gafu's default (the recipe's value, or 0/None for "from the family / the GPU")
    options: str  # the kohya option(s) it comes from

    def recipe_text(self) -> str:
        """The recipe's value as gafu.toml documents it: `0.0013`, `0 = largest that fits the GPU`."""
        return default_text(*self.key.split("."))


@dataclass
class KohyaImport:
    """What `init_from_kohya` wrote and what the user should know."""

    config_path: Path
    config: Config
    imported: list[ImportedValue] = field(default_factory=list)
    unused: list[Unused] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    report_path: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data, for `reports/kohya-import.json`."""
        return {
            "config_path": self.config_path.as_posix(),
            "imported": [dataclasses.asdict(v) for v in self.imported],
            "unused": [{**dataclasses.asdict(u), "line": u.line()} for u in self.unused],
            "warnings": self.warnings,
            "notes": self.notes,
        }


def init_from_kohya(
    project_dir: Path,
    config_file: Path,
    dataset_file: Path | None = None,
    *,
    trigger: str | None = None,
    family: str | None = None,
    force: bool = False,
) -> KohyaImport:
    """Create `project_dir/gafu.toml` from a kohya training config (and dataset config)."""
    project_dir = Path(project_dir)
    config_path = project_dir / CONFIG_NAME
    if config_path.exists() and not force:
        raise GafuError(f"{config_path} already exists", hint="pass --force to overwrite it")
    files = read_kohya_files(config_file, dataset_file)
    result = KohyaImport(config_path=config_path, config=Config())
    config = result.config
    config.tag.tagger = recipe.TAGGER
    config.project.family = _family(files.options, family, result)
    mapped = map_options(files.options, family_side=get_family(config.project.family).training_side)
    _place_dataset_settings(files, mapped)
    _sources(config, files, project_dir)
    _model(config, files, mapped, result)
    _prediction_flags(config, mapped)
    suffixes = mapped.values.get("prep.caption_extensions", config.prep.caption_extensions)
    config.project.trigger, trigger_warnings = _trigger(trigger, files, config, mapped, suffixes)
    _sample_prompts(files, mapped, config.project.trigger)
    result.imported = _apply(config, mapped, project_dir)
    result.unused, result.warnings = mapped.unused, [*result.warnings, *mapped.warnings, *trigger_warnings]
    result.notes += mapped.notes
    if not any(subset.is_reg for subset in files.subsets):
        result.warnings.append(
            "no regularization subset: without one the style leaks into every tag of the target set "
            "(RECIPE D2)"
        )
    config.kohya = KohyaSection(
        config=files.config_path.resolve().as_posix(),
        dataset=files.dataset_path.resolve().as_posix() if files.dataset_path else "",
        values=[f"{v.key} = {toml_value(v.value)}" for v in result.imported],
        unused=[u.line() for u in result.unused],
    )
    save_config(config, config_path)
    result.report_path = write_report(project_dir / "reports", "kohya-import", result.to_dict())
    return result


# --- family and model (P9) -------------------------------------------------------------------------


def _family(options: dict[str, Any], given: str | None, result: KohyaImport) -> str:
    """`--family`, else noob-vpred for v-prediction, else from the model's name, else the default."""
    v_prediction = bool(options.get("v_parameterization"))
    if given:
        family = get_family(given)
        if v_prediction and not family.is_v_prediction:
            raise GafuError(
                f"the kohya config trains v-prediction (v_parameterization) but --family {given} is an "
                "epsilon model (P9)",
                hint="use --family noob-vpred, or drop --family",
            )
        return given
    if options.get("v2") or options.get("sdxl") is False:
        result.warnings.append("the kohya config is not for SDXL; gafu trains SDXL-family models only")
    if v_prediction:
        return "noob-vpred"
    name = Path(str(options.get("pretrained_model_name_or_path") or "")).name.lower()
    for hint, family in FAMILY_HINTS:
        if hint in name:
            return family
    result.notes.append(
        f"model family not known from the kohya files: {DEFAULT_FAMILY} assumed "
        f"(pass --family, one of {', '.join(FAMILIES)})"
    )
    return DEFAULT_FAMILY


def _model(config: Config, files: KohyaFiles, mapped: Mapped, result: KohyaImport) -> None:
    """Model paths as gafu can find them: local ones made absolute, hub ids as written."""
    for key in ("model.path", "model.vae"):
        value = mapped.values.get(key)
        if value is None:
            continue
        found = model_reference_or_none(value, files.config_path.parent)
        if found is None:
            result.warnings.append(
                f"{mapped.origin[key]} {value} is not on this machine: set [{key.replace('.', '] ')} "
                "in gafu.toml before `gafu train`"
            )
        mapped.values[key] = found or value


def _prediction_flags(config: Config, mapped: Mapped) -> None:
    """P9 flags are the family's; only a value that differs from it is kept in gafu.toml."""
    family = get_family(config.project.family)
    defaults = {
        "v_parameterization": family.is_v_prediction,
        "zero_terminal_snr": family.zero_terminal_snr,
        "scale_v_pred_loss_like_noise_pred": family.is_v_prediction,
    }
    for name in V_PREDICTION_FLAGS:
        if mapped.values.get(f"train.{name}") == defaults[name]:
            del mapped.values[f"train.{name}"]


# --- folders of originals (D5) -------------------------------------------------------------------------


def _sources(config: Config, files: KohyaFiles, project_dir: Path) -> None:
    """train_data_dir / reg_data_dir as gafu's folders (their concept folders keep their repeats),
    or each dataset-TOML subset as a `[[sources.concepts]]` folder with its num_repeats."""
    subsets = files.subsets
    targets = [s for s in subsets if not s.is_reg]
    if all(s.from_folder_name for s in subsets):
        outer = {s.is_reg: s.image_dir.parent for s in subsets}
        config.sources.target = outer[False].as_posix()
        config.sources.reg = outer[True].as_posix() if True in outer else ""
    else:
        config.sources.concepts = [
            ConceptSource(
                folder=s.image_dir.as_posix(), set="reg" if s.is_reg else "target", repeats=s.num_repeats
            )
            for s in subsets
        ]
    config.project.repeats = max(s.num_repeats for s in targets)
    check_source_folders(
        project_dir,
        [s.image_dir for s in targets],
        [s.image_dir for s in subsets if s.is_reg],
        hint="the regularization subset must be a separate folder",
    )


def _place_dataset_settings(files: KohyaFiles, mapped: Mapped) -> None:
    """Where the dataset TOML set an unused option; its values that differ from the one gafu uses."""
    for unused in mapped.unused:
        unused.where = unused.where or files.origin.get(unused.option, "")
    for setting in files.settings:
        if files.origin.get(setting.key) == setting.where:
            continue  # the value gafu read (listed already where it is not used)
        used = files.options.get(setting.key)
        if setting.key in mapped.used and setting.value == used:
            continue
        reason = (
            f"gafu uses one value for every folder: {toml_value(used)} (from {files.origin[setting.key]})"
            if setting.key in mapped.used and setting.key in files.origin
            else REASONS.get(setting.key, "gafu does not use it")
        )
        if setting.value not in (None, "", False) or setting.key in mapped.used:
            mapped.unused.append(Unused(setting.key, setting.value, reason, setting.where))


# --- applying the values ------------------------------------------------------------------------------


def _apply(config: Config, mapped: Mapped, project_dir: Path) -> list[ImportedValue]:
    """Set each mapped value that the plan and prep accept; list the others with the reason."""
    imported = []
    defaults = Config()
    for key, value in mapped.values.items():
        section, name = key.split(".")
        target = getattr(config, section)
        before = getattr(target, name)
        setattr(target, name, value)
        problem = _problem(config, project_dir)
        if problem:
            setattr(target, name, before)
            mapped.unused.append(Unused(mapped.origin[key], value, problem))
            continue
        default = getattr(getattr(defaults, section), name)
        if value != default:
            imported.append(ImportedValue(key, value, default, mapped.origin[key]))
    return imported


def _problem(config: Config, project_dir: Path) -> str:
    """Why `gafu plan` or `gafu prep` would refuse `config` ("" when they would not)."""
    from gafu.prep.settings import resolve_settings

    family = get_family(config.project.family)
    train = config.train
    try:
        check_train(train, "kohya")
        check_network(config.network, layer_widths(train_text_encoder=train.train_text_encoder), "kohya")
        check_prediction(
            family,
            v_parameterization=_flag(train.v_parameterization, family.is_v_prediction),
            zero_terminal_snr=_flag(train.zero_terminal_snr, family.zero_terminal_snr),
            scale_v_pred_loss=_flag(train.scale_v_pred_loss_like_noise_pred, family.is_v_prediction),
            source="kohya",
        )
        resolve_settings(Project(root=project_dir, config=config))
    except ConfigError as exc:
        return str(exc).removeprefix("kohya: ")
    return ""


def _flag(value: bool | None, family_value: bool) -> bool:
    return family_value if value is None else value


# --- the trigger (T3) ------------------------------------------------------------------------------------


def _trigger(
    given: str | None, files: KohyaFiles, config: Config, mapped: Mapped, suffixes: list[str]
) -> tuple[str, list[str]]:
    """`--trigger`, else the first tag every target caption shares, else the target folder's name,
    else the output name."""
    vocabulary = tagger_vocabulary(config.tag.tagger)
    if given is not None:
        return given.strip(), validate_trigger(given, vocabulary)
    candidates = [
        *_common_first_tag(files, suffixes),
        *{
            parsed[1]
            for s in files.subsets
            if not s.is_reg
            if (parsed := parse_concept_folder(s.image_dir.name))
        },
    ]
    if mapped.values.get("train.output_name"):
        candidates.append(mapped.values["train.output_name"])
    refused = []
    for candidate in candidates:
        try:
            warnings = validate_trigger(candidate, vocabulary)
        except GafuError as exc:
            refused.append(f"{candidate!r} ({exc})")
            continue
        return candidate.strip(), [
            *warnings,
            f"trigger word {candidate!r} taken from the kohya dataset; pass --trigger to choose another",
        ]
    tried = f"; tried {', '.join(refused)}" if refused else ""
    raise GafuError(
        f"no trigger word found in {files.describe()}{tried}",
        hint="pass --trigger WORD (RECIPE T3: the word that will call the style)",
    )


def _sample_prompts(files: KohyaFiles, mapped: Mapped, trigger: str) -> None:
    """kohya's sample prompts (a prompts file, or the GUI's text) as `[sample] prompts`: the prompt
    text of each line without the trigger (P10 adds it); its `--n` … options are the plan's."""
    raw = mapped.values.pop("sample.prompts", None)
    if raw is None:
        return
    option = mapped.origin["sample.prompts"]
    text = raw
    if option == "sample_prompts":  # a file
        path = existing_path(raw, files.config_path.parent)
        if path is None or path.suffix.lower() not in (".txt", ""):
            why = "not on this machine" if path is None else "gafu reads prompt files of one prompt a line"
            mapped.unused.append(Unused(option, raw, why))
            return
        text = read_text_utf8(path, what="prompts file")
    prompts = []
    for line in text.splitlines():
        prompt = line.split(" --", 1)[0].strip()
        if prompt and not prompt.startswith("#"):
            prompts.append(", ".join(remove_tags(parse_caption(prompt), [trigger])))
    if prompts:
        mapped.set("sample.prompts", [p for p in prompts if p], option)
        mapped.notes.append(f"sample prompts from {option}: their --n/--w/--s … options are left to the plan")


def _common_first_tag(files: KohyaFiles, suffixes: list[str]) -> list[str]:
    """The first tag of every target caption beside the originals, when they all share it."""
    firsts: Counter[str] = Counter()
    spelled: dict[str, str] = {}
    captions = 0
    for subset in files.subsets:
        if subset.is_reg:
            continue
        for picture in list_source_pictures(subset.image_dir):
            path = caption_beside(picture, suffixes)
            if path is None:
                continue
            try:
                tags = caption_from_bytes(path.read_bytes(), path).tags
            except (OSError, GafuError):
                continue
            captions += 1
            if tags:
                firsts[tag_key(tags[0])] += 1
                spelled.setdefault(tag_key(tags[0]), tags[0])
    if not captions or not firsts:
        return []
    key, count = firsts.most_common(1)[0]
    return [spelled[key]] if count == captions else []
