"""The check report: findings (severity, rule, message, files) and the D3 coverage headline."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")
FILES_SHOWN = 5  # files listed per finding in the text report (the JSON lists all)
TAGS_SHOWN = 15  # uncovered tags listed in the text report


@dataclass
class Finding:
    """One thing `gafu check` found, with the RECIPE rule it breaks and the files concerned."""

    severity: Severity
    rule: str  # D1 … P7
    code: str  # stable name for tools, e.g. "trigger-missing"
    message: str
    files: list[str] = field(default_factory=list)  # relative to the project folder
    hint: str = ""
    details: dict = field(default_factory=dict)  # numbers behind the message, for tools and the UI


@dataclass
class UncoveredTag:
    """A target tag no regularization caption holds (D3): the style leaks through it."""

    tag: str
    count: int  # target captions holding it
    files: list[str] = field(default_factory=list)


@dataclass
class Coverage:
    """D3: the share of target tag occurrences whose tag also appears in the regularization set."""

    share: float | None  # None when it cannot be computed (see `reason`)
    occurrences: int = 0  # target tag occurrences counted
    covered: int = 0  # of which the tag is also in some regularization caption
    distinct: int = 0  # distinct target tags counted
    distinct_covered: int = 0
    uncovered: list[UncoveredTag] = field(default_factory=list)
    not_counted: list[str] = field(default_factory=list)  # the trigger and the T4 unwanted tags
    reason: str = ""


@dataclass
class SetCounts:
    """How many pictures a set holds and how many have a readable caption."""

    pictures: int = 0
    captioned: int = 0


@dataclass
class CheckReport:
    """Everything `gafu check` found."""

    project: str
    trigger: str
    mode: str  # prep mode whose D4 sizes were checked
    sets: dict[str, SetCounts]
    coverage: Coverage
    unwanted: dict[str, dict[str, int]]  # T4: tag → {"target": n, "reg": n}
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # about the check itself (e.g. a cache not written)
    pictures_opened: int = 0  # pictures whose pixels were read this time (the rest: from the cache)
    style: dict = field(default_factory=dict)  # D1: what the style comparison of the target set used
    report_path: str = ""

    def of(self, severity: Severity) -> list[Finding]:
        """Findings of one severity."""
        return [f for f in self.findings if f.severity == severity]

    @property
    def exit_code(self) -> int:
        """1 when there are errors, else 0."""
        return 1 if self.of("error") else 0

    def to_dict(self) -> dict:
        """Plain data: what `--json` prints and `reports/check.json` holds."""
        data = asdict(self)
        data["summary"] = {s: len(self.of(s)) for s in SEVERITIES}
        order = {s: i for i, s in enumerate(SEVERITIES)}
        data["findings"] = [asdict(f) for f in sorted(self.findings, key=lambda f: order[f.severity])]
        return data


def count_of(n: int, noun: str) -> str:
    """`1 caption`, `2 captions`."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def render_text(report: CheckReport) -> str:
    """The report as people read it: counts, the coverage headline, findings by severity."""
    lines = [f"gafu check: {report.project} (trigger {report.trigger or '—'}, {report.mode} mode)"]
    lines.append(
        "  "
        + "   ".join(
            f"{name}: {c.pictures} pictures, {c.captioned} captioned" for name, c in report.sets.items()
        )
    )
    lines += ["", *_coverage_lines(report.coverage)]
    for severity in SEVERITIES:
        found = report.of(severity)
        if found:
            lines += ["", f"{severity}s ({len(found)})"]
            for finding in found:
                lines += _finding_lines(finding)
    present = {tag: c for tag, c in report.unwanted.items() if any(c.values())}
    if present:
        lines += ["", "T4 unwanted tags found     target     reg"]
        lines += [f"  {tag:<24} {c['target']:>6}  {c['reg']:>6}" for tag, c in present.items()]
    lines += ["", *report.notes] if report.notes else []
    summary = ", ".join(count_of(len(report.of(s)), s) for s in SEVERITIES[:2])
    wrote = f"; wrote {report.report_path}" if report.report_path else ""
    lines += ["", summary + wrote]
    return "\n".join(lines)


def _coverage_lines(coverage: Coverage) -> list[str]:
    if coverage.share is None:
        return [f"D3 coverage: not known ({coverage.reason})"]
    lines = [
        f"D3 coverage: {coverage.share:.0%} of target tag occurrences ({coverage.covered} of "
        f"{coverage.occurrences}) have a tag the regularization set also has"
    ]
    if coverage.uncovered:
        shown = ", ".join(f"{u.tag} ×{u.count}" for u in coverage.uncovered[:TAGS_SHOWN])
        more = len(coverage.uncovered) - TAGS_SHOWN
        lines.append(
            f"  uncovered ({len(coverage.uncovered)} tags): {shown}"
            + (f", … {more} more" if more > 0 else "")
        )
    return lines


def _finding_lines(finding: Finding) -> list[str]:
    lines = [f"  {finding.rule:<3} {finding.message}"]
    lines += [f"        {name}" for name in finding.files[:FILES_SHOWN]]
    if len(finding.files) > FILES_SHOWN:
        lines.append(f"        … and {len(finding.files) - FILES_SHOWN} more (all in --json)")
    if finding.hint:
        lines.append(f"      fix: {finding.hint}")
    return lines
