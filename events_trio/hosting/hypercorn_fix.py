"""Keep one connection's failure inside that connection (hypercorn issue #203).

Hypercorn 0.18's trio worker runs every connection in the server's own
nursery. A client that announces a ``Content-Length``, sends fewer bytes and
half-closes makes h11 raise while the connection is closing; the error
response then collides with the closing ``send_eof`` and
``trio.BusyResourceError`` escapes the connection task, which takes the
whole server process down with it.

:func:`install` swaps hypercorn's ``TCPServer`` for a subclass that treats a
busy stream like a broken one and never lets an ordinary exception leave a
connection task. Both hosting doors call it (``run_server`` and
``events_trio.asgi``), and the gateway, before Hypercorn starts accepting.

The subclass also enforces a **header deadline** (slowloris). h11 has none,
and Hypercorn's ``read_timeout`` bounds every read, so it would also cut a
long-poll whose client rightly sends nothing while it waits. Instead, a
request's head (request line and headers) must be complete within
``header_timeout_s`` (:data:`~events_trio.hosting.timeouts.DEFAULT_HEADER_TIMEOUT_S`,
10 s) of its first byte; otherwise the connection is closed without an
answer. Idle keep-alive connections (no byte of a next request yet) are
governed by ``keep_alive_timeout`` as before.

The subclass leans on Hypercorn's private names. :func:`check_hypercorn`
inspects every one of them (methods and their signatures, the names they
use, the module global the worker looks ``TCPServer`` up by), and
:func:`install` refuses with :class:`~events_trio.errors.StartupError` when
any is missing or changed: an upgrade must fail loudly, never leave the
server running without the containment. pyproject.toml pins the range the
patch was verified on (:data:`VERIFIED_ON`).
"""

from __future__ import annotations

import inspect
import logging
import types
from collections.abc import Callable, Iterator
from importlib.metadata import version
from math import inf
from typing import Any, Final

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.events import Closed, Event, RawData, Updated
from hypercorn.trio import run as hypercorn_run
from hypercorn.trio import tcp_server
from hypercorn.trio.tcp_server import MAX_RECV, TCPServer

from ..core.errors import StartupError
from .timeouts import DEFAULT_HEADER_TIMEOUT_S

#: The Hypercorn releases the patch was verified on (pyproject.toml pins them).
VERIFIED_ON: Final = ">=0.18,<0.19"

#: Seconds one write of a response may wait for a peer that does not read;
#: then the connection is closed (Hypercorn's own writes wait for ever).
SEND_TIMEOUT_S: Final = 30.0

log = logging.getLogger("events_trio.hypercorn")

_PASS_THROUGH: Final = (trio.Cancelled, KeyboardInterrupt, SystemExit)


class EventsHypercornConfig(HypercornConfig):
    """Hypercorn's settings plus ours (read by :class:`ContainedTCPServer`).

    Also the meeting point of one server's connections at shutdown:
    :meth:`cut_sends` bounds every write still blocked on a peer that does
    not read (Hypercorn shields those writes from cancellation, so without
    this a single such peer would hold the shutdown open for ever).
    """

    #: Seconds a request's head may take from its first byte (slowloris).
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    #: Seconds one write may wait for the peer to accept it.
    send_timeout_s: float = SEND_TIMEOUT_S

    def __init__(self) -> None:
        super().__init__()
        self.sends_deadline = inf
        self.sending: set[trio.CancelScope] = set()

    def cut_sends(self, grace_s: float) -> None:
        """Give every write, current and future, at most ``grace_s`` more seconds."""
        self.sends_deadline = trio.current_time() + grace_s
        for scope in self.sending:
            scope.deadline = min(scope.deadline, self.sends_deadline)


