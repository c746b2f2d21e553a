"""Make the originals ready for training: dataset/train/<repeats>_<trigger>/ and dataset/reg/<repeats>_reg/.

Only what changed since the last run is redone; your originals and the captions beside the
prepared pictures are never changed. Options override gafu.toml's [prep] for this run only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gafu.cli.output import print_json, warn

HELP = "pad or bucket the originals into the training layout (D4, D5)"
SHOWN = 10  # rows of each list printed; the report has them all


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `gafu prep`."""
    parser.add_argument("project", nargs="?", type=Path, help="project folder (default: the current one)")
    parser.add_argument("--mode", choices=["pad", "bucket"], help="D4a pad to a square, or D4b buckets")
    parser.add_argument("--background", choices=["white", "black"], help="padding/transparency colour")
    parser.add_argument("--side", type=int, help="pad mode: square side, 1024–1536 (default: the family's)")
    parser.add_argument("--max-side", type=int, help="bucket mode: longest side (default 1536)")
    parser.add_argument(
        "--drop-reg-duplicates",
        action="store_true",
        help="drop target pictures found in the reg folder instead of failing (D2)",
    )
    parser.add_argument(
        "--prune", action="store_true", help="delete prepared pictures whose original is gone (captions stay)"
    )
    parser.add_argument(
        "--workers", type=int, default=0, help="processes (default: gafu.toml, else all cores)"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args: argparse.Namespace) -> int:
    """Run `gafu prep`."""
    from gafu.errors import GafuError
    from gafu.prep.prepare import prepare
    from gafu.prep.settings import resolve_settings
    from gafu.project import Project

    if args.workers < 0:
        raise GafuError(f"--workers must be 0 (all cores) or more, not {args.workers}")
    project = Project.open(args.project)
    settings = resolve_settings(
        project,
        mode=args.mode,
        background=args.background,
        side=args.side,
        max_side=args.max_side,
        on_reg_duplicate="drop" if args.drop_reg_duplicates else None,
    )
    with _ProgressBar(enabled=not args.json and sys.stderr.isatty()) as on_progress:
        summary = prepare(project, settings, prune=args.prune, workers=args.workers, on_progress=on_progress)
    if args.json:
        print_json(summary.to_dict())
    else:
        _print_summary(summary.to_dict(), project.root)
        if _overridden(args):
            print(
                "note: options on the command line apply to this run only; set them in gafu.toml's [prep] "
                "to keep them (a plain `gafu prep` redoes pictures made with other settings)"
            )
    for message in summary.warnings:
        warn(message)
    return summary.exit_code


def _overridden(args: argparse.Namespace) -> bool:
    return any(value is not None for value in (args.mode, args.background, args.side, args.max_side))


class _ProgressBar:
    """A tqdm bar on stderr fed by prepare's (done, total) callback; nothing when disabled."""

    def __init__(self, *, enabled: bool):
        self.enabled = enabled
        self.bar: Any = None

    def __enter__(self):
        return self.update if self.enabled else None

    def update(self, done: int, total: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="picture", file=sys.stderr, dynamic_ncols=True)
        self.bar.update(done - self.bar.n)

    def __exit__(self, *exc_info: object) -> None:
        if self.bar is not None:
            self.bar.close()


def _print_summary(data: dict[str, Any], root: Path) -> None:
    """The summary for people: counts per set, then what needs their attention."""
    for which, counts in data["sets"].items():
        parts = [f"{counts['prepared']} prepared", f"{counts['unchanged']} unchanged"]
        parts += [f"{counts[name]} {name}" for name in ("failed", "dropped") if counts[name]]
        if counts.get("left_out"):
            parts.append(f"{counts['left_out']} left out by gafu.toml's [sources] lists")
        print(
            f"{which:<6} {counts['originals']} originals: {', '.join(parts)}; "
            f"{counts['in_dataset']} pictures in the dataset"
        )
    _concept_lines(data["concepts"])
    _caption_lines(data)
    _section("failed", data["failed"], lambda row: row["reason"], limit=None)
    _section(
        "renamed (names shared by several originals)",
        data["renamed"],
        lambda row: f"{row['source']} → {row['output']}",
    )
    _section("duplicates within a set", data["duplicates"], _duplicate_line)
    _section(
        "dropped from reg (RECIPE D2)",
        [row for row in data["reg_duplicates"] if row["action"] == "dropped"],
        lambda row: f"{row['reg']} = target {row['target']} ({row['kind']})",
    )
    _section(
        f"upscaled more than {data['settings']['upscale_warn']:g}× (may look soft)",
        data["upscaled"],
        lambda row: f"{row['output']} ({row['scale']:.2f}×)",
    )
    _section("cropped", data["cropped"], lambda row: f"{row['output']} ({row['percent']:g} % cut off)")
    _section("originals gone", data["missing"], _missing_line)
    _section(
        "set aside (RECIPE D1; in set-aside/, captions kept)",
        data["set_aside"],
        lambda row: f"{row['picture']} → {row['aside']}: {row['reason']}",
    )
    _section("brought back", data["restored"], lambda row: f"{row['aside']} → {row['picture']}")
    for row in data["moved"]:
        print(f"moved {row['from']} → {row['to']} (repeats or trigger changed; captions moved with it)")
    print(f"report: {Path(data['report_path']).relative_to(root).as_posix()}")


def _section(title: str, rows: list[dict[str, Any]], line: Any, *, limit: int | None = SHOWN) -> None:
    if not rows:
        return
    print(f"{title} ({len(rows)}):")
    for row in rows[:limit]:
        print(f"  {line(row)}")
    if limit is not None and len(rows) > limit:
        print(f"  … and {len(rows) - limit} more (see the report)")


def _duplicate_line(row: dict[str, Any]) -> str:
    how = "same file" if row["kind"] == "exact" else f"near, distance {row['distance']}"
    return f"{row['a']} ≈ {row['b']} ({how})"


def _missing_line(row: dict[str, Any]) -> str:
    done = "deleted" if row["pruned"] else "kept (--prune deletes it)"
    caption = f"; caption {row['caption_kept']} kept" if row["caption_kept"] else ""
    return f"{row['source']}: {row['output']} {done}{caption}"


def _concept_lines(concepts: list[dict[str, Any]]) -> None:
    """The concept folders (D5), when the originals hold more than each set's own."""
    if all(row["from"] in ("sources.target", "sources.reg") for row in concepts):
        return  # each set's originals in the set's own concept folder: nothing to explain
    print("concept folders (D5: each keeps its repeats):")
    for row in concepts:
        print(f"  {row['folder']}  {row['repeats']} repeats, {row['originals']} originals ({row['from']})")


def _caption_lines(data: dict[str, Any]) -> None:
    """Captions beside the originals: carried, kept, or not readable."""
    carried = data["captions_carried"]
    if carried:
        per_set = ", ".join(
            f"{which} {count}"
            for which in ("target", "reg")
            if (count := sum(row["set"] == which for row in carried))
        )
        print(f"captions carried from beside the originals: {len(carried)} ({per_set})")
    if data["captions_kept"]:
        print(
            f"{len(data['captions_kept'])} captions beside the originals differ from the prepared pictures' "
            "own (tagged or edited in gafu): those are kept"
        )
    _section(
        "captions beside the originals not carried",
        data["caption_failed"],
        lambda row: row["reason"],
        limit=None,
    )
    if carried:
        print(
            "next: `gafu check` lists what the carried captions need; `gafu tag` captions only the pictures "
            "without one (`gafu tag --merge` adds WD tags to carried captions)"
        )
