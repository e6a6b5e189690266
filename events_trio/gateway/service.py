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
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final

import httpx
import trio

from ..core.errors import ConfigError
from ..hosting.access import close_when
from ..hosting.guard import guard
from ..hosting.heap import settle_heap
from ..hosting.hypercorn_fix import install as install_hypercorn_fix
from ..hosting.listening import Listening, ShutdownTrigger, serve_hypercorn, start_listening
from ..hosting.metrics import instrument
from ..hosting.settings import hypercorn_settings
from ..wire.auth import check_exposure
from .app import create_gateway_app
from .cluster import ClusterProjects, ClusterSupervisor, ClusterView
from .config import GatewayConfig, SinkSpec
from .errors import StoreError, StoreUnavailable
from .eventlog import EventLog
from .metrics import GATEWAY_ROUTES, GatewayMetrics
from .pg.log import PgLog, open_pg_log
from .poller import Poller, PollerSettings
from .registry import ProjectRegistry
from .routing import EVERYTHING
from .sinks import Sink, SinkRunner, build_sink
from .sinkset import SinkSet
from .store import open_sqlite_log
from .store_url import redact
from .stories import StoryBoard
from .story_feed import follow_log
from .transport import PerOriginTransport
from .view import LocalView, ProjectsView, make_gateway_id

log = logging.getLogger("events_trio.gateway")


#: How often retention runs.
RETENTION_INTERVAL_S: Final = 60.0
#: How often the gateway checks whether its set of projects settled (heap freezing).
HEAP_SETTLE_INTERVAL_S: Final = 5.0
#: Keep-alive connections are dropped before servers do (Hypercorn: 75 s).
CLIENT_KEEPALIVE_EXPIRY_S: Final = 60.0
#: Connections for projects added at run time (opened only when used).
RUNTIME_PROJECTS_HEADROOM: Final = 1000
#: Cluster mode: how long start-up waits for PostgreSQL before giving up.
STORE_STARTUP_WAIT_S: Final = 60.0
STORE_RETRY_S: Final = 2.0


@dataclass(slots=True)
class RunningGateway(Listening):
    """What ``run_gateway`` reports once it serves.

    Attributes:
        host: Bound host.
        port: Bound port.
        log_store: The merged log.
        pollers: One per project, in registry order.
        runners: One per sink.
        registry: The running projects (added and removed at run time).
        sinkset: The running sinks (a reload adds and removes them).
        board: Each story's stage and stuck state (what needs attention).
        view: What ``/api/projects`` and ``/healthz`` list.
        cluster: Cluster mode's supervisor (``None`` with SQLite).
    """

    log_store: EventLog
    pollers: list[Poller]
    runners: list[SinkRunner]
    registry: ProjectRegistry
    sinkset: SinkSet
    board: StoryBoard = field(default_factory=StoryBoard)
    view: ProjectsView | None = None
    cluster: ClusterSupervisor | None = None


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
    gateway_id = make_gateway_id()
    async with AsyncExitStack() as stack:
        log_store = await _open_log(config, gateway_id)
        stack.push_async_callback(_close_log, log_store)
        if client is None:
            client = await stack.enter_async_context(
                make_client(len(config.projects) + RUNTIME_PROJECTS_HEADROOM)
            )
        cluster = isinstance(log_store, PgLog)
        # In a cluster, pollers start as this gateway wins projects' leases.
        pollers = [] if cluster else await _pollers(config, client, log_store, rand)
        sinkset = _sinkset(config, client, log_store, sinks, rand, gated=cluster)
        registry = ProjectRegistry(
            config, client, log_store, pollers, [p.status for p in pollers], rand=rand
        )
        running = RunningGateway(
            config.host, config.port, log_store, pollers, sinkset.runners, registry, sinkset
        )
        running.view = LocalView(registry.statuses, gateway_id)
        if isinstance(log_store, PgLog):
            supervisor = ClusterSupervisor(
                log_store, registry, sinkset, config.projects, config.lease_ttl_s
            )
            stack.push_async_callback(supervisor.leave)  # after everything stopped
            running.cluster = supervisor
            running.registry = ClusterProjects(supervisor)
            running.view = ClusterView(supervisor, registry.statuses)
        await _supervise(config, running, shutdown_trigger, task_status)
    log.info("gateway stopped")


