"""The path a real user takes, on the full SDXL architecture: a downloaded single file, tokenizers from
the hub cache, `gafu init → prep → plan → train → sample` as commands.

The checkpoint is full-size SDXL in the SGM layout of Illustrious-XL's and NoobAI-XL's published
files, fp16 on disk (6.9 GB), with random weights; SDXL base's tokenizer folders, made from the
real CLIP vocabulary, sit in the hub cache as huggingface_hub lays a download out; everything runs
offline (HF_HUB_OFFLINE=1). Training is one optimizer step at 256 px with the recipe's LoKr (1052
modules, text encoders trained), in bf16 as the plan resolves it without a GPU: the frozen base
in bf16 (6.9 GB) is what a machine with 24 GB runs; fp32 would need twice that. Each command's
peak RAM and time are printed (`pytest -s`); docs/benchmarks.md keeps a run's figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from PIL import Image

from gafu.config import load_config, save_config
from gafu.models.memory import owned_bytes
from gafu.models.tokenizers import SDXL_BASE_REPO
from tests.conftest import gafu_env, hub_cache_snapshot, write_picture

TRIGGER = "mzh_style"
UNET_MODULES, TE1_MODULES, TE2_MODULES = 788, 72, 192  # the recipe's LoKr on SDXL (LyCORIS preset "full")


@dataclass
class Measured:
    """One command: exit code, output, wall time, CPU time and the peak memory its process owned."""

    done: subprocess.CompletedProcess
    seconds: float
    cpu_seconds: float  # user + system time of the process (what a busy machine does not inflate)
    peak_bytes: int


def gafu(*args: str, timeout: float = 1500) -> Measured:
    """Run `python -m gafu ARGS` (this checkout, offline) and measure it."""
    started, cpu_before = time.perf_counter(), _children_cpu_seconds()
    process = subprocess.Popen(
        [sys.executable, "-m", "gafu", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        env=gafu_env(),
    )
    peak, stop = [0], threading.Event()

    def sample() -> None:
        watched = psutil.Process(process.pid)
        while not stop.wait(0.05):
            try:
                peak[0] = max(peak[0], owned_bytes(watched))
            except (psutil.Error, OSError):
                return

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        stop.set()
        watcher.join()
    done = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    return Measured(done, time.perf_counter() - started, _children_cpu_seconds() - cpu_before, peak[0])


def _children_cpu_seconds() -> float:
    try:
        import resource
    except ImportError:  # Windows
        return 0.0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@pytest.fixture
def full_checkpoint(tmp_path):
    """A full-size SDXL single file (fp16, random weights); deleted after, as pytest keeps temp folders."""
    import torch

    from gafu.models.synthetic import write_synthetic_checkpoint

    path = tmp_path / "models" / "illustrious-random.safetensors"
    path.parent.mkdir()
    started = time.perf_counter()
    write_synthetic_checkpoint(path, dtype=torch.float16, seed=16)
    print(f"\nwrote {path.stat().st_size / 1e9:.2f} GB in {time.perf_counter() - started:.1f} s")
    yield path
    path.unlink(missing_ok=True)


@pytest.mark.slow
def test_a_downloaded_single_file_trains_and_samples_on_the_full_architecture(
    tmp_path, full_checkpoint, sdxl_tokenizer_files
):
    started = time.perf_counter()
    snapshot = hub_cache_snapshot(SDXL_BASE_REPO, sdxl_tokenizer_files)
    assert (snapshot / "tokenizer_2" / "vocab.json").is_symlink() or sys.platform == "win32"
    target = tmp_path / "originals" / "target"
    write_picture(target / "a.png", (1200, 800), seed=3)
    project = tmp_path / "my-style"
    steps: dict[str, Measured] = {}

    # --- init, with the settings a one-step run needs
    steps["init"] = gafu(
        "init", str(project), "--target", str(target), "--trigger", TRIGGER,
        "--family", "illustrious", "--model", str(full_checkpoint), "--repeats", "1",
    )  # fmt: skip
    assert steps["init"].done.returncode == 0, steps["init"].done.stderr
    config = load_config(project / "gafu.toml")
    config.train.resolution, config.train.epochs, config.train.save_every_epochs = 256, 1, 1
    config.prep.side = 1536  # Illustrious' side (D4a); prep would take the training side, 256, otherwise
    config.sample.width = config.sample.height = 256
    config.sample.steps, config.sample.weights, config.sample.prompts = 2, [1.0], ["1girl, smile"]
    save_config(config, project / "gafu.toml")

    # --- prep (pad to Illustrious' 1536 px square), then the caption a tagger or the user would write
    steps["prep"] = gafu("prep", str(project), "--workers", "1")
    assert steps["prep"].done.returncode == 0, steps["prep"].done.stderr
    [picture] = (project / "dataset" / "train" / f"1_{TRIGGER}").glob("*.png")
    assert Image.open(picture).size == (1536, 1536)
    picture.with_suffix(".txt").write_text(f"{TRIGGER}, 1girl, smile", encoding="utf-8")

    # --- plan: one optimizer step at 256 px, the recipe's LoKr on the full architecture
    steps["plan"] = gafu("plan", str(project), "--json")
    assert steps["plan"].done.returncode == 0, steps["plan"].done.stderr
    plan = json.loads(steps["plan"].done.stdout)
    assert plan["batch"]["total_steps"] == 1 and plan["run"]["mixed_precision"] == "bf16"
    assert plan["network"]["settings"]["train_text_encoder"]
    modules = plan["network"]["summary"]["modules"]
    assert len(modules) == UNET_MODULES + TE1_MODULES + TE2_MODULES == 1052

    # --- train: load the single file (tokenizers from the hub cache), one step, save the LoKr
    steps["train"] = gafu("train", str(project), "--json")
    assert steps["train"].done.returncode == 0, steps["train"].done.stderr
    result = json.loads(steps["train"].done.stdout)
    # The tokenizers were the hub cache's whole folders: nothing built, no settings assumed.
    assert "tokenizer" not in steps["train"].done.stderr, steps["train"].done.stderr
    assert result["outcome"] == "done" and result["step"] == 1
    lokr = Path(result["lokr"])
    names = _module_names(lokr)
    assert len(names) == 1052
    assert sum(n.startswith("lora_unet_") for n in names) == UNET_MODULES
    assert sum(n.startswith("lora_te1_") for n in names) == TE1_MODULES
    assert sum(n.startswith("lora_te2_") for n in names) == TE2_MODULES
    assert names == {m["name"] for m in modules}  # exactly the modules the plan announced

    # --- sample: the final LoKr at weight 1, 2 steps at 256 px
    steps["sample"] = gafu("sample", str(project), "--json")
    assert steps["sample"].done.returncode == 0, steps["sample"].done.stderr
    pictures = sorted((project / "output" / "samples" / lokr.stem).glob("p01-w1-*.png"))
    assert [p.name for p in pictures] == ["p01-w1-plain.png", "p01-w1-trigger.png"]
    for path in pictures:
        with Image.open(path) as image:
            assert image.size == (256, 256)
            darkest, brightest = image.convert("L").getextrema()
            assert darkest < brightest  # a picture, not a flat fill

    _print_measurements(steps, time.perf_counter() - started)


def _module_names(path: Path) -> set[str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return {key.split(".", 1)[0] for key in f.keys()}  # noqa: SIM118 (safe_open is not a dict)


def _print_measurements(steps: dict[str, Measured], total: float) -> None:
    print("\nfull SDXL, one step at 256 px (peak: memory the command's process owned)")
    for name, measured in steps.items():
        print(
            f"  gafu {name:<7} {measured.seconds:7.1f} s wall {measured.cpu_seconds:7.1f} s CPU"
            f"   peak {measured.peak_bytes / 1e9:6.2f} GB"
        )
    print(f"  whole test (checkpoint written before) {total:.1f} s")
