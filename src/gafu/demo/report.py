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
<p>The whole recipe on a miniature world — a target style of flat colours from one palette with
thick outlines, and regularization pictures of the same kinds of scenes in nine other styles — with
gafu's demo model: a tiny SDXL-architecture model pretrained on that world, which never saw the
target style, its WD-format tagger and a judge of the world's styles. Every stage ran through the
same library functions as the <code>gafu</code> commands. For a real run see
<code>docs/real-run.md</code>.</p>
<h2>Did it learn the style?</h2>
{_verdict_section(result)}
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
<table><tr><th>epoch</th><th>weight</th>{head}<th>probe time</th></tr>{epochs}{weights}</table>"""


def _verdict_section(result: Any) -> str:
    """The judge's scores per weight and the pictures it scored."""
    from gafu.demo.verdict import WITH_TRIGGER_AT_LEAST, WITHOUT_TRIGGER_WITHIN

    verdict = result.verdict
    if not verdict:
        return "<p>(not judged)</p>"
    rows = "".join(
        f"<tr><td>{r['weight']:g}</td><td>{r['with_trigger']:.2f}</td><td>{r['without_trigger']:.2f}</td>"
        f"<td>{r['base']:.2f}</td></tr>"
        for r in verdict["rows"]
    )
    answer = verdict["answer"][0].upper() + verdict["answer"][1:] + "."
    sheet = (
        f'<figure><img src="{html.escape(_link(result.folder, result.judge_sheet))}" alt="judged pictures">'
        "<figcaption>a row per LoKr weight: the same prompts with the trigger (left) and without it (right)"
        "</figcaption></figure>"
        if result.judge_sheet
        else ""
    )
    return f"""<p><b>{answer}</b> The judge (a classifier of the world's ten styles and of junk) gives each
picture's probability of being in the target style; each cell is the mean over
{verdict["pictures_per_cell"]} prompts (<code>judge.json</code>). The recipe works when the trigger
reaches {WITH_TRIGGER_AT_LEAST:g} at weight 1 and the prompts without it stay within
{WITHOUT_TRIGGER_WITHIN:g} of the base model.</p>
<table><tr><th>weight</th><th>with the trigger</th><th>without</th><th>base model</th></tr>{rows}</table>
{sheet}"""


def _link(folder: Path, path: Path) -> str:
    """`path` relative to the report's folder, with forward slashes (a link that works anywhere)."""
    return Path(os.path.relpath(Path(path).resolve(), folder.resolve())).as_posix()
