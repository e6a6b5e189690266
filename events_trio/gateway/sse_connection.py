"""A project server's event stream on a connection of its own, read with h11 directly.

A stream is one endless response: pooling buys it nothing, and with one
event per chunk, httpcore's per-chunk layers (a timeout scope, exception
maps and several async generators for each read) were the largest share
of the gateway's CPU per event. So :class:`~.transport.PerOriginTransport`
hands a request marked :data:`STREAM_EXTENSION` (``streamer.stream_request``)
to :func:`open_event_stream`: a plain TCP connection, the request written
and the response parsed by ``h11``, the body handed to httpx as read, one
chunk per socket read. Errors are httpx's (``ConnectError``, ``ReadError``,
``RemoteProtocolError``), so callers see what any httpx response raises.
Plain ``http://`` only; ``https://`` streams go through the pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final

import h11
import httpx
import trio

#: Request extension that asks for a connection of its own.
STREAM_EXTENSION: Final = "events_trio.event_stream"
_READ_BYTES: Final = 65536
_TRIO_ERRORS: Final = (OSError, trio.BrokenResourceError, trio.ClosedResourceError)


async def open_event_stream(request: httpx.Request) -> httpx.Response:
    """Send ``request`` on a new connection and return once the response head is in.

    Raises:
        httpx.ConnectError: the connection could not be made.
        httpx.ReadError: it broke before the head arrived.
        httpx.RemoteProtocolError: the answer is not HTTP/1.1.
    """
    url = request.url
    try:
        stream = await trio.open_tcp_stream(url.host, url.port or 80)
    except OSError as error:
        raise httpx.ConnectError(str(error) or type(error).__name__, request=request) from None
    conn = h11.Connection(h11.CLIENT)
    try:
        head = await _exchange(stream, conn, request)
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return httpx.Response(
        head.status_code,
        headers=list(head.headers),
        stream=_Body(stream, conn),
        request=request,
        extensions={"http_version": b"HTTP/1.1"},
    )


async def _exchange(
    stream: trio.SocketStream, conn: h11.Connection, request: httpx.Request
) -> h11.Response:
    target = request.url.raw_path
    hello = h11.Request(method=b"GET", target=target, headers=list(request.headers.raw))
    try:
        await stream.send_all(conn.send(hello) + (conn.send(h11.EndOfMessage()) or b""))
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(_READ_BYTES))
            elif isinstance(event, h11.Response):
                return event
            elif not isinstance(event, h11.InformationalResponse):
                raise httpx.RemoteProtocolError("connection closed before the response head")
    except _TRIO_ERRORS as error:
        raise httpx.ReadError(str(error) or type(error).__name__, request=request) from None
    except h11.ProtocolError as error:
        raise httpx.RemoteProtocolError(str(error), request=request) from None


class _Body(httpx.AsyncByteStream):
    """The response body: what each socket read completes, as one chunk."""

    def __init__(self, stream: trio.SocketStream, conn: h11.Connection) -> None:
        self._stream = stream
        self._conn = conn

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            data, ended = self._drain()
            if data:
                yield data
            if ended:
                return
            try:
                received = await self._stream.receive_some(_READ_BYTES)
            except _TRIO_ERRORS as error:
                raise httpx.ReadError(str(error) or type(error).__name__) from None
            self._conn.receive_data(received)

    def _drain(self) -> tuple[bytes, bool]:
        """Body bytes h11 can give now, and whether the body has ended."""
        parts: list[bytes] = []
        while True:
            try:
                event = self._conn.next_event()
            except h11.ProtocolError as error:
                raise httpx.RemoteProtocolError(str(error)) from None
            if isinstance(event, h11.Data):
                parts.append(bytes(event.data))
            elif event is h11.NEED_DATA:
                return b"".join(parts), False
            else:  # EndOfMessage, ConnectionClosed
                return b"".join(parts), True

    async def aclose(self) -> None:
        """Close the connection (a stream is never reused)."""
        await trio.aclose_forcefully(self._stream)
