"""The ``events-trio`` command: ``serve`` (and more subcommands as they land)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

import trio

from .buffer import DEFAULT_CAPACITY
from .config import DEFAULT_HOST, DEFAULT_PORT, LOG_LEVELS, ServerConfig
from .errors import EventsTrioError
from .server import run_server

log = logging.getLogger("events_trio.cli")


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
    serve = commands.add_parser(
        "serve",
        help="run a project server",
        description=(
            "Run a project server: buffer the most recent pipeline events in memory and "
            "serve them at GET /api/events?since=<ms>. Stops cleanly on Ctrl-C or SIGTERM."
        ),
    )
    serve.add_argument("--host", default=DEFAULT_HOST, help="interface to bind (default: %(default)s)")
    serve.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="TCP port, 0 for any free one (default: %(default)s)"
    )
    serve.add_argument(
        "--capacity",
        type=int,
        default=DEFAULT_CAPACITY,
        help="events kept in memory; the oldest is dropped beyond this (default: %(default)s)",
    )
    serve.add_argument(
        "--log-level", choices=LOG_LEVELS, default="info", help="log verbosity (default: %(default)s)"
    )
    serve.set_defaults(handler=_serve)
    return parser


def configure_logging(level: str) -> None:
    """Log to stderr, one line per record."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


async def _wait_for_signal(receiver: trio.abc.AsyncIterator[int]) -> None:  # type: ignore[name-defined]
    async for signum in receiver:
        log.info("received %s", signal.Signals(signum).name)
        return


async def _serve_main(config: ServerConfig) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        await run_server(config, shutdown_trigger=lambda: _wait_for_signal(signals))


def _serve(args: argparse.Namespace) -> int:
    config = ServerConfig(
        host=args.host, port=args.port, capacity=args.capacity, log_level=args.log_level
    )
    trio.run(_serve_main, config)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``events-trio`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    configure_logging(getattr(args, "log_level", "info"))
    try:
        code: int = args.handler(args)
    except EventsTrioError as error:
        print(f"events-trio: error: {error}", file=sys.stderr)
        return 1
    return code


_ = Path
