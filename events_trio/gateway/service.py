"""``run_gateway``: one nursery supervising pollers, sinks, retention and Hypercorn.

Start-up order: open the log; start every sink (a new sink registers its
offset at the log's end, so it sees everything appended after); start the
pollers (each sends its first request at once); serve HTTP; report the
bound address.

Shutdown (SIGINT/SIGTERM, or :meth:`RunningGateway.shutdown`): pollers stop,
long-polls are released, in-flight requests finish, sinks deliver what the
log already holds; everything is cut after ``graceful_timeout_s``. Nothing
is lost either way: positions and sink offsets are durable.
"""

from __future__ import annotations

import logging
import random
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Final

import httpx
import trio
from hypercorn.trio import serve

from ..auth import check_exposure
from ..config import ServerConfig
from ..errors import ConfigError, StartupError
from ..guard import guard
from ..hosting import Listening, ShutdownTrigger, bind_error, bound_address
from ..hypercorn_fix import EventsHypercornConfig
from ..hypercorn_fix import install as install_hypercorn_fix
from ..metrics import instrument
from ..server import hypercorn_config
from .app import create_gateway_app
from .config import GatewayConfig
from .metrics import GATEWAY_ROUTES, GatewayMetrics
from .poller import Poller, PollerSettings
from .sinks import Sink, SinkRunner, build_sink
from .store import EventLog, open_sqlite_log
from .transport import PerOriginTransport

log = logging.getLogger("events_trio.gateway")


#: How often retention runs.
RETENTION_INTERVAL_S: Final = 60.0
#: Keep-alive connections are dropped before servers do (Hypercorn: 75 s).
CLIENT_KEEPALIVE_EXPIRY_S: Final = 60.0


@dataclass(slots=True)
class RunningGateway(Listening):
    """What ``run_gateway`` reports once it serves.

    Attributes:
        host: Bound host.
        port: Bound port.
        log_store: The merged log.
        pollers: One per project, in registry order.
        runners: One per sink.
    """

    log_store: EventLog
    pollers: list[Poller]
    runners: list[SinkRunner]


def make_client(project_count: int) -> httpx.AsyncClient:
    """The HTTP client shared by every poller and webhook.

    Connections are pooled per origin (transport.py): one pool for all
    projects costs O(n^2) per poll in httpcore, 94% of the CPU at 1,000
    projects. Each long-poll holds one connection for up to its wait, so an
    origin's pool allows one per project (all of them could sit behind one
    origin) plus room for webhooks; it keeps them all alive for reuse, so
    each project's next poll goes out on its connection without a new
    handshake; and drops idle ones before Hypercorn's 75 s keep-alive
    timeout would.
    """
    limits = httpx.Limits(
        max_connections=project_count + 32,
        # Equal to max_connections: httpcore 1.0 compares ALL of a pool's
        # connections (not just idle ones) with this, and closes idle ones
        # beyond it, which a project's next poll would then have to reopen.
        max_keepalive_connections=project_count + 32,
        keepalive_expiry=CLIENT_KEEPALIVE_EXPIRY_S,
    )
    return httpx.AsyncClient(
        transport=PerOriginTransport(limits), follow_redirects=False, trust_env=False
    )


