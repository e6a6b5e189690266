"""Slow clients: a reader that never reads, and slowloris (a request head trickled in).

Real sockets and real time, with generous bounds.
"""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import msgspec
import pytest
import trio

from events_trio.server.config import ServerConfig
from events_trio.server.run import RunningServer, run_server
from tests.support import EVENTS_TRIO, CliProcess, FakeClockMs

HEADER_TIMEOUT_S = 1.0
TOKEN = "slow-client-t0ken"
POLLS = 200
POLL_WAIT_S = 2.0


@pytest.fixture
async def strict_server(nursery: trio.Nursery) -> AsyncIterator[RunningServer]:
    """A server whose request heads must arrive within :data:`HEADER_TIMEOUT_S`."""
    config = ServerConfig(
        port=0, clock_ms=FakeClockMs(), graceful_timeout_s=0.2, header_timeout_s=HEADER_TIMEOUT_S
    )
    running: RunningServer = await nursery.start(run_server, config)
    yield running
    running.shutdown()


async def trickle(stream: trio.SocketStream, data: bytes, interval_s: float) -> None:
    """Send ``data`` one byte per ``interval_s`` until the server hangs up."""
    for byte in data:
        try:
            await stream.send_all(bytes([byte]))
        except trio.BrokenResourceError:
            return
        await trio.sleep(interval_s)  # pacing the hostile client, not waiting for a task


async def test_slowloris_is_disconnected_at_the_header_deadline_while_others_are_served(
    strict_server: RunningServer,
) -> None:
    head = b"GET /api/events HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 1000
    stream = await trio.open_tcp_stream(strict_server.host, strict_server.port)
    answered: list[int] = []
    async with stream, trio.open_nursery() as nursery:
        started = time.monotonic()
        nursery.start_soon(trickle, stream, head, 0.1)
        async with httpx.AsyncClient(base_url=strict_server.url) as other:
            answered.append((await other.get("/api/events")).status_code)
        with trio.fail_after(HEADER_TIMEOUT_S + 5):
            received = await stream.receive_some(65536)
        elapsed = time.monotonic() - started
        nursery.cancel_scope.cancel()
    assert received == b""  # closed without an answer
    assert HEADER_TIMEOUT_S * 0.9 <= elapsed < HEADER_TIMEOUT_S + 3
    assert answered == [200]


async def test_long_poll_outlives_the_header_deadline(strict_server: RunningServer) -> None:
    # The deadline covers the request head only; a client that sent its
    # request and waits silently for the answer is not cut.
    async with httpx.AsyncClient(base_url=strict_server.url, timeout=10) as http:
        started = time.monotonic()
        response = await http.get("/api/events", params={"since": "0", "wait": "2.5"})
    assert response.status_code == 200
    assert time.monotonic() - started >= 2.0


async def test_idle_keep_alive_connection_outlives_the_header_deadline(
    strict_server: RunningServer,
) -> None:
    stream = await trio.open_tcp_stream(strict_server.host, strict_server.port)
    request = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"
    async with stream:
        await stream.send_all(request)
        assert (await stream.receive_some(65536)).startswith(b"HTTP/1.1 200")
        with trio.move_on_after(HEADER_TIMEOUT_S * 2):  # idle, not slow: stays open
            assert await stream.receive_some(65536) != b""
        await stream.send_all(request)
        assert (await stream.receive_some(65536)).startswith(b"HTTP/1.1 200")


# --- a client that never reads ----------------------------------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def fill(url: str) -> None:
    """500 events of about 190 bytes each: a ``since=0`` answer of about 95 KB."""
    for batch in range(2):
        events = [
            {"type": "merge_failure", "story_id": f"{batch}_{n}_story", "reason": "r" * 100}
            for n in range(250)
        ]
        response = httpx.post(
            f"{url}/api/events",
            content=msgspec.json.encode(events),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        assert response.status_code == 202


async def never_read(host: str, port: int) -> trio.SocketStream:
    """A connection with a tiny receive buffer that asks for everything, then never reads."""
    sock = trio.socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    await sock.connect((host, port))
    stream = trio.SocketStream(sock)
    request = b"GET /api/events?since=0 HTTP/1.1\r\nHost: localhost\r\n\r\n"
    await stream.send_all(request * 50)  # pipelined: still one answer in flight at a time
    return stream


async def long_polls(url: str) -> list[float]:
    """:data:`POLLS` concurrent long-polls for a newer event; how long each took."""
    durations: list[float] = []
    limits = httpx.Limits(max_connections=POLLS + 10)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:
        latest = (await http.get("/api/events", params={"since": "0"})).headers[
            "x-events-latest-ms"
        ]

        async def poll() -> None:
            started = time.monotonic()
            params = {"since": latest, "wait": str(POLL_WAIT_S)}
            response = await http.get("/api/events", params=params)
            assert (response.status_code, response.content) == (200, b"[]")
            durations.append(time.monotonic() - started)

        async with trio.open_nursery() as nursery:
            for _ in range(POLLS):
                nursery.start_soon(poll)
    return durations


async def test_client_that_never_reads_does_not_stall_others_or_grow_memory(
    tmp_path: Path,
) -> None:
    args = [EVENTS_TRIO, "serve", "--port", "0", "--no-watch", "--ingest-token", TOKEN]
    with CliProcess(args, cwd=tmp_path) as server:
        url = server.url()
        fill(url)
        host, port = url.removeprefix("http://").rsplit(":", 1)
        before = rss_kib(server.proc.pid)
        stuck = await never_read(host, int(port))
        async with stuck:
            durations = await long_polls(url)
            durations += await long_polls(url)  # and again, with the stuck client still there
            after = rss_kib(server.proc.pid)
            assert server.stop() == 0
    assert len(durations) == 2 * POLLS
    assert max(durations) < POLL_WAIT_S + 5
    assert after - before < 64 * 1024  # KiB: bounded, not one answer per pipelined request
