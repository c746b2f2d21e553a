"""`gafu.toml`: the user's choices, loaded into one typed object that rejects unknown keys.

The file holds what the user chose; every other value is a default from `gafu.recipe`.
`gafu plan` resolves this object (with the dataset and the GPU) into the plan that the
trainer uses; no stage reads `gafu.toml` values that the plan has already decided.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import tomli_w

from gafu import recipe
from gafu.errors import ConfigError, GafuError
from gafu.families import DEFAULT_FAMILY, FAMILIES
from gafu.fsio import read_text_utf8, write_text_atomic
from gafu.versioning import upgrade

CONFIG_VERSION = 1
_DEFAULT_MEANING = re.compile(r"\b(?:0|unset|auto|empty) = ([^;]+)")
CONFIG_NAME = "gafu.toml"
LONG_LINE = 100  # a list longer than this is written one item a line

SetName = Literal["target", "reg"]
SETS: tuple[SetName, ...] = ("target", "reg")


def _opt(default: Any, doc: str, **extra: Any) -> Any:
    """A config field with a default and a one-line doc shown in the written gafu.toml."""
    if isinstance(default, list | tuple | dict):
        value = list(default) if not isinstance(default, dict) else dict(default)
        return field(default_factory=lambda: type(value)(value), metadata={"doc": doc, **extra})
    return field(default=default, metadata={"doc": doc, **extra})


@dataclass(kw_only=True)
class ProjectSection:
    """Who and what the LoKr is for."""

    trigger: str = _opt("", "T3: the trigger word, first tag of every target caption")
    family: str = _opt(DEFAULT_FAMILY, f"model family: {', '.join(FAMILIES)}")
    repeats: int = _opt(recipe.REPEATS, "P3/D5: repeats per target picture (the folder's `<repeats>_`)")


@dataclass(kw_only=True)
class ConceptSource:
    """A folder of originals trained as a concept folder of its own, `<repeats>_<name>` (D5)."""

    folder: str = _opt("", "the folder of originals (never modified)")
    set: SetName = _opt("target", "target or reg")
    repeats: int = _opt(recipe.REPEATS, "D5: repeats of its pictures")
    name: str = _opt("", "the concept folder's name; empty = the folder's own, less its `<repeats>_`")


@dataclass(kw_only=True)
class SourcePatterns:
    """File names or globs per set, relative to the set's folder of originals (`old/*.png`)."""

    target: list[str] = _opt([], "target originals")
    reg: list[str] = _opt([], "regularization originals")

    def for_set(self, which: SetName) -> list[str]:
        """The patterns of one set."""
        return self.target if which == "target" else self.reg


@dataclass(kw_only=True)
class SourcesSection:
    """The user's own folders; gafu only reads them."""

    target: str = _opt("", "D1: folder of the target style's pictures (never modified)")
    reg: str = _opt("", "D2: folder of other styles' pictures; empty for none (never modified)")
    concepts: list[ConceptSource] = _opt(
        [], "D5: more folders, each its own `<repeats>_<name>` concept (kohya's subsets)"
    )
    exclude: SourcePatterns = field(
        default_factory=SourcePatterns,
        metadata={"doc": "D1: originals set aside: prep moves them out of dataset/, captions kept"},
    )
    include: SourcePatterns = field(
        default_factory=SourcePatterns,
        metadata={"doc": "only these originals (empty = all); `gafu reg pick` writes the reg list"},
    )


@dataclass(kw_only=True)
class ModelSection:
    """The base model and where its parts come from."""

    path: str = _opt("", "single-file .safetensors, diffusers folder, or hub repo id")
    config: str = _opt("", "diffusers-format config folder for a single file (default: SDXL's, shipped)")
    tokenizers: str = _opt("", "folder holding tokenizer/ and tokenizer_2/ (default: model or hub cache)")
    vae: str = _opt("", "optional separate VAE (file or folder); default: the checkpoint's own")


