"""A stand-in for `gafu train` that keeps its contract (progress.jsonl, output/STOP, train.lock).

The UI's tests start it instead of the real trainer where they test the UI's side of the
contract (start twice, stop, the event stream, a detached child outliving the server), so they
need no model and take a second. Usage: `python fake_trainer.py PROJECT [--resume]`; the run
length comes from FAKE_EPOCHS, FAKE_STEPS_PER_EPOCH and FAKE_STEP_SECONDS.
"""

from __future__ import annotations

import json
import os
import sys
import time
import tomllib
from pathlib import Path

from PIL import Image


def main() -> int:
    root = Path(sys.argv[1])
    output = root / "output"
    (output / "logs").mkdir(parents=True, exist_ok=True)
    lock, stop = output / "train.lock", output / "STOP"
    holder = int(lock.read_text(encoding="utf-8") or 0) if lock.exists() else 0
    if holder and running(holder):
        print(f"gafu: error: a training run holds {lock}", file=sys.stderr)
        return 2
    lock.write_text(str(os.getpid()), encoding="utf-8")
    epochs = int(os.environ.get("FAKE_EPOCHS", "2"))
    per_epoch = int(os.environ.get("FAKE_STEPS_PER_EPOCH", "3"))
    pause = float(os.environ.get("FAKE_STEP_SECONDS", "0.1"))
    total = epochs * per_epoch
    name = tomllib.loads((root / "gafu.toml").read_text(encoding="utf-8"))["project"]["trigger"]
    with (output / "logs" / "progress.jsonl").open("a", encoding="utf-8") as log:

        def emit(event: str, **data) -> None:
            log.write(json.dumps({"event": event, "time": time.time(), **data}) + "\n")
            log.flush()

        emit("start", pid=os.getpid(), total_steps=total, epochs=epochs, resumed_from=None)
        try:
            for step in range(1, total + 1):
                time.sleep(pause)
                epoch = (step - 1) // per_epoch + 1
                if stop.exists():
                    stop.unlink()
                    emit("stopped", message=f"stopped at step {step - 1}", path=None)
                    return 0
                loss = 0.2 / step**0.5
                emit(
                    "step",
                    step=step,
                    total_steps=total,
                    epoch=epoch,
                    epochs=epochs,
                    loss=loss,
                    lr_unet=1e-3,
                    lr_te=5e-4,
                    samples_per_s=4.0,
                    eta_s=(total - step) * pause,
                )
                if step % per_epoch == 0:
                    save_epoch(root, name, emit, epoch, step)
            (output / f"{name}.safetensors").write_bytes(b"{}")
            emit("done", message="training finished", path=f"output/{name}.safetensors")
        finally:
            lock.unlink(missing_ok=True)
    return 0


def running(pid: int) -> bool:
    import psutil  # not os.kill(pid, 0): on Windows signal 0 is CTRL_C_EVENT

    return psutil.pid_exists(pid)


def save_epoch(root: Path, name: str, emit, epoch: int, step: int) -> None:
    file = f"{name}-e{epoch:06d}.safetensors"
    (root / "output" / file).write_bytes(b"{}")
    emit("save", epoch=epoch, step=step, path=f"output/{file}")
    figures = {"fit": 0.02 * epoch, "leakage": 0.004 * epoch, "trigger_share": 0.8, "drift": 0.001}
    emit(
        "eval",
        epoch=epoch,
        step=step,
        path=f"output/{file}",
        weight=1.0,
        seconds=0.1,
        base="cached",
        **figures,
    )
    grid = root / "output" / "samples" / f"e{epoch:06d}" / "grid-p01.png"
    grid.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (96, 64), (40 * epoch % 255, 120, 200)).save(grid)
    emit("sample", epoch=epoch, grids=[grid.relative_to(root).as_posix()], html=None)


if __name__ == "__main__":
    sys.exit(main())
