"""The GPU check: gafu's own training step on full-size SDXL, measured where CPU runs cannot measure it.

    python bench/gpu_check.py                          # a CUDA GPU: full SDXL at 1024 px (≤ 8 minutes)
    python bench/gpu_check.py --compile                # … plus a torch.compile row
    python bench/gpu_check.py --arch tiny --steps 1   # without CUDA: batches 1 and 2 (the suite's check)

What a row runs: the SDXL U-Net and both text encoders with random weights (built on the device:
no checkpoint, no download), bf16, gradient checkpointing, the recipe's LoKr (P6: dim 128, conv
dim 64, factor 8, LyCORIS preset "full", text encoders trained, P4), latents of the training side
as gafu's latent cache holds them, captions through both tokenizers. The step is gafu's: the plan
from `gafu.plan.resolve_plan` for a project of pictures of that side, the network and optimizer
from `gafu.train.setup`, then `gafu.train.loop.accumulate_gradients` and `optimizer_step`.

Rows: gafu's LoKr forward against LyCORIS's (`[train] lokr_kernel`), AdamW against 8-bit AdamW
(when bitsandbytes imports and the device is CUDA), at batch 1 and at the largest batch that fits
12 GB — searched under a 12 GiB cap on PyTorch's allocator (`--vram`; a real 12 GB card also
holds the CUDA context outside it), starting from the batch the plan picks for 12 GB — and, with
`--compile`, gafu/AdamW with the U-Net under torch.compile. Each row gives seconds per step
(median of `--steps` after a warm-up step), peak memory (CUDA: allocated and reserved; CPU: the
process's RAM) and the plan's memory estimate for the same settings. One table is printed and
written as JSON (`--json`). Rows stop when `--budget` seconds are spent.

No network where the GPU is? torch, transformers and accelerate installed, and gafu's other
needs carried as wheels: fill a folder on a machine with network (same OS and Python version)
and carry it with the repository:

    python bench/gpu_check.py --download-wheels wheels/      # where there is network
    python bench/gpu_check.py --wheels wheels/               # where there is none: installs them, then runs
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GIB = 1024**3
TRIGGER = "gpucheck_style"
# A caption of the length WD taggers give at the recipe's thresholds (~40 tokens).
CAPTION_TAGS = (
    "1girl, solo, long hair, looking at viewer, smile, open mouth, blue eyes, white dress, outdoors, sky"
)
# What the carried wheels must provide besides torch, transformers and accelerate.
CARRIED = ("diffusers", "lycoris-lora", "openai-clip", "tomli-w", "pillow", "psutil")
BASE_PACKAGES = ("torch", "transformers", "accelerate")


# --- wheels for a machine without network ----------------------------------------------------------
def _requirement_names(distribution: str) -> set[str]:
    """A distribution's installed dependency closure (names as pip knows them), extras left out."""
    import re

    seen, todo = set(), [distribution]
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        seen.add(name)
        for requirement in requires:
            if "extra ==" in requirement.replace("extra==", "extra =="):
                continue
            todo.append(re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0])
    return seen


def download_wheels(folder: Path) -> list[str]:
    """Wheels of the installed versions of what the check needs beyond torch, transformers and
    accelerate (their dependencies included), into `folder`."""
    needed = set().union(*(_requirement_names(name) for name in CARRIED))
    present = set().union(*(_requirement_names(name) for name in BASE_PACKAGES))
    pins = sorted(f"{name}=={metadata.version(name)}" for name in needed - present)
    folder.mkdir(parents=True, exist_ok=True)
    # `pip wheel` downloads wheels and builds one where a package ships only its source (openai-clip),
    # so the machine without network never has to build anything.
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--prefer-binary", "-w", str(folder), *pins],
        check=True,
    )
    return pins


def install_wheels(folder: Path) -> None:
    """Install every wheel in `folder` from there alone (no index, no network)."""
    wheels = sorted(str(p) for p in folder.glob("*.whl"))
    if not wheels:
        raise SystemExit(f"no wheels in {folder}: fill it with --download-wheels where there is network")
    command = [sys.executable, "-m", "pip", "install", "--no-index", "--find-links", str(folder), *wheels]
    subprocess.run(command, check=True)


