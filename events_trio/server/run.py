"""``run_server``: one nursery supervising the event hub and Hypercorn.

Shutdown order: refuse new events and release
long-polls at once with what they have, drain briefly so pollers fetch the
last events (:meth:`EventHub.drain`), stop accepting, let in-flight requests
finish within the grace period, close the broadcast channel (the subscriber
drains), return.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio

from ..hosting.hypercorn_fix import EventsHypercornConfig
from ..hosting.hypercorn_fix import install as install_hypercorn_fix
from ..hosting.listening import Listening, ShutdownTrigger, serve_hypercorn, start_listening
from ..hosting.settings import hypercorn_settings
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
    return hypercorn_settings(
        config.host,
        config.port,
        graceful_timeout_s=config.graceful_timeout_s,
        keep_alive_s=config.keep_alive_s,
        header_timeout_s=config.header_timeout_s,
    )


def new_hub(config: ServerConfig) -> EventHub:
    """An event hub sized and clocked as ``config`` says."""
    return EventHub(
        config.capacity, channel_capacity=config.channel_capacity, clock_ms=config.clock_ms
    )


def server_app(config: ServerConfig, hub: EventHub) -> Any:
    """The complete ASGI app over ``hub`` (``run_server`` runs the hub itself)."""
    return create_asgi(
        hub,
        ingest_token=config.ingest_token,
        read_token=config.read_token,
        keepalive_s=config.sse_keepalive_s,
    )


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
    hub = new_hub(config) if hub is None else hub
    install_hypercorn_fix()
    running = RunningServer(config.host, config.port, hub)
    hc = hypercorn_config(config)
    trigger = partial(_shut_down, running, config, hc, shutdown_trigger)
    serving = partial(serve_hypercorn, server_app(config, hub), hc, trigger, on_stop=hub.stop)
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run, sources)
        error = await start_listening(nursery, running, serving)
        if error is None:
            log.info("events-trio serving on %s", running.url)
            task_status.started(running)
    if error is not None:
        raise error
    log.info("stopped")


async def _shut_down(
    running: RunningServer,
    config: ServerConfig,
    hc: EventsHypercornConfig,
    shutdown_trigger: ShutdownTrigger | None,
) -> None:
    # Hypercorn's shutdown trigger: returns when Hypercorn should stop accepting.
    await running.wait_shutdown(shutdown_trigger)
    log.info("shutting down: refusing new events, releasing long-polls")
    await running.hub.drain(config.drain_s)
    hc.cut_sends(config.graceful_timeout_s)  # a peer that never reads cannot hold us
    log.info("shutting down: no new connections")


__all__ = ["RunningServer", "hypercorn_config", "run_server"]