async def run_gateway(
    config: GatewayConfig,
    *,
    client: httpx.AsyncClient | None = None,
    sinks: Sequence[Sink] | None = None,
    shutdown_trigger: ShutdownTrigger | None = None,
    rand: Callable[[], float] = random.random,
    task_status: trio.TaskStatus[RunningGateway] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the gateway until shut down.

    Args:
        config: Settings (``port=0`` binds a free port).
        client: HTTP client for pollers and webhooks (one sized for the
            project count when omitted; an injected one is not closed).
        sinks: Sinks to feed instead of those ``config.sinks`` describes.
        shutdown_trigger: Returns when a graceful shutdown should begin.
        rand: Jitter source in [0, 1) for every backoff.
        task_status: Receives a :class:`RunningGateway` once serving.

    Raises:
        StartupError: the address cannot be bound.
        ConfigError: the state directory cannot be used; or ``config.host``
            is not loopback and there is no read token (nor
            ``allow_unauthenticated``).
    """
    check_exposure(
        config.host,
        config.read_token,
        allow_unauthenticated=config.allow_unauthenticated,
        flag="--read-token (or EVENTS_TRIO_GATEWAY_READ_TOKEN)",
    )
    async with AsyncExitStack() as stack:
        log_store = await _open_log(config)
        stack.push_async_callback(_close_log, log_store)
        if client is None:
            client = await stack.enter_async_context(make_client(len(config.projects)))
        chosen = list(sinks) if sinks is not None else [build_sink(s, client) for s in config.sinks]
        positions = await log_store.positions()
        pollers = [
            Poller(
                p,
                client,
                log_store,
                PollerSettings.for_project(config, p),
                position=positions.get(p.name),
                rand=rand,
            )
            for p in config.projects
        ]
        runners = [SinkRunner(sink, log_store, rand=rand) for sink in chosen]
        running = RunningGateway(config.host, config.port, log_store, pollers, runners)
        await _supervise(config, running, shutdown_trigger, task_status)
    log.info("gateway stopped")


async def _open_log(config: GatewayConfig) -> EventLog:
    try:
        return await open_sqlite_log(config.state_dir, config.clock_ms)
    except (OSError, sqlite3.Error) as error:
        raise ConfigError(f"state dir {config.state_dir}: {error}") from None


async def _close_log(log_store: EventLog) -> None:
    close = getattr(log_store, "aclose", None)
    if close is not None:
        with trio.CancelScope(shield=True):
            await close()


async def _supervise(
    config: GatewayConfig,
    running: RunningGateway,
    shutdown_trigger: ShutdownTrigger | None,
    task_status: trio.TaskStatus[RunningGateway],
) -> None:
    background = trio.CancelScope()
    statuses = [p.status for p in running.pollers]
    metrics = GatewayMetrics(running.log_store, running.pollers, running.runners)
    gateway_app = create_gateway_app(
        running.log_store,
        statuses,
        read_token=config.read_token,
        keepalive_s=config.sse_keepalive_s,
        stream_stats=metrics.streams,
    )
    app = instrument(guard(gateway_app), metrics.registry, GATEWAY_ROUTES, metrics.refresh)
    install_hypercorn_fix()  # issue #203 and the header deadline, as in run_server
    hc = _hypercorn(config)

    async def trigger() -> None:
        await running.wait_shutdown(shutdown_trigger)
        log.info("gateway shutting down: pollers stop, long-polls released, sinks drain")
        background.cancel()
        running.log_store.watch.release_all()
        hc.cut_sends(config.graceful_timeout_s)  # a peer that never reads cannot hold us

    startup_error: StartupError | None = None
    async with trio.open_nursery() as nursery:

        async def serve_then_stop(*, task_status: trio.TaskStatus[list[str]]) -> None:
            try:
                await serve(app, hc, shutdown_trigger=trigger, task_status=task_status)
            finally:
                background.cancel()
                running.log_store.watch.release_all()
                nursery.cancel_scope.deadline = trio.current_time() + config.graceful_timeout_s

        for runner in running.runners:
            await nursery.start(runner.run)
        nursery.start_soon(_background, running, config, background)
        try:
            binds = await nursery.start(serve_then_stop)
        except* OSError as group:
            # Hypercorn raises bind errors inside nested nurseries (as run_server notes).
            startup_error = bind_error(config.host, config.port, group)
            nursery.cancel_scope.cancel()
        else:
            running.host, running.port = bound_address(binds, config.host, config.port)
            log.info("events-trio gateway serving on %s", running.url)
            task_status.started(running)
    if startup_error is not None:
        raise startup_error


async def _background(
    running: RunningGateway, config: GatewayConfig, scope: trio.CancelScope
) -> None:
    with scope:
        async with trio.open_nursery() as nursery:
            for poller in running.pollers:
                nursery.start_soon(poller.run)
            nursery.start_soon(_retention, running.log_store, config)


async def _retention(log_store: EventLog, config: GatewayConfig) -> None:
    while True:
        try:
            deleted = await log_store.prune(config.retention_events, config.retention_age_s)
        except sqlite3.Error as error:
            log.error("retention failed: %s", error)
        else:
            if deleted:
                log.info("retention deleted %d log entries", deleted)
        await trio.sleep(RETENTION_INTERVAL_S)


def _server_config(config: GatewayConfig) -> ServerConfig:
    return ServerConfig(
        host=config.host,
        port=config.port,
        graceful_timeout_s=config.graceful_timeout_s,
        # Exposure was checked against the gateway's own read token (run_gateway).
        allow_unauthenticated=True,
    )


def _hypercorn(config: GatewayConfig) -> EventsHypercornConfig:
    return hypercorn_config(_server_config(config))
