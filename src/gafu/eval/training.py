"""The style probe inside `gafu train`: the base model's losses once per run, the LoKr's at every save.

The network being trained is measured as it is (weight 1); the base model is the same network
unhooked, so weight 0 is the base exactly. Models go to eval mode and come back, and torch's
random state is untouched: a run with the probe trains the same weights as one without.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from gafu.eval.cache import LossCache, model_key
from gafu.eval.figures import StyleFigures, style_figures
from gafu.eval.probe import ProbeLosses, StyleProbe
from gafu.train.data import TrainPicture

METADATA_KEY = "gafu_style_probe"  # in a saved LoKr: the figures at weight 1, measured at its save


@dataclass(frozen=True)
class ProbeResult:
    """One measurement: the figures, the mean losses behind them, and what it cost."""

    figures: StyleFigures
    base: dict[str, float | None]  # case → mean loss of the base model
    lokr: dict[str, float | None]  # case → mean loss with the LoKr
    probe: dict  # StyleProbe.describe()
    weight: float
    seconds: float
    base_cached: bool  # the base model's losses came from this run's earlier save or the disk cache

    def metadata(self) -> dict[str, str]:
        """The LoKr file's metadata entry (safetensors metadata values are strings)."""
        data = {
            "weight": self.weight,
            **self.figures.to_dict(),
            "losses": {"base": self.base, "lokr": self.lokr},
            "probe": self.probe,
        }
        return {METADATA_KEY: json.dumps(data)}

    def event(self) -> dict:
        """The fields of the `eval` progress event."""
        base = "cached" if self.base_cached else "measured"
        return {
            **self.figures.to_dict(),
            "weight": self.weight,
            "seconds": round(self.seconds, 3),
            "base": base,
        }


def read_metadata_figures(metadata: dict[str, str]) -> dict | None:
    """The figures a LoKr file carries (`METADATA_KEY`), or None."""
    try:
        data = json.loads(metadata[METADATA_KEY])
        return data if isinstance(data, dict) else None
    except (KeyError, ValueError):
        return None


class TrainingProbe:
    """Measures the run's network on the plan's probe; the base model's losses are kept."""

    def __init__(self, run, pictures: list[TrainPicture], root: Path, cache_dir: Path):
        self.run = run
        scheduler = run.noise_scheduler
        self.probe = StyleProbe(run.plan, pictures, run.latents, scheduler.config.num_train_timesteps, root)
        device = run.accelerator.device
        self.cache = LossCache(
            cache_dir, self.probe.key, model_key(run.base, run.plan.run.mixed_precision, device)
        )
        self.base: ProbeLosses | None = None

    def measure(self) -> ProbeResult:
        """The figures of the network as trained so far (weight 1)."""
        from gafu.sample.render import network_at
        from gafu.sample.training import preserved_state

        run, started = self.run, time.perf_counter()
        batch_size = run.plan.batch.batch_size  # a forward pass fits where a training step did
        cached = True
        with preserved_state(run.base, run.network, vae=False):
            if self.base is None:
                self.base = self.cache.get("base")
                if self.base is None:
                    cached = False
                    with network_at(run.network, 0.0):
                        self.base = self.probe.measure(run, batch_size)
                    self.cache.put(self.base, "base")
            lokr = self.probe.measure(run, batch_size)
        return ProbeResult(
            figures=style_figures(self.base.means(), lokr.means()),
            base=self.base.means(),
            lokr=lokr.means(),
            probe=self.probe.describe(),
            weight=1.0,
            seconds=time.perf_counter() - started,
            base_cached=cached,
        )
