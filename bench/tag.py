"""Tagging speed: gafu's batched, overlapped pipeline against a sequential baseline, in one run.

The model is a ViT-B/16 at 448 px with random weights and 10,861 outputs (the size of the WD v3
vocabulary), exported by this script to ONNX with the WD interface (N, 448, 448, 3) float32
BGR → (N, n_tags) probabilities. The pictures are prepared-size PNGs (1024 px squares, as
`gafu prep` writes). Every run hashes, decodes and prepares each picture and runs the model.
The baseline is what a plain script does: onnxruntime's default session, one picture at a
time. Then gafu's session (its thread count set, see `gafu.tagging.model`) one picture at a
time, and gafu's pipeline (`gafu.tagging.pipeline.score_pictures`), which overlaps loading
with the model, at several batch sizes.

Figures: pictures/second, the ratio to the baseline, and how busy the model was (the share
of wall time spent inside `session.run`).

    PYTHONPATH=src python bench/tag.py [--pictures 16] [--batches 1,2,4,8] [--rounds 2] [--work DIR]

Needs the `bench` extra (onnxscript, for torch's ONNX exporter).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from gafu.fsio import sha256_file
from gafu.tagging.labels import GENERAL, RATING
from gafu.tagging.locate import locate_tagger
from gafu.tagging.model import Tagger, model_threads, open_tagger
from gafu.tagging.pipeline import Failed, loader_threads, score_pictures
from gafu.tagging.preprocess import load_for_tagger
from gafu.tagging.tiny import TinyTag, selected_tags_csv

N_TAGS = 10_861  # the WD v3 vocabulary
SIDE = 448


class _Block(nn.Module):
    """A pre-norm transformer block (attention + MLP)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attended = nn.functional.scaled_dot_product_attention(q, k, v)  # (N, heads, T, d/heads)
        x = x + self.proj(attended.transpose(1, 2).reshape(n, t, d))
        return x + self.mlp(self.norm2(x))


class _ViTTagger(nn.Module):
    """ViT-B/16 at 448 px with the WD tagger interface: (N, H, W, 3) BGR 0–255 → probabilities."""

    def __init__(self, n_tags: int = N_TAGS, dim: int = 768, depth: int = 12, heads: int = 12):
        super().__init__()
        self.patches = nn.Conv2d(3, dim, 16, 16)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, (SIDE // 16) ** 2 + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*[_Block(dim, heads) for _ in range(depth)])
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, n_tags)

    def forward(self, pictures: torch.Tensor) -> torch.Tensor:
        x = self.patches(pictures.permute(0, 3, 1, 2) / 255.0).flatten(2).transpose(1, 2)  # (N, 784, dim)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        return torch.sigmoid(self.head(self.norm(self.blocks(x))[:, 0]))  # (N, n_tags)


def build_vit_tagger(folder: Path) -> Path:
    """Export the random-weight ViT tagger to `folder` (reused when already there)."""
    if (folder / "model.onnx").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = _ViTTagger().eval()
    example = torch.zeros(2, SIDE, SIDE, 3)
    batch = torch.export.Dim("batch", min=1, max=256)
    with torch.no_grad():
        program = torch.onnx.export(model, (example,), dynamic_shapes=({0: batch},), dynamo=True)
    program.save(str(folder / "model.onnx"))
    tags = [TinyTag(n, RATING) for n in ("general", "sensitive", "questionable", "explicit")]
    tags += [TinyTag(f"tag_{i}", GENERAL) for i in range(N_TAGS - len(tags))]
    (folder / "selected_tags.csv").write_text(selected_tags_csv(tags), encoding="utf-8")
    return folder


