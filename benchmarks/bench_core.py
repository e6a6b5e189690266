"""Core micro-benchmarks: stamping and storing, since-queries, broadcast fan-out.

* publish -> stored: events pushed through the broadcast channel and the
  subscriber into the buffer (stamp + encode once), events/s.
* ``events_since(latest)`` (the common empty poll) and ``encoded_since(0)``
  at capacity 500 and 50,000: a binary search must not grow with capacity.
* broadcast fan-out: one message to 100 receivers, each receiving it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final

import trio
import trio.lowlevel

from events_trio.core.broadcast import open_broadcast_channel
from events_trio.core.buffer import EventBuffer
from events_trio.core.events import MergeFailure, StoredMergeFailure, WatcherEvent
from events_trio.server.hub import EventHub

PUBLISH_EVENTS: Final = 200_000
TARGET_PUBLISH_PER_S: Final = 200_000
TARGET_SCALING: Final = 1.5
BURST_EVENTS: Final = 512


def best_of(repeat: int, number: int, fn: Callable[[], object]) -> float:
    """Best per-call time in seconds over ``repeat`` runs of ``number`` calls."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - started) / number)
    return best


async def _publish_to_stored(count: int) -> float:
    # The hub's real channel (1,024 messages): publish in bursts that fit it,
    # yielding between bursts as any publishing task does, so nothing lags.
    hub = EventHub(capacity=500)
    events = [MergeFailure(f"{i}_story_x", "merge conflict") for i in range(count)]
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run)
        started = time.perf_counter()
        for start in range(0, count, BURST_EVENTS):
            for event in events[start : start + BURST_EVENTS]:
                hub.publish(event)
            await trio.lowlevel.checkpoint()
        while hub.buffer.pushed_total < count:
            await trio.lowlevel.checkpoint()
        elapsed = time.perf_counter() - started
        assert hub.buffer.snapshot().lost == 0
        hub.stop()
    return count / elapsed


def _filled(capacity: int) -> EventBuffer:
    buffer = EventBuffer(capacity)
    for i in range(capacity):
        buffer.push(StoredMergeFailure(f"{i}_story_x", "merge conflict", i + 1))
    return buffer


async def _fan_out(receivers: int, messages: int) -> float:
    tx, rx = open_broadcast_channel[WatcherEvent](1024)
    inboxes = [rx] + [tx.subscribe() for _ in range(receivers - 1)]
    event = MergeFailure("1_story_x", "x")

    async def consume(inbox: Any) -> None:
        for _ in range(messages):
            await inbox.receive()

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for inbox in inboxes:
            nursery.start_soon(consume, inbox)
        for _ in range(messages):
            tx.send_nowait(event)
            await trio.lowlevel.checkpoint()
    return (time.perf_counter() - started) / messages


def run() -> list[dict[str, object]]:
    """Rows for ``python -m benchmarks``."""
    rate = max(trio.run(_publish_to_stored, PUBLISH_EVENTS) for _ in range(3))
    rows: list[dict[str, object]] = [
        {
            "benchmark": "publish -> stored (stamp + encode)",
            "figure": f"{rate:,.0f} events/s",
            "target": f">= {TARGET_PUBLISH_PER_S:,} events/s",
            "met": rate >= TARGET_PUBLISH_PER_S,
        }
    ]
    small, large = _filled(500), _filled(50_000)
    latest_small = best_of(5, 20_000, lambda: small.encoded_since(small.latest_ms))
    latest_large = best_of(5, 20_000, lambda: large.encoded_since(large.latest_ms))
    ratio = latest_large / latest_small
    rows.append(
        {
            "benchmark": "encoded_since(latest), capacity 500 vs 50,000",
            "figure": f"{latest_small * 1e9:.0f} ns vs {latest_large * 1e9:.0f} ns = {ratio:.2f}x",
            "target": f"<= {TARGET_SCALING}x",
            "met": ratio <= TARGET_SCALING,
        }
    )
    # The buffer keeps the last body it joined; alternating since=0 and
    # since=1 makes every call join afresh (the cost of a new question).
    full_small = best_of(5, 1_000, lambda: (small.encoded_since(0), small.encoded_since(1))) / 2
    full_large = best_of(3, 10, lambda: (large.encoded_since(0), large.encoded_since(1))) / 2
    if small.encoded_since(0).count(b'"type"') != 500:
        raise RuntimeError("encoded_since(0) at capacity 500 is not 500 events")
    rows.append(
        {
            "benchmark": "encoded_since(0), capacity 500 / 50,000 (joined afresh)",
            "figure": f"{full_small * 1e6:.0f} us / {full_large * 1e3:.1f} ms",
            "target": None,
            "met": None,
        }
    )
    per_message = trio.run(_fan_out, 100, 2_000)
    rows.append(
        {
            "benchmark": "broadcast fan-out to 100 receivers",
            "figure": f"{per_message * 1e6:.0f} us per message ({100 / per_message:,.0f} deliveries/s)",
            "target": None,
            "met": None,
        }
    )
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
