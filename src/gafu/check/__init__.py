"""`gafu check`: lint a prepared, captioned dataset and its `gafu.toml` against the recipe.

Phases: scan each set's folder (D5) → measure the pictures (sizes and perceptual hashes,
cached) → the target set's style cues (D1, cached; `gafu.curation`) → D3 coverage → the rules
in `gafu.check.rules` (D1–D5, T3, T4, P7) and `gafu.check.curation` (D1: pictures of another
period, pictures set aside) → one report, written to `reports/check.json`. Nothing in the
dataset is changed.
"""

from __future__ import annotations

from gafu.captions.dataset import relative_name
from gafu.check.coverage import compute_coverage
from gafu.check.curation import aside_findings, measure_style, style_findings
from gafu.check.pictures import picture_facts
from gafu.check.report import CheckReport, SetCounts
from gafu.check.rules import RULES, CheckInput, unwanted_counts
from gafu.check.scan import scan_set
from gafu.config import SETS
from gafu.errors import GafuError
from gafu.prep.manifest import load_manifest
from gafu.project import Project
from gafu.reports import write_report


def run_check(project: Project, *, save: bool = True) -> CheckReport:
    """Check `project`; with `save`, also write `reports/check.json`."""
    scans = {which: scan_set(project, which) for which in SETS}
    facts = picture_facts(project, [c.picture.path for scan in scans.values() for c in scan.captioned])
    config = project.config
    manifest = load_manifest(project.prep_manifest_path)
    style_table = measure_style(project, manifest)
    style, style_summary = style_findings(style_table)
    inp = CheckInput(
        project=project,
        scans=scans,
        facts=facts,
        manifest=manifest,
        coverage=compute_coverage(
            scans["target"].captioned,
            scans["reg"].captioned,
            trigger=config.project.trigger,
            unwanted=config.check.unwanted,
            name_of=lambda path: relative_name(project, path),
        ),
    )
    report = CheckReport(
        project=str(project.root),
        trigger=config.project.trigger,
        mode=config.prep.mode,
        sets={
            which: SetCounts(len(scan.captioned), sum(1 for c in scan.captioned if c.has_caption))
            for which, scan in scans.items()
        },
        coverage=inp.coverage,
        unwanted=unwanted_counts(inp),
        findings=[f for rule in RULES for f in rule(inp)] + style + aside_findings(project, manifest),
        notes=list(facts.notes) + style_table.notes,
        pictures_opened=facts.opened,
        style=style_summary,
    )
    if save:
        try:
            path = write_report(project.reports_dir, "check", report.to_dict())
            report.report_path = inp.name(path)
        except GafuError as exc:
            report.notes.append(f"note: {exc}")
    return report
