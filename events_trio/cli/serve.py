"""``events-trio serve``: run a project server until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from ..core.buffer import DEFAULT_CAPACITY
from ..hosting.logjson import add_log_format_argument
from ..hosting.logs import LOG_LEVELS
from ..hosting.signals import signal_trigger
from ..server.config import ServerConfig
from ..server.hub import Source
from ..server.run import run_server
from ..sources.pipeline import DEFAULT_PIPELINE_DIR
from ..sources.watcher import PipelineWatcher
from ..wire.defaults import DEFAULT_HOST, DEFAULT_PORT
from .options import add_access_arguments

log = logging.getLogger("events_trio.cli")


def add_serve_command(commands: Any) -> None:
    """Add the ``serve`` subcommand to ``commands`` (an argparse subparsers object)."""
    serve: argparse.ArgumentParser = commands.add_parser(
        "serve",
        help="run a project server",
        description=(
            "Run a project server: buffer the most recent pipeline events in memory and "
            "serve them at GET /api/events?since=<ms>. Stops cleanly on Ctrl-C or SIGTERM."
        ),
    )
    _add_listen_arguments(serve)
    add_log_format_argument(serve)
    _add_source_arguments(serve)
    serve.set_defaults(handler=run_serve)


def _add_listen_arguments(serve: argparse.ArgumentParser) -> None:
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


def serve_config(args: argparse.Namespace) -> ServerConfig:
    """The settings the parsed ``args`` describe (validated)."""
    return ServerConfig(
        host=args.host,
        port=args.port,
        capacity=args.capacity,
        log_level=args.log_level,
        pipeline=None if args.no_watch else args.pipeline,
        ingest_token=args.ingest_token,
        read_token=args.read_token,
        allow_unauthenticated=args.allow_unauthenticated,
    )


def run_serve(args: argparse.Namespace) -> int:
    """Handler of ``events-trio serve``; returns the exit code."""
    config = serve_config(args)
    sources = [] if config.pipeline is None else [PipelineWatcher(config.pipeline)]
    for watcher in sources:
        watcher.prepare()  # a bad --pipeline is a one-line error, before binding
    trio.run(_serve_main, config, sources)
    return 0


async def _serve_main(config: ServerConfig, sources: Sequence[Source] = ()) -> None:
    with signal_trigger(log) as trigger:
        await run_server(config, sources=sources, shutdown_trigger=trigger)
