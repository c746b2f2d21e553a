"""The style probe: the model's own denoising loss on fixed pictures, captions, noise and timesteps.

Three cases (`CASES`): the target pictures with their captions as written (trigger first, no
shuffling), the same pictures with the trigger removed, and the regularization pictures as
written. Each picture is noised at `timesteps` fixed timesteps spread over the schedule, with
noise drawn by a generator seeded from (seed, picture, timestep) on the CPU — the same draws on
every device and for every evaluation. The loss is the trainer's own (`denoising_losses`: the
plan's target, noise kind and loss weights), so the probe measures what training optimises.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from gafu.captions.text import format_caption, remove_tags
from gafu.plan.model import Plan
from gafu.train.data import TrainPicture, relative
from gafu.train.latents import CachedLatent
from gafu.train.loop import Denoising, denoising_losses
from gafu.train.noise import training_noise

CASES = ("trigger", "plain", "reg")  # target with the trigger, target without it, regularization
RowsDone = Callable[[int], None]  # called with the number of rows just measured


@dataclass(frozen=True)
class ProbeRow:
    """One picture with one caption at one fixed timestep: a row of a probe batch."""

    case: str  # one of CASES
    picture: str  # relative to the project folder, POSIX
    caption: str
    step_index: int  # which of the probe's timesteps
    timestep: int
    entry: CachedLatent
    noise: torch.Tensor  # (4, H/8, W/8), on the CPU


@dataclass
class ProbeLosses:
    """The probe's losses: case → picture → one loss per timestep."""

    by_case: dict[str, dict[str, list[float]]]

    def mean(self, case: str) -> float | None:
        """The mean loss of a case over its pictures and timesteps (None: the case has no pictures)."""
        values = [v for losses in self.by_case.get(case, {}).values() for v in losses]
        return sum(values) / len(values) if values else None

    def means(self) -> dict[str, float | None]:
        """Every case's mean."""
        return {case: self.mean(case) for case in CASES}

    def to_dict(self) -> dict[str, dict[str, list[float]]]:
        """Plain data (for caches and reports)."""
        return self.by_case

    @classmethod
    def from_dict(cls, data: dict) -> ProbeLosses:
        """Rebuild from `to_dict()` data."""
        return cls({case: {k: [float(v) for v in vs] for k, vs in data[case].items()} for case in CASES})


def probe_timesteps(count: int, schedule_steps: int) -> list[int]:
    """`count` timesteps at the centres of equal slices of the schedule (e.g. 62, 187, … 937 of 1000)."""
    return [int((k + 0.5) * schedule_steps / count) for k in range(count)]


class StyleProbe:
    """The probe's rows for one plan and one set of probe pictures, built once, measured many times."""

    def __init__(
        self,
        plan: Plan,
        pictures: list[TrainPicture],
        latents: dict[Path, CachedLatent],
        schedule_steps: int,
        root: Path,
    ):
        self.plan = plan
        self.timesteps = probe_timesteps(plan.eval.timesteps, schedule_steps)
        self.pictures = {"target": 0, "reg": 0}
        rows = []
        for picture in pictures:
            name = relative(picture.picture.path, root)
            self.pictures["reg" if picture.is_reg else "target"] += 1
            for case, caption in _cases(picture, plan.trigger):
                rows += self._rows(case, name, caption, latents[picture.picture.path])
        self.rows = rows

    def _rows(self, case: str, name: str, caption: str, entry: CachedLatent) -> list[ProbeRow]:
        rows = []
        for index, timestep in enumerate(self.timesteps):
            digest = hashlib.sha256(f"{self.plan.eval.seed}:{name}:{index}".encode()).digest()
            generator = torch.Generator("cpu").manual_seed(int.from_bytes(digest[:8], "little") >> 1)
            latent = entry.latent.to("cpu", torch.float32)[None]
            noise = training_noise(latent, generator, self.plan.loss)[0]  # the trainer's noise kind (P8)
            rows.append(ProbeRow(case, name, caption, index, timestep, entry, noise))
        return rows

    @property
    def key(self) -> str:
        """What decides the probe's losses besides the model: pictures, captions, draws, loss settings."""
        digest = hashlib.sha256()
        settings = {"loss": asdict(self.plan.loss), "seed": self.plan.eval.seed, "steps": self.timesteps}
        digest.update(json.dumps(settings, sort_keys=True).encode("utf-8"))
        for row in self.rows:
            digest.update(f"{row.case}|{row.picture}|{row.caption}|{row.timestep}".encode())
            digest.update(row.entry.latent.to(torch.float32).numpy().tobytes())
        return digest.hexdigest()

    def describe(self) -> dict:
        """What the probe is, for reports and metadata."""
        return {
            "target_pictures": self.pictures["target"],
            "reg_pictures": self.pictures["reg"],
            "timesteps": self.timesteps,
            "held_out": self.plan.eval.held_out,
            "seed": self.plan.eval.seed,
        }

    @torch.no_grad()
    def measure(self, model: Denoising, batch_size: int, on_rows: RowsDone | None = None) -> ProbeLosses:
        """The losses of `model` as it is now (whatever network is applied to it), in batches."""
        device = model.accelerator.device
        by_shape: dict[tuple, list[ProbeRow]] = {}
        for row in self.rows:
            by_shape.setdefault(tuple(row.entry.latent.shape), []).append(row)
        losses: dict[str, dict[str, list[float]]] = {case: {} for case in CASES}
        for rows in by_shape.values():
            for start in range(0, len(rows), batch_size):
                chunk = rows[start : start + batch_size]
                latents = torch.stack([r.entry.latent for r in chunk]).to(device, torch.float32)
                noise = torch.stack([r.noise for r in chunk]).to(device)
                timesteps = torch.tensor([r.timestep for r in chunk], device=device)
                values = denoising_losses(
                    model, latents, noise, timesteps, [r.caption for r in chunk], [r.entry for r in chunk]
                )
                for row, value in zip(chunk, values.tolist(), strict=True):
                    per_step = losses[row.case].setdefault(row.picture, [0.0] * len(self.timesteps))
                    per_step[row.step_index] = float(value)
                if on_rows is not None:
                    on_rows(len(chunk))
        return ProbeLosses(losses)


def _cases(picture: TrainPicture, trigger: str) -> list[tuple[str, str]]:
    """A target picture's captions with and without the trigger; a reg picture's as written."""
    if picture.is_reg:
        return [("reg", format_caption(picture.tags))]
    return [
        ("trigger", format_caption(picture.tags)),
        ("plain", format_caption(remove_tags(picture.tags, [trigger]))),
    ]
