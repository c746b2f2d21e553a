"""A stand-in for `gafu train` that keeps its contract (progress.jsonl, output/STOP, train.lock,
output/plan.json, states in output/state, a saved run refused without --resume or --restart,
--restart moving the previous run to output/runs/).

The UI's tests start it instead of the real trainer where they test the UI's side of the
contract (start twice, stop, resume, start over, the event stream, a detached child outliving
the server), so they need no model and take a second. Usage:
`python fake_trainer.py PROJECT [--resume | --restart]`; the run length comes from FAKE_EPOCHS,
FAKE_STEPS_PER_EPOCH and FAKE_STEP_SECONDS; FAKE_FAIL makes it fail with that error.
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
    from gafu.errors import GafuError
    from gafu.train.runs import check_start, move_aside
    from gafu.train.state import list_states

    root, options = Path(sys.argv[1]), sys.argv[2:]
    output = root / "output"
    if os.environ.get("FAKE_FAIL"):  # a run that fails as it starts, with gafu's one-line error
        print(f"gafu: error: {os.environ['FAKE_FAIL']}", file=sys.stderr)
        return 2
    resume = "--resume" in options
    try:
        check_start(output, resume=resume, restart="--restart" in options)
    except GafuError as exc:
        print(f"gafu: error: {exc}", file=sys.stderr)
        return 2
    output.mkdir(parents=True, exist_ok=True)
    lock, stop = output / "train.lock", output / "STOP"
    lock.write_text(str(os.getpid()), encoding="utf-8")
    epochs = int(os.environ.get("FAKE_EPOCHS", "2"))
    per_epoch = int(os.environ.get("FAKE_STEPS_PER_EPOCH", "3"))
    pause = float(os.environ.get("FAKE_STEP_SECONDS", "0.1"))
    total = epochs * per_epoch
    start = list_states(output / "state")[-1][0] if resume else 0
    if not resume:
        move_aside(output)
        plan = {"batch": {"total_steps": total, "steps_per_epoch": per_epoch, "epochs": epochs}}
        (output / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    name = tomllib.loads((root / "gafu.toml").read_text(encoding="utf-8"))["project"]["trigger"]
    (output / "logs").mkdir(parents=True, exist_ok=True)
    with (output / "logs" / "progress.jsonl").open("a", encoding="utf-8") as log:

        def emit(event: str, **data) -> None:
            log.write(json.dumps({"event": event, "time": time.time(), **data}) + "\n")
            log.flush()

        emit(
            "start", pid=os.getpid(), total_steps=total, epochs=epochs, resumed_from=start if resume else None
        )
        try:
            for step in range(start + 1, total + 1):
                time.sleep(pause)
                epoch = (step - 1) // per_epoch + 1
                if stop.exists():
                    stop.unlink()
                    emit("stopping", step=step, reason="STOP file", message=f"stopping after step {step}")
                    file = f"{name}-step{step:06d}.safetensors"
                    (output / file).write_bytes(b"{}")
                    save_state(output, step)
                    emit("stopped", message=f"stopped at step {step}", path=f"output/{file}")
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
            save_state(output, total)
            emit("done", message="training finished", path=f"output/{name}.safetensors")
        finally:
            lock.unlink(missing_ok=True)
    return 0


def save_state(output: Path, step: int) -> None:
    state = output / "state" / f"step-{step:08d}.pt"  # the name gafu.train.state gives a state
    state.parent.mkdir(exist_ok=True)
    state.write_bytes(b"fake")


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
