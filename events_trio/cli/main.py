"""The ``events-trio`` command: ``serve`` (and more subcommands as they land)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

import trio

from ..core.buffer import DEFAULT_CAPACITY
from ..core.errors import EventsTrioError
from ..hosting.logjson import add_log_format_argument, formatter
from ..server.config import DEFAULT_HOST, DEFAULT_PORT, LOG_LEVELS, ServerConfig
from ..server.hub import Source
from ..server.run import run_server
from ..sources.emit import add_emit_command
from ..sources.pipeline import DEFAULT_PIPELINE_DIR
from ..sources.watcher import PipelineWatcher
from ..wire.auth import add_access_arguments
from .demo import add_demo_command
from .gateway import add_gateway_command

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
    serve.add_argument(
        "--host", default=DEFAULT_HOST, help="interface to bind (default: %(default)s)"
    )
    serve.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help="TCP port, 0 for any free one (default: %(default)s)",
    )
    serve.add_argument(
        "--capacity",
        type=int,
        default=DEFAULT_CAPACITY,
        help="events kept in memory; the oldest is dropped beyond this (default: %(default)s)",
    )
    serve.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default="info",
        help="log verbosity (default: %(default)s)",
    )
    add_log_format_argument(serve)
    _add_source_arguments(serve)
    serve.set_defaults(handler=_serve)
    add_emit_command(commands)
    add_gateway_command(commands)
    add_demo_command(commands)
    return parser


def _add_source_arguments(serve: argparse.ArgumentParser) -> None:
    serve.add_argument(
        "--pipeline",
        type=Path,
        default=Path(os.environ.get("EVENTS_TRIO_PIPELINE") or DEFAULT_PIPELINE_DIR),
        help="pipeline directory to watch, created with default stages if needed "
        "(default: $EVENTS_TRIO_PIPELINE or %(default)s)",
    )
    serve.add_argument("--no-watch", action="store_true", help="do not watch a pipeline directory")
    serve.add_argument(
        "--ingest-token",
        default=os.environ.get("EVENTS_TRIO_INGEST_TOKEN") or None,
        help="enable POST /api/events for this bearer token "
        "(default: $EVENTS_TRIO_INGEST_TOKEN; prefer the variable, flags show in ps)",
    )
    add_access_arguments(serve, env="EVENTS_TRIO_READ_TOKEN")


def configure_logging(level: str, *, logger: str | None = None, log_format: str = "text") -> None:
    """Log to stderr, one line per record.

    Args:
        level: ``debug``, ``info``, ``warning`` or ``error``.
        log_format: ``text`` or ``json`` (one JSON object per line, logjson.py).
        logger: Configure only this logger, for a host that owns the root
            logger (Hypercorn: its own loggers propagate to the root, so a
            root handler would print their lines twice). It gets a handler
            unless the host configured the root already. Default: the root.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    if logger is None:
        logging.basicConfig(level=level.upper(), handlers=[handler])
    else:
        own = logging.getLogger(logger)
        own.setLevel(level.upper())
        if not logging.getLogger().handlers and not own.handlers:
            own.addHandler(handler)
    if level.lower() != "debug":
        # awatch logs "N changes detected" at INFO for every batch: noise here.
        logging.getLogger("watchfiles").setLevel(logging.WARNING)


async def _wait_for_signal(receiver: trio.abc.AsyncIterator[int]) -> None:  # type: ignore[name-defined]
    async for signum in receiver:
        log.info("received %s", signal.Signals(signum).name)
        return


async def _serve_main(config: ServerConfig, sources: Sequence[Source] = ()) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        await run_server(
            config, sources=sources, shutdown_trigger=lambda: _wait_for_signal(signals)
        )


def _serve(args: argparse.Namespace) -> int:
    config = ServerConfig(
        host=args.host,
        port=args.port,
        capacity=args.capacity,
        log_level=args.log_level,
        pipeline=None if args.no_watch else args.pipeline,
        ingest_token=args.ingest_token,
        read_token=args.read_token,
        allow_unauthenticated=args.allow_unauthenticated,
    )
    sources = [] if config.pipeline is None else [PipelineWatcher(config.pipeline)]
    for watcher in sources:
        watcher.prepare()  # a bad --pipeline is a one-line error, before binding
    trio.run(_serve_main, config, sources)
    return 0


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


_ = Path
