"""Benchmark `gafu prep` against a plain Pillow loop measured in the same run.

Generates a few hundred large, mixed-size, illustration-like pictures (PNG, JPEG, WebP) in a
temporary folder, then times:
  - the floor: one process, Pillow open → RGB → resize (Lanczos, long side = the pad side) → save
    PNG at gafu's compress level; what any tool must at least do per picture;
  - `prepare()` in pad and bucket mode with 1 worker and with more (pool start-up included);
  - a re-run with nothing changed;
  - PNG compress level 1 against Pillow's default 6 on the floor loop (speed and size).
Figures are pictures/second and ratios to the floor, so they compare across machines. Each run
also reports CPU seconds per picture (this process and its workers): on a busy machine wall
clocks measure the other programs too, CPU time much less so.

    python bench/prep.py                 # 200 pictures, workers 1 and all cores
    python bench/prep.py --count 60 --workers 1 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from gafu.init import init_project
from gafu.prep.prepare import prepare
from gafu.prep.settings import PNG_COMPRESS_LEVEL, resolve_settings
from gafu.project import Project

SIDE = 1536  # Illustrious' side: the largest pad side, the most encoding work


# --- test pictures -------------------------------------------------------------------------------


def illustration(size: tuple[int, int], seed: int) -> Image.Image:
    """Flat colours with dark outlines over a gradient, plus soft texture: compresses like digital art."""
    rng = np.random.default_rng(seed)
    width, height = size
    top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = np.linspace(0, 1, height)[:, None, None]
    gradient = (top * (1 - t) + bottom * t).astype(np.uint8)
    image = Image.fromarray(np.ascontiguousarray(np.broadcast_to(gradient, (height, width, 3))), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        rx, ry = int(rng.integers(width // 20, width // 3)), int(rng.integers(height // 20, height // 3))
        fill = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.ellipse((x - rx, y - ry, x + rx, y + ry), fill=fill, outline=(20, 20, 30), width=4)
    texture = rng.integers(-3, 4, (height, width, 1), dtype=np.int16)  # paper/brush grain, per pixel
    pixels = np.clip(np.asarray(image, dtype=np.int16) + texture, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def write_original(args: tuple[Path, int]) -> int:
    """Write picture number `index` of the benchmark set; returns its size in bytes."""
    folder, index = args
    rng = np.random.default_rng(index)
    long_side = int(rng.integers(1600, 3601))
    aspect = float(rng.choice([0.5, 0.667, 0.75, 1.0, 1.333, 1.5, 1.778, 2.0]))
    size = (long_side, round(long_side / aspect)) if aspect >= 1 else (round(long_side * aspect), long_side)
    image = illustration(size, seed=index)
    kind = ("png", "jpg", "png", "jpg", "webp")[index % 5]
    path = folder / f"art_{index:04d}.{kind}"
    if kind == "png":
        image.save(path, compress_level=1)
    elif kind == "jpg":
        image.save(path, quality=92)
    else:
        image.save(path, quality=90, method=0)
    return path.stat().st_size


# --- timed runs ----------------------------------------------------------------------------------


class Timer:
    """Wall-clock and CPU seconds (this process and its finished children) of a block."""

    def __enter__(self) -> Timer:
        self._wall, self._cpu = time.perf_counter(), _cpu_seconds()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = _cpu_seconds() - self._cpu


def _cpu_seconds() -> float:
    try:
        import resource
    except ImportError:  # Windows: this process only
        return time.process_time()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def floor_loop(originals: list[Path], out: Path, level: int) -> tuple[Timer, int]:
    """The plain loop: open → RGB → resize → save. Returns (timer, bytes written)."""
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    with Timer() as timer:
        for path in originals:
            with Image.open(path) as image:
                image = image.convert("RGB")
                scale = SIDE / max(image.size)
                size = (round(image.width * scale), round(image.height * scale))
                resized = image.resize(size, Image.Resampling.LANCZOS)
                target = out / f"{path.stem}.png"
                resized.save(target, compress_level=level)
                written += target.stat().st_size
    shutil.rmtree(out)
    return timer, written


def prep_run(originals: Path, work: Path, mode: str, workers: int) -> tuple[Timer, Timer]:
    """A fresh project prepared once, then again with nothing changed: (first, re-run)."""
    shutil.rmtree(work, ignore_errors=True)
    init_project(work, target=originals, trigger="bench_style", family="illustrious")
    project = Project.open(work)
    settings = resolve_settings(project, mode=mode, side=SIDE if mode == "pad" else None)
    with Timer() as first:
        summary = prepare(project, settings, workers=workers)
    assert not summary.failed, summary.failed
    with Timer() as again:
        prepare(project, settings, workers=workers)
    shutil.rmtree(work)
    return first, again


def _pixels(path: Path) -> int:
    with Image.open(path) as image:
        return image.width * image.height


def main() -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--count", type=int, default=200, help="pictures to generate")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    parser.add_argument("--workers", type=int, nargs="+", default=sorted({1, cores}), help="worker counts")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="gafu-bench-prep-"))
    try:
        originals_dir = root / "originals"
        originals_dir.mkdir()
        start = time.perf_counter()
        with ProcessPoolExecutor(cores, get_context("spawn")) as pool:
            sizes = list(pool.map(write_original, [(originals_dir, i) for i in range(args.count)]))
        originals = sorted(originals_dir.iterdir())
        megapixels = sum(_pixels(path) for path in originals) / 1e6 / len(originals)
        megabytes = sum(sizes) / 1e6 / len(sizes)
        print(
            f"{len(originals)} originals (PNG/JPEG/WebP; {megapixels:.1f} MP, {megabytes:.1f} MB average), "
            f"generated in {time.perf_counter() - start:.0f} s; {cores} cores; pad side {SIDE}"
        )

        count = len(originals)
        floor, _ = floor_loop(originals, root / "floor", PNG_COMPRESS_LEVEL)
        floor_cpu = floor.cpu / count
        print(
            f"\nfloor (1 process, open → resize → save, PNG level {PNG_COMPRESS_LEVEL}): "
            f"{count / floor.wall:.2f} pictures/s, {floor_cpu:.3f} CPU s/picture"
        )
        subset = originals[: max(10, count // 5)]
        level1, level1_bytes = floor_loop(subset, root / "level1", 1)
        level6, level6_bytes = floor_loop(subset, root / "level6", 6)
        print(
            f"PNG level 1 vs 6 on {len(subset)} pictures: {level6.cpu / level1.cpu:.2f}x faster, "
            f"{level1_bytes / level6_bytes:.2f}x the bytes"
        )

        print(
            f"\n{'mode':<7}{'workers':>8}{'pictures/s':>12}{'speed-up':>10}{'CPU s/picture':>15}"
            f"{'CPU / floor':>13}{'re-run pictures/s':>19}"
        )
        for mode in ("pad", "bucket"):
            single = None
            for workers in args.workers:
                first, again = prep_run(originals_dir, root / "project", mode, workers)
                rate = count / first.wall
                single = single or rate
                cpu = first.cpu / count
                print(
                    f"{mode:<7}{workers:>8}{rate:>12.2f}{rate / single:>10.2f}{cpu:>15.3f}"
                    f"{cpu / floor_cpu:>13.2f}{count / again.wall:>19.0f}"
                )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
