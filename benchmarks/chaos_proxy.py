"""A TCP fault proxy on loopback: the gateway reaches each project server through one.

``cut(seconds)`` closes every open connection and, for that long, accepts
new ones only to close them (a network partition as a client sees one:
resets, refused requests). ``delay(ms, seconds)`` holds every chunk, both
ways, for ``ms`` before passing it on (a slow link). Otherwise bytes pass
through unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import trio

CHUNK_BYTES: Final = 65536


@dataclass(slots=True)
class FaultProxy:
    """Forwards ``127.0.0.1:listen_port`` to ``127.0.0.1:target_port``."""

    target_port: int
    listen_port: int = 0
    cut_until: float = 0.0
    delay_until: float = 0.0
    delay_s: float = 0.0
    _links: set[trio.CancelScope] = field(default_factory=set)

    @property
    def is_cut(self) -> bool:
        return trio.current_time() < self.cut_until

    def cut(self, seconds: float) -> None:
        """Drop every connection now and refuse new ones for ``seconds``."""
        self.cut_until = trio.current_time() + seconds
        for link in list(self._links):
            link.cancel()

    def delay(self, delay_s: float, seconds: float) -> None:
        """Hold each chunk ``delay_s`` for the next ``seconds``."""
        self.delay_s = delay_s
        self.delay_until = trio.current_time() + seconds

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen and forward until cancelled; reports the bound port."""
        listeners = await trio.open_tcp_listeners(self.listen_port, host="127.0.0.1")
        self.listen_port = listeners[0].socket.getsockname()[1]
        task_status.started(self.listen_port)
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, client: trio.SocketStream) -> None:
        async with client:
            if self.is_cut:
                return
            try:
                server = await trio.open_tcp_stream("127.0.0.1", self.target_port)
            except OSError:
                return  # the server is down: the client sees its connection closed
            async with server:
                with trio.CancelScope() as link:
                    self._links.add(link)
                    try:
                        async with trio.open_nursery() as nursery:
                            nursery.start_soon(self._pump, client, server, nursery.cancel_scope)
                            nursery.start_soon(self._pump, server, client, nursery.cancel_scope)
                    finally:
                        self._links.discard(link)

    async def _pump(
        self, source: trio.SocketStream, sink: trio.SocketStream, both: trio.CancelScope
    ) -> None:
        try:
            while data := await source.receive_some(CHUNK_BYTES):
                if trio.current_time() < self.delay_until:
                    await trio.sleep(self.delay_s)
                await sink.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        both.cancel()  # one side closed: close the other
