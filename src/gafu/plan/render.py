"""The plan as text for people: every value, one line each, with where it came from."""

from __future__ import annotations

from typing import Any

from gafu.network.summary import NetworkSummary
from gafu.plan.model import Plan

SECTION_TITLES = {
    "model": "Base model (P9)",
    "dataset": "Dataset (D4, D5, P3, P7)",
    "network": "LoKr network (P6)",
    "batch": "Epochs, batch and steps (P1–P3)",
    "optimizer": "Optimizer and schedule (P4, P5)",
    "loss": "Prediction, noise and loss (P8, P9)",
    "run": "Run (P1)",
    "memory": "GPU memory (estimates)",
    "sample": "Sample grids (P10)",
    "eval": "Style probe: fit, leakage, trigger share, drift (D2, D3, T3)",
}
LABEL_WIDTH = 36
VALUE_WIDTH = 34


def render_plan(plan: Plan) -> str:
    """The whole plan as aligned text: sections of `name  value  source` lines, then notes and warnings."""
    data = plan.to_dict()
    lines = [
        f"gafu plan {plan.gafu_version} (plan version {plan.version}) — trigger {plan.trigger!r}, "
        f"{plan.model.family_title}",
        f"  {'trigger':<{LABEL_WIDTH - 2}} {plan.trigger:<{VALUE_WIDTH}} {plan.sources.get('trigger', '')}",
    ]
    for section, title in SECTION_TITLES.items():
        lines.extend(["", title])
        _render_values(data[section], section, plan.sources, lines, indent=2)
        if section == "network":
            lines.extend(
                render_network_summary(plan.network.summary, plan.sources.get("network.summary", ""))
            )
    for heading, items in (("Why", plan.notes), ("Warnings", plan.warnings)):
        if items:
            lines.extend(["", heading])
            lines.extend(f"  - {item}" for item in items)
    return "\n".join(lines) + "\n"


def _render_values(
    data: dict[str, Any], prefix: str, sources: dict[str, str], lines: list[str], indent: int, shown: str = ""
) -> None:
    """One line per value; a table (a set, the memory breakdown) as a header with its values below.

    A value's source is printed unless it is the same as its table's, printed on the header.
    """
    pad = " " * indent
    for key, value in data.items():
        name = f"{prefix}.{key}"
        if key == "summary":
            continue
        source = source_of(name, sources)
        label = key.replace("_", " ")
        if isinstance(value, dict) and key not in ("sizes", "buckets", "bucket_samples"):
            lines.append(f"{pad}{label:<{LABEL_WIDTH - indent}} {'':<{VALUE_WIDTH}} {source}".rstrip())
            if key == "breakdown":
                value = {part: f"{gib:g} GB" for part, gib in value.items()}
            _render_values(value, name, sources, lines, indent + 2, shown=source)
            continue
        shown_source = "" if source == shown else source
        text = format_value(value)
        lines.append(f"{pad}{label:<{LABEL_WIDTH - indent}} {text:<{VALUE_WIDTH}} {shown_source}".rstrip())


def source_of(name: str, sources: dict[str, str]) -> str:
    """The source of a dotted value name: its own, else its nearest recorded parent's."""
    while name:
        if name in sources:
            return sources[name]
        name = name.rpartition(".")[0]
    return ""


def format_value(value: Any) -> str:
    """A plan value as short text."""
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return value if value else "(not set)"
    if isinstance(value, list):
        return ", ".join(format_value(v) for v in value) if value else "(empty)"
    if isinstance(value, dict):
        return ", ".join(
            f"{k} ×{format_value(v)}" if isinstance(v, int) else f"{k} {format_value(v)}"
            for k, v in value.items()
        )
    return str(value)


def render_network_summary(summary: NetworkSummary | None, source: str = "") -> list[str]:
    """Modules and parameters by block, totals, file sizes and full-matrix modules."""
    if summary is None:
        return [f"  {'summary':<{LABEL_WIDTH - 2}} not available in this gafu build (no network builder)"]
    lines = [
        f"  {'summary':<{LABEL_WIDTH - 2}} {'':<{VALUE_WIDTH}} {source}".rstrip(),
        f"  {'block':<24} {'modules':>8} {'parameters':>14}",
    ]
    for block, (count, parameters) in summary.by_block().items():
        lines.append(f"  {block:<24} {count:>8} {parameters:>14,}")
    full = sum(m.full_matrix for m in summary.modules)
    lines.extend(
        [
            f"  {'total':<24} {len(summary.modules):>8} {summary.trainable_parameters:>14,}",
            f"  file size: {summary.file_bytes('fp16') / 1e6:.1f} MB in fp16/bf16, "
            f"{summary.file_bytes('fp32') / 1e6:.1f} MB in fp32",
            f"  full-matrix modules (alpha ignored, scale 1): {full} of {len(summary.modules)}",
        ]
    )
    return lines
