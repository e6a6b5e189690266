"""The chaos run's webhook receiver: answers every POST 200 and logs its text with a time.

A small HTTP/1.1 server (h11 on Trio, keep-alive) on loopback; each request
body is the webhook's JSON (``{"text": ...}``), written as one line
``{"t_ms": <wall ms on arrival>, "text": ...}`` to the log file, flushed at
once (the checker reads it after the run).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import IO, Final

import h11
import msgspec
import trio

MAX_BODY_BYTES: Final = 4 * 1024 * 1024


class WebhookReceiver:
    """Logs every webhook POST to ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.posts = 0
        self._out: IO[bytes] | None = None

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve on a free loopback port until cancelled; reports the port."""
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        with self.path.open("ab") as self._out:
            task_status.started(listeners[0].socket.getsockname()[1])
            await trio.serve_listeners(self._serve, listeners)

    def _log(self, body: bytes) -> None:
        assert self._out is not None
        text = msgspec.json.decode(body).get("text", "")
        line = {"t_ms": time.time() * 1000, "text": text}
        self._out.write(msgspec.json.encode(line) + b"\n")
        self._out.flush()
        self.posts += 1

    async def _serve(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            async with stream:
                while await self._one_request(conn, stream):
                    conn.start_next_cycle()
        except (trio.BrokenResourceError, h11.RemoteProtocolError):
            return

    async def _one_request(self, conn: h11.Connection, stream: trio.SocketStream) -> bool:
        body = b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                if not data and conn.their_state is h11.IDLE:
                    return False
                conn.receive_data(data)
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY_BYTES:
                    return False
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                return False
        self._log(body)
        headers = [("Content-Type", "text/plain"), ("Content-Length", "2")]
        reply = conn.send(h11.Response(status_code=200, headers=headers))
        await stream.send_all((reply or b"") + (conn.send(h11.Data(data=b"ok")) or b""))
        await stream.send_all(conn.send(h11.EndOfMessage()) or b"")
        return conn.our_state is h11.DONE and conn.their_state is h11.DONE
