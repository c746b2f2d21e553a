"""Edit captions in batches (journaled, undoable), look at one caption, and count tags per set.

Every caption written keeps the trigger first in target captions and out of regularization
captions (RECIPE T3) and holds each tag once; tags match whatever their spelling (`long_hair`,
`long hair`, `Long Hair`). add/remove/replace/tidy work on both sets unless --set says otherwise.
`--where` picks pictures by their tags: `long_hair` (has), `no:chibi` (has not), `a or b`
(either); terms separated by spaces are all required; write spaces inside a tag as _.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gafu.cli.output import print_json, warn

HELP = "edit captions in batches (add, remove, replace, tidy, undo), show one, count tags per set"
WHERE_SYNTAX = """--where syntax (types the same in bash, cmd and PowerShell):
  long_hair                        has long hair
  "long_hair blue_eyes"            has both: terms separated by spaces or commas must all hold
  "white_dress or black_dress"     has at least one
  "no:chibi no:sketch"             has neither
Write spaces inside a tag as _. Several --where options must all hold."""
ACTIONS = ("add", "remove", "replace", "tidy", "show", "stats", "undo", "history")
SET_HELP = "which captions: target, reg or both (default: both; T5 removals use --set target)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `gafu tags`: one sub-command per action."""
    parser.usage = "%(prog)s [PROJECT] ACTION ... (or: %(prog)s ACTION ... -p PROJECT)"
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    add = actions.add_parser("add", help="add tags (at the end) to the captions that lack them")
    add.add_argument("tags", nargs="+", metavar="TAG", help="tags to add (long_hair or 'long hair')")
    _edit_options(add)
    remove = actions.add_parser("remove", help="remove tags, in any spelling")
    remove.add_argument("tags", nargs="+", metavar="TAG", help="tags to remove")
    _edit_options(remove)
    replace = actions.add_parser("replace", help="replace one tag by another, in place")
    replace.add_argument("old", metavar="OLD", help="tag to replace")
    replace.add_argument("new", metavar="NEW", help="tag to put in its place")
    _edit_options(replace)
    tidy = actions.add_parser(
        "tidy", help="rewrite captions cleanly (no BOM, one line, no empty or repeated tags)"
    )
    _edit_options(tidy)

    show = actions.add_parser("show", help="one picture's caption, its bars and its uncovered tags")
    show.add_argument("picture", metavar="PICTURE", help="file name, <folder>/<file>, or path")
    _common_options(show)
    stats = actions.add_parser("stats", help="tag frequencies per set, side by side")
    stats.add_argument(
        "--set", dest="sets", choices=["target", "reg", "both"], default="both", help="sets shown"
    )
    stats.add_argument("--top", type=int, default=30, help="tags shown, most frequent first (0 = all)")
    _common_options(stats)

    undo = actions.add_parser("undo", help="revert the last edit (again for the one before, and so on)")
    undo.add_argument("--force", action="store_true", help="restore captions changed since the edit too")
    undo.add_argument("--dry-run", action="store_true", help="show what would be restored, write nothing")
    _common_options(undo)
    history = actions.add_parser("history", help="the recorded edits that undo can revert, newest first")
    _common_options(history)


def rewrite_args(args: list[str]) -> list[str]:
    """`tags PROJECT ACTION …` (the project first, as in every other command) → `tags ACTION -p PROJECT …`."""
    if len(args) >= 2 and args[0] not in ACTIONS and not args[0].startswith("-") and args[1] in ACTIONS:
        return [args[1], "--project", args[0], *args[2:]]
    return args


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-p", "--project", type=Path, default=Path("."), help="project folder (default: here)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON for tools")


def _edit_options(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = WHERE_SYNTAX
    parser.add_argument(
        "--set", dest="sets", choices=["target", "reg", "both"], default="both", help=SET_HELP
    )
    parser.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="EXPR",
        help='only captions whose tags match, e.g. "long_hair no:chibi white_dress or black_dress" '
        "(repeatable: all must match)",
    )
    parser.add_argument(
        "--picture", action="extend", nargs="+", default=[], metavar="NAME", help="only these pictures"
    )
    parser.add_argument("--dry-run", action="store_true", help="show what would change, write nothing")
    _common_options(parser)


def run(args: argparse.Namespace) -> int:
    """Run `gafu tags ACTION`."""
    from gafu.project import Project

    project = Project.open(args.project)
    if args.action in ("add", "remove", "replace", "tidy"):
        return _run_edit(project, args)
    return {"show": _run_show, "stats": _run_stats, "undo": _run_undo, "history": _run_history}[args.action](
        project, args
    )


