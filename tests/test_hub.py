"""EventHub's shutdown drain: refuse new events, store what was taken, let pollers catch up."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from events_trio.core.events import MergeFailure
from events_trio.server.hub import EventHub


async def test_drain_stores_everything_already_published(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    hub = EventHub()
    await nursery.start(hub.run)
    for n in range(50):
        hub.publish(MergeFailure(f"{n}_story_x", "x"))  # the subscriber has not run yet
    await hub.drain(0.25)
    assert len(hub.buffer) == 50


async def test_drain_refuses_new_events(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    hub = EventHub()
    await nursery.start(hub.run)
    await hub.drain(0.25)
    assert hub.draining
    with pytest.raises(trio.ClosedResourceError, match=r"^the hub is shutting down$"):
        hub.publish(MergeFailure("1_story_x", "x"))


async def test_drain_releases_long_polls_and_gives_pollers_the_settle_time(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    hub = EventHub()
    await nursery.start(hub.run)
    released_at: list[float] = []

    async def poll() -> None:
        await hub.longpoll.wait_newer(0, 30.0)
        released_at.append(trio.current_time())

    nursery.start_soon(poll)
    await trio.testing.wait_all_tasks_blocked()
    start = trio.current_time()
    await hub.drain(0.25)
    assert released_at == [start]  # at once, not after the drain
    assert trio.current_time() - start == 0.25
