"""``ws``: the one command of Workspace Hub, on the host and in every workspace.

argparse (stdlib) keeps the workspace images free of CLI dependencies.  Each
subcommand parses, calls a library function and prints; :func:`main` maps
every :class:`~workspace_hub.errors.WorkspaceHubError` to its message and exit
code 1 (usage errors exit 2, as argparse does).

One module per command group adds its subcommands (``add_parser``) and holds
their handlers; :mod:`.common` holds what the library commands share.
"""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..errors import WorkspaceHubError
from . import algorithms, datasets, envs, folders, hub, models, runs, services, validate

# in the order `ws --help` lists them
GROUPS = (hub, validate, folders, algorithms, datasets, runs, models, services, envs)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ws", description="Workspace Hub: AI development workspaces on JupyterHub.")
    p.add_argument("--version", action="version", version=f"ws {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except WorkspaceHubError as e:
        print(f"ws: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
