"""A small keep-alive HTTP/1.1 load generator on raw Trio sockets.

``python -m benchmarks.loadgen PORT PATH CONNECTIONS SECONDS EXPECT_EVENTS``
prints one JSON line: requests, requests/s, p50/p99 latency (ms) and how
many sampled bodies were checked. Every 50th body is decoded and its event
count compared with ``EXPECT_EVENTS`` (a wrong body aborts the run), so a
fast figure can never come from a wrong answer.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from typing import Final

import msgspec
import trio

SAMPLE_EVERY: Final = 50


async def read_response(stream: trio.SocketStream, pending: bytearray) -> tuple[bytes, bool]:
    """Read one response with a Content-Length body: (body, server closes)."""
    while (end := pending.find(b"\r\n\r\n")) < 0:
        pending += await stream.receive_some(65536)
    head = bytes(pending[:end]).lower()
    if b"content-length:" not in head:
        raise SystemExit(f"unexpected response: {head[:300]!r}")
    start = head.index(b"content-length:") + len(b"content-length:")
    length = int(head[start : head.index(b"\r\n", start) if b"\r\n" in head[start:] else None])
    total = end + 4 + length
    while len(pending) < total:
        pending += await stream.receive_some(65536)
    body = bytes(pending[end + 4 : total])
    del pending[:total]
    return body, b"connection: close" in head


async def connection(
    port: int,
    request: bytes,
    deadline: float,
    expect: int,
    latencies: list[float],
    checked: list[int],
) -> None:
    while time.perf_counter() < deadline:
        # Hypercorn closes a keep-alive connection after keep_alive_max_requests.
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            pending = bytearray()
            closing = False
            while not closing and time.perf_counter() < deadline:
                started = time.perf_counter()
                await stream.send_all(request)
                body, closing = await read_response(stream, pending)
                latencies.append(time.perf_counter() - started)
                if len(latencies) % SAMPLE_EVERY == 0:
                    check(body, expect)
                    checked.append(1)


def check(body: bytes, expect: int) -> None:
    """Abort the run on a wrong body."""
    events = msgspec.json.decode(body)
    if not isinstance(events, list) or len(events) != expect:
        raise SystemExit(f"wrong body: {body[:200]!r}")


async def run(port: int, path: str, connections: int, seconds: float, expect: int) -> None:
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    latencies: list[float] = []
    checked: list[int] = []
    started = time.perf_counter()
    deadline = started + seconds
    async with trio.open_nursery() as nursery:
        for _ in range(connections):
            nursery.start_soon(connection, port, request, deadline, expect, latencies, checked)
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    print(
        json.dumps(
            {
                "requests": len(ordered),
                "rps": len(ordered) / elapsed,
                "p50_ms": statistics.median(ordered) * 1000,
                "p99_ms": ordered[int(len(ordered) * 0.99) - 1] * 1000,
                "checked": len(checked),
            }
        )
    )


def main() -> None:
    port, path, connections, seconds, expect = sys.argv[1:6]
    trio.run(run, int(port), path, int(connections), float(seconds), int(expect))


if __name__ == "__main__":
    main()
