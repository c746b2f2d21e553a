"""`gafu reg pick` on a pool of 1,000 pictures: tagging dominates, everything else is a small share of it.

Builds a throw-away project (40 target pictures, prepared and tagged) and a pool of synthetic
illustrations (`tests/drawings.py`, 7 styles, PNG, 768–1024 px) in a temporary folder, then
measures in one run:

1. **baseline**: a plain tagging pass over the pool with gafu's pipeline
   (`gafu.tagging.pipeline.score_pictures`: hash, decode, prepare, model) — what tagging the
   pool costs at the least;
2. **reg pick, cold**: `pick_regularization` with no pool file: the same tagging pass, plus the
   perceptual hash and style cues of each decoded picture, the pool file, the target's hashes and
   cues, and the choice;
3. **reg pick, warm**: the same command again, the pool's scores read from the pool file.

1 and 2 alternate `--rounds` times (the pool file deleted before each cold run) and the best of
each is kept, so a busy machine does not favour one. The pool pictures carry a little grain, so
they decode like illustrations rather than like flat test drawings. The per-picture cost of the
hash and cues is also timed on its own, beside decoding and preparing the same pictures.

The tagger is the tests' tiny WD-format tagger (`gafu.tagging.tiny`: a real ONNX graph with the
published interface, run by onnxruntime, but a few reductions instead of a ViT), so the model
itself costs almost nothing and the tagging pass is mostly decoding and resizing; with a real
WD tagger (wd-vit-large-tagger-v3) the model dominates that pass many times over, and the
shares below only shrink.

    python bench/reg_pick.py [--pool 1000] [--target 40] [--rounds 2] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tests.drawings import STYLES, draw  # noqa: E402

from gafu.captions.text import write_caption  # noqa: E402
from gafu.config import load_config, save_config  # noqa: E402
from gafu.images import list_source_pictures  # noqa: E402
from gafu.init import init_project  # noqa: E402
from gafu.prep.prepare import prepare  # noqa: E402
from gafu.project import Project  # noqa: E402
from gafu.reg.pick import PickOptions, pick_regularization  # noqa: E402
from gafu.reg.pool import pool_file  # noqa: E402
from gafu.tagging.locate import locate_tagger  # noqa: E402
from gafu.tagging.model import open_tagger  # noqa: E402
from gafu.tagging.pipeline import score_pictures  # noqa: E402
from gafu.tagging.tag import tag_project  # noqa: E402
from gafu.tagging.tiny import build_tiny_tagger  # noqa: E402


def build(work: Path, pool_size: int, target_size: int) -> tuple[Project, Path]:
    """A prepared, tagged target set and a pool folder of synthetic pictures."""
    rng = random.Random(0)
    target, pool = work / "originals" / "target", work / "pool"
    target.mkdir(parents=True)
    for i in range(target_size):
        side = rng.choice((768, 896, 1024))
        draw(STYLES[0], seed=i, size=(side, side * 3 // 4)).save(target / f"t{i:03d}.png")
    for i in range(pool_size):
        style = STYLES[1 + i % (len(STYLES) - 1)].but(palette_seed=50 + i % 37)
        style = style.but(grain=max(style.grain, 4))
        side = rng.choice((768, 896, 1024))
        folder = pool / f"artist_{i % 25:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        draw(style, seed=10_000 + i, size=(side, side * rng.choice((3, 4, 5)) // 4)).save(
            folder / f"{i:04d}.png", compress_level=1
        )
    tagger = build_tiny_tagger(work / "tiny-tagger")
    init_project(work / "project", target=target, trigger="mzh_style", family="sdxl")
    project = Project.open(work / "project")
    config = load_config(project.config_path)
    config.tag.tagger = str(tagger)
    save_config(config, project.config_path)
    project = Project.open(project.root)
    prepare(project)
    tag_project(project)
    for picture in project.pictures("target"):  # captions as a user leaves them: a few extra tags
        text = picture.caption_path.read_text(encoding="utf-8").strip()
        write_caption(picture.caption_path, [*text.split(", "), "outdoors", "sky"])
    return project, pool


def baseline(project: Project, pool: Path) -> float:
    """Seconds of a plain tagging pass over the pool."""
    tagger = open_tagger(locate_tagger(project.config.tag.tagger, base=project.root))
    paths = list_source_pictures(pool)
    started = time.perf_counter()
    for _ in score_pictures(tagger, paths, batch_size=project.config.tag.batch_size):
        pass
    return time.perf_counter() - started


def describe_cost(pool: Path, count: int = 60) -> tuple[float, float, float]:
    """Best-of-3 milliseconds per picture to decode, to prepare for the tagger, and to hash and measure."""
    from gafu.images import load_picture
    from gafu.reg.pool import describe_picture
    from gafu.tagging.preprocess import prepare_picture

    paths = list_source_pictures(pool)[:count]

    def best(step) -> float:
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            for item in items:
                step(item)
            runs.append(time.perf_counter() - started)
        return 1000 * min(runs) / len(items)

    items = paths
    decode = best(lambda path: load_picture(path))
    items = [load_picture(path).image for path in paths]
    return decode, best(lambda image: prepare_picture(image, 448, 448)), best(describe_picture)


def main() -> None:
    """Build, measure and print."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pool", type=int, default=1000, help="pictures in the pool")
    parser.add_argument("--target", type=int, default=40, help="target pictures")
    parser.add_argument("--work", type=Path, help="folder to build in (default: a temporary one)")
    parser.add_argument("--rounds", type=int, default=2, help="baseline and cold runs, alternated")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gafu-bench-reg-") as tmp:
        work = args.work or Path(tmp)
        started = time.perf_counter()
        project, pool = build(work, args.pool, args.target)
        built = time.perf_counter() - started
        print(f"built {args.pool} pool pictures and a target set of {args.target} in {built:.0f} s")
        bases, colds = [], []
        for _ in range(args.rounds):
            bases.append(baseline(project, pool))
            pool_file(project, pool).unlink(missing_ok=True)
            cold_start = time.perf_counter()
            cold = pick_regularization(project, pool, PickOptions())
            colds.append((time.perf_counter() - cold_start, cold))
        base = min(bases)
        cold_total, cold = min(colds, key=lambda c: c[0])
        per_picture = describe_cost(pool)
        warm_start = time.perf_counter()
        warm = pick_regularization(project, pool, PickOptions())
        warm_total = time.perf_counter() - warm_start
        size_mb = pool_file(project, pool).stat().st_size / 1e6
    assert warm.chosen == cold.chosen and warm.tagged_now == 0
    tagging, choosing = cold.seconds["tagging"], cold.seconds["target"] + cold.seconds["choosing"]
    rest = cold_total - tagging
    print(f"gafu reg pick, pool of {cold.pool_pictures} pictures, {len(cold.picks)} chosen, tiny test tagger")
    n = cold.pool_pictures
    rows = [
        ("baseline: plain tagging pass", base, f"{n / base:7.1f} pictures/s"),
        ("reg pick cold: tagging pass + cues", tagging, f"{n / tagging:7.1f} pictures/s"),
        ("  of which hashes and cues", tagging - base, ""),
        ("  everything else", rest, f"(target and choosing {choosing:.2f} s)"),
        ("  total", cold_total, ""),
        ("reg pick warm (scores cached)", warm_total, ""),
    ]
    for label, seconds, note in rows:
        print(f"  {label:<36} {seconds:8.2f} s  {seconds / base:7.1%} of the baseline  {note}")
    print(
        "  per picture, timed alone: decode {:.1f} ms + prepare for the tagger {:.1f} ms; "
        "hash and cues {:.1f} ms".format(*per_picture)
    )
    print(f"  pool file {size_mb:.1f} MB; coverage {cold.coverage_before:.0%} → {cold.coverage_after:.0%}")


if __name__ == "__main__":
    main()
