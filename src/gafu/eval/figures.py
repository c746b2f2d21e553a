"""The four figures of the style probe, from the base model's losses and a LoKr's (docs/guide.md).

With L(case) the probe's mean loss of a case — `trigger`: target pictures, captions as written;
`plain`: the same without the trigger; `reg`: regularization pictures as written — for the base
model (L₀) and for the base with the LoKr at a weight (L_w):

    fit           = (L₀(trigger) − L_w(trigger)) / L₀(trigger)
    leakage       = (L₀(plain) − L_w(plain)) / L₀(plain)
    trigger share = (fit − leakage) / fit, clipped to [0, 1]; none while fit ≤ 0
    drift         = (L_w(reg) − L₀(reg)) / L₀(reg)

The recipe ("why the recipe works", D2, D3, T3) predicts: fit grows with the epochs and the
weight (P1); with a regularization set the style stays behind the trigger — leakage well below
the fit, trigger share near 1 — and drift stays near zero; without one, leakage follows the fit
and the trigger share falls.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

FIGURES = ("fit", "leakage", "trigger_share", "drift")
LABELS = {"fit": "fit", "leakage": "leakage", "trigger_share": "trigger share", "drift": "drift"}


@dataclass(frozen=True)
class StyleFigures:
    """Fit, leakage, trigger share and drift (fractions; None where undefined)."""

    fit: float | None
    leakage: float | None
    trigger_share: float | None
    drift: float | None

    def to_dict(self) -> dict[str, float | None]:
        """Plain data, rounded to what the probe can tell apart."""
        return {k: (None if v is None else round(v, 6)) for k, v in asdict(self).items()}

    def text(self) -> str:
        """`fit +4.1 %, leakage +0.6 %, trigger share 85 %, drift −0.2 %`."""
        return ", ".join(f"{LABELS[name]} {format_figure(name, getattr(self, name))}" for name in FIGURES)


def style_figures(base: Mapping[str, float | None], model: Mapping[str, float | None]) -> StyleFigures:
    """The figures of a model's mean losses per case against the base model's, on the same probe."""
    fit = _fall(base.get("trigger"), model.get("trigger"))
    leakage = _fall(base.get("plain"), model.get("plain"))
    drift = _fall(base.get("reg"), model.get("reg"))
    return StyleFigures(
        fit=fit,
        leakage=leakage,
        trigger_share=trigger_share(fit, leakage),
        drift=None if drift is None else 0.0 - drift,
    )


def trigger_share(fit: float | None, leakage: float | None) -> float | None:
    """The part of the fit that needs the trigger: 1 − leakage / fit in [0, 1]; None while fit ≤ 0."""
    if fit is None or leakage is None or fit <= 0:
        return None
    return min(1.0, max(0.0, (fit - leakage) / fit))


def _fall(before: float | None, after: float | None) -> float | None:
    if before is None or after is None or before <= 0:
        return None
    return (before - after) / before


def format_figure(name: str, value: float | None) -> str:
    """A figure as people read it: signed percent for fit, leakage and drift; percent for the share."""
    if value is None:
        return "–"
    value += 0.0  # no "-0.00 %"
    if name == "trigger_share":
        return f"{value:.0%}".replace("%", " %")
    return f"{value:+.2%}".replace("%", " %")


@dataclass(frozen=True)
class Suggestion:
    """The row with the highest trigger share among those with at least `min_fit`."""

    index: int  # into the rows it was chosen from
    min_fit: float
    min_fit_source: str  # "--min-fit" or "80 % of the largest fit"


def suggest(
    figures: Sequence[StyleFigures], min_fit: float | None, share_of_largest: float
) -> Suggestion | None:
    """The highest trigger share at a fit of at least `min_fit` (default: a share of the largest fit)."""
    fits = [f.fit for f in figures if f.fit is not None]
    if not fits or max(fits) <= 0:
        return None
    source = "--min-fit"
    if min_fit is None:
        min_fit = share_of_largest * max(fits)
        source = f"{share_of_largest:.0%} of the largest fit".replace("%", " %")
    candidates = [
        (f.trigger_share, f.fit, -i)
        for i, f in enumerate(figures)
        if f.fit is not None and f.fit >= min_fit and f.trigger_share is not None
    ]
    if not candidates:
        return None
    *_, negative_index = max(candidates)
    return Suggestion(-negative_index, min_fit, source)


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """Aligned text columns: the first left-aligned, the rest right-aligned."""
    rows = [list(header), *map(list, rows)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]


HOW_TO_READ = (
    "Style probe (gafu eval): fit = how much the target pictures' denoising loss fell with the "
    "trigger; leakage = how much it fell without it; trigger share = the part of the fit that needs "
    "the trigger (1 = all); drift = how much the regularization pictures' loss rose."
)


def figures_html(rows: Sequence[tuple[str, StyleFigures]]) -> str:
    """A small HTML table of labelled figure rows (beside sample grids)."""
    head = "".join(f"<th>{html.escape(LABELS[name])}</th>" for name in FIGURES)
    body = "".join(
        f"<tr><td>{html.escape(label)}</td>"
        + "".join(f"<td>{html.escape(format_figure(n, getattr(f, n)))}</td>" for n in FIGURES)
        + "</tr>"
        for label, f in rows
    )
    return (
        f'<table class="style-probe" title="{html.escape(HOW_TO_READ, quote=True)}">'
        f"<tr><th></th>{head}</tr>{body}</table>"
    )