async def _pollers(
    config: GatewayConfig,
    client: httpx.AsyncClient,
    log_store: EventLog,
    rand: Callable[[], float],
) -> list[Poller]:
    """One poller per project, each resuming at its durable position."""
    positions = await log_store.positions()
    return [
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


def _sinkset(
    config: GatewayConfig,
    client: httpx.AsyncClient,
    log_store: EventLog,
    sinks: Sequence[Sink] | None,
    rand: Callable[[], float],
    *,
    gated: bool = False,
) -> SinkSet:
    """The configured sinks (or the injected ones), each behind its route."""
    if sinks is None:
        chosen = [build_sink(s, client, public_url=config.public_url) for s in config.sinks]
        specs: list[SinkSpec | None] = list(config.sinks)
    else:
        chosen, specs = list(sinks), [None] * len(sinks)
    runners = [
        SinkRunner(sink, log_store, rand=rand, route=spec.route if spec else EVERYTHING)
        for sink, spec in zip(chosen, specs, strict=True)
    ]
    return SinkSet(
        log_store, client, runners, specs, public_url=config.public_url, rand=rand, gated=gated
    )


async def _open_log(config: GatewayConfig, gateway_id: str) -> EventLog:
    if config.store is not None:
        return await _open_cluster_log(config.store, gateway_id, config)
    try:
        return await open_sqlite_log(
            config.state_dir, config.clock_ms, window_s=config.commit_window_s
        )
    except (OSError, sqlite3.Error) as error:
        raise ConfigError(f"state dir {config.state_dir}: {error}") from None


async def _open_cluster_log(url: str, gateway_id: str, config: GatewayConfig) -> PgLog:
    """The cluster's log; waits up to :data:`STORE_STARTUP_WAIT_S` for PostgreSQL."""
    log.info("cluster mode: gateway %s, store %s", gateway_id, redact(url))
    deadline = trio.current_time() + STORE_STARTUP_WAIT_S
    while True:
        try:
            return await open_pg_log(
                url, gateway_id, clock_ms=config.clock_ms, window_s=config.commit_window_s
            )
        except StoreUnavailable as error:
            if trio.current_time() >= deadline:
                raise ConfigError(f"{error} (gave up after {STORE_STARTUP_WAIT_S:g} s)") from None
            log.warning("%s; retrying", error)
            await trio.sleep(STORE_RETRY_S)


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
    app = gateway_asgi(config, running)
    install_hypercorn_fix()  # issue #203 and the header deadline, as in run_server
    stop = partial(_stop_background, running, background)
    settings = hypercorn_settings(
        config.host, config.port, graceful_timeout_s=config.graceful_timeout_s
    )
    # A peer that never reads cannot hold the shutdown beyond the grace period.
    cut_sends = partial(settings.cut_sends, config.graceful_timeout_s)
    trigger = partial(_shut_down, running, shutdown_trigger, stop, cut_sends)
    async with trio.open_nursery() as nursery:
        on_stop = partial(_stop_within_grace, nursery, config.graceful_timeout_s, stop)
        serving = partial(serve_hypercorn, app, settings, trigger, on_stop=on_stop)
        await running.sinkset.start(nursery)
        nursery.start_soon(_background, running, config, background)
        error = await start_listening(nursery, running, serving)
        if error is None:
            log.info("events-trio gateway serving on %s", running.url)
            task_status.started(running)
    if error is not None:
        raise error


def gateway_asgi(config: GatewayConfig, running: RunningGateway) -> Any:
    """The complete ASGI app: metrics -> ``Connection: close`` when stopping -> guard -> app."""
    metrics = GatewayMetrics(running.log_store, running.pollers, running.runners)
    gateway_app = create_gateway_app(
        running.log_store,
        running.registry.statuses,
        read_token=config.read_token,
        keepalive_s=config.sse_keepalive_s,
        stream_stats=metrics.streams,
        registry=running.registry,
        admin_token=config.admin_token,
        board=running.board,
        clock_ms=config.clock_ms,
        view=running.view,
    )
    stopping = close_when(guard(gateway_app), lambda: running.log_store.watch.released)
    return instrument(stopping, metrics.registry, GATEWAY_ROUTES, metrics.refresh)


def _stop_background(running: RunningGateway, background: trio.CancelScope) -> None:
    background.cancel()
    running.log_store.watch.release_all()


async def _shut_down(
    running: RunningGateway,
    shutdown_trigger: ShutdownTrigger | None,
    stop: Callable[[], None],
    cut_sends: Callable[[], None],
) -> None:
    # Hypercorn's shutdown trigger: returns when Hypercorn should stop accepting.
    await running.wait_shutdown(shutdown_trigger)
    log.info("gateway shutting down: pollers stop, long-polls released, sinks drain")
    stop()
    cut_sends()


def _stop_within_grace(nursery: trio.Nursery, grace_s: float, stop: Callable[[], None]) -> None:
    # Hypercorn has stopped: sinks get the grace period to deliver what the log holds.
    stop()
    nursery.cancel_scope.deadline = trio.current_time() + grace_s


async def _background(
    running: RunningGateway, config: GatewayConfig, scope: trio.CancelScope
) -> None:
    with scope:
        async with trio.open_nursery() as nursery:
            if running.cluster is None:
                nursery.start_soon(running.registry.run)
            else:
                await nursery.start(running.cluster.registry.run)
                nursery.start_soon(running.cluster.log_store.follow)
                nursery.start_soon(running.cluster.run)
            nursery.start_soon(follow_log, running.board, running.log_store)
            nursery.start_soon(_retention, running.log_store, config)
            nursery.start_soon(_settle_heap, running)


async def _settle_heap(running: RunningGateway) -> None:
    """Freeze the heap once pollers are up, and again once a change of the projects is over."""
    settled: list[str] | None = None
    previous: list[str] | None = None
    while True:
        await trio.sleep(HEAP_SETTLE_INTERVAL_S)
        names = running.registry.names
        if names == previous and names != settled:  # changed, then steady for an interval
            settle_heap()  # one full pass now instead of one every few seconds (hosting/heap.py)
            settled = names
        previous = names


async def _retention(log_store: EventLog, config: GatewayConfig) -> None:
    while True:
        try:
            deleted = await log_store.prune(config.retention_events, config.retention_age_s)
        except StoreError as error:
            log.error("retention failed: %s", error)
        else:
            if deleted:
                log.info("retention deleted %d log entries", deleted)
        await trio.sleep(RETENTION_INTERVAL_S)