@dataclass(kw_only=True)
class PrepSection:
    """How originals become training pictures (D4, D5)."""

    mode: Literal["pad", "bucket"] = _opt("pad", "D4a pad to a square, or D4b keep aspect for buckets")
    background: Literal["white", "black"] = _opt(recipe.PAD_BACKGROUND, "D4a: padding colour")
    side: int = _opt(0, "D4a: square side, 1024–1536; 0 = the family's training side")
    max_side: int = _opt(recipe.BUCKET_MAX_SIDE, "D4b: longest side in bucket mode (≤ 1536)")
    upscale_warn: float = _opt(recipe.UPSCALE_WARN_FACTOR, "flag pictures upscaled more than this")
    on_reg_duplicate: Literal["error", "drop"] = _opt(
        "error", "D2: a target picture in the reg folder is an error, or is dropped from reg"
    )
    caption_extensions: list[str] = _opt(
        list(recipe.ORIGINAL_CAPTION_SUFFIXES),
        "D5: captions beside the originals, carried to pictures without one (first found)",
    )
    workers: int = _opt(0, "processes for prep; 0 = all cores")


@dataclass(kw_only=True)
class TagSetSection:
    """Tagging choices for one set."""

    threshold: float = _opt(0.0, "T2: general-tag threshold")
    mcut: bool = _opt(False, "use MCut (largest probability gap) instead of the threshold")
    exclude: list[str] = _opt([], "tags never written (any spelling: `a_b`, `a b`, `a \\(b\\)`)")
    add: list[str] = _opt([], "tags added to every caption of the set")


def _target_tags() -> TagSetSection:
    return TagSetSection(threshold=recipe.TARGET_THRESHOLD)


def _reg_tags() -> TagSetSection:
    return TagSetSection(threshold=recipe.REG_THRESHOLD)


@dataclass(kw_only=True)
class TagSection:
    """The WD tagger and its thresholds (T1–T4)."""

    tagger: str = _opt(recipe.TAGGER, "T1: WD tagger folder (model.onnx + selected_tags.csv) or hub id")
    character_threshold: float = _opt(recipe.CHARACTER_THRESHOLD, "threshold for character tags")
    include_rating: bool = _opt(False, "write the rating tag (general/sensitive/...) too")
    escape_parentheses: bool = _opt(False, "write `\\(` `\\)` as prompt UIs expect (trainers read raw)")
    score_floor: float = _opt(recipe.SCORE_FLOOR, "scores kept for --rethreshold")
    batch_size: int = _opt(8, "pictures per tagger batch")
    target: TagSetSection = field(default_factory=_target_tags, metadata={"doc": "target set (T2: 0.5)"})
    reg: TagSetSection = field(default_factory=_reg_tags, metadata={"doc": "regularization set (T2: 0.35)"})

    def for_set(self, which: SetName) -> TagSetSection:
        """The per-set section."""
        return self.target if which == "target" else self.reg


@dataclass(kw_only=True)
class CheckSection:
    """What `gafu check` looks for."""

    unwanted: list[str] = _opt(list(recipe.UNWANTED_TAGS), "T4: tags of features not to learn")
    style_tags: list[str] = _opt(list(recipe.STYLE_TAGS), "D1: tagger tags of how a picture is drawn")
    style_model: str = _opt("", "D1: CLIP vision model (hub id or folder) as one more style cue; empty = off")


