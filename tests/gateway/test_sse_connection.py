"""Event streams on a connection of their own (h11 directly), against raw TCP servers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial

import httpx
import pytest
import trio

from events_trio.gateway.sse_connection import STREAM_EXTENSION, ChunkedDecoder
from events_trio.gateway.transport import PerOriginTransport

from .test_faults import read_request

Handler = Callable[[trio.SocketStream], Awaitable[None]]
HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
    b"X-Events-Instance: abc\r\nTransfer-Encoding: chunked\r\n\r\n"
)


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[str]:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
        yield f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
        nursery.cancel_scope.cancel()


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def get_stream(url: str) -> tuple[httpx.Response, list[bytes]]:
    transport = PerOriginTransport(httpx.Limits())
    async with httpx.AsyncClient(transport=transport) as client:
        request = client.build_request(
            "GET", f"{url}/api/events/stream", extensions={STREAM_EXTENSION: True}
        )
        response = await client.send(request, stream=True)
        try:
            body = [part async for part in response.aiter_raw()]
        finally:
            await response.aclose()
    return response, body


async def test_head_and_body_arrive_as_the_server_sends_them() -> None:
    seen: list[bytes] = []

    async def serve(stream: trio.SocketStream) -> None:
        seen.append(await read_request(stream))
        await stream.send_all(HEAD + chunk(b"retry: 1000\n\n"))
        await trio.sleep(0.05)
        await stream.send_all(chunk(b"id: 5\ndata: {}\n\n") + b"0\r\n\r\n")

    async with raw_server(serve) as url:
        response, body = await get_stream(url)
    assert (response.status_code, response.headers["x-events-instance"]) == (200, "abc")
    assert b"".join(body) == b"retry: 1000\n\nid: 5\ndata: {}\n\n"
    assert seen[0].startswith(b"GET /api/events/stream HTTP/1.1\r\n")
    assert b"\r\nhost: 127.0.0.1:" in seen[0].lower()


async def test_stream_cut_mid_chunk_is_a_remote_protocol_error() -> None:
    async def serve(stream: trio.SocketStream) -> None:
        await read_request(stream)
        await stream.send_all(HEAD + b"20\r\nid: 5\ndata: {")  # promised 32 bytes

    async with raw_server(serve) as url:
        with pytest.raises(httpx.RemoteProtocolError):
            await get_stream(url)


async def test_an_answer_that_is_not_http_is_a_remote_protocol_error() -> None:
    async def serve(stream: trio.SocketStream) -> None:
        await read_request(stream)
        await stream.send_all(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")

    async with raw_server(serve) as url:
        with pytest.raises(httpx.RemoteProtocolError):
            await get_stream(url)


async def test_refused_connection_is_a_connect_error() -> None:
    async def serve(stream: trio.SocketStream) -> None:
        await read_request(stream)

    async with raw_server(serve) as url:
        pass  # closed again: nothing listens on the port any more
    with pytest.raises(httpx.ConnectError):
        await get_stream(url)


# -- the chunked decoder, fed as a socket might deliver -------------------------------

BODY = chunk(b"id: 5\ndata: {}\n\n") + b"3;name=value\r\nabc\r\n" + b"0\r\nX-Trailer: 1\r\n\r\n"


def decode_in_pieces(body: bytes, cut: int) -> tuple[bytes, bool]:
    decoder = ChunkedDecoder(body[:cut])
    data, ended = decoder.pending()
    if not ended:
        more, ended = decoder.feed(body[cut:])
        data += more
    return data, ended


@pytest.mark.parametrize("cut", range(len(BODY) + 1))
def test_chunked_body_split_anywhere_decodes_the_same(cut: int) -> None:
    assert decode_in_pieces(BODY, cut) == (b"id: 5\ndata: {}\n\nabc", True)


def test_chunked_body_fed_one_byte_at_a_time_ends_exactly_at_its_last_chunk() -> None:
    decoder = ChunkedDecoder()
    parts = [decoder.feed(BODY[i : i + 1]) for i in range(len(BODY))]
    assert b"".join(data for data, _ in parts) == b"id: 5\ndata: {}\n\nabc"
    assert [ended for _, ended in parts] == [False] * (len(BODY) - 1) + [True]


@pytest.mark.parametrize(
    "body",
    [
        b"zz\r\nhello\r\n",  # size not hex
        b"+5\r\nhello\r\n",  # int() would take it
        b"0x5\r\nhello\r\n",
        b"\r\nhello\r\n",  # no size at all
        b"5\r\nhelloXY",  # data not followed by CRLF
        b"1" * 5000,  # a size line without end
    ],
)
def test_malformed_chunked_framing_is_a_remote_protocol_error(body: bytes) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        ChunkedDecoder().feed(body)


def test_connection_closed_mid_body_is_an_error_and_after_the_end_is_not() -> None:
    cut = ChunkedDecoder()
    cut.feed(b"5\r\nhel")
    with pytest.raises(httpx.RemoteProtocolError):
        cut.feed(b"")
    whole = ChunkedDecoder()
    assert whole.feed(b"0\r\n\r\n") == (b"", True)
    assert whole.feed(b"") == (b"", True)


async def test_body_framed_by_content_length_is_read_to_its_length() -> None:
    async def serve(stream: trio.SocketStream) -> None:
        await read_request(stream)
        await stream.send_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Content-Length: 16\r\n\r\nid: 5\ndata: {}\n\n"
        )
        await trio.sleep_forever()  # the length ends the body, not the close

    async with raw_server(serve) as url:
        response, body = await get_stream(url)
    assert (response.status_code, b"".join(body)) == (200, b"id: 5\ndata: {}\n\n")
