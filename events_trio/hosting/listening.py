"""What the project server and the gateway share to host an app on Hypercorn.

* :class:`Listening` — the record both report through ``task_status``: the
  bound address, its URL, and ``shutdown()``.
* :func:`first_of` — wait for whichever shutdown trigger fires first.
* :func:`serve_hypercorn` / :func:`start_listening` — run Hypercorn in a
  nursery, then either record the bound address or return the bind error.
* :func:`bound_address` / :func:`bind_error` — turn what Hypercorn reports
  (bind strings, bind errors raised inside its nested nurseries) into an
  address and a one-line :class:`~events_trio.core.errors.StartupError`.
"""

from __future__ import annotations

import errno
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from ..core.errors import StartupError

#: Returns when a graceful shutdown should begin (a signal, a test's event).
ShutdownTrigger = Callable[[], Awaitable[None]]


def http_url(host: str, port: int) -> str:
    """``http://host:port``, with an IPv6 host in brackets."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@dataclass(slots=True)
class Listening:
    """A process accepting connections.

    Attributes:
        host: Bound host.
        port: Bound port (the real one when 0 was asked for).
    """

    host: str
    port: int
    _stop: trio.Event = field(default_factory=trio.Event, repr=False, kw_only=True)

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:7070``."""
        return http_url(self.host, self.port)

    def shutdown(self) -> None:
        """Begin a graceful shutdown, as SIGTERM does."""
        self._stop.set()

    async def wait_shutdown(self, trigger: ShutdownTrigger | None = None) -> None:
        """Return when :meth:`shutdown` is called or ``trigger`` returns."""
        await first_of(self._stop.wait, *([trigger] if trigger is not None else []))


async def first_of(*waits: ShutdownTrigger) -> None:
    """Return as soon as any of ``waits`` returns (the others are cancelled)."""
    async with trio.open_nursery() as race:
        for wait in waits:
            race.start_soon(_then_cancel, wait, race.cancel_scope)


async def _then_cancel(wait: ShutdownTrigger, scope: trio.CancelScope) -> None:
    await wait()
    scope.cancel()


def bound_address(binds: list[str], host: str, port: int) -> tuple[str, int]:
    """The host and port Hypercorn reports having bound (``binds[0]``)."""
    bound = urlsplit(binds[0])
    return bound.hostname or host, bound.port or port


def bind_error(host: str, port: int, group: BaseExceptionGroup[OSError]) -> StartupError:
    """A one-line error for a bind failure Hypercorn raised inside its nurseries."""
    error: OSError | BaseExceptionGroup[OSError] = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    if error.errno == errno.EADDRINUSE:
        return StartupError(f"port {port} on {host} is already in use")
    if error.errno == errno.EACCES:
        return StartupError(f"permission denied binding {host}:{port}")
    return StartupError(f"cannot listen on {host}:{port}: {error.strerror or error}")


async def serve_hypercorn(
    app: Any,
    settings: HypercornConfig,
    trigger: ShutdownTrigger,
    *,
    on_stop: Callable[[], None],
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` until ``trigger`` returns; ``on_stop()`` runs however it ends.

    ``task_status`` receives the bind strings once Hypercorn listens.
    """
    try:
        await serve(app, settings, shutdown_trigger=trigger, task_status=task_status)
    finally:
        on_stop()


async def start_listening(
    nursery: trio.Nursery, running: Listening, serving: Callable[..., Awaitable[None]]
) -> StartupError | None:
    """Start ``serving`` (a :func:`serve_hypercorn` partial) in ``nursery``.

    On success ``running`` gets the bound host and port. A bind failure
    cancels ``nursery`` and is returned, for the caller to raise once the
    nursery has closed (so it arrives unwrapped, not in an exception group).
    """
    error: StartupError | None = None
    try:
        binds = await nursery.start(serving)
    except* OSError as group:
        error = bind_error(running.host, running.port, group)
        nursery.cancel_scope.cancel()
    else:
        running.host, running.port = bound_address(binds, running.host, running.port)
    return error