@dataclass(kw_only=True)
class TrainSection:
    """Overrides of the recipe's training values; `gafu plan` resolves each (P1–P9)."""

    epochs: int = _opt(recipe.EPOCHS, "P1")
    unet_lr: float = _opt(recipe.UNET_LR, "P4: U-Net learning rate (1e-3 to 1.5e-3)")
    text_encoder_lr_ratio: float = _opt(recipe.TEXT_ENCODER_LR_RATIO, "P4: TE LR = U-Net LR × this")
    train_text_encoder: bool = _opt(True, "P4: train both text encoders")
    optimizer: Literal["adamw", "adamw8bit"] = _opt(recipe.OPTIMIZER, "P5")
    restart_every_epochs: int = _opt(recipe.RESTART_EVERY_EPOCHS, "P5: cosine restart period")
    batch_size: int = _opt(0, "P2: pictures per step; 0 = largest that fits the GPU")
    gradient_accumulation: int = _opt(0, "P2: 0 = effective batch / batch size")
    keep_tokens: int = _opt(recipe.KEEP_TOKENS, "P7: leading tags never shuffled")
    shuffle_caption: bool = _opt(recipe.SHUFFLE_CAPTION, "P7")
    caption_dropout_rate: float = _opt(recipe.CAPTION_DROPOUT, "P7: must stay 0")
    caption_tag_dropout_rate: float = _opt(recipe.CAPTION_DROPOUT, "P7: must stay 0")
    caption_dropout_every_n_epochs: int = _opt(0, "P7: must stay 0")
    multires_noise_iterations: int = _opt(recipe.MULTIRES_NOISE_ITERATIONS, "P8")
    multires_noise_discount: float = _opt(recipe.MULTIRES_NOISE_DISCOUNT, "P8")
    noise_offset: float = _opt(0.0, "optional noise offset; 0 = off")
    min_snr_gamma: float = _opt(0.0, "optional min-SNR weighting gamma; 0 = off")
    v_parameterization: bool | None = _opt(None, "P9: unset = from the family")
    zero_terminal_snr: bool | None = _opt(None, "P9: unset = from the family")
    scale_v_pred_loss_like_noise_pred: bool | None = _opt(None, "P9: unset = from the family")
    resolution: int = _opt(0, "training side; 0 = the family's")
    mixed_precision: Literal["auto", "bf16", "fp16", "no"] = _opt("auto", "auto = bf16 where supported")
    gradient_checkpointing: bool = _opt(True, "trade compute for memory")
    max_grad_norm: float = _opt(recipe.MAX_GRAD_NORM, "gradient clipping; 0 = off")
    save_every_epochs: int = _opt(recipe.SAVE_EVERY_EPOCHS, "P1: a LoKr every N epochs")
    keep_states: int = _opt(recipe.KEEP_STATES, "resumable states kept")
    regularization: bool = _opt(True, "D2: train with the reg set (false: without, e.g. to compare runs)")
    sample_every_epochs: int = _opt(0, "P10: sample grids during training; 0 = off")
    seed: int = _opt(recipe.SEED, "random seed")
    output_name: str = _opt("", "LoKr file name; empty = the trigger word")
    save_dtype: Literal["fp16", "bf16", "fp32"] = _opt(recipe.SAVE_DTYPE, "dtype of saved LoKr files")
    lokr_kernel: Literal["auto", "gafu", "lycoris"] = _opt("auto", "LoKr forward: gafu's fast or LyCORIS's")
    vram_gb: float = _opt(0.0, "GPU memory to plan for; 0 = detect")


@dataclass(kw_only=True)
class NetworkSection:
    """The LoKr network (P6)."""

    dim: int = _opt(recipe.LINEAR_DIM, "P6: linear dim")
    conv_dim: int = _opt(recipe.CONV_DIM, "P6: conv dim (≤ 64 advised)")
    factor: int = _opt(recipe.FACTOR, "P6: 8, or 4 for a larger, more detailed file")
    alpha: float | None = _opt(None, "unset = dim (scale 1, as LyCORIS's full-matrix mode)")
    conv_alpha: float | None = _opt(None, "unset = conv_dim")
    preset: str = _opt(recipe.LYCORIS_PRESET, "LyCORIS preset")


@dataclass(kw_only=True)
class SampleSection:
    """Sample grids (P10)."""

    weights: list[float] = _opt(list(recipe.SAMPLE_WEIGHTS), "P10: LoKr weights, one row each")
    prompts: list[str] = _opt([], "prompts without the trigger; empty = from the dataset's tags")
    negative: str = _opt(recipe.SAMPLE_NEGATIVE, "negative prompt")
    seed: int = _opt(recipe.SAMPLE_SEED, "fixed seed, so grids compare across epochs")
    sampler: str = _opt("", "scheduler name; empty = the family's")
    steps: int = _opt(0, "0 = the family's")
    cfg: float = _opt(0.0, "0 = the family's")
    width: int = _opt(0, "0 = the family's training side")
    height: int = _opt(0, "0 = the family's training side")


@dataclass(kw_only=True)
class EvalSection:
    """The style probe: fit, leakage, trigger share and drift from the model's own loss (`gafu eval`)."""

    during_training: bool = _opt(True, "measure the style probe at every saved epoch")
    pictures: int = _opt(recipe.PROBE_PICTURES, "probe pictures per set (target, reg)")
    holdout: int = _opt(0, "N pictures per set kept out of training as the probe; 0 = probe trained ones")
    timesteps: int = _opt(recipe.PROBE_TIMESTEPS, "fixed timesteps spread over the noise schedule")
    seed: int = _opt(recipe.PROBE_SEED, "seed of the probe's fixed noise")


