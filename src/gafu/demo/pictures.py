"""The demo's pictures: a target set in the held-out style and a regularization set in the others.

Both are drawn from the miniature world (`gafu.demo.world`) at twice the model's side, so prep has
real work to do. The target set is in `flatink`, the style the demo's base model never saw; every
fourth target picture is from an "older period" in muted colour (`gafu.demo.drift`), for `gafu
check` to find (D1). The regularization set shows other scenes of the same kinds (D3) in the
other nine styles (D2), never a target picture.
"""

from __future__ import annotations

from pathlib import Path

from gafu.demo.drift import is_older_period, older_period
from gafu.demo.world import OTHER_STYLES, TARGET_STYLE, WORLD_SIDE, draw, scenes, write_picture

ORIGINAL_SIDE = 2 * WORLD_SIDE  # prep reduces the originals to the model's side


def write_demo_pictures(
    target_dir: Path, reg_dir: Path, *, n_target: int, n_reg: int, seed: int = 0
) -> dict[str, int]:
    """Write the target set and the regularization set (D1, D2) as PNG files; return their counts."""
    for i, scene in enumerate(scenes(n_target, seed)):
        picture = draw(scene, TARGET_STYLE, ORIGINAL_SIDE)
        if is_older_period(i):  # D1: a planted drift for `gafu check` to find
            picture = older_period(picture)
        write_picture(picture, target_dir / f"target_{i:02d}_{scene.subject}.png")
    for i, scene in enumerate(scenes(n_reg, seed + 1)):  # other scenes: no target picture (D2)
        style = OTHER_STYLES[i % len(OTHER_STYLES)]
        write_picture(draw(scene, style, ORIGINAL_SIDE), reg_dir / f"reg_{i:02d}_{style}_{scene.subject}.png")
    return {"target": n_target, "reg": n_reg}
