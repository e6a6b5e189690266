"""``run_server``: one nursery supervising the event hub and Hypercorn.

Shutdown order (DESIGN.md "Clean shutdown"): refuse new events and release
long-polls at once with what they have, drain briefly so pollers fetch the
last events (:meth:`EventHub.drain`), stop accepting, let in-flight requests
finish within the grace period, close the broadcast channel (the subscriber
drains), return.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import trio
from hypercorn.trio import serve

from ..core.errors import StartupError
from ..hosting.hypercorn_fix import EventsHypercornConfig
from ..hosting.hypercorn_fix import install as install_hypercorn_fix
from ..hosting.listening import Listening, ShutdownTrigger, bind_error, bound_address
from .app import create_asgi
from .config import ServerConfig
from .hub import EventHub, Source

log = logging.getLogger("events_trio.server")


@dataclass(slots=True)
class RunningServer(Listening):
    """What ``run_server`` reports once it accepts connections.

    Attributes:
        host: Bound host.
        port: Bound port (the real one when 0 was asked for).
        hub: The event hub; ``hub.publish(event)`` feeds the server.
    """

    hub: EventHub


def hypercorn_config(config: ServerConfig) -> EventsHypercornConfig:
    """Hypercorn settings for ``config``: bind, timeouts, logging."""
    hc = EventsHypercornConfig()
    host = f"[{config.host}]" if ":" in config.host else config.host
    hc.bind = [f"{host}:{config.port}"]
    hc.graceful_timeout = config.graceful_timeout_s
    hc.keep_alive_timeout = config.keep_alive_s
    hc.header_timeout_s = config.header_timeout_s
    hc.accesslog = None
    hc.errorlog = logging.getLogger("hypercorn.error")
    return hc


async def run_server(
    config: ServerConfig,
    *,
    hub: EventHub | None = None,
    sources: Sequence[Source] = (),
    shutdown_trigger: ShutdownTrigger | None = None,
    task_status: trio.TaskStatus[RunningServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the project server until shut down.

    Args:
        config: Settings (``port=0`` binds a free port).
        hub: The hub to serve; a new one from ``config`` when omitted.
        sources: Event sources to run inside the hub.
        shutdown_trigger: Returns when a graceful shutdown should begin
            (the CLI waits for SIGINT/SIGTERM here).
        task_status: Receives a :class:`RunningServer` once listening.

    Raises:
        StartupError: the address cannot be bound (one-line message).
    """
    if hub is None:
        hub = EventHub(
            config.capacity, channel_capacity=config.channel_capacity, clock_ms=config.clock_ms
        )
    install_hypercorn_fix()
    app = create_asgi(
        hub,
        ingest_token=config.ingest_token,
        read_token=config.read_token,
        keepalive_s=config.sse_keepalive_s,
    )
    running = RunningServer(config.host, config.port, hub)
    hc = hypercorn_config(config)

    async def trigger() -> None:
        await running.wait_shutdown(shutdown_trigger)
        log.info("shutting down: refusing new events, releasing long-polls")
        await hub.drain(config.drain_s)
        hc.cut_sends(config.graceful_timeout_s)  # a peer that never reads cannot hold us
        log.info("shutting down: no new connections")

    async def serve_then_stop(*, task_status: trio.TaskStatus[list[str]]) -> None:
        try:
            await serve(app, hc, shutdown_trigger=trigger, task_status=task_status)
        finally:
            hub.stop()

    startup_error: StartupError | None = None
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run, sources)
        try:
            binds = await nursery.start(serve_then_stop)
        except* OSError as group:
            # Hypercorn raises bind errors inside nested nurseries; report the
            # first one after our nursery closes, so callers get it unwrapped.
            startup_error = bind_error(config.host, config.port, group)
            nursery.cancel_scope.cancel()
        else:
            running.host, running.port = bound_address(binds, config.host, config.port)
            log.info("events-trio serving on %s", running.url)
            task_status.started(running)
    if startup_error is not None:
        raise startup_error
    log.info("stopped")


__all__ = ["RunningServer", "hypercorn_config", "run_server"]
