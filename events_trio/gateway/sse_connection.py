"""A project server's event stream on a connection of its own, read lean.

A stream is one endless response: pooling buys it nothing, and with one
event per chunk, the layers a general client puts around each read were
the largest share of the gateway's CPU per event (httpcore's timeout scope,
exception maps and async generators; then h11's per-chunk reader, and
Trio's socket wrapper, a tenth each). So
:class:`~.transport.PerOriginTransport` hands a request marked
:data:`STREAM_EXTENSION` (``streamer.stream_request``) to
:func:`open_event_stream`: a plain TCP connection, the request written and
the response head parsed by ``h11``; then the body is read straight from
the socket (wait until readable, one ``recv``) and handed to httpx one
chunk per read. A chunked body (what our server sends) is decoded by
:class:`ChunkedDecoder`; any other framing is left to h11. Errors are
httpx's (``ConnectError``, ``ReadError``, ``RemoteProtocolError``), so
callers see what any httpx response raises. Plain ``http://`` only;
``https://`` streams go through the pool.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterable, AsyncIterator
from typing import Final, Protocol

import h11
import httpx
import trio

#: Request extension that asks for a connection of its own.
STREAM_EXTENSION: Final = "events_trio.event_stream"
#: Response extension holding the body's chunks, to be read without httpx's
#: iterator layers around them (:func:`body_chunks`).
BODY_EXTENSION: Final = "events_trio.event_stream_body"
_READ_BYTES: Final = 65536
_TRIO_ERRORS: Final = (OSError, trio.BrokenResourceError, trio.ClosedResourceError)
#: Longest chunk-size or trailer line accepted (h11 allows 16 KiB for a whole head).
MAX_CHUNK_LINE: Final = 4096
_HEX: Final = frozenset(b"0123456789abcdefABCDEF")


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
    # The socket leaves Trio's stream wrapper: the body is read from it directly.
    raw = socket.socket(fileno=stream.socket.detach())
    raw.setblocking(False)
    framing: _Framing
    if _chunked(head):
        framing = ChunkedDecoder(conn.trailing_data[0])
    else:
        framing = _H11Framing(conn)
    body = _Body(raw, framing)
    return httpx.Response(
        head.status_code,
        headers=list(head.headers),
        stream=body,
        request=request,
        extensions={"http_version": b"HTTP/1.1", BODY_EXTENSION: body},
    )


def body_chunks(response: httpx.Response) -> AsyncIterable[bytes]:
    """The body of ``response`` as it arrives: straight from our stream when it is one.

    httpx's own iterator wraps each chunk in three async generators and a
    chunker; for a lone event they cost more than decoding it.
    """
    body = response.extensions.get(BODY_EXTENSION)
    return body if isinstance(body, _Body) else response.aiter_raw()


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


def _chunked(head: h11.Response) -> bool:
    # h11 accepts no transfer coding but chunked, so the header is either that or absent.
    return any(name == b"transfer-encoding" for name, _ in head.headers)


class _Framing(Protocol):
    def pending(self) -> tuple[bytes, bool]:
        """Body bytes already received, and whether the body has ended."""
        ...

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """Body bytes ``data`` completes (``b""``: the connection closed), and whether it ended."""
        ...


class ChunkedDecoder:
    """The chunked transfer coding (RFC 9112 section 7.1), decoded as bytes arrive.

    Chunk extensions are ignored, trailer fields skipped. Anything else
    malformed (a size that is not hex, data not followed by CRLF, an
    overlong line, the connection closed mid-body) raises
    ``httpx.RemoteProtocolError``.

    Args:
        pending: Bytes already received after the response head.
    """

    __slots__ = ("_buffer", "_left", "_state")

    _SIZE: Final = 0
    _DATA: Final = 1
    _DATA_END: Final = 2
    _TRAILER: Final = 3
    _DONE: Final = 4

    def __init__(self, pending: bytes = b"") -> None:
        self._buffer = pending
        self._left = 0
        self._state = self._SIZE

    def pending(self) -> tuple[bytes, bool]:
        """Body bytes in what was received with the head, and whether the body has ended."""
        return self._take(self._buffer)

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """Body bytes that ``data`` completes, and whether the body has ended.

        ``b""`` means the connection closed: an error unless the body had ended.
        """
        if not data and self._state != self._DONE:
            raise httpx.RemoteProtocolError("connection closed in the middle of the body")
        return self._take(self._buffer + data if self._buffer else data)

    def _take(self, buffer: bytes) -> tuple[bytes, bool]:
        parts: list[bytes] = []
        pos = self._decode(buffer, parts)
        self._buffer = buffer[pos:]
        return b"".join(parts), self._state == self._DONE

    def _decode(self, buffer: bytes, parts: list[bytes]) -> int:
        """Decode from ``buffer`` into ``parts``; returns how far it got."""
        pos, end = 0, len(buffer)
        while self._state != self._DONE:
            if self._state == self._DATA:
                take = min(self._left, end - pos)
                if take:
                    parts.append(buffer[pos : pos + take])
                    pos += take
                    self._left -= take
                if self._left:
                    return pos
                self._state = self._DATA_END
            elif self._state == self._DATA_END:
                if end - pos < 2:
                    return pos
                if buffer[pos : pos + 2] != b"\r\n":
                    raise httpx.RemoteProtocolError("chunk data not followed by CRLF")
                pos += 2
                self._state = self._SIZE
            else:
                line_end = buffer.find(b"\r\n", pos)
                if line_end < 0:
                    if end - pos > MAX_CHUNK_LINE:
                        raise httpx.RemoteProtocolError("chunk line too long")
                    return pos
                line = buffer[pos:line_end]
                pos = line_end + 2
                if self._state == self._SIZE:
                    self._size_line(line)
                elif not line:  # the empty line after the trailer fields
                    self._state = self._DONE
        return pos

    def _size_line(self, line: bytes) -> None:
        digits = line.split(b";", 1)[0].rstrip(b" \t")
        if not digits or len(digits) > 16 or not _HEX.issuperset(digits):
            raise httpx.RemoteProtocolError(f"bad chunk size {line[:40]!r}")
        self._left = int(digits, 16)
        self._state = self._DATA if self._left else self._TRAILER


class _H11Framing:
    """Any other framing (``Content-Length``, read until close), left to h11."""

    def __init__(self, conn: h11.Connection) -> None:
        self._conn = conn

    def pending(self) -> tuple[bytes, bool]:
        return self._drain()

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        self._conn.receive_data(data)
        return self._drain()

    def _drain(self) -> tuple[bytes, bool]:
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


class _Body(httpx.AsyncByteStream):
    """The response body: what each socket read completes, as one chunk."""

    def __init__(self, sock: socket.socket, framing: _Framing) -> None:
        self._sock = sock
        self._framing = framing

    async def __aiter__(self) -> AsyncIterator[bytes]:
        data, ended = self._framing.pending()  # what came with the head
        while True:
            if data:
                yield data
            if ended:
                return
            try:
                await trio.lowlevel.wait_readable(self._sock)
                received = self._sock.recv(_READ_BYTES)
            except BlockingIOError:
                data = b""
                continue
            except _TRIO_ERRORS as error:
                raise httpx.ReadError(str(error) or type(error).__name__) from None
            data, ended = self._framing.feed(received)

    async def aclose(self) -> None:
        """Close the connection (a stream is never reused)."""
        trio.lowlevel.notify_closing(self._sock)
        self._sock.close()
        await trio.lowlevel.checkpoint()
