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
``events_trio.asgi``) before Hypercorn starts accepting.
"""

from __future__ import annotations

import logging
from typing import Final

import trio
from hypercorn.events import Closed, Event
from hypercorn.trio import run as hypercorn_run
from hypercorn.trio.tcp_server import TCPServer

log = logging.getLogger("events_trio.hypercorn")

_PASS_THROUGH: Final = (trio.Cancelled, KeyboardInterrupt, SystemExit)


class ContainedTCPServer(TCPServer):
    """Hypercorn's ``TCPServer`` with connection errors kept to the connection."""

    async def protocol_send(self, event: Event) -> None:
        try:
            await super().protocol_send(event)
        except trio.BusyResourceError:
            # Another task is closing the stream: the peer is gone either way.
            await self.protocol.handle(Closed())

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


def install() -> None:
    """Make Hypercorn's trio worker use :class:`ContainedTCPServer` (idempotent)."""
    hypercorn_run.TCPServer = ContainedTCPServer  # type: ignore[attr-defined]
