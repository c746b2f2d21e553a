"""What a run writes under `output/` (DESIGN.md): LoKr files, the run's plan, samples.

LoKr files are written by the network issue's `save_network` with `lokr_metadata`, so they load in
every UI (kohya/LyCORIS names, `ss_*` and `modelspec.*` metadata) and carry the run's plan. A LoKr
is made to be shared, so its metadata names no folder of the user's disk: local files by their
name (sd-scripts writes the model's base name), the project's own paths relative to it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from gafu.families import get_family
from gafu.network.files import lokr_metadata, save_network
from gafu.network.lokr import LokrNetwork
from gafu.plan.model import Plan
from gafu.project import Project


@dataclass(frozen=True)
class RunPaths:
    """Where a run's files go."""

    output: Path
    plan: Path
    state: Path
    logs: Path
    samples: Path
    stop_file: Path

    @classmethod
    def of(cls, project: Project) -> RunPaths:
        """The paths of `project`'s output folder."""
        output = project.output_dir
        return cls(
            output=output,
            plan=project.plan_path,
            state=output / "state",
            logs=output / "logs",
            samples=output / "samples",
            stop_file=output / "STOP",
        )

    @property
    def progress(self) -> Path:
        """`output/logs/progress.jsonl` (CONTRACTS.md)."""
        return self.logs / "progress.jsonl"

    def epoch_file(self, name: str, epoch: int) -> Path:
        """`<name>-e000010.safetensors`."""
        return self.output / f"{name}-e{epoch:06d}.safetensors"

    def step_file(self, name: str, step: int) -> Path:
        """`<name>-step000123.safetensors`: the LoKr saved when a run is stopped between epochs."""
        return self.output / f"{name}-step{step:06d}.safetensors"

    def final_file(self, name: str) -> Path:
        """`<name>.safetensors`: the LoKr at the end of the run."""
        return self.output / f"{name}.safetensors"

    def sample_dir(self, epoch: int) -> Path:
        """`samples/e000010/`: grids rendered during training."""
        return self.samples / f"e{epoch:06d}"


def local_name(value: str) -> str:
    """A local path as a shared file shows it: its name; a hub repo id or a relative path as written."""
    path = PureWindowsPath(value)  # splits at `/` and `\\` alike
    outside = PurePosixPath(value).is_absolute() or path.is_absolute() or value.startswith("~")
    return path.name if outside or ".." in path.parts else value


def shareable_plan(data: dict[str, Any], project_root: Path) -> dict[str, Any]:
    """`Plan.to_dict()` data naming no folder of the user's: model files by name, project paths relative."""
    model = data["model"]
    names = {
        model[key]: local_name(model[key]) for key in ("path", "config", "tokenizers", "vae") if model[key]
    }
    root = project_root.resolve()
    for form in {str(root), root.as_posix()}:
        names.update({form + os.sep: "", form + "/": "", form: "."})
    # Longest first: a file's path is replaced before the folder that holds it.
    ordered = sorted(((old, new) for old, new in names.items() if old != new), key=lambda p: -len(p[0]))

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            for old, new in ordered:
                value = value.replace(old, new)
            return value
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        return value

    return clean(data)


@dataclass
class LokrWriter:
    """Saves the network being trained with the run's metadata."""

    plan: Plan
    tag_frequency: dict[str, dict[str, int]]
    started_at: float
    project_root: Path
    saved: list[Path] = field(default_factory=list)

    def save(
        self, network: LokrNetwork, path: Path, *, epoch: int, step: int, extra: dict[str, str] | None = None
    ) -> Path:
        """Write the LoKr at `path` (atomically), in the plan's save dtype; `extra` joins its metadata."""
        plan = self.plan
        metadata = lokr_metadata(
            plan.network.settings,
            get_family(plan.model.family),
            output_name=plan.run.output_name,
            resolution=plan.dataset.resolution,
            num_epochs=plan.batch.epochs,
            epoch=epoch,
            steps=step,
            tag_frequency=self.tag_frequency,
            trigger=plan.trigger,
            plan=shareable_plan(plan.to_dict(), self.project_root),
            base_model=local_name(plan.model.path),
            training_started_at=self.started_at,
        )
        metadata.update(extra or {})
        save_network(network, path, metadata=metadata, dtype=plan.run.save_dtype)
        self.saved.append(path)
        return path
