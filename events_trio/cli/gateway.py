"""``events-trio gateway``: flags, configuration, signals, exit codes.

Flags override the ``[gateway]`` table of ``--config``; ``--project`` adds
to the file's projects and ``--sink`` replaces its sinks. SIGINT/SIGTERM
shut down cleanly (exit 0); a bad configuration prints one line and exits 1.
SIGHUP reads the file again and applies its projects and sinks
(``reload.py``); a bad file is logged and the running configuration kept.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Final

import trio

from ..core.errors import ConfigError, EventsTrioError
from ..gateway.config import (
    DEFAULT_GATEWAY_PORT,
    DEFAULT_LEASE_TTL_S,
    DEFAULT_STATE_DIR,
    GatewayConfig,
    load_config,
    parse_project_flag,
    parse_sink_flag,
)
from ..gateway.reload import reload_config
from ..gateway.service import RunningGateway, run_gateway
from ..hosting.logjson import add_log_format_argument
from ..hosting.logs import LOG_LEVELS
from ..hosting.signals import signal_trigger
from .options import add_access_arguments

log = logging.getLogger("events_trio.gateway.cli")

#: Where ``--admin-token`` takes its default from.
ADMIN_TOKEN_ENV: Final = "EVENTS_TRIO_GATEWAY_ADMIN_TOKEN"
#: Where ``--store`` takes its default from (a URL with a password belongs here).
STORE_ENV: Final = "EVENTS_TRIO_GATEWAY_STORE"


def add_gateway_command(commands: Any) -> None:
    """Add the ``gateway`` subcommand to ``commands`` (an argparse subparsers object)."""
    gateway: argparse.ArgumentParser = commands.add_parser(
        "gateway",
        help="poll project servers and deliver their events to chat",
        description=(
            "Poll every registered project server's /api/events, merge the events into one "
            "durable stream, deliver it to sinks (console, JSON lines, webhook, Apprise) and serve it "
            "at GET /api/events. Stops cleanly on Ctrl-C or SIGTERM."
        ),
    )
    _add_where_arguments(gateway)
    _add_what_arguments(gateway)
    add_access_arguments(gateway, env="EVENTS_TRIO_GATEWAY_READ_TOKEN")
    add_log_format_argument(gateway)
    gateway.set_defaults(handler=run_gateway_command)


def _add_where_arguments(gateway: argparse.ArgumentParser) -> None:
    gateway.add_argument("--config", type=Path, metavar="FILE", help="gateway TOML file")
    gateway.add_argument(
        "--project",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="a project server (repeatable)",
    )
    gateway.add_argument("--host", help="interface of the HTTP API (default: 127.0.0.1)")
    gateway.add_argument(
        "--port",
        type=int,
        help=f"port of the HTTP API, 0 for any free one (default: {DEFAULT_GATEWAY_PORT})",
    )


def _add_what_arguments(gateway: argparse.ArgumentParser) -> None:
    gateway.add_argument(
        "--state-dir",
        type=Path,
        help=f"directory of the durable log (default: ./{DEFAULT_STATE_DIR}/)",
    )
    gateway.add_argument(
        "--store",
        default=os.environ.get(STORE_ENV) or None,
        metavar="URL",
        help="cluster mode: postgresql://USER@HOST:PORT/DBNAME shared by every gateway "
        f"(default: ${STORE_ENV}; without it, SQLite in --state-dir; docs/scaling.md)",
    )
    gateway.add_argument(
        "--lease-ttl",
        type=float,
        dest="lease_ttl_s",
        metavar="SECONDS",
        help=f"cluster mode: how long a dead gateway's projects wait for a new owner "
        f"(default: {DEFAULT_LEASE_TTL_S:g})",
    )
    gateway.add_argument(
        "--replay",
        action="store_true",
        default=None,
        help="new projects start from their whole buffer",
    )
    gateway.add_argument(
        "--sink",
        action="append",
        default=[],
        metavar="SPEC",
        help="console | jsonl:PATH | webhook:URL | apprise:URL (repeatable; default: console)",
    )
    gateway.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default="info",
        help="log verbosity (default: %(default)s)",
    )
    gateway.add_argument(
        "--admin-token",
        default=os.environ.get(ADMIN_TOKEN_ENV) or None,
        help=f"enable POST/DELETE /api/projects for 'Authorization: Bearer TOKEN' "
        f"(default: ${ADMIN_TOKEN_ENV}; prefer the variable, flags show in ps)",
    )


def gateway_config(args: argparse.Namespace) -> GatewayConfig:
    """The configuration the parsed ``args`` describe.

    Raises:
        ConfigError: bad file, flag or value; or no project at all.
    """
    config = load_config(args.config) if args.config is not None else GatewayConfig()
    changes: dict[str, Any] = {"log_level": args.log_level}
    names = ("host", "port", "state_dir", "replay", "read_token", "admin_token", "store")
    for name in (*names, "lease_ttl_s"):
        value = getattr(args, name)
        if value is not None:
            changes[name] = value
    if args.allow_unauthenticated:
        changes["allow_unauthenticated"] = True
    if args.project:
        changes["projects"] = config.projects + tuple(map(parse_project_flag, args.project))
    if args.sink:
        changes["sinks"] = tuple(map(parse_sink_flag, args.sink))
    config = config.replace(**changes)
    if not config.projects and config.store is None:
        # A cluster member may start without: it polls the shared registry's projects.
        raise ConfigError("no projects: give --config FILE or --project NAME=URL")
    return config


def run_gateway_command(args: argparse.Namespace) -> int:
    """Handler of ``events-trio gateway``; returns the exit code.

    Raises:
        EventsTrioError: bad configuration or the gateway cannot start.
    """
    config = gateway_config(args)
    if config.log_level != "debug":
        # httpx logs every request at INFO: one line per poll would drown the log.
        logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        trio.run(_main, config, partial(gateway_config, args))
    except BaseExceptionGroup as group:
        raise _single_error(group) from None
    return 0


async def _main(config: GatewayConfig, load: Callable[[], GatewayConfig]) -> None:
    started: list[RunningGateway] = []
    with signal_trigger(log, on_reload=partial(_reload, started, config, load)) as trigger:
        async with trio.open_nursery() as nursery:
            started.append(
                await nursery.start(partial(run_gateway, config, shutdown_trigger=trigger))
            )
            # What start-up built (modules, configuration, a poller per project:
            # ~130k objects at 1,000 projects) lives as long as the process, yet
            # every full collection scanned it again, a 100-300 ms pause that
            # held back every project's events (benchmarks/bench_scale.py).
            # Frozen, it is skipped; refcounting still frees what is dropped.
            gc.freeze()


async def _reload(
    started: list[RunningGateway], config: GatewayConfig, load: Callable[[], GatewayConfig]
) -> None:
    """SIGHUP: re-read the configuration file; a bad one keeps the running configuration."""
    for running in started:
        await reload_config(load, config, running.registry, running.sinkset)


def _single_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    # Nurseries wrap a start-up error in an exception group; the CLI wants
    # the one-line error inside, and anything else re-raised as it was.
    matched, _rest = group.split(EventsTrioError)
    if matched is not None and _rest is None:
        leaves = list(_leaves(matched))
        if len(leaves) == 1:
            return leaves[0]
    return group


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for sub in error.exceptions for leaf in _leaves(sub)]
    return [error]
