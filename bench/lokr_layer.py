"""Forward + backward time of one SDXL layer with a LoKr on it, in one run, as ratios:
the frozen layer alone, + LyCORIS's LoKr (default path), + LyCORIS's bypass mode, + gafu's LoKr.

    PYTHONPATH=src python bench/lokr_layer.py                 # 1024 px, factor 8, fp32, CPU
    PYTHONPATH=src python bench/lokr_layer.py --quick         # a quarter of the rows
    PYTHONPATH=src python bench/lokr_layer.py --runs 3        # the table 3 times, and medians
    PYTHONPATH=src python bench/lokr_layer.py --factor 4 --device cuda --dtype bf16
    PYTHONPATH=src python bench/lokr_layer.py --crossover     # gafu's merged vs factored path
    PYTHONPATH=src python bench/lokr_layer.py --small         # small layers: gafu's vs LyCORIS's

Each layer gets the recipe's LoKr (P6: linear dim 128, conv dim 64, alpha = dim). The input
requires grad, as inside a network whose earlier layers train; the base weight is frozen.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from lycoris.modules.lokr import LokrModule
from torch import nn

from gafu import recipe
from gafu.network.fast_lokr import SMALL_LAYER_WEIGHTS, FastLokrModule
from gafu.network.kron import uses_merged_path


@dataclass(frozen=True)
class LayerShape:
    """One SDXL layer class at 1024 px, batch 1."""

    name: str
    in_ch: int
    out_ch: int
    rows: int  # tokens (linear) or the side of the square input map (convolution)
    kernel: int = 0  # 0: linear
    stride: int = 1

    def base_layer(self) -> nn.Module:
        """The frozen layer."""
        if not self.kernel:
            return nn.Linear(self.in_ch, self.out_ch)
        return nn.Conv2d(self.in_ch, self.out_ch, self.kernel, self.stride, padding=self.kernel // 2)

    def example_input(self, scale: float) -> torch.Tensor:
        """Its input, with `scale` times the rows (pixels for a convolution)."""
        if not self.kernel:
            return torch.randn(1, max(1, round(self.rows * scale)), self.in_ch)
        side = max(4, round(self.rows * scale**0.5))
        return torch.randn(1, self.in_ch, side, side)


# 1024 px: 4096 tokens at 640 channels, 1024 at 1280, 77 text tokens; maps of 128, 64, 32 px.
SDXL_LAYERS = (
    LayerShape("attn q/k/v/out 640", 640, 640, 4096),
    LayerShape("attn q/k/v/out 1280", 1280, 1280, 1024),
    LayerShape("cross-attn k/v 2048→640", 2048, 640, 77),
    LayerShape("cross-attn k/v 2048→1280", 2048, 1280, 77),
    LayerShape("ff GEGLU 640→5120", 640, 5120, 4096),
    LayerShape("ff out 2560→640", 2560, 640, 4096),
    LayerShape("ff GEGLU 1280→10240", 1280, 10240, 1024),
    LayerShape("ff out 5120→1280", 5120, 1280, 1024),
    LayerShape("conv3x3 320", 320, 320, 128, kernel=3),
    LayerShape("conv3x3 640", 640, 640, 64, kernel=3),
    LayerShape("conv3x3 1280", 1280, 1280, 32, kernel=3),
    LayerShape("conv3x3 640→1280", 640, 1280, 32, kernel=3),
    LayerShape("conv3x3 320 stride 2", 320, 320, 128, kernel=3, stride=2),
    LayerShape("conv1x1 skip 640→320", 640, 320, 128, kernel=1),
    LayerShape("conv1x1 skip 2560→1280", 2560, 1280, 32, kernel=1),
    LayerShape("TE-L q/k/v/out 768", 768, 768, 77),
    LayerShape("TE-G mlp 1280→5120", 1280, 5120, 77),
)

VARIANTS = ("frozen", "lycoris", "lycoris bypass", "gafu")


def lokr_layer(variant: str, base: nn.Module, factor: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The layer's forward for one variant, LoKr weights random (w2 non-zero)."""
    if variant == "frozen":
        return base
    is_conv = isinstance(base, nn.Conv2d)
    dim = recipe.CONV_DIM if is_conv else recipe.LINEAR_DIM
    kind = FastLokrModule if variant == "gafu" else LokrModule
    bypass = variant == "lycoris bypass"
    module = kind("bench", base, 1.0, dim, dim, factor=factor, bypass_mode=bypass).to(base.weight.device)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.normal_(0, 0.02)
    return module


