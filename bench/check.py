"""How much the picture cache speeds up `gafu check` (RECIPE D2 duplicates and D4 sizes need pixels).

Builds a throw-away project of prepared 1024² pictures with captions, then times, in one run:
- cold: no cache, every picture opened and hashed (the baseline);
- re-hash: cache present but every file's modification time changed (content hashed, not decoded);
- warm: cache present and files unchanged (what a user gets when re-checking after `gafu tags`).

    python bench/check.py [--pictures 100] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from gafu.captions.text import write_caption
from gafu.check import run_check
from gafu.check.pictures import cache_path
from gafu.init import init_project
from gafu.project import Project


def build_project(root: Path, per_set: int) -> Project:
    """A project with `per_set` prepared, captioned 1024² pictures in each set."""
    (root / "originals" / "target").mkdir(parents=True)
    (root / "originals" / "reg").mkdir(parents=True)
    originals = root / "originals"
    init_project(root / "project", target=originals / "target", reg=originals / "reg", trigger="mzh_style")
    project = Project.open(root / "project")
    rng = np.random.default_rng(0)
    for which in ("target", "reg"):
        folder = project.concept_dir(which)
        folder.mkdir(parents=True)
        for i in range(per_set):
            # smooth gradients plus noise: decodes like real art, unlike flat test blocks
            base = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
            image = Image.fromarray(base, "RGB").resize((1024, 1024), Image.Resampling.BICUBIC)
            noisy = np.asarray(image, dtype=np.int16) + rng.integers(-12, 12, size=(1024, 1024, 3))
            path = folder / f"{which[0]}{i:04d}.png"
            Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB").save(path)
            tags = ["1girl", "solo", f"tag{i % 17}", f"other{i % 5}"]
            write_caption(path.with_suffix(".txt"), (["mzh_style"] if which == "target" else []) + tags)
    return project


def timed(project: Project, repeat: int, before=None) -> float:
    """Best wall time of `run_check` over `repeat` runs, calling `before()` ahead of each."""
    best = float("inf")
    for _ in range(repeat):
        if before:
            before()
        start = time.perf_counter()
        run_check(project, save=False)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pictures", type=int, default=100, help="pictures per set")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (best is kept)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gafu-bench-check-") as tmp:
        project = build_project(Path(tmp), args.pictures)
        files = [p.path for w in ("target", "reg") for p in project.pictures(w)]

        def drop_cache() -> None:
            cache_path(project).unlink(missing_ok=True)

        def touch_all() -> None:
            for path in files:
                os.utime(path)

        cold = timed(project, args.repeat, drop_cache)
        rehash = timed(project, args.repeat, touch_all)
        warm = timed(project, args.repeat)
    n = len(files)
    print(f"gafu check on {n} pictures of 1024x1024 ({args.pictures} per set), best of {args.repeat}")
    for label, seconds in [
        ("cold (no cache, baseline)", cold),
        ("re-hash (files touched)", rehash),
        ("warm (cache, unchanged)", warm),
    ]:
        print(f"  {label:<28} {seconds:7.3f} s   {n / seconds:8.1f} pictures/s   {cold / seconds:5.1f}x")


if __name__ == "__main__":
    main()
