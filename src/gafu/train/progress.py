"""How a run tells the outside world: progress events to callbacks, `output/logs/progress.jsonl`
(for other processes, e.g. the UI), TensorBoard and a progress bar.

Events are plain dicts, the same for every listener (CONTRACTS.md): `latents` (the cache being
filled, before the first step), `start`, `step`, `save`, `eval` (the style probe's figures of the
file just saved), `sample`, `stopping` (a stop was asked for: the run ends after the step in
progress), and one of `done`, `stopped`, `error`. Only the main process reports.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Event = dict[str, Any]
Callback = Callable[[Event], None]


class ProgressLog:
    """Appends one JSON object per line to `progress.jsonl`, flushed as it happens."""

    def __init__(self, path: Path):
        self.path = path
        self._failed = False

    def __call__(self, event: Event) -> None:
        """Append `event` (a full disk stops the log, not the run)."""
        if self._failed:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(event, ensure_ascii=False) + "\n")
                handle.flush()
        except OSError:
            self._failed = True


STYLE_FIGURES = ("fit", "leakage", "trigger_share", "drift")  # the `eval` event's figures


class TensorBoardLog:
    """Loss, learning rates, timings and the style probe's figures as TensorBoard scalars."""

    def __init__(self, log_dir: Path):
        self._log_dir = log_dir
        self._writer = None

    def __call__(self, event: Event) -> None:
        """Write the scalars of a `step` or `eval` event."""
        if event["event"] == "eval":
            self._style(event)
            return
        if event["event"] != "step":
            if event["event"] in ("done", "stopped", "error"):
                self.close()
            return
        writer = self._open()
        if writer is None:
            return
        step = event["step"]
        writer.add_scalar("loss/step", event["loss"], step)
        writer.add_scalar("lr/unet", event["lr_unet"], step)
        if event.get("lr_te") is not None:
            writer.add_scalar("lr/text_encoder", event["lr_te"], step)
        writer.add_scalar("time/samples_per_s", event["samples_per_s"], step)
        writer.add_scalar("time/step_s", event["step_s"], step)
        writer.add_scalar("epoch", event["epoch"], step)

    def _style(self, event: Event) -> None:
        writer = self._open()
        if writer is None:
            return
        for name in STYLE_FIGURES:
            if event.get(name) is not None:
                writer.add_scalar(f"style/{name}", event[name], event["step"])
        writer.flush()

    def _open(self):
        if self._writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(log_dir=str(self._log_dir))
            except (ImportError, OSError):
                self._writer = False  # no TensorBoard (or no room for its log): the run goes on
        return self._writer or None

    def close(self) -> None:
        """Flush and close the event file."""
        if self._writer:
            with contextlib.suppress(OSError):
                self._writer.close()
        self._writer = None


class ProgressBar:
    """tqdm bars on stderr: the latent cache, then step, epoch, loss, learning rate, samples/s and ETA.

    A stop request is printed even without bars (a Ctrl-C must be answered at once).
    """

    def __init__(self, enabled: bool = True):
        self._enabled = enabled
        self._bar = None
        self._latents = None

    def __call__(self, event: Event) -> None:
        """Move the bars on `latents` and `step` events; print saves, a stop request and the end."""
        kind = event["event"]
        if kind == "stopping":
            self._write(f"gafu: {event['message']}")
        if not self._enabled:
            return
        if kind == "latents":
            self._latents_event(event)
        elif kind == "start":
            from tqdm import tqdm

            done = event["resumed_from"] or 0
            self._bar = tqdm(total=event["total_steps"], initial=done, unit="step", file=sys.stderr)
        elif kind == "step" and self._bar is not None:
            self._bar.update(event["step"] - self._bar.n)
            self._bar.set_postfix_str(
                f"epoch {event['epoch']}/{event['epochs']} loss {event['loss']:.4f} "
                f"lr {event['lr_unet']:.2e} {event['samples_per_s']:.1f} samples/s",
                refresh=False,
            )
        elif kind in ("save", "sample") and self._bar is not None:
            what = event.get("path") or ", ".join(event.get("grids", []))
            self._bar.write(f"epoch {event['epoch']}: {kind}d {what}", file=sys.stderr)
        elif kind == "eval" and self._bar is not None:
            self._bar.write(f"epoch {event['epoch']}: {style_line(event)}", file=sys.stderr)
        elif kind in ("done", "stopped", "error") and self._bar is not None:
            self._bar.close()
            self._bar = None

    def _latents_event(self, event: Event) -> None:
        if self._latents is None:
            from tqdm import tqdm

            self._latents = tqdm(
                total=event["total"], unit="picture", desc="encoding latents", file=sys.stderr
            )
        self._latents.update(event["done"] - self._latents.n)
        if event["done"] >= event["total"]:
            self._latents.close()
            self._latents = None

    def _write(self, line: str) -> None:
        """A line above the bars (or a plain line on stderr)."""
        if self._bar is not None:
            self._bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)


class Reporter:
    """Sends each event, stamped with the time, to every listener."""

    def __init__(self, listeners: list[Callback]):
        self._listeners = listeners

    def __call__(self, kind: str, **fields: Any) -> Event:
        """Build the event `{"event": kind, "time": now, **fields}` and hand it to every listener."""
        event = {"event": kind, "time": round(time.time(), 3), **fields}
        for listener in self._listeners:
            listener(event)
        return event


class Throughput:
    """Samples per second over the run's recent steps, and the time left."""

    def __init__(self, window: int = 20):
        self._window = window
        self._steps: list[tuple[float, int]] = []

    def add(self, seconds: float, samples: int) -> None:
        """Record one optimizer step."""
        self._steps = [*self._steps[-(self._window - 1) :], (seconds, samples)]

    @property
    def samples_per_s(self) -> float:
        """Recent samples per second."""
        seconds = sum(s for s, _ in self._steps)
        return sum(n for _, n in self._steps) / seconds if seconds > 0 else 0.0

    def eta(self, steps_left: int) -> float:
        """Seconds left at the recent step time."""
        if not self._steps:
            return 0.0
        return steps_left * sum(s for s, _ in self._steps) / len(self._steps)


def style_line(event: Event) -> str:
    """An `eval` event for people: the four figures and what the probe cost."""
    from gafu.eval.figures import StyleFigures

    figures = StyleFigures(**{name: event.get(name) for name in STYLE_FIGURES})
    share = event.get("share_of_training")
    spent = "" if share is None else f", {share:.1%} of the training since the last save".replace("%", " %")
    return f"{figures.text()} (style probe {event['seconds']:.1f} s{spent})"