def make_pictures(folder: Path, count: int, side: int = 1024) -> list[Path]:
    """Prepared-size PNGs with smooth shading and fine detail (compressing like drawn art)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"{i:03d}.png"
        if not path.exists():
            rng = np.random.default_rng(i)
            shading = Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).resize(
                (side, side), Image.Resampling.BICUBIC
            )
            pixels = np.asarray(shading).astype(np.int16)
            pixels[rng.random((side, side)) < 0.05] = 20  # sparse dark strokes
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def default_session_tagger(tagger: Tagger) -> Tagger:
    """The same model in a session with onnxruntime's default options (what a plain script gets)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(tagger.files.model), providers=["CPUExecutionProvider"])
    return Tagger(session, tagger.labels, tagger.files, tagger.input)


def sequential_baseline(tagger: Tagger, paths: list[Path]) -> dict[str, float]:
    """Hash, load, prepare and run one picture at a time."""
    tagger.model_seconds = 0.0
    started = time.perf_counter()
    for path in paths:
        sha256_file(path)
        pixels = load_for_tagger(path, tagger.input.height, tagger.input.width)
        tagger.predict(pixels[None])
    return _figures(tagger, len(paths), time.perf_counter() - started)


def pipelined(tagger: Tagger, paths: list[Path], batch_size: int, threads: int) -> dict[str, float]:
    """gafu's pipeline at one batch size."""
    tagger.model_seconds = 0.0
    started = time.perf_counter()
    results = list(score_pictures(tagger, paths, batch_size=batch_size, threads=threads))
    assert not any(isinstance(r, Failed) for r in results) and len(results) == len(paths)
    return _figures(tagger, len(paths), time.perf_counter() - started)


def _figures(tagger: Tagger, count: int, seconds: float) -> dict[str, float]:
    return {
        "pictures_per_second": round(count / seconds, 3),
        "model_busy": round(tagger.model_seconds / seconds, 3),
        "seconds": round(seconds, 2),
    }


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pictures", type=int, default=16)
    parser.add_argument("--batches", default="1,2,4,8", help="batch sizes to try, comma-separated")
    parser.add_argument("--threads", type=int, default=loader_threads(), help="picture-loading threads")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds; the best is kept")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "gafu-bench-tag")
    args = parser.parse_args()

    tagger_folder = build_vit_tagger(args.work / "vit-b16-448")
    paths = make_pictures(args.work / "pictures", args.pictures)
    tagger = open_tagger(locate_tagger(str(tagger_folder)), cpu_only=True)
    plain = default_session_tagger(tagger)
    for warm in (tagger, plain):  # allocations, kernel choices
        warm.predict(np.zeros((1, SIDE, SIDE, 3), np.float32))

    print(f"cores: {os.cpu_count()}, model threads: {model_threads()}, loader threads: {args.threads}")
    print(f"model: ViT-B/16 448 px, {N_TAGS} tags, {tagger.provider}; {len(paths)} pictures, 1024 px PNG")
    runs: dict[str, Callable[[], dict[str, float]]] = {
        "baseline: onnxruntime's default session, one picture at a time": partial(
            sequential_baseline, plain, paths
        ),
        "gafu's session, one picture at a time": partial(sequential_baseline, tagger, paths),
    }
    for size in (int(b) for b in args.batches.split(",")):
        runs[f"gafu pipeline, batch {size}"] = partial(pipelined, tagger, paths, size, args.threads)
    # Rounds alternate between the runs, so load from other programs hits them all alike; the
    # best round of each run is kept.
    best: dict[str, dict[str, float]] = {}
    for _ in range(args.rounds):
        for name, measure in runs.items():
            figures = measure()
            if name not in best or figures["pictures_per_second"] > best[name]["pictures_per_second"]:
                best[name] = figures
    baseline = next(iter(best.values()))["pictures_per_second"]
    for name, figures in best.items():
        figures["vs_baseline"] = round(figures["pictures_per_second"] / baseline, 2)
        print(f"{name}: {_line(figures)}, {figures['vs_baseline']:.2f}× baseline")
    print(json.dumps(best))


def _line(figures: dict[str, float]) -> str:
    return f"{figures['pictures_per_second']:.3f} pictures/s, model busy {figures['model_busy']:.0%}"


if __name__ == "__main__":
    main()