def time_steps(
    layers: dict[str, Callable], x: torch.Tensor, dtype: torch.dtype, *, repeats: int, device: torch.device
) -> dict[str, float]:
    """Median seconds of forward + backward (input and LoKr parameters) per layer.

    The layers take turns, round after round, so a slow spell of a shared machine hits all alike;
    short steps get more rounds (at least `repeats`, about MIN_SECONDS per layer in all).
    """
    for _ in range(WARM_UP_ROUNDS):
        warm = {name: _time_one_step(layer, x, dtype, device) for name, layer in layers.items()}
    rounds = min(MAX_ROUNDS, max(repeats, math.ceil(MIN_SECONDS / min(warm.values()))))
    times: dict[str, list[float]] = {name: [] for name in layers}
    for _ in range(rounds):
        for name, layer in layers.items():
            times[name].append(_time_one_step(layer, x, dtype, device))
    return {name: statistics.median(values) for name, values in times.items()}


WARM_UP_ROUNDS = 2
MIN_SECONDS = 0.5
MAX_ROUNDS = 200


def _time_one_step(layer: Callable, x: torch.Tensor, dtype: torch.dtype, device: torch.device) -> float:
    x.grad = None
    for parameter in getattr(layer, "parameters", list)():
        parameter.grad = None
    _sync(device)
    start = time.perf_counter()
    with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
        y = layer(x)
    y.backward(torch.ones_like(y))
    _sync(device)
    return time.perf_counter() - start


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def compare_variants(args: argparse.Namespace) -> None:
    """The table the issue asks for: each variant's time over the frozen layer's.

    With `--runs N` the whole table is measured N times, each run's lines printed as they come,
    then a table of each cell's median over the runs: a slow spell of a shared machine lasts
    longer than one layer's rounds.
    """
    device, dtype = torch.device(args.device), _dtype(args.dtype)
    print(
        f"factor {args.factor}, {args.dtype}, {device}, {torch.get_num_threads()} threads,"
        f" rows × {args.scale}, median of ≥ {args.repeats} rounds"
    )
    shapes = _chosen(SDXL_LAYERS, args.only)
    runs: list[dict[str, dict[str, float]]] = []
    for run in range(args.runs):
        if args.runs > 1:
            print(f"run {run + 1} of {args.runs}")
        _print_header()
        runs.append({})
        for shape in shapes:
            torch.manual_seed(0)
            base = shape.base_layer().to(device).requires_grad_(False)
            x = shape.example_input(args.scale).to(device).requires_grad_(True)
            layers = {variant: lokr_layer(variant, base, args.factor) for variant in VARIANTS}
            runs[-1][shape.name] = time_steps(layers, x, dtype, repeats=args.repeats, device=device)
            _print_row(shape.name, _cells(runs[-1][shape.name]))
    if args.runs > 1:
        print(f"median of the {args.runs} runs, cell by cell")
        _print_header()
        for shape in shapes:
            cells = [_cells(run[shape.name]) for run in runs]
            _print_row(shape.name, [statistics.median(column) for column in zip(*cells, strict=True)])


def _cells(seconds: dict[str, float]) -> list[float]:
    """Frozen ms, each variant's time over the frozen layer's, LyCORIS default over gafu."""
    frozen = seconds["frozen"]
    return [frozen * 1e3, *(seconds[v] / frozen for v in VARIANTS[1:]), seconds["lycoris"] / seconds["gafu"]]


def _print_header() -> None:
    print("| layer | frozen ms | LyCORIS default × | LyCORIS bypass × | gafu × | gafu vs LyCORIS default |")
    print("|---|---:|---:|---:|---:|---:|")


def _print_row(name: str, cells: list[float]) -> None:
    frozen_ms, *ratios, speedup = cells
    shown = " | ".join(f"{ratio:.2f}" for ratio in ratios)
    print(f"| {name} | {frozen_ms:.1f} | {shown} | {speedup:.2f}× faster |", flush=True)


