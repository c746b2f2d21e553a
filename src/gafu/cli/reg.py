"""Build the regularization set: `gafu reg pick PROJECT POOL` chooses it from a folder of candidates.

It tags the pool with the project's tagger (the scores are kept, so a second run takes seconds
and an interrupted one continues), then chooses about as many pictures as the target set has
(RECIPE D2) so that their captions cover the target's tags, weighted by how often each occurs
(D3), in styles as varied as the pool allows, and never a target picture or a near-duplicate of
one (D2). It prints the D3 coverage now and with the choice, and what each chosen picture adds.

The choice goes into gafu.toml: `[sources] reg` becomes the pool and `[sources.include] reg`
lists the chosen pictures; with --copy-to they are copied into a folder of your own instead.
Your pictures are never moved or changed. Then run `gafu prep` and `gafu tag`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from gafu.cli.output import print_json, warn
from gafu.cli.tag import add_tagger_arguments

if TYPE_CHECKING:
    from gafu.reg.pick import PickResult
    from gafu.reg.write import Written

HELP = "choose the regularization set from a pool of pictures (D2, D3)"
SHOWN_PICKS = 60  # picks printed; --json and reports/reg-pick.json have them all


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `gafu reg`: one sub-command per action."""
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    pick = actions.add_parser(
        "pick", help="choose pictures from a pool that cover the target's tags", description=__doc__
    )
    pick.formatter_class = argparse.RawDescriptionHelpFormatter
    pick.add_argument("project", type=Path, help="project folder")
    pick.add_argument("pool", type=Path, help="folder of candidate pictures (any size, subfolders too)")
    pick.add_argument("--count", type=int, help="pictures to choose (default: as many as the target set)")
    pick.add_argument("--copy-to", type=Path, metavar="FOLDER", help="copy the chosen pictures into FOLDER")
    pick.add_argument("--dry-run", action="store_true", help="show the choice; change nothing in gafu.toml")
    add_tagger_arguments(pick)
    pick.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    """Run `gafu reg pick`."""
    from tqdm import tqdm

    from gafu.errors import GafuError
    from gafu.project import Project
    from gafu.reg.pick import PickOptions, pick_regularization
    from gafu.reg.write import write_choice
    from gafu.reports import write_report
    from gafu.tagging.tag import TagEvents

    if args.count is not None and args.count < 1:
        raise GafuError(f"--count must be at least 1, not {args.count}")
    if args.batch_size is not None and args.batch_size < 1:
        raise GafuError(f"--batch-size must be at least 1, not {args.batch_size}")
    project = Project.open(args.project)
    tagger = args.tagger
    if tagger and Path(tagger).expanduser().exists():
        tagger = str(Path(tagger).expanduser().resolve())
    bar: list[tqdm] = []

    def on_start(reference: str, provider: str, count: int) -> None:
        line = f"tagging the pool with {reference} on {provider}: {count} pictures (kept for next time)"
        print(line, file=sys.stderr if args.json else sys.stdout, flush=True)
        bar.append(tqdm(total=count, unit="picture", desc="tagging pool", dynamic_ncols=True))

    options = PickOptions(args.count, tagger, args.batch_size, args.cpu, args.threads)
    try:
        result = pick_regularization(
            project, args.pool, options, TagEvents(on_start, lambda n: bar[0].update(n))
        )
    finally:
        for b in bar:
            b.close()
    written = None if args.dry_run else write_choice(project, result, copy_to=args.copy_to)
    data = {**result.to_dict(), "written": written.to_dict() if written else None}
    write_report(project.reports_dir, "reg-pick", data)
    for note in result.notes:
        warn(note)
    if args.json:
        print_json(data)
    else:
        _print(result, written)
    return 0


def _print(result: PickResult, written: Written | None) -> None:
    """The choice for people: the pool, coverage before and after, then each pick and what it adds."""
    left_out = sum(len(v) for v in result.left_out.values())
    print(
        f"pool {result.pool}: {result.pool_pictures} pictures, {result.candidates} usable "
        f"({result.tagged_now} tagged now, {result.reused} from earlier runs)"
    )
    for reason, pictures in result.left_out.items():
        print(f"  left out, {reason}: {len(pictures)} (e.g. {pictures[0]})")
    for picture, error in list(result.failed.items())[:5]:
        print(f"  unreadable: {picture}: {error}")
    if left_out or result.failed:
        print()
    before = "not known" if result.coverage_before is None else f"{result.coverage_before:.0%}"
    reason = f" ({result.before_reason})" if result.before_reason else ""
    print(f"D3 coverage now: {before}{reason}")
    print(
        f"D3 coverage with these {len(result.picks)} pictures: {result.coverage_after:.0%} of target tag "
        f"uses (the whole pool could give {result.coverage_possible:.0%})"
    )
    for number, pick in enumerate(result.picks[:SHOWN_PICKS], 1):
        if pick.adds:
            adds = (
                "+ "
                + ", ".join(pick.adds[:6])
                + (f", … {len(pick.adds) - 6} more" if len(pick.adds) > 6 else "")
            )
        elif pick.again:
            adds = "again: " + ", ".join(pick.again[:5]) + ("…" if len(pick.again) > 5 else "")
        else:
            adds = "another style"
        distance = f"style distance {pick.style_distance:g}"
        print(f"  {number:>3}. {pick.picture}  {adds}  → {pick.coverage:.0%}  ({distance})")
    if len(result.picks) > SHOWN_PICKS:
        print(f"  … and {len(result.picks) - SHOWN_PICKS} more (reports/reg-pick.json has them all)")
    if result.uncovered_after:
        print(f"still uncovered: {', '.join(result.uncovered_after[:15])}")
    if written is None:
        print("dry run: gafu.toml unchanged")
        return
    for line in written.lines:
        print(line)
    print("next: `gafu prep` then `gafu tag` prepare and caption them; `gafu check` shows the coverage")
