"""Project server memory: RSS idle, and with a full buffer of 500 and of 50,000 events.

Each capacity runs in a fresh process (``python -m benchmarks.bench_memory
CAPACITY``): a real ``run_server`` on a free port, RSS read from
``/proc/self/status`` once it serves (idle), then after its buffer is filled
to capacity with realistic merge-failure events (about 140 bytes of JSON
each). The full buffer is then fetched over HTTP (``since=0``) and checked:
every event, in order, is in the body. The gateway's RSS with 1,000
projects is in ``bench_scale``.

Run alone: ``python -m benchmarks bench_memory``.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from functools import partial
from typing import Any, Final

import httpx
import msgspec
import trio

from events_trio.core.events import MergeFailure, to_stored
from events_trio.server.config import ServerConfig
from events_trio.server.hub import EventHub
from events_trio.server.run import run_server

from .http_target import REASON
from .procs import rss_mb

CAPACITIES: Final = (500, 50_000)


def _fill(hub: EventHub, count: int) -> None:
    for i in range(count):
        stored = to_stored(
            MergeFailure(f"{1000 + i}_story_feature_{i}", REASON), hub.buffer.clock_ms()
        )
        assert stored is not None
        hub.buffer.push(stored)


def _check(body: bytes, count: int) -> None:
    events = msgspec.json.decode(body)
    ids = [e["story_id"] for e in events]
    if ids != [f"{1000 + i}_story_feature_{i}" for i in range(count)]:
        raise SystemExit(f"wrong body: {len(events)} events, starting {body[:200]!r}")


async def child(capacity: int) -> dict[str, Any]:
    """RSS (MB) of a serving project server, idle and with a full buffer."""
    hub = EventHub(capacity)
    async with trio.open_nursery() as nursery:
        config = ServerConfig(port=0, capacity=capacity, log_level="error")
        server = await nursery.start(partial(run_server, config, hub=hub))
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            assert (await http.get("/api/events", params={"since": 0})).json() == []
            gc.collect()
            idle = rss_mb("self")
            _fill(hub, capacity)
            gc.collect()
            full = rss_mb("self")
            body = (await http.get("/api/events", params={"since": 0})).content
        _check(body, capacity)
        server.shutdown()
    return {"capacity": capacity, "idle_mb": idle, "full_mb": full, "body_bytes": len(body)}


def run() -> list[dict[str, Any]]:
    """Rows for ``python -m benchmarks``."""
    results = []
    for capacity in CAPACITIES:
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.bench_memory", str(capacity)],
            capture_output=True,
            text=True,
            check=True,
        )
        results.append(json.loads(out.stdout.splitlines()[-1]))
    small, large = results
    per_event = (large["full_mb"] - large["idle_mb"]) * 2**20 / large["capacity"]
    return [
        {
            "benchmark": "project server RSS idle (empty buffer)",
            "figure": f"{small['idle_mb']:.1f} MB",
            "target": None,
            "met": None,
        },
        {
            "benchmark": "project server RSS, full buffer 500 / 50,000 events",
            "figure": f"{small['full_mb']:.1f} MB / {large['full_mb']:.1f} MB "
            f"(~{per_event:.0f} bytes per buffered event)",
            "target": None,
            "met": None,
            "results": results,
        },
    ]


if __name__ == "__main__":
    print(json.dumps(trio.run(child, int(sys.argv[1]))))