def crossover(args: argparse.Namespace) -> None:
    """gafu's merged path over its factored path as rows grow: where "auto" should switch."""
    device, dtype = torch.device(args.device), _dtype(args.dtype)
    shapes = [s for s in SDXL_LAYERS if s.name.startswith(("attn", "cross", "TE", "conv3x3 640"))]
    shapes = _chosen(tuple(shapes), args.only)
    print(f"merged / factored time, factor {args.factor}, {args.dtype}, {device}")
    print("| layer | " + " | ".join(f"{f} rows/feature" for f in CROSSOVER_FRACTIONS) + " |")
    print("|---|" + "---:|" * len(CROSSOVER_FRACTIONS))
    for shape in shapes:
        torch.manual_seed(0)
        base = shape.base_layer().to(device).requires_grad_(False)
        in_features = shape.in_ch * max(shape.kernel, 1) ** 2
        cells = []
        for fraction in CROSSOVER_FRACTIONS:
            rows = max(1, round(fraction * in_features))
            x = _input_with_rows(shape, rows).to(device).requires_grad_(True)
            layers = {path: lokr_layer("gafu", base, args.factor) for path in ("merged", "factored")}
            for path, layer in layers.items():
                layer.kron_path = path
            times = time_steps(layers, x, dtype, repeats=args.repeats, device=device)
            cells.append(f"{times['merged'] / times['factored']:.2f}")
        print(f"| {shape.name} | " + " | ".join(cells) + " |", flush=True)


CROSSOVER_FRACTIONS = (0.05, 0.1, 0.2, 0.3, 0.5, 1.0)


def small_layers(args: argparse.Namespace) -> None:
    """gafu's path over LyCORIS's default on layers far below SDXL's: where "auto" should hand over."""
    device, dtype = torch.device(args.device), _dtype(args.dtype)
    print(f"gafu's path / LyCORIS's default, factor {args.factor}, {args.dtype}, {device}")
    print(f"(layers under {SMALL_LAYER_WEIGHTS} weights take LyCORIS's forward when the path is auto)")
    print("| layer | weights | " + " | ".join(f"{rows} rows" for rows in SMALL_ROWS) + " |")
    print("|---|---:|" + "---:|" * len(SMALL_ROWS))
    for width in SMALL_WIDTHS:
        for kernel in (0, 3):
            shape = LayerShape(f"{'conv3x3' if kernel else 'linear'} {width}", width, width, 0, kernel)
            torch.manual_seed(0)
            base = shape.base_layer().to(device).requires_grad_(False)
            cells = []
            for rows in SMALL_ROWS:
                x = _input_with_rows(shape, rows).to(device).requires_grad_(True)
                layers = {variant: lokr_layer(variant, base, args.factor) for variant in ("lycoris", "gafu")}
                merged = uses_merged_path(rows, base.weight)
                layers["gafu"].kron_path = "merged" if merged else "factored"  # the path, not the hand-over
                times = time_steps(layers, x, dtype, repeats=args.repeats, device=device)
                cells.append(f"{times['gafu'] / times['lycoris']:.2f}")
            print(f"| {shape.name} | {base.weight.numel()} | " + " | ".join(cells) + " |", flush=True)


SMALL_WIDTHS = (32, 64, 128, 256)
SMALL_ROWS = (64, 256, 1024)


def _chosen(shapes: tuple[LayerShape, ...], only: list[str] | None) -> list[LayerShape]:
    """The shapes whose name contains one of `only` (all without it)."""
    return [s for s in shapes if not only or any(part in s.name for part in only)]


def _input_with_rows(shape: LayerShape, rows: int) -> torch.Tensor:
    if not shape.kernel:
        return torch.randn(1, rows, shape.in_ch)
    side = max(4, round(rows**0.5))
    return torch.randn(1, shape.in_ch, side, side)


def _dtype(name: str) -> torch.dtype:
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def main() -> None:
    """Parse the arguments and run the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--factor", type=int, default=recipe.FACTOR)
    parser.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default="fp32", help="autocast dtype")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--runs", type=int, default=1, help="measure the table this many times")
    parser.add_argument("--quick", action="store_const", const=0.25, dest="scale", default=1.0)
    parser.add_argument("--crossover", action="store_true", help="merged vs factored path instead")
    parser.add_argument("--small", action="store_true", help="small layers: gafu's vs LyCORIS's instead")
    parser.add_argument("--only", nargs="+", metavar="TEXT", help="layers whose name contains TEXT")
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    (crossover if args.crossover else small_layers if args.small else compare_variants)(args)


if __name__ == "__main__":
    main()
