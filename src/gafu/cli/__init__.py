"""The `gafu` command: one module per sub-command, each a thin layer over a library function."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from gafu import __version__
from gafu.cpu import prepare_environment
from gafu.errors import GafuError

# Sub-commands in workflow order; each `gafu.cli.<name>` has HELP, add_arguments(parser), run(args)
# and may have rewrite_args(args), which turns another accepted order of its arguments into the parser's.
COMMANDS = ["init", "prep", "tag", "tags", "check", "reg", "plan", "train", "sample", "eval", "ui", "demo"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="gafu",
        description="gafu (画風): from a folder of one artist's pictures to a style LoKr.",
    )
    parser.add_argument("--version", action="version", version=f"gafu {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"gafu.cli.{name}")
        sub = commands.add_parser(name, help=module.HELP, description=module.__doc__)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the gafu command line; returns the exit code."""
    for stream in (sys.stdout, sys.stderr):  # a Windows console must not fail on a file name
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="replace")
    # gafu prints its own progress and one-line errors; the libraries' notices (a dtype cast on
    # a model without fp32-only modules, a missing optional torchvision) and their bars (loading
    # a tiny text encoder's weights) would only add noise. A user's own setting of these wins.
    for library in ("TRANSFORMERS_VERBOSITY", "DIFFUSERS_VERBOSITY"):
        os.environ.setdefault(library, "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    prepare_environment()  # before torch loads: OpenMP threads that sleep, not spin (gafu.cpu)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:  # a command may accept another order of its arguments
        rewrite = getattr(importlib.import_module(f"gafu.cli.{argv[0]}"), "rewrite_args", None)
        if rewrite is not None:
            argv = [argv[0], *rewrite(argv[1:])]
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except GafuError as exc:
        print(f"gafu: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gafu: interrupted; earlier results are kept", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `gafu check --json | head`: the reader left, which is not an error
        sys.stdout = None  # type: ignore[assignment]  # keep Python from flushing into the closed pipe
        return 0
