"""A gafu project folder (DESIGN.md): where each stage reads and writes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gafu import recipe
from gafu.config import CONFIG_NAME, ConceptSource, Config, SetName, load_config
from gafu.errors import GafuError
from gafu.families import ModelFamily, get_family
from gafu.layout import DatasetPicture, concept_folder_name, list_pictures


@dataclass
class Project:
    """A project root and its loaded `gafu.toml`."""

    root: Path
    config: Config

    @classmethod
    def open(cls, path: Path | str | None = None) -> Project:
        """Open the project at `path` (its folder or its gafu.toml; default: the current folder)."""
        given = Path(path) if path is not None else Path.cwd()
        config_path = given if given.suffix == ".toml" else given / CONFIG_NAME
        if not config_path.is_file():
            if not given.exists():
                raise GafuError(f"no such project folder: {given}", hint="check the path")
            raise GafuError(
                f"{config_path} not found",
                path=config_path,
                hint="create the project with `gafu init PROJECT --target DIR --trigger WORD`",
            )
        return cls(root=config_path.parent.resolve(), config=load_config(config_path))

    # --- the user's side -----------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        """`PROJECT/gafu.toml`."""
        return self.root / CONFIG_NAME

    @property
    def family(self) -> ModelFamily:
        """The configured model family."""
        return get_family(self.config.project.family)

    def resolve(self, value: str) -> Path:
        """A path from gafu.toml: absolute as written, or relative to the project folder."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else (self.root / path)

    def source_dir(self, which: SetName) -> Path | None:
        """The user's folder of originals for a set (None when no regularization set is configured)."""
        value = self.config.sources.target if which == "target" else self.config.sources.reg
        return self.resolve(value) if value else None

    def concept_sources(self, which: SetName) -> list[ConceptSource]:
        """`[[sources.concepts]]` of a set: more folders, each its own concept folder (D5)."""
        return [concept for concept in self.config.sources.concepts if concept.set == which]

    def source_folders(self, which: SetName) -> list[Path]:
        """Every folder of originals of a set: `[sources] target`/`reg`, then its concept folders."""
        main = self.source_dir(which)
        extra = [self.resolve(concept.folder) for concept in self.concept_sources(which) if concept.folder]
        return ([main] if main else []) + extra

    def has_sources(self, which: SetName) -> bool:
        """True when gafu.toml names a folder of originals for the set."""
        return bool(self.source_dir(which) or self.concept_sources(which))

    # --- dataset/ (D5) -------------------------------------------------------------------
    @property
    def dataset_dir(self) -> Path:
        """`PROJECT/dataset`."""
        return self.root / "dataset"

    def set_dir(self, which: SetName) -> Path:
        """The outer folder a trainer is given: `dataset/train` or `dataset/reg` (D5)."""
        name = recipe.TARGET_FOLDER_NAME if which == "target" else recipe.REG_FOLDER_NAME
        return self.dataset_dir / name

    def concept_dir(self, which: SetName) -> Path:
        """`dataset/train/<repeats>_<trigger>` or `dataset/reg/<repeats>_reg` (D5)."""
        name = self.config.project.trigger if which == "target" else recipe.REG_CONCEPT_NAME
        return self.set_dir(which) / concept_folder_name(self.config.project.repeats, name)

    def aside_dir(self, which: SetName) -> Path:
        """`set-aside/train` or `set-aside/reg`: pictures and captions `[sources] exclude` took out (D1)."""
        return self.root / "set-aside" / self.set_dir(which).name

    def pictures(self, which: SetName) -> list[DatasetPicture]:
        """The prepared pictures of a set, in every concept folder of its outer folder."""
        return list_pictures(self.set_dir(which), which)

    # --- gafu's bookkeeping (.gafu/, safe to delete) --------------------------------------
    @property
    def state_dir(self) -> Path:
        """`PROJECT/.gafu`: gafu's own bookkeeping, rebuilt when deleted."""
        return self.root / ".gafu"

    @property
    def prep_manifest_path(self) -> Path:
        """Source hash + settings → output, bars added (for T4)."""
        return self.state_dir / "prep-manifest.json"

    @property
    def tag_scores_dir(self) -> Path:
        """Per-set tag probabilities, for re-thresholding without the model."""
        return self.state_dir / "tag-scores"

    @property
    def journal_dir(self) -> Path:
        """Caption edits, for undo."""
        return self.state_dir / "journal"

    @property
    def latent_cache_dir(self) -> Path:
        """VAE latents keyed by picture content + size + VAE."""
        return self.state_dir / "cache" / "latents"

    @property
    def eval_cache_dir(self) -> Path:
        """The style probe's losses keyed by probe, base model and LoKr file (`gafu eval`)."""
        return self.state_dir / "cache" / "eval"

    # --- results ---------------------------------------------------------------------------
    @property
    def reports_dir(self) -> Path:
        """`PROJECT/reports`: what each stage did."""
        return self.root / "reports"

    @property
    def output_dir(self) -> Path:
        """`PROJECT/output`: plan, LoKr files, samples, logs, state."""
        return self.root / "output"

    @property
    def plan_path(self) -> Path:
        """`output/plan.json`: the resolved plan of the run."""
        return self.output_dir / "plan.json"

    @property
    def output_name(self) -> str:
        """Base name of the LoKr files."""
        name = self.config.train.output_name or self.config.project.trigger or "gafu"
        return concept_folder_name(0, name).split("_", 1)[1]
