"""The ``events-trio`` command: one subcommand per module of this package."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import version

from ..core.errors import EventsTrioError
from ..hosting.logs import configure_logging
from .demo import add_demo_command
from .emit import add_emit_command
from .gateway import add_gateway_command
from .serve import add_serve_command


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``events-trio`` (also used to document the CLI)."""
    parser = argparse.ArgumentParser(
        prog="events-trio",
        description=(
            "Carry pipeline notifications from project servers to one chat channel. "
            "'serve' runs a project server that buffers events and serves them at "
            "GET /api/events?since=<ms>."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('events-trio')}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_serve_command(commands)
    add_emit_command(commands)
    add_gateway_command(commands)
    add_demo_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``events-trio`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    configure_logging(
        getattr(args, "log_level", "info"), log_format=getattr(args, "log_format", "text")
    )
    try:
        code: int = args.handler(args)
    except EventsTrioError as error:
        print(f"events-trio: error: {error}", file=sys.stderr)
        return 1
    return code
