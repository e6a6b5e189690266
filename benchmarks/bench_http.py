"""``GET /api/events`` throughput: our server against the stack's ceiling.

Two cases, the common poll ``since=<latest>`` (an empty array) and
``since=0`` (500 events, about 70 KB), each loaded with 32 keep-alive
connections from a separate process. Rounds alternate our server and a bare
ASGI callable on the same Hypercorn trio worker returning the same bytes
(a, b, a, b). The ceiling is measured on the worker our server runs on
(Hypercorn with ``events_trio.hypercorn_fix``, required by the crash hazard)
and, for reference, on stock Hypercorn. The server is pinned to CPU 0 and the load to CPU 1 where the
machine has two. Medians per target and the ratio ours/bare are reported.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time
from typing import Any, Final

CONNECTIONS: Final = 32
ROUND_S: Final = 4.0
ROUNDS: Final = 2
TARGET_RATIO: Final = 0.9


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _pinned(cpu: int) -> list[str]:
    cpus = os.sched_getaffinity(0)
    return (
        ["taskset", "-c", str(cpu)] if len(cpus) > 1 and os.path.exists("/usr/bin/taskset") else []
    )


def _round(mode: str, since_latest: bool) -> dict[str, Any]:
    port = _free_port()
    server = subprocess.Popen(
        [*_pinned(0), sys.executable, "-m", "benchmarks.http_target", mode, str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        latest = int(server.stdout.readline().split()[1])
        _wait_listening(port)
        path = f"/api/events?since={latest if since_latest else 0}"
        expect = 0 if since_latest else 500
        load = subprocess.run(
            [
                *_pinned(1),
                sys.executable,
                "-m",
                "benchmarks.loadgen",
                str(port),
                path,
                str(CONNECTIONS),
                str(ROUND_S),
                str(expect),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if load.returncode != 0:
            raise RuntimeError(f"load generator failed: {load.stderr[-2000:]}")
        result: dict[str, Any] = json.loads(load.stdout)
        return result
    finally:
        server.terminate()
        server.wait(10)


def _wait_listening(port: int) -> None:
    for _ in range(500):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.01)
    raise RuntimeError("server did not start")


def run() -> list[dict[str, Any]]:
    """Run every case and return one row per case."""
    rows = []
    for case, since_latest in (("since=<latest> (empty)", True), ("since=0 (500 events)", False)):
        modes = ("ours", "bare-patched", "bare")
        results: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
        for _ in range(ROUNDS):
            for mode in modes:
                results[mode].append(_round(mode, since_latest))
        ours = statistics.median(r["rps"] for r in results["ours"])
        bare = statistics.median(r["rps"] for r in results["bare-patched"])
        stock = statistics.median(r["rps"] for r in results["bare"])
        p50 = statistics.median(r["p50_ms"] for r in results["ours"])
        p99 = statistics.median(r["p99_ms"] for r in results["ours"])
        rows.append(
            {
                "benchmark": f"GET /api/events {case}, {CONNECTIONS} conns",
                "figure": f"{ours:.0f} req/s vs bare ASGI {bare:.0f} req/s = {ours / bare:.2f}x",
                "target": f">= {TARGET_RATIO}x bare (same worker)",
                "met": ours / bare >= TARGET_RATIO,
                "ours_rps": round(ours),
                "bare_asgi_rps": round(bare),
                "ratio": round(ours / bare, 3),
                "bodies_checked": sum(r["checked"] for rs in results.values() for r in rs),
            }
        )
        rows.append(
            {
                "benchmark": f"GET /api/events {case}, vs bare ASGI on stock Hypercorn",
                "figure": f"{ours:.0f} vs {stock:.0f} req/s = {ours / stock:.2f}x",
                "target": None,
                "met": None,
                "stock_bare_asgi_rps": round(stock),
            }
        )
        rows.append(
            {
                "benchmark": f"GET /api/events {case}, latency under load",
                "figure": f"p50 {p50:.1f} ms, p99 {p99:.1f} ms",
                "target": None,
                "met": None,
            }
        )
    return rows


def main() -> None:
    for row in run():
        print(json.dumps(row))  # python -m benchmarks prints the table


if __name__ == "__main__":
    main()
