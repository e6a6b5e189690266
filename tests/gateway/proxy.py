"""A TCP proxy in front of a real server that can cut a stream in the middle of a frame."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial

import trio


@dataclass
class CuttingProxy:
    """Forwards connections to ``upstream_port``; cuts the first stream inside ``cut_at``.

    Attributes:
        upstream_port: The real server's port.
        cut_at: Bytes in the server's answer; the first stream connection is
            closed after forwarding only the first half of them.
        stream_requests: Request heads of every ``/api/events/stream`` connection.
    """

    upstream_port: int
    cut_at: bytes
    stream_requests: list[bytes] = field(default_factory=list)
    cut_done: bool = False

    async def handle(self, client: trio.SocketStream) -> None:
        async with client, await trio.open_tcp_stream("127.0.0.1", self.upstream_port) as server:
            streaming: list[bool] = []  # set once this connection asks for the stream
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._requests, client, server, streaming)
                await self._answers(server, client, streaming)
                nursery.cancel_scope.cancel()

    async def _requests(
        self, client: trio.SocketStream, server: trio.SocketStream, streaming: list[bool]
    ) -> None:
        while data := await client.receive_some():
            if b"/api/events/stream" in data:
                self.stream_requests.append(data)
                streaming.append(not self.cut_done)
            await server.send_all(data)

    async def _answers(
        self, server: trio.SocketStream, client: trio.SocketStream, streaming: list[bool]
    ) -> None:
        seen = b""
        while chunk := await server.receive_some():
            if streaming and streaming[-1]:
                seen += chunk
                if (index := seen.find(self.cut_at)) >= 0:
                    keep = len(chunk) - (len(seen) - index) + len(self.cut_at) // 2
                    await client.send_all(chunk[:keep])
                    self.cut_done = True
                    return  # both sides closed: the frame is left unfinished
            await client.send_all(chunk)


@asynccontextmanager
async def cutting_proxy(
    upstream_port: int, cut_at: bytes
) -> AsyncIterator[tuple[str, CuttingProxy]]:
    """Serve a :class:`CuttingProxy` on 127.0.0.1, port 0; yields (base URL, proxy)."""
    proxy = CuttingProxy(upstream_port, cut_at)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, proxy.handle, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        yield f"http://127.0.0.1:{port}", proxy
        nursery.cancel_scope.cancel()