class ContainedTCPServer(TCPServer):
    """Hypercorn's ``TCPServer`` with connection errors kept to the connection
    and a deadline for each request's head."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # One watchdog per connection; each request only moves this deadline
        # (spawning a timer task per request cost ~5% of the hot path).
        self._head_scope = trio.CancelScope()
        self._watchdog: trio.CancelScope | None = None
        self._reading_done = False
        self._head_started = False  # bytes of a request head have arrived
        self._in_request = False  # Hypercorn is handling a request

    async def protocol_send(self, event: Event) -> None:
        if isinstance(event, RawData):
            await self._send_raw(event.data)
            return
        if isinstance(event, Updated):
            await self._request_state(in_request=not event.idle)
        try:
            await super().protocol_send(event)
        except trio.BusyResourceError:
            # Another task is closing the stream: the peer is gone either way.
            await self.protocol.handle(Closed())

    async def _send_raw(self, data: bytes) -> None:
        # Hypercorn's write, shielded as there (a cancelled write would leave a
        # keep-alive connection mid-response), but with a deadline.
        config = self.config
        sending: set[trio.CancelScope] = getattr(config, "sending", set())
        timeout_s = getattr(config, "send_timeout_s", SEND_TIMEOUT_S)
        deadline = min(trio.current_time() + timeout_s, getattr(config, "sends_deadline", inf))
        sent = False
        async with self.send_lock:
            with trio.CancelScope(shield=True, deadline=deadline) as scope:
                sending.add(scope)
                try:
                    await self.stream.send_all(data)
                    sent = True
                except (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError):
                    pass
                finally:
                    sending.discard(scope)
            if scope.cancelled_caught:
                log.info("closing a connection that does not read its response")
                await self.stream.aclose()
        if not sent:
            await self.protocol.handle(Closed())

    async def _request_state(self, *, in_request: bool) -> None:
        self._in_request = in_request
        if in_request and self._head_started:
            self._head_started = False
            self._head_scope.deadline = inf

    async def _read_data(self) -> None:
        # Hypercorn's loop, plus arming the head deadline on a request's first byte.
        timeout_s = getattr(self.config, "header_timeout_s", DEFAULT_HEADER_TIMEOUT_S)
        self._task_group.spawn(self._head_watchdog, timeout_s)
        try:
            while True:
                try:
                    with trio.fail_after(self.config.read_timeout or inf):
                        data = await self.stream.receive_some(MAX_RECV)
                except (trio.ClosedResourceError, trio.BrokenResourceError, trio.TooSlowError):
                    break
                if data and not self._in_request and not self._head_started:
                    self._head_started = True
                    self._head_scope.deadline = trio.current_time() + timeout_s
                await self.protocol.handle(RawData(bytes(data)))
                if data == b"":
                    break
        finally:
            self._reading_done = True
            if self._watchdog is not None:
                self._watchdog.cancel()
        await self.protocol.handle(Closed())

    async def _head_watchdog(self, timeout_s: float) -> None:
        with trio.CancelScope() as self._watchdog:
            if self._reading_done:
                return
            with self._head_scope:
                await trio.sleep_forever()
            # Only the head deadline gets here (closing cancels the outer scope).
            log.info("closing a connection whose request head took over %g s", timeout_s)
            with trio.CancelScope(shield=True):
                await self._initiate_server_close()

    async def run(self) -> None:
        try:
            await super().run()
        except BaseExceptionGroup as group:
            passing, dropped = group.split(_PASS_THROUGH)
            if dropped is not None:
                log.debug("connection closed after error: %r", dropped)
            if passing is not None:
                raise passing from None
        except _PASS_THROUGH:
            raise
        except Exception as error:  # noqa: BLE001 -- the whole point: contain it
            log.debug("connection closed after error: %r", error)


#: The private methods the subclass overrides or calls, with their parameters.
_METHODS: Final = {
    "__init__": ("self", "app", "config", "context", "state", "stream"),
    "run": ("self",),
    "protocol_send": ("self", "event"),
    "_read_data": ("self",),
    "_initiate_server_close": ("self",),
}
#: Names each method must still use: attributes we read, the events we intercept.
_USES: Final = {
    "__init__": ("send_lock", "stream", "config"),
    "run": ("_task_group", "protocol", "_read_data"),
    "protocol_send": ("RawData", "Updated", "send_lock", "send_all"),
    "_read_data": ("receive_some", "read_timeout", "RawData", "Closed"),
}


def _names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _names(const)


def _method_problems(cls: type) -> Iterator[str]:
    for name, params in _METHODS.items():
        method = cls.__dict__.get(name)
        if not callable(method):
            yield f"TCPServer.{name} is missing"
            continue
        found = tuple(inspect.signature(method).parameters)
        if found != params:
            yield f"TCPServer.{name}{found} is not TCPServer.{name}{params}"
            continue
        code = getattr(method, "__code__", None)
        used = set() if code is None else set(_names(code))
        missing = [n for n in _USES.get(name, ()) if n not in used]
        if missing:
            yield f"TCPServer.{name} no longer uses {', '.join(missing)}"


def _module_problems() -> Iterator[str]:
    if not hasattr(hypercorn_run, "TCPServer"):
        yield "hypercorn.trio.run.TCPServer is missing"
    if not any("TCPServer" in set(_names(f.__code__)) for f in _functions(hypercorn_run)):
        yield "hypercorn.trio.run no longer looks TCPServer up at serve time"
    if not isinstance(getattr(tcp_server, "MAX_RECV", None), int):
        yield "hypercorn.trio.tcp_server.MAX_RECV is missing"
    for event, field in ((RawData, "data"), (Updated, "idle")):
        if field not in getattr(event, "__dataclass_fields__", {}):
            yield f"hypercorn.events.{event.__name__}.{field} is missing"


def _functions(module: types.ModuleType) -> Iterator[Callable[..., Any]]:
    for value in vars(module).values():
        if isinstance(value, types.FunctionType) and value.__module__ == module.__name__:
            yield value


def check_hypercorn() -> list[str]:
    """What of Hypercorn's private API the patch relies on is missing or changed.

    Returns:
        One line per problem; empty when the patch can install.
    """
    return [*_module_problems(), *_method_problems(tcp_server.TCPServer)]


def install() -> None:
    """Make Hypercorn's trio worker use :class:`ContainedTCPServer` (idempotent).

    Raises:
        StartupError: Hypercorn changed a private name the patch relies on;
            running unpatched would silently drop the crash containment.
    """
    problems = check_hypercorn()
    if problems:
        raise StartupError(
            f"hypercorn {version('hypercorn')} is not supported (the connection patch "
            f"needs hypercorn{VERIFIED_ON}): {'; '.join(problems)}"
        )
    hypercorn_run.TCPServer = ContainedTCPServer  # type: ignore[attr-defined]
