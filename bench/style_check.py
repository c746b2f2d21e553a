"""How often `gafu check`'s D1 style check cries wolf, and how often it finds a planted drift.

Synthetic target sets from `tests/drawings.py`: scenes (day, evening and night; a few shapes and
figures) drawn in one style per set. The styles here are *held out*: the same kinds of style as
the ones the check's thresholds were set on, with other palettes and other scenes.

- **False alarms**: homogeneous sets (one style); any D1 finding is a false alarm.
- **Recall**: sets where a third of the pictures are drawn with a drift — desaturated (the
  palette's saturation times 0.25), muted (times 0.4), or thin outlines instead of thick (a
  third of the width). Found means one finding names at least 70 % of the drifted pictures,
  adds at most 30 % others, and gives the right reason (a colour cue for the colour drifts,
  the line width for thin lines).

Each picture's cues are measured once (`gafu.curation.cues.picture_cues`, as `gafu check` does
on prepared pictures) and sets are drawn from them, so the figures are those of the check's
own code (`gafu.curation.consistency.find_style_groups`) on the pixel cues. `--tags` adds the
tiny WD-format test tagger's style tags (flat_color, monochrome, colorful, traditional_media).

`--tuning` measures the tuning styles themselves (`tests/drawings.py`'s palettes) instead, to
compare: figures much better there than on the held-out styles would mean the thresholds were
fitted to those palettes.

    python bench/style_check.py [--sets 8] [--sizes 12,24,40] [--tags] [--tuning]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from tests.drawings import STYLES, draw  # noqa: E402

from gafu.curation.consistency import PIXEL_CUES, find_style_groups, tag_cue  # noqa: E402
from gafu.curation.cues import picture_cues  # noqa: E402

COLOUR = {"saturation", "vivid", "colourfulness", "tag:monochrome", "tag:colorful"}
DRIFTS = {
    "desaturated (×0.25)": (lambda s: s.but(saturation=s.saturation * 0.25), COLOUR),
    "muted (×0.4)": (lambda s: s.but(saturation=s.saturation * 0.4), COLOUR),
    "thin outlines (÷3)": (lambda s: s.but(outline=max(1, s.outline // 3)), {"line_width"}),
}
SIZES = ((384, 384), (448, 320), (320, 448))
TAGS = ("flat_color", "traditional_media", "monochrome", "colorful")


def held_out_styles():
    """The test styles with other palettes: the kinds of style the thresholds saw, not the styles."""
    return [
        style.but(name=f"{style.name} (held out)", palette_seed=100 + i) for i, style in enumerate(STYLES)
    ]


def measure(style, count: int, seed: int, tags: bool) -> list[dict[str, float]]:
    """Cues of `count` pictures of `style` (scenes from `seed`)."""
    rng = random.Random(seed)
    cues = []
    for i in range(count):
        picture = draw(style, 7_000_000 + seed * 1000 + i, SIZES[rng.randrange(len(SIZES))])
        values = picture_cues(picture)
        if tags:
            values.update(tiny_tags(picture))
        cues.append(values)
    return cues


def tiny_tags(picture) -> dict[str, float]:
    """The tiny test tagger's probabilities of its style tags, as its ONNX graph computes them."""
    from gafu.tagging.preprocess import prepare_picture
    from gafu.tagging.tiny import DEFAULT_TINY_TAGS, tiny_probabilities

    probabilities = tiny_probabilities(prepare_picture(picture, 448, 448))
    return {
        f"tag:{t.name}": float(p)
        for t, p in zip(DEFAULT_TINY_TAGS, probabilities, strict=True)
        if t.name in TAGS
    }


def main() -> None:
    """Run the measurement and print its figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", type=int, default=8, help="sets per style, size and kind")
    parser.add_argument("--sizes", default="12,24,40", help="pictures per set")
    parser.add_argument("--tags", action="store_true", help="add the tiny test tagger's style tags as cues")
    parser.add_argument("--tuning", action="store_true", help="the tuning styles instead of held-out ones")
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    cues = list(PIXEL_CUES) + ([tag_cue(t) for t in TAGS] if args.tags else [])
    started = time.perf_counter()
    styles = list(STYLES) if args.tuning else held_out_styles()
    biggest = max(sizes)
    pools = {}
    for index, style in enumerate(styles):
        pools[style.name, "homogeneous"] = measure(style, 3 * biggest, 10 * index, args.tags)
        for d, (name, (change, _)) in enumerate(DRIFTS.items()):
            if name.startswith("thin") and style.outline < 3:
                continue
            pools[style.name, name] = measure(change(style), biggest, 10 * index + d + 1, args.tags)
    measured = time.perf_counter() - started
    rng = random.Random(2024)
    print(
        f"D1 style check on {'tuning' if args.tuning else 'held-out'} synthetic sets: {len(styles)} styles, "
        f"{args.sets} sets per style "
        f"and size; cues: {'pixels + tiny tagger style tags' if args.tags else 'pixels'}"
    )
    print(f"{'pictures':>8}  {'false alarms':>13}  " + "  ".join(f"{name:>22}" for name in DRIFTS))
    for n in sizes:
        alarms = total = 0
        found = {name: [0, 0] for name in DRIFTS}
        for style in styles:
            home = pools[style.name, "homogeneous"]
            for _ in range(args.sets):
                table = {f"p{i:03d}": c for i, c in enumerate(rng.sample(home, n))}
                alarms += bool(find_style_groups(table, cues))
                total += 1
                for name, (_, reasons) in DRIFTS.items():
                    if (style.name, name) not in pools:
                        continue
                    drifted = max(2, round(n / 3))
                    picked = rng.sample(home, n - drifted) + rng.sample(pools[style.name, name], drifted)
                    order = list(range(n))
                    rng.shuffle(order)
                    table = {f"p{order[i]:03d}": c for i, c in enumerate(picked)}
                    truth = {f"p{order[i]:03d}" for i in range(n - drifted, n)}
                    found[name][0] += any(_matches(g, truth, reasons) for g in find_style_groups(table, cues))
                    found[name][1] += 1
        cells = "  ".join(f"{found[name][0] / max(found[name][1], 1):>21.0%} " for name in DRIFTS)
        print(f"{n:>8}  {alarms / total:>12.0%}   {cells}   ({total} homogeneous sets)")
    print(f"measured {sum(map(len, pools.values()))} pictures in {measured:.0f} s")


def _matches(group, truth: set[str], reasons: set[str]) -> bool:
    named = set(group.pictures)
    right = len(named & truth) >= 0.7 * len(truth) and len(named - truth) <= 0.3 * len(truth)
    return right and group.differences[0].cue in reasons


if __name__ == "__main__":
    main()