@dataclass(kw_only=True)
class KohyaSection:
    """What `gafu init --from-kohya` read; `gafu plan` shows these values as from kohya."""

    config: str = _opt("", "the kohya training config (sd-scripts .toml, or the GUI's .json)")
    dataset: str = _opt("", "the kohya dataset config (.toml)")
    values: list[str] = _opt([], "gafu.toml values the kohya files set, as `train.unet_lr = 0.0005`")
    unused: list[str] = _opt([], "kohya options gafu does not use, as `xformers = true`")


@dataclass(kw_only=True)
class Config:
    """The whole of `gafu.toml`."""

    version: int = CONFIG_VERSION
    project: ProjectSection = field(default_factory=ProjectSection)
    sources: SourcesSection = field(default_factory=SourcesSection)
    model: ModelSection = field(default_factory=ModelSection)
    prep: PrepSection = field(default_factory=PrepSection)
    tag: TagSection = field(default_factory=TagSection)
    check: CheckSection = field(default_factory=CheckSection)
    train: TrainSection = field(default_factory=TrainSection)
    network: NetworkSection = field(default_factory=NetworkSection)
    sample: SampleSection = field(default_factory=SampleSection)
    eval: EvalSection = field(default_factory=EvalSection)
    kohya: KohyaSection = field(default_factory=KohyaSection, metadata={"omit_when_default": True})

    def to_dict(self) -> dict[str, Any]:
        """Plain data (None values left out, as TOML has no null)."""
        return _drop_none(dataclasses.asdict(self))


# --- loading ---------------------------------------------------------------------------

# Migrations from version N to N + 1, applied in order to older files. Version 1 is the first.
MIGRATIONS: dict[int, typing.Callable[[dict[str, Any]], dict[str, Any]]] = {}


def migrate(data: dict[str, Any], *, source: str = CONFIG_NAME) -> dict[str, Any]:
    """Bring a raw config dict up to CONFIG_VERSION, or raise for a version gafu does not know."""
    return upgrade(
        data,
        current=CONFIG_VERSION,
        migrations=MIGRATIONS,
        source=source,
        kind="config",
        missing=1,
        error=ConfigError,
    )


def config_from_dict(data: dict[str, Any], *, source: str = CONFIG_NAME) -> Config:
    """Build a Config from plain data, rejecting unknown keys and wrong types with clear errors."""
    return _build(Config, migrate(dict(data), source=source), prefix="", source=source)


def load_config(path: Path) -> Config:
    """Load and validate a `gafu.toml`."""
    text = read_text_utf8(path, what="config")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        hint = "fix the line it names"
        if "\\" in text:
            hint = "Windows paths need forward slashes or 'single quotes' in TOML"
        raise ConfigError(f"{path} is not valid TOML ({exc})", path=path, hint=hint) from exc
    config = config_from_dict(data, source=str(path))
    _check_trigger(config, path)
    return config


def _check_trigger(config: Config, path: Path) -> None:
    """T3: a trigger edited into gafu.toml is held to what `gafu init` accepts (it names folders and tags)."""
    from gafu.trigger import validate_trigger

    try:
        validate_trigger(config.project.trigger)
    except GafuError as exc:
        raise ConfigError(
            f"{path}: [project] trigger: {exc}", path=path, hint="fix it in gafu.toml"
        ) from None


def _build(cls: type, data: Any, *, prefix: str, source: str, default: Any = None) -> Any:
    """Overlay `data` on `default` (an instance of cls), so a partial table keeps the other defaults."""
    if not isinstance(data, dict):
        where = prefix.rstrip(".") or "the file"
        raise ConfigError(f"{source}: [{where}] must be a table, not {_kind(data)}")
    base = default if default is not None else cls()
    names = [f.name for f in dataclasses.fields(cls)]
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(_unknown_key_message(prefix + key, key, names, source))
        if dataclasses.is_dataclass(hints[key]):
            kwargs[key] = _build(
                hints[key], value, prefix=f"{prefix}{key}.", source=source, default=getattr(base, key)
            )
        else:
            kwargs[key] = _coerce(hints[key], value, name=prefix + key, source=source)
    return dataclasses.replace(base, **kwargs)


def _unknown_key_message(full: str, key: str, valid: list[str], source: str) -> str:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    section = full.rsplit(".", 1)[0] if "." in full else ""
    guess = f"; did you mean {(section + '.' if section else '') + close[0]!r}?" if close else ""
    listing = "" if close else f" (valid keys here: {', '.join(valid)})"
    return f"{source}: unknown key {full!r}{guess}{listing}"


