"""The recipe's claim, run once on the demo's world: with a regularization set the style goes into the
trigger; without one it leaks into the ordinary tags (RECIPE "why the recipe works", D2, D3).

    OMP_NUM_THREADS=1 PYTHONPATH=src python bench/recipe_claim.py FOLDER

1. `gafu demo` in FOLDER: the recipe, with its regularization set (run A);
2. the same project trained again with `[train] regularization = false`, as docs/guide.md says to
   make a run to compare with (`train --restart` moves run A to output/runs/) (run B);
3. `gafu eval --compare` of both final LoKr files (the style probe: fit, leakage, trigger share,
   drift at weight 1) and the judge of both (the target style's probability with and without the
   trigger, per weight, on 16 prompts).

It prints both and the claim's verdict; the figures go into docs/recipe.md.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

from gafu.config import save_config
from gafu.demo.judge import JUDGE_FILE
from gafu.demo.pretrain import shipped_model
from gafu.demo.run import DemoSettings, run_demo
from gafu.demo.verdict import judge_lokr
from gafu.eval.evaluate import EvalRequest, evaluate_project
from gafu.eval.report import render_text
from gafu.project import Project
from gafu.train.run import train


def main(folder: Path) -> None:
    """Run A and B, measure both, print the figures."""
    settings = DemoSettings()
    start = time.perf_counter()
    demo = run_demo(folder, settings, force=True)
    project = Project.open(demo.project)
    with_reg = demo.verdict
    config = project.config
    config.train = dataclasses.replace(config.train, regularization=False)
    save_config(config, project.config_path)
    project = Project.open(demo.project)
    run = train(project, restart=True)
    without_reg = judge_lokr(
        project, run.lokr, shipped_model() / JUDGE_FILE, weights=list(settings.judge_weights),
        count=settings.judge_prompts, folder=folder / "without-reg",
    ).to_dict()  # fmt: skip
    runs = sorted((project.output_dir / "runs").iterdir())
    compared = evaluate_project(project, EvalRequest(compare=[str(runs[-1]), str(project.output_dir)]))
    print("\n".join(render_text(compared)))
    print("\njudge: target-style probability (16 prompts per cell)")
    print(f"{'weight':>6} | {'A with':>6} {'A without':>9} | {'B with':>6} {'B without':>9} | base")
    for a, b in zip(with_reg["rows"], without_reg["rows"], strict=True):
        print(
            f"{a['weight']:>6g} | {a['with_trigger']:>6.2f} {a['without_trigger']:>9.2f} | "
            f"{b['with_trigger']:>6.2f} {b['without_trigger']:>9.2f} | {a['base']:.2f}"
        )
    print(f"\nA: with regularization (learned: {with_reg['learned']}); B: without ({without_reg['learned']})")
    print(f"{time.perf_counter() - start:.0f} s in all")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
