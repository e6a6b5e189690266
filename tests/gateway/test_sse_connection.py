"""Event streams on a connection of their own (h11 directly), against raw TCP servers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial

import httpx
import pytest
import trio

from events_trio.gateway.sse_connection import STREAM_EXTENSION
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
