"""The known stack hazards (``events_trio/hosting/guard.py``, ``hypercorn_fix.py``), reproduced against our server and shown handled."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
import trio

from events_trio.server.config import ServerConfig
from events_trio.server.run import RunningServer, run_server
from tests.support import EVENTS_TRIO, CliProcess, FakeClockMs, until

TRUNCATED = (
    b"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\nabc"  # 3 of 100 bytes
)


async def send_truncated_and_half_close(server: RunningServer, path: str) -> bytes:
    stream = await trio.open_tcp_stream(server.host, server.port)
    async with stream:
        await stream.send_all(TRUNCATED.replace(b"{path}", path.encode()))
        await stream.send_eof()
        received = b""
        with trio.move_on_after(5):
            while chunk := await stream.receive_some(65536):
                received += chunk
        return received


@pytest.mark.parametrize("path", ["/nope", "/api/events", "/healthz"])
async def test_server_survives_truncated_bodies_with_half_close(
    server: RunningServer, client: httpx.AsyncClient, path: str
) -> None:
    # hypercorn issue #203: without our fix, this crashes the whole server
    # process (trio.BusyResourceError escaping the connection task).
    for _ in range(100):
        await send_truncated_and_half_close(server, path)
    response = await client.get("/api/events")
    assert (response.status_code, response.content) == (200, b"[]")


async def test_keep_alive_connection_keeps_working_after_rejected_post(
    server: RunningServer,
) -> None:
    stream = await trio.open_tcp_stream(server.host, server.port)
    async with stream:
        await stream.send_all(
            b"POST /nope HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\n0123456789"
            b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"
        )
        received = b""
        with trio.fail_after(5):  # the hazard is a hang here
            while chunk := await stream.receive_some(65536):
                received += chunk
                if b'"status":"ok"' in received or b"connection: close" in received.lower():
                    break
    assert received.startswith(b"HTTP/1.1 404"), received
    # Either the second request was answered on the same connection, or the
    # server said it would close it (the client then reconnects): never a hang.
    assert b'"status":"ok"' in received or b"connection: close" in received.lower()


async def test_httpx_client_continues_after_rejected_posts(
    client: httpx.AsyncClient,
) -> None:
    for _ in range(5):
        rejected = await client.post("/api/nope", content=b"x" * 1000)
        assert rejected.status_code == 404
        with trio.fail_after(5):
            assert (await client.get("/healthz")).status_code == 200


@pytest.mark.parametrize(
    "host",
    ["a" * 64 + ".example", "a" * 64, "bad host", "x" * 300, "[::1", "localhost:99999999"],
)
async def test_bad_host_header_is_400_json(client: httpx.AsyncClient, host: str) -> None:
    response = await client.get("/api/events", headers={"Host": host})
    assert response.status_code == 400
    assert response.json() == {
        "error": "bad_request",
        "message": "invalid Host header",
        "parameter": "Host",
    }


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:7070", "127.0.0.1:1", "[::1]:80", "a" * 63]
)
async def test_ordinary_hosts_are_served(client: httpx.AsyncClient, host: str) -> None:
    response = await client.get("/api/events", headers={"Host": host})
    assert response.status_code == 200


async def test_shutdown_with_idle_keep_alive_connection_ends_at_the_grace_deadline(
    nursery: trio.Nursery,
) -> None:
    # Hypercorn holds idle keep-alive connections until graceful_timeout: the
    # grace period bounds the shutdown, so it is set deliberately (1 s default).
    config = ServerConfig(port=0, clock_ms=FakeClockMs(), graceful_timeout_s=1.0)
    done = trio.Event()

    async def serve(*, task_status: trio.TaskStatus[RunningServer]) -> None:
        await run_server(config, task_status=task_status)
        done.set()

    running: RunningServer = await nursery.start(serve)
    async with httpx.AsyncClient(base_url=running.url) as http:
        assert (await http.get("/healthz")).status_code == 200  # connection now idle
        start = trio.current_time()
        running.shutdown()
        with trio.fail_after(10):
            await done.wait()
    assert trio.current_time() - start < 3.0


async def test_responses_after_shutdown_began_close_the_connection(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    result: list[httpx.Response] = []

    async def poll() -> None:
        result.append(await client.get("/api/events", params={"since": "0", "wait": "30"}))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(poll)
        await until(lambda: server.hub.longpoll.waiting == 1)
        server.shutdown()
    assert result[0].headers["connection"] == "close"


def test_cli_server_process_survives_truncated_bodies_with_half_close(tmp_path: Path) -> None:
    # The crash of hypercorn issue #203 takes down the whole process: prove it
    # against `events-trio serve` itself, not only against run_server in-process.
    with CliProcess([EVENTS_TRIO, "serve", "--port", "0", "--no-watch"], cwd=tmp_path) as server:
        host, port = server.url().removeprefix("http://").rsplit(":", 1)
        for n in range(300):
            with socket.create_connection((host, int(port)), timeout=10) as sock:
                path = ("/nope", "/api/events", "/healthz")[n % 3]
                sock.sendall(TRUNCATED.replace(b"{path}", path.encode()))
                sock.shutdown(socket.SHUT_WR)
                while sock.recv(65536):
                    pass
        assert server.proc.poll() is None
        assert httpx.get(f"{server.url()}/api/events", timeout=10).content == b"[]"
        assert server.stop() == 0