def _run_edit(project, args: argparse.Namespace) -> int:
    from gafu.captions import edit

    selection = edit.Selection(sets=args.sets, where=args.where, pictures=args.picture)
    if args.action == "add":
        result = edit.tags_add(project, args.tags, selection, dry_run=args.dry_run)
    elif args.action == "remove":
        result = edit.tags_remove(project, args.tags, selection, dry_run=args.dry_run)
    elif args.action == "replace":
        result = edit.tags_replace(project, args.old, args.new, selection, dry_run=args.dry_run)
    else:
        result = edit.tags_tidy(project, selection, dry_run=args.dry_run)
    if args.json:
        print_json(result.to_dict())
        return 0
    for note in result.notes:
        warn(note)
    if result.uncaptioned:
        warn(f"{len(result.uncaptioned)} picture(s) have no caption yet and were skipped (run `gafu tag`)")
    print(result.action)
    for change in result.changes:
        print(f"  {change.set:<6}  {change.picture}  {_describe_change(change)}")
    counts = f"target {result.count('target')}, reg {result.count('reg')}"
    changed = f"{len(result.changes)} of {result.selected} selected caption(s)"
    if result.dry_run:
        print(f"dry run: {changed} would change ({counts}); nothing written")
    elif result.changes:
        print(f"{changed} changed ({counts}); revert with `gafu tags undo`")
    else:
        print(f"nothing to change in {result.selected} selected caption(s)")
    return 0


def _describe_change(change) -> str:
    parts = [f"+ {t}" for t in change.added] + [f"- {t}" for t in change.removed]
    if parts:
        return "  ".join(parts)
    return "tags reordered" if list(change.before) != list(change.after) else "text cleaned"


def _run_show(project, args: argparse.Namespace) -> int:
    from gafu.captions.stats import picture_tags

    shown = picture_tags(project, args.picture)
    if args.json:
        print_json(shown.to_dict())
        return 0
    print(f"{shown.picture}  ({shown.set})")
    if not shown.exists:
        print(f"no caption yet ({shown.caption}); run `gafu tag`")
        return 0
    print(f"caption: {shown.caption}")
    uncovered = set(shown.uncovered)
    for i, tag in enumerate(shown.tags, 1):
        mark = "   (no regularization caption has it: D3)" if tag in uncovered else ""
        print(f"  {i:>3}. {tag}{mark}")
    if shown.bars:
        print(f"bars added by prep: {shown.bars} (T4)")
    for problem in shown.problems:
        print(f"note: the file {problem}; `gafu tags tidy` rewrites it cleanly")
    return 0


def _run_stats(project, args: argparse.Namespace) -> int:
    from gafu.captions.stats import tag_stats

    stats = tag_stats(project, args.sets)
    if args.json:
        print_json(stats.to_dict(args.top))
        return 0
    shown = stats.tags[: args.top] if args.top > 0 else stats.tags
    width = max([len("tag"), *(len(t.tag) for t in shown)])
    print(f"{'tag':<{width}}" + "".join(f"  {which:>11}" for which in stats.sets))
    for count in shown:
        cells = "".join(f"  {count.counts[w]:>6} {stats.share(count.counts[w], w):>4.0%}" for w in stats.sets)
        print(f"{count.tag:<{width}}{cells}")
    sizes = ", ".join(
        f"{w}: {stats.pictures[w]} pictures, {stats.captioned[w]} captioned" for w in stats.sets
    )
    more = f"; showing {len(shown)} (--top 0 for all)" if len(shown) < len(stats.tags) else ""
    print(f"{sizes}; {len(stats.tags)} distinct tags{more}")
    return 0


def _run_undo(project, args: argparse.Namespace) -> int:
    from gafu.captions.journal import undo_last

    result = undo_last(project, force=args.force, dry_run=args.dry_run)
    if args.json:
        print_json(
            {
                "entry": result.entry.id if result.entry else None,
                "action": result.entry.action if result.entry else None,
                "restored": result.restored,
                "missing": result.missing,
                "dry_run": result.dry_run,
            }
        )
        return 0
    if result.entry is None:
        print("nothing to undo")
        return 0
    for name in result.restored:
        print(f"  {name}")
    for name in result.missing:
        warn(f"{name} no longer exists; left alone")
    verb = "would restore" if result.dry_run else "restored"
    print(f"undo edit {result.entry.id} ({result.entry.action}): {verb} {len(result.restored)} caption(s)")
    return 0


def _run_history(project, args: argparse.Namespace) -> int:
    from gafu.captions.journal import list_entries

    entries = list(reversed(list_entries(project)))
    if args.json:
        print_json(
            [
                {"id": e.id, "action": e.action, "written_at": e.written_at, "captions": len(e.changes)}
                for e in entries
            ]
        )
        return 0
    if not entries:
        print("no recorded edits")
    for entry in entries:
        print(f"{entry.id:>4}  {entry.written_at}  {len(entry.changes):>4} caption(s)  {entry.action}")
    return 0
