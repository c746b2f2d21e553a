"""Print the plan's GPU-memory estimates for the recipe's LoKr (the table in docs/real-run.md).

These are the figures of gafu's memory model (`gafu.plan.memory`), not measurements:
`bench/train_step.py` measures a real step. Run: `python bench/memory_table.py`.
"""

from __future__ import annotations

from gafu.network.settings import LokrSettings
from gafu.network.summary import describe_network
from gafu.plan.memory import TrainingShape, estimate_memory


def main() -> None:
    """Print one row per training side and optimizer, with factor 8 and factor 4 at batch 1/2/4."""
    parameters = {f: describe_network(LokrSettings(factor=f)).trainable_parameters for f in (8, 4)}
    print(
        "side  optimizer   "
        + "  ".join(f"factor {f} ({p / 1e6:.0f} M) b1/b2/b4" for f, p in parameters.items())
    )
    for side in (1024, 1536):
        for optimizer in ("adamw", "adamw8bit"):
            cells = []
            for lokr_parameters in parameters.values():
                shape = TrainingShape("bf16", True, True, optimizer, True, lokr_parameters, (side, side))
                estimate = estimate_memory(shape)
                cells.append(" / ".join(f"{estimate.at(b):.1f}" for b in (1, 2, 4)) + " GiB")
            print(f"{side}  {optimizer:<10}  " + "   ".join(f"{c:<28}" for c in cells))


if __name__ == "__main__":
    main()