def _coerce(hint: Any, value: Any, *, name: str, source: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):  # an item of an array of tables
        return _build(hint, value, prefix=f"{name}.", source=source)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, name=name, source=source)
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise ConfigError(f"{source}: {name} = {value!r} is not one of {choices}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {name} must be a list, not {_kind(value)}")
        return [_coerce(args[0], item, name=f"{name}[{i}]", source=source) for i, item in enumerate(value)]
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {name} must be true or false, not {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: {name} must be a whole number, not {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{source}: {name} must be a number, not {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: {name} must be a string, not {value!r}")
        return value
    raise TypeError(f"config field {name} has an unsupported type {hint!r}")  # a bug in gafu, not the file


def _kind(value: Any) -> str:
    return {dict: "a table", list: "a list", str: "a string"}.get(type(value), type(value).__name__)


def _drop_none(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _drop_none(v) for k, v in data.items() if v is not None}
    return data


# --- writing ---------------------------------------------------------------------------


def render_config(config: Config) -> str:
    """TOML text for `config`: values that differ from the defaults are set, the rest shown commented.

    Every line carries its one-line doc, so the file explains itself; loading the text back
    gives an equal Config.
    """
    lines = [
        "# gafu project — see README.md. Commented lines show the recipe's defaults (RECIPE.md rules).",
        f"version = {CONFIG_VERSION}",
    ]
    _render_section(config, Config(), "", lines)
    return "\n".join(lines) + "\n"


def _render_section(obj: Any, default: Any, prefix: str, lines: list[str]) -> None:
    nested = []
    for f in dataclasses.fields(obj):
        if f.name == "version":
            continue
        value, default_value = getattr(obj, f.name), getattr(default, f.name)
        if dataclasses.is_dataclass(value) or (value and _is_table_list(value)):
            nested.append((f, value, default_value))
            continue
        doc = f.metadata.get("doc", "")
        if value is None:
            lines.append(f"# {f.name} =   # {doc}")
            continue
        line = f"{f.name} = {toml_value(value)}"
        if value == default_value:
            lines.append(f"# {line}   # {doc}")
        elif isinstance(value, list) and len(line) > LONG_LINE:  # one item a line (an include list)
            lines += [f"{f.name} = [   # {doc}", *(f"  {toml_value(v)}," for v in value), "]"]
        else:
            lines.append(f"{line}   # {doc}")
    for f, value, default_value in nested:
        name = prefix + f.name
        if f.metadata.get("omit_when_default") and value == default_value:
            continue
        if isinstance(value, list):  # an array of tables: every item written out
            for item in value:
                lines.extend(["", f"[[{name}]]   # {_first_line(type(item).__doc__)}"])
                lines.extend(
                    f"{g.name} = {toml_value(getattr(item, g.name))}   # {g.metadata.get('doc', '')}"
                    for g in dataclasses.fields(item)
                )
            continue
        doc = f.metadata.get("doc") or _first_line(type(value).__doc__)
        lines.extend(["", f"[{name}]   # {doc}"])
        _render_section(value, default_value, name + ".", lines)


def _is_table_list(value: Any) -> bool:
    return isinstance(value, list) and all(dataclasses.is_dataclass(item) for item in value)


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0]


def toml_value(value: Any) -> str:
    """One-line TOML for a scalar or a flat list (tomli_w spreads lists over lines)."""
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return tomli_w.dumps({"v": value}).strip()[len("v = ") :]


def save_config(config: Config, path: Path) -> None:
    """Write `config` to `path` atomically (see `render_config`)."""
    write_text_atomic(path, render_config(config))


def default_text(section: str, key: str) -> str:
    """A key's default as people read it: `0.0013`, or what its 0 or unset means (`0 = off`)."""
    cls = typing.get_type_hints(Config)[section]
    doc = next(f.metadata.get("doc", "") for f in dataclasses.fields(cls) if f.name == key)
    default = getattr(cls(), key)
    meaning = _DEFAULT_MEANING.search(doc)
    if meaning and not isinstance(default, bool) and default in (0, None, "", "auto"):
        return f"{'unset' if default is None else toml_value(default)} = {meaning.group(1).strip()}"
    if default in (None, ""):
        return "not set"
    return toml_value(default)


def config_field_names(section: str) -> list[str]:
    """Names of the keys of one section, e.g. `train` (for UIs and error messages)."""
    cls = typing.get_type_hints(Config)[section]
    return [f.name for f in dataclasses.fields(cls)]
