"""What a run writes under `output/` (DESIGN.md): LoKr files, the run's plan, samples.

LoKr files are written by the network issue's `save_network` with `lokr_metadata`, so they load in
every UI (kohya/LyCORIS names, `ss_*` and `modelspec.*` metadata) and carry the run's plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

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


@dataclass
class LokrWriter:
    """Saves the network being trained with the run's metadata."""

    plan: Plan
    tag_frequency: dict[str, dict[str, int]]
    started_at: float
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
            plan=plan.to_dict(),
            base_model=plan.model.path,
            training_started_at=self.started_at,
        )
        metadata.update(extra or {})
        save_network(network, path, metadata=metadata, dtype=plan.run.save_dtype)
        self.saved.append(path)
        return path