# --- the model: random weights, built on the device -------------------------------------------------
def arch_config_dir(arch: str, folder: Path) -> Path | None:
    """An architecture's configs: `sdxl` (gafu's shipped SDXL), `small` (a fifth of its widths), `tiny`."""
    if arch == "sdxl":
        return None
    if arch == "tiny":
        from gafu.models.tiny import save_tiny_model

        return save_tiny_model(folder / "tiny").config_dir
    from gafu.models.configs import sdxl_config_dir

    edits = {
        "unet": {
            "block_out_channels": [64, 128, 256],
            "attention_head_dim": [2, 4, 8],
            "transformer_layers_per_block": [1, 1, 2],
            "cross_attention_dim": 512,
            "projection_class_embeddings_input_dim": 256 + 6 * 256,
        },
        "text_encoder": {"hidden_size": 256, "intermediate_size": 1024, "num_hidden_layers": 2,
                         "num_attention_heads": 4, "projection_dim": 256},
        "text_encoder_2": {"hidden_size": 256, "intermediate_size": 1024, "num_hidden_layers": 2,
                           "num_attention_heads": 4, "projection_dim": 256},
    }  # fmt: skip
    out = folder / "small"
    for name in ("unet", "vae", "text_encoder", "text_encoder_2", "scheduler"):
        file = "scheduler_config.json" if name == "scheduler" else "config.json"
        config = json.loads((sdxl_config_dir() / name / file).read_text("utf-8"))
        config.update(edits.get(name, {}))
        (out / name).mkdir(parents=True, exist_ok=True)
        (out / name / file).write_text(json.dumps(config, indent=2), "utf-8")
    (out / "model_index.json").write_text(
        (sdxl_config_dir() / "model_index.json").read_text("utf-8"), "utf-8"
    )
    return out


def random_base_model(config_dir: Path | None, device, dtype):
    """U-Net and both text encoders of the architecture with random weights, in `dtype` on `device`.

    Built on the meta device and materialised on the target in `dtype`, so full SDXL never exists
    in fp32 or on the CPU. No VAE: training reads cached latents.
    """
    from gafu.errors import GafuError
    from gafu.models.configs import sdxl_config_dir
    from gafu.models.load import BaseModel, ModelSource, meta_model
    from gafu.models.synthetic import randomize_
    from gafu.models.tokenizers import load_tokenizers

    folder = config_dir or sdxl_config_dir()
    parts = []
    for seed, module in enumerate(meta_model(folder)):
        module = module.to(dtype).to_empty(device=device)
        parts.append(randomize_(module, seed).eval())
    unet, te1, te2 = parts
    try:  # SDXL's (from the hub cache, or built from CLIP's vocabulary by openai-clip)
        found = load_tokenizers(explicit=None, candidates=[], text_encoders=(te1, te2))
        tokenizers, source = found.tokenizers, found.source
    except GafuError:  # the tiny architecture's vocabulary, or no CLIP vocabulary here at all
        tokenizers, source = (
            _tiny_tokenizers(),
            "gafu's tiny tokenizers (token content does not change timing)",
        )
    return BaseModel(
        unet=unet,
        vae=None,
        text_encoder=te1,
        text_encoder_2=te2,
        tokenizer=tokenizers[0],
        tokenizer_2=tokenizers[1],
        scheduler_config=json.loads((folder / "scheduler" / "scheduler_config.json").read_text("utf-8")),
        source=ModelSource("single-file", folder, "random weights"),
        config_dir=folder,
        tokenizers_source=source,
    )


def _tiny_tokenizers() -> tuple:
    from transformers import CLIPTokenizer

    from gafu.models.tiny import write_tiny_tokenizers

    with tempfile.TemporaryDirectory() as tmp:
        write_tiny_tokenizers(Path(tmp))
        return tuple(CLIPTokenizer.from_pretrained(Path(tmp) / name) for name in ("tokenizer", "tokenizer_2"))


# --- the project the plans are made for -------------------------------------------------------------
def make_project(folder: Path, *, pictures: int, side: int, config_dir: Path | None):
    """A project with `pictures` prepared pictures of `side` px and captions (no regularization).

    The training side is `side`, or gafu's smallest (256) for smaller pictures, which then train
    at their own size (buckets never upscale).
    """
    from PIL import Image

    from gafu import recipe
    from gafu.init import init_project
    from gafu.project import Project

    originals = folder / "originals"
    originals.mkdir(parents=True)
    init_project(folder / "project", target=originals, trigger=TRIGGER, repeats=1)
    project = Project.open(folder / "project")
    concept = project.concept_dir("target")
    concept.mkdir(parents=True, exist_ok=True)
    for i in range(pictures):
        Image.new("RGB", (side, side), (40 * (i % 6), 128, 200)).save(concept / f"p{i:03d}.png")
        (concept / f"p{i:03d}.txt").write_text(f"{TRIGGER}, {CAPTION_TAGS}", encoding="utf-8")
    config = project.config
    config.model.config = str(config_dir) if config_dir else ""
    config.train = dataclasses.replace(
        config.train,
        resolution=max(side, recipe.MIN_TRAINING_SIDE),
        epochs=1,
        mixed_precision="bf16",
        gradient_checkpointing=True,
    )
    return project


