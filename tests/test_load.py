"""Load and no-loss proof over real Hypercorn.

20,000 events go through the broadcast channel (``hub.publish``) while 20
long-polling clients read ``GET /api/events`` over real sockets. Every
client that keeps up sees every event exactly once, in order; a client
that is deliberately held back sees gaps through ``X-Events-Missed`` whose
sizes match the events it never got, exactly: seen + missed == published.

Flow control keeps the test deterministic without sleeping: the publisher
pushes in batches and, before the next batch, waits (on a parking lot woken
by buffer pushes and by client answers) until the subscriber has stored
everything and every keeping-up client is within half the buffer of the
newest event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Final

import httpx
import msgspec
import trio

from events_trio.core.buffer import EventBuffer
from events_trio.core.events import MergeFailure
from events_trio.server.config import ServerConfig
from events_trio.server.run import RunningServer, run_server
from events_trio.wire.query import H_LATEST, H_MISSED

TOTAL: Final = 20_000
BATCH: Final = 200
CAPACITY: Final = 2_000
FAST_CLIENTS: Final = 20
WAIT_S: Final = "10"


class _Seen(msgspec.Struct):
    story_id: str
    timestamp_ms: int


_decode: Final = msgspec.json.Decoder(list[_Seen])


@dataclass
class Client:
    """One reader of ``/api/events`` and what it saw."""

    name: str
    cursor: int = 0
    seen: list[int] = field(default_factory=list)
    missed: int = 0
    #: (number of the last event seen before, first event after, missed reported)
    gaps: list[tuple[int, int, int]] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return len(self.seen) + self.missed >= TOTAL

    def take(self, response: httpx.Response) -> None:
        numbers = [
            int(event.story_id.split("_", 1)[0]) for event in _decode.decode(response.content)
        ]
        missed = int(response.headers.get(H_MISSED, "0"))  # absent: nothing missed
        if missed:
            before = self.seen[-1] if self.seen else -1
            self.gaps.append((before, numbers[0] if numbers else -1, missed))
        self.seen += numbers
        self.missed += missed
        self.cursor = int(response.headers[H_LATEST])


class Progress:
    """Wakes the publisher when the buffer grows or a client advances."""

    def __init__(self) -> None:
        self.lot = trio.lowlevel.ParkingLot()

    def wake(self) -> None:
        self.lot.unpark_all()

    async def until(self, condition: Callable[[], bool]) -> None:
        """Park until ``condition()`` holds (checked at every wake-up)."""
        while not condition():
            await self.lot.park()


async def keep_up(
    http: httpx.AsyncClient, server: RunningServer, client: Client, progress: Progress
) -> None:
    while not client.done:
        params = {"since": str(client.cursor), "wait": WAIT_S}
        client.take(await http.get("/api/events", params=params))
        progress.wake()


async def lag_behind(
    http: httpx.AsyncClient, server: RunningServer, client: Client, progress: Progress
) -> None:
    """Poll, then stay away until 1.5 buffers' worth has been pushed past the cursor."""
    buffer = server.hub.buffer
    while not client.done:
        client.take(await http.get("/api/events", params={"since": str(client.cursor)}))
        progress.wake()
        away_until = min(TOTAL, buffer.pushed_total + CAPACITY * 3 // 2)
        await progress.until(partial(_pushed, buffer, away_until))


def _pushed(buffer: EventBuffer, count: int) -> bool:
    return buffer.pushed_total >= count


async def publish_all(server: RunningServer, fast: list[Client], progress: Progress) -> None:
    buffer = server.hub.buffer
    for start in range(0, TOTAL, BATCH):
        for n in range(start, start + BATCH):
            server.hub.publish(MergeFailure(f"{n}_story_load", "load"))
        await progress.until(partial(_caught_up, buffer, fast, start + BATCH))


def _caught_up(buffer: EventBuffer, fast: list[Client], published: int) -> bool:
    """The subscriber stored everything and every fast client is within half a buffer."""
    behind = published - CAPACITY // 2
    return buffer.pushed_total == published and all(len(c.seen) >= behind for c in fast)


async def test_20000_events_reach_20_long_pollers_once_and_a_laggard_sees_exact_gaps() -> None:
    config = ServerConfig(port=0, capacity=CAPACITY, graceful_timeout_s=0.2)
    progress = Progress()
    fast = [Client(f"fast-{n}") for n in range(FAST_CLIENTS)]
    slow = Client("slow")
    limits = httpx.Limits(max_connections=FAST_CLIENTS + 4)
    async with trio.open_nursery() as nursery:
        server: RunningServer = await nursery.start(run_server, config)
        server.hub.buffer.add_listener(progress.wake)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=30) as http:
            with trio.fail_after(60):
                async with trio.open_nursery() as clients:
                    for client in fast:
                        clients.start_soon(keep_up, http, server, client, progress)
                    clients.start_soon(lag_behind, http, server, slow, progress)
                    clients.start_soon(publish_all, server, fast, progress)
        server.shutdown()
    for client in fast:
        assert (client.seen, client.missed) == (list(range(TOTAL)), 0), client.name
    assert slow.gaps, "the slow client was never left behind"
    assert len(slow.seen) + slow.missed == TOTAL
    assert slow.seen == sorted(set(slow.seen))
    for before, after, missed in slow.gaps:
        assert after - before - 1 == missed
