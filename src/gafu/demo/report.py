"""The demo's short report: one HTML page saying what each stage did, with the sample grids."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

from gafu.fsio import write_text_atomic

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 70rem; margin: 2rem auto; padding: 0 1rem; }
table { border-collapse: collapse; }
td, th { border: 1px solid #ccc; padding: .3rem .6rem; vertical-align: top; }
th { background: #f3f3f3; text-align: left; } code, pre { background: #f6f6f6; }
pre { padding: .5rem; overflow-x: auto; font-size: .85rem; } img { max-width: 100%; border: 1px solid #ddd; }
.note { color: #555; }
"""


def write_demo_report(result: Any) -> Path:
    """Write `result.report` (HTML) for a finished `DemoResult` and return its path."""
    folder: Path = result.folder
    rows = "".join(
        f"<tr><td>{i}</td><td><b>{html.escape(s.name)}</b></td><td>{s.seconds:.1f} s</td>"
        f"<td>{html.escape(s.summary)}</td></tr>"
        for i, s in enumerate(result.stages, start=1)
    )
    total = sum(s.seconds for s in result.stages)
    details = "".join(
        f"<h3>{html.escape(s.name)}</h3>"
        f"<pre>{html.escape(json.dumps(s.details, indent=2, default=str))}</pre>"
        for s in result.stages
        if s.details
    )
    grids = "".join(
        f'<figure><img src="{html.escape(_link(folder, grid))}" alt="sample grid">'
        f"<figcaption>{html.escape(_link(folder, grid))}</figcaption></figure>"
        for grid in result.grids
    )
    lokr = html.escape(_link(folder, result.lokr)) if result.lokr else "(none)"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gafu demo</title><style>{_STYLE}</style></head>
<body>
<h1>gafu demo</h1>
<p>The whole recipe on a synthetic dataset — a target style of flat colours from one palette with
thick outlines, and regularization pictures of the same scenes in other styles — with a tiny
SDXL-architecture model and a tiny WD-format tagger that gafu built itself. Every stage ran
through the same library functions as the <code>gafu</code> commands.</p>
<p class="note">The tiny model has random weights and trains for a few epochs, so its pictures are
noise: the demo shows that each stage works and hands the next what it needs, not a learned
style. For a real run see <code>docs/real-run.md</code>.</p>
<h2>Stages ({total:.0f} s in all)</h2>
<table><tr><th>#</th><th>stage</th><th>time</th><th>what it did</th></tr>{rows}</table>
<h2>Results</h2>
<ul>
<li>project: <code>{html.escape(_link(folder, result.project))}</code> (its <code>gafu.toml</code>,
<code>dataset/</code>, <code>reports/</code> and <code>output/</code>)</li>
<li>LoKr: <code>{lokr}</code></li>
</ul>
<h2>Where the style went (the style probe)</h2>
{_style_section(result)}
<h2>Sample grids</h2>
<p>Rows are LoKr weights; columns are prompts with and without the trigger word (RECIPE P10).</p>
{grids or "<p>(none)</p>"}
<h2>Details</h2>
{details}
</body></html>
"""
    write_text_atomic(result.report, page)
    return result.report


def _style_section(result: Any) -> str:
    """The style probe's figures at every saved epoch (training) and at several weights (gafu eval)."""
    from gafu.eval.figures import FIGURES, HOW_TO_READ, LABELS, StyleFigures, format_figure

    def cells(data: dict) -> str:
        figures = StyleFigures(**{name: data.get(name) for name in FIGURES})
        return "".join(f"<td>{format_figure(n, getattr(figures, n))}</td>" for n in FIGURES)

    head = "".join(f"<th>{LABELS[name]}</th>" for name in FIGURES)
    epochs = "".join(
        f"<tr><td>{e['epoch']}</td><td>{e['weight']:g}</td>{cells(e)}<td>{e['seconds']:.1f} s</td></tr>"
        for e in result.style
    )
    rows = (result.evaluation or {}).get("rows", [])
    weights = "".join(
        f"<tr><td>{r['epoch']}</td><td>{r['weight']:g}</td>{cells(r)}<td>gafu eval</td></tr>" for r in rows
    )
    return f"""<p>{html.escape(HOW_TO_READ)} All four come from the model's own denoising loss on fixed
pictures, noise and timesteps, against the base model (<code>gafu eval</code>; definitions in the README).</p>
<table><tr><th>epoch</th><th>weight</th>{head}<th>probe time</th></tr>{epochs}{weights}</table>
<p class="note">On this tiny model with random weights a LoKr first learns to denoise at all, whatever the
caption says: the fit is large and nearly all of it shows without the trigger too (trigger share near 0).
On a real base model, which already denoises, the recipe predicts the opposite with its regularization set:
little leakage and a trigger share near 1.</p>"""


def _link(folder: Path, path: Path) -> str:
    """`path` relative to the report's folder, with forward slashes (a link that works anywhere)."""
    return Path(os.path.relpath(Path(path).resolve(), folder.resolve())).as_posix()
