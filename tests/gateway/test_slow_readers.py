"""A client that stops reading cannot hold ``events-trio gateway``'s shutdown open.

The gateway runs as a subprocess with events in its log; a client with a
tiny receive buffer pipelines requests for the whole log and never reads,
so the gateway's write blocks. SIGTERM must end the gateway within its
grace period (3 s) plus generous slack for a busy machine, far under the
30 s one blocked write may otherwise wait (``SEND_TIMEOUT_S``).
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Final

import httpx
import msgspec
import trio

from events_trio.gateway.config import DEFAULT_GATEWAY_GRACEFUL_TIMEOUT_S
from events_trio.hosting.hypercorn_fix import SEND_TIMEOUT_S
from tests.gateway.test_sigterm import TOKEN, delivered, gateway, serve, url_of, wait_up

EVENTS: Final = 500
#: Interpreter teardown on a busy 2-core machine, on top of the grace period.
EXIT_SLACK_S: Final = 5.0
DEADLINE_S: Final = 30.0


def ingest(server_url: str) -> None:
    """:data:`EVENTS` events of about 300 bytes in the gateway's log: 150 KB per answer."""
    for batch in range(0, EVENTS, 100):
        events = [
            {"type": "merge_failure", "story_id": f"{n}_story_slow", "reason": "r" * 200}
            for n in range(batch, batch + 100)
        ]
        response = httpx.post(
            f"{server_url}/api/events",
            content=msgspec.json.encode(events),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        assert response.status_code == 202


def send_queue_bytes(local_port: int, remote_port: int) -> int:
    """Bytes queued unsent on the gateway's side of one loopback connection."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if int(local.split(":")[1], 16) == local_port and int(remote.split(":")[1], 16) == (
            remote_port
        ):
            return int(fields[4].split(":")[0], 16)
    return 0


async def never_read(host: str, port: int) -> trio.SocketStream:
    """A tiny receive buffer, the whole log asked for many times, nothing read."""
    sock = trio.socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    await sock.connect((host, port))
    stream = trio.SocketStream(sock)
    request = f"GET /api/events?since=0 HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    await stream.send_all(request * 50)
    return stream


async def test_gateway_shutdown_is_not_held_by_a_client_that_stops_reading(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.jsonl"
    with serve() as server:
        server_url = await url_of(server)
        with gateway(tmp_path, server_url, out) as gw:
            gateway_url = await url_of(gw)
            async with httpx.AsyncClient(timeout=10) as http:
                await wait_up(http, gateway_url)
            await trio.to_thread.run_sync(ingest, server_url)
            with trio.fail_after(DEADLINE_S):
                while len(delivered(out)) < EVENTS:  # noqa: ASYNC110 -- a file, no event
                    await trio.sleep(0.05)
            host, port = gateway_url.removeprefix("http://").rsplit(":", 1)
            stuck = await never_read(host, int(port))
            client_port = stuck.socket.getsockname()[1]
            with trio.fail_after(DEADLINE_S):
                # The gateway's write is blocked once its side holds unsent bytes.
                while send_queue_bytes(int(port), client_port) == 0:  # noqa: ASYNC110
                    await trio.sleep(0.05)

            def stop() -> tuple[int, float]:
                started = time.monotonic()
                code = gw.stop(timeout_s=2 * SEND_TIMEOUT_S)
                return code, time.monotonic() - started

            async with stuck:
                code, took_s = await trio.to_thread.run_sync(stop)
    assert code == 0
    assert took_s < DEFAULT_GATEWAY_GRACEFUL_TIMEOUT_S + EXIT_SLACK_S < SEND_TIMEOUT_S
