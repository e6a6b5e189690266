"""``run_server``: one nursery supervising the event hub and Hypercorn.

Shutdown order (DESIGN.md "Clean shutdown"): stop accepting, release
long-polls at once with what they have, let in-flight requests finish
within the grace period, close the broadcast channel (the subscriber
drains), return.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import trio
from hypercorn.trio import serve

from .app import create_asgi
from .config import ServerConfig
from .errors import StartupError
from .hub import EventHub, Source
from .hypercorn_fix import EventsHypercornConfig
from .hypercorn_fix import install as install_hypercorn_fix

log = logging.getLogger("events_trio.server")

ShutdownTrigger = Callable[[], Awaitable[None]]


@dataclass(slots=True)
class RunningServer:
    """What ``run_server`` reports once it accepts connections.

    Attributes:
        host: Bound host.
        port: Bound port (the real one when 0 was asked for).
        hub: The event hub; ``hub.publish(event)`` feeds the server.
    """

    host: str
    port: int
    hub: EventHub
    _stop: trio.Event = field(default_factory=trio.Event, repr=False)

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:7070``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def shutdown(self) -> None:
        """Begin a graceful shutdown, as SIGTERM does."""
        self._stop.set()


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
        async with trio.open_nursery() as race:
            if shutdown_trigger is not None:
                race.start_soon(_then_cancel, shutdown_trigger, race.cancel_scope)
            race.start_soon(_then_cancel, running._stop.wait, race.cancel_scope)
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
            startup_error = _startup_error(config, _first_leaf(group))
            nursery.cancel_scope.cancel()
        else:
            bound = urlsplit(binds[0])
            running.host, running.port = bound.hostname or config.host, bound.port or config.port
            log.info("events-trio serving on %s", running.url)
            task_status.started(running)
    if startup_error is not None:
        raise startup_error
    log.info("stopped")


async def _then_cancel(wait: ShutdownTrigger, scope: trio.CancelScope) -> None:
    await wait()
    scope.cancel()


def _first_leaf(group: BaseExceptionGroup[OSError]) -> OSError:
    error: OSError | BaseExceptionGroup[OSError] = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


def _startup_error(config: ServerConfig, error: OSError) -> StartupError:
    if error.errno == errno.EADDRINUSE:
        return StartupError(f"port {config.port} on {config.host} is already in use")
    if error.errno == errno.EACCES:
        return StartupError(f"permission denied binding {config.host}:{config.port}")
    return StartupError(f"cannot listen on {config.host}:{config.port}: {error.strerror or error}")


__all__ = ["RunningServer", "hypercorn_config", "run_server"]