def plan_for(project, *, batch: int, optimizer: str, kernel: str, vram: float, describe):
    """The plan gafu resolves for these settings (batch 0: the largest the memory model fits in `vram`)."""
    from gafu.config import save_config
    from gafu.plan import resolve_plan
    from gafu.project import Project

    config = project.config
    config.train = dataclasses.replace(
        config.train, batch_size=batch, optimizer=optimizer, lokr_kernel=kernel
    )
    save_config(config, project.config_path)
    return resolve_plan(Project.open(project.root), vram, describe=describe)


# --- one row ---------------------------------------------------------------------------------------
@dataclasses.dataclass
class Row:
    """One measured configuration."""

    kernel: str
    optimizer: str
    batch: int
    compiled: bool = False
    seconds_per_step: float | None = None
    peak_allocated_gib: float | None = None
    peak_reserved_gib: float | None = None
    estimate_gib: float | None = None
    outcome: str = "ok"  # "ok", "out of memory", "skipped: …", "error: …"

    @property
    def name(self) -> str:
        """The row's label: kernel/optimizer, and whether compiled."""
        return f"{self.kernel}/{self.optimizer}" + (" compiled" if self.compiled else "")


def run_row(row: Row, state: dict, args) -> Row:
    """Train `args.steps` steps (after a warm-up step) with the row's plan; fills in the figures."""
    import torch

    from gafu.models.memory import PeakMemory
    from gafu.train import setup
    from gafu.train.data import epoch_batches
    from gafu.train.loop import TrainingRun, accumulate_gradients, optimizer_step
    from gafu.train.noise import loss_snr_table, noise_scheduler

    plan = plan_for(
        state["project"], batch=row.batch, optimizer=row.optimizer, kernel=row.kernel,
        vram=args.vram, describe=state["describe"],
    )  # fmt: skip
    row.estimate_gib = plan.memory.estimate_gb
    base, accelerator, device = state["base"], state["accelerator"], state["accelerator"].device
    batch = next(b for b in epoch_batches(plan, state["pictures"], 1) if len(b) == row.batch)
    unet = base.unet
    network = optimizer = None
    try:
        network = setup.attach_network(base, plan, device)
        if row.compiled:
            base.unet = torch.compile(unet)
        optimizer = accelerator.prepare(setup.make_optimizer(network, plan, device))
        run = TrainingRun(
            plan=plan, accelerator=accelerator, base=base, network=network, optimizer=optimizer,
            lr_scheduler=setup.make_lr_scheduler(optimizer, plan),
            noise_scheduler=noise_scheduler(base.scheduler_config, plan.loss),
            loss_snr=loss_snr_table(base.scheduler_config),
            pictures=state["pictures"], latents=state["latents"], hooks=None,
        )  # fmt: skip

        def step(index: int) -> None:
            accumulate_gradients(run, [batch], index)
            optimizer_step(run)

        step(0)  # warm-up: kernels chosen, optimizer state created, compiled
        _synchronize(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        times = []
        with PeakMemory() as ram:
            for index in range(1, args.steps + 1):
                started = time.perf_counter()
                step(index)
                _synchronize(device)
                times.append(time.perf_counter() - started)
        row.seconds_per_step = round(statistics.median(times), 4)
        if device.type == "cuda":
            row.peak_allocated_gib = round(torch.cuda.max_memory_allocated(device) / GIB, 2)
            row.peak_reserved_gib = round(torch.cuda.max_memory_reserved(device) / GIB, 2)
        else:
            row.peak_allocated_gib = round(ram.peak_bytes / GIB, 2)  # the process's RAM
    except torch.OutOfMemoryError:
        row.outcome = "out of memory"
    except Exception as exc:  # a row that cannot run (e.g. torch.compile) is reported, not fatal
        row.outcome = f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"
    finally:
        base.unet = unet
        if network is not None:
            network.restore()
        del network, optimizer
        accelerator.free_memory()  # drops accelerate's references to the row's optimizer
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return row


def _synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def largest_batch(state: dict, args, start: int, budget_left) -> tuple[int, list[Row]]:
    """The largest batch gafu/AdamW trains under the memory cap, searched from `start` (the plan's)."""
    probes, fitting = [], 0
    batch, direction = max(1, start), 0
    while 1 <= batch <= args.max_batch and budget_left() > 0:
        probe = run_row(Row("gafu", "adamw", batch), state, argparse.Namespace(**{**vars(args), "steps": 1}))
        probes.append(probe)
        fits = probe.outcome == "ok"
        if fits:
            fitting = max(fitting, batch)
        if direction == 0:
            direction = 1 if fits else -1
        if (direction == 1 and not fits) or (direction == -1 and fits):
            break
        batch += direction
    return fitting, probes


# --- the whole check -------------------------------------------------------------------------------
def check(args, workspace: Path) -> dict:
    """Build the model, find the largest batch for the cap, measure every row; the report as data."""
    import torch

    from gafu.models.tiny import TINY_SIDE
    from gafu.network.summary import describe_network
    from gafu.train.data import load_pictures
    from gafu.train.latents import CachedLatent
    from gafu.train.setup import WEIGHT_DTYPES, make_accelerator, training_precision

    started = time.perf_counter()

    def budget_left() -> float:
        return args.budget - (time.perf_counter() - started)

    config_dir = arch_config_dir(args.arch, workspace)
    side = args.resolution or (TINY_SIDE if args.arch == "tiny" else 1024)
    project = make_project(workspace, pictures=args.max_batch, side=side, config_dir=config_dir)
    summaries: dict = {}

    def describe(settings):  # the network summary, built once per settings (meta device)
        key = json.dumps(dataclasses.asdict(settings), sort_keys=True)
        if key not in summaries:
            summaries[key] = describe_network(settings, config_dir=config_dir)
        return summaries[key]

    first = plan_for(project, batch=0, optimizer="adamw", kernel="gafu", vram=args.vram, describe=describe)
    accelerator = make_accelerator(first)
    device = accelerator.device
    if device.type == "cuda" and args.cap:
        total = torch.cuda.get_device_properties(device).total_memory
        if total > args.vram * GIB:
            torch.cuda.set_per_process_memory_fraction(args.vram * GIB / total, device)
    # the dtype the trainer uses: bf16, or fp32 on a CPU that only emulates bf16 (the tests' CPU run)
    base = random_base_model(config_dir, device, WEIGHT_DTYPES[training_precision(first)])
    pictures = load_pictures(project, first)
    generator = torch.Generator().manual_seed(0)
    latents = {
        p.picture.path: CachedLatent(
            torch.randn(4, p.bucket[1] // 8, p.bucket[0] // 8, generator=generator), (side, side), (0, 0)
        )
        for p in pictures
    }
    state = {"project": project, "describe": describe, "base": base, "accelerator": accelerator,
             "pictures": pictures, "latents": latents}  # fmt: skip
    plan_batch = first.batch.batch_size
    if args.batches or device.type != "cuda":  # no cap to search under on a CPU
        batches, largest, probes = args.batches or [1, 2], None, []
    else:
        largest, probes = largest_batch(state, args, plan_batch, budget_left)
        batches = sorted({1, max(largest, 1)})
    optimizers = ["adamw"]
    if device.type == "cuda" and _bitsandbytes():
        optimizers.append("adamw8bit")
    rows = [Row(k, o, b) for b in batches for o in optimizers for k in ("gafu", "lycoris")]
    if args.compile:
        rows.append(Row("gafu", "adamw", 1, compiled=True))
    for row in rows:
        if budget_left() <= 0:
            row.outcome = "skipped: time budget spent"
            continue
        run_row(row, state, args)
    return {
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({os.cpu_count()} cores)",
        "memory": "CUDA peak allocated / reserved" if device.type == "cuda" else "process RAM peak",
        "cap_gib": args.vram if device.type == "cuda" and args.cap else None,
        "arch": args.arch,
        "resolution": side,
        "dtype": str(base.unet.dtype).removeprefix("torch."),
        "gradient_checkpointing": True,
        "lokr": dataclasses.asdict(first.network.settings),
        "lokr_parameters": first.network.summary.trainable_parameters if first.network.summary else None,
        "tokenizers": base.tokenizers_source,
        "versions": {
            name: _version(name)
            for name in ("torch", "diffusers", "transformers", "lycoris-lora", "accelerate", "bitsandbytes")
        },
        "largest_batch": {
            "vram_gib": args.vram,
            "plan": plan_batch,
            "measured": largest,  # None where batches were given or no cap applies (CPU)
        },
        "probes": [dataclasses.asdict(p) for p in probes],
        "rows": [{"name": r.name, **dataclasses.asdict(r)} for r in rows],
        "seconds": round(time.perf_counter() - started, 1),
    }


def _bitsandbytes() -> bool:
    try:
        import bitsandbytes  # noqa: F401
    except Exception:  # not installed, or no CUDA build for this machine
        return False
    return True


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def print_report(report: dict) -> None:
    """The table: one line per row, the plan's estimate beside the measured peak."""
    print(
        f"gafu GPU check: {report['arch']} U-Net + both text encoders, {report['resolution']} px, bf16, "
        f"gradient checkpointing, LoKr dim {report['lokr']['dim']}/conv {report['lokr']['conv_dim']}/"
        f"factor {report['lokr']['factor']} — {report['device']}"
    )
    largest = report["largest_batch"]
    measured = largest["measured"] if largest["measured"] is not None else "— (not searched: no cap on a CPU)"
    print(f"largest batch for {largest['vram_gib']:g} GiB: the plan's {largest['plan']}, measured {measured}")
    memory = "peak GiB" if report["memory"].startswith("CUDA") else "peak RAM GiB"
    header = ("row", "batch", "s/step", "samples/s", memory, "reserved", "plan est.")
    print("{:24} {:>5} {:>8} {:>9} {:>12} {:>8} {:>9}  outcome".format(*header))
    for row in report["rows"]:
        seconds = row["seconds_per_step"]
        samples = row["batch"] / seconds if seconds else None
        print(
            f"{row['name']:24} {row['batch']:>5} {_cell(seconds, 3):>8} {_cell(samples, 2):>9} "
            f"{_cell(row['peak_allocated_gib'], 2):>12} {_cell(row['peak_reserved_gib'], 2):>8} "
            f"{_cell(row['estimate_gib'], 2):>9}  {row['outcome']}"
        )
    print(f"({report['seconds']:.0f} s in all; versions: {report['versions']})")


def _cell(value, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def main(argv: list[str] | None = None) -> dict | None:
    """Parse arguments, install carried wheels if asked, run the check, print and save the report."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--arch", choices=["sdxl", "small", "tiny"], default="sdxl")
    parser.add_argument("--resolution", type=int, default=0, help="training side (default 1024; tiny: 64)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per row, after a warm-up step")
    parser.add_argument("--vram", type=float, default=12.0, help="GiB to plan for and cap the allocator at")
    parser.add_argument("--no-cap", dest="cap", action="store_false", help="do not cap CUDA memory")
    parser.add_argument(
        "--batches", type=lambda s: [int(b) for b in s.split(",")], help="e.g. 1,2 (no search)"
    )
    parser.add_argument("--max-batch", type=int, default=12, help="the search's upper end (pictures made)")
    parser.add_argument("--compile", action="store_true", help="add a row with the U-Net under torch.compile")
    parser.add_argument("--budget", type=float, default=420.0, help="seconds; later rows are skipped")
    parser.add_argument("--json", type=Path, default=Path("gpu-check.json"), help="where the report goes")
    parser.add_argument("--device", choices=["cuda", "cpu"], default=None, help="(cpu: only without CUDA)")
    parser.add_argument("--wheels", type=Path, help="install the wheels in this folder first (offline)")
    parser.add_argument(
        "--download-wheels", type=Path, metavar="DIR", help="fill DIR with the wheels and stop"
    )
    args = parser.parse_args(argv)
    if args.download_wheels:
        for pin in download_wheels(args.download_wheels):
            print(pin)
        return None
    if args.wheels:
        install_wheels(args.wheels)
    sys.path.insert(0, str(REPO / "src"))  # gafu from this checkout, installed or not
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here: run with --device cpu --arch tiny (or small)")
    if args.device == "cpu" and torch.cuda.is_available():
        raise SystemExit("--device cpu is for machines without CUDA (the plan's accelerator takes the GPU)")
    with tempfile.TemporaryDirectory(prefix="gafu-gpu-check-") as workspace:
        report = check(args, Path(workspace))
    print_report(report)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")
    return report


if __name__ == "__main__":
    main()
