"""A local web app over the whole workflow: the dataset grid and caption edits, tagging with a
threshold preview, the plan and its overrides, training with live progress, sample grids.

It serves this machine only (127.0.0.1) unless --host is given; then every request needs the
token printed at start. A training run started from the page runs in its own process: closing
the browser or stopping `gafu ui` does not stop it, and the page finds it again when reopened.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "a local web app for the whole workflow (dataset, tagging, plan, train, sample)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `gafu ui`."""
    parser.add_argument(
        "project", type=Path, nargs="?", default=Path("."), help="project folder (default: here)"
    )
    parser.add_argument(
        "--port", type=int, default=7860, help="port to listen on (default: 7860; 0 = any free)"
    )
    parser.add_argument(
        "--host",
        metavar="ADDRESS",
        help="listen on ADDRESS (e.g. 0.0.0.0) for other machines too; requires the printed token",
    )
    parser.add_argument("--open", action="store_true", help="open the page in the default browser")


def run(args: argparse.Namespace) -> int:
    """Run `gafu ui` until Ctrl-C."""
    from gafu.project import Project
    from gafu.ui.server import make_server, url_of

    project = Project.open(args.project)  # a missing or broken gafu.toml is reported before serving
    server = make_server(project.root, args.host or "127.0.0.1", args.port, remote=args.host is not None)
    url = url_of(server)
    print(f"gafu ui for {project.root} at {url}", flush=True)
    if args.host is not None:
        print("the token in that address is required: share it only with people you trust", flush=True)
    print("Ctrl-C stops the server (a training run started from the page goes on)", flush=True)
    if args.open:
        import webbrowser

        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.settings.stopping.set()  # open event streams end at their next poll
        server.server_close()
    return 0
