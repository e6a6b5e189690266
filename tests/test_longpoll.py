"""Long-poll waiting under a virtual clock."""

from __future__ import annotations

import trio
import trio.testing

from events_trio.core.buffer import EventBuffer
from events_trio.core.events import StoredMergeFailure
from events_trio.core.waiting import LongPoll


async def test_wait_returns_after_exactly_the_timeout_when_nothing_arrives(
    autojump_clock: trio.testing.MockClock,
) -> None:
    poll = LongPoll(EventBuffer())
    start = trio.current_time()
    assert await poll.wait_newer(0, 25.0) is False
    assert trio.current_time() - start == 25.0


async def test_wait_returns_as_soon_as_an_event_arrives(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    buf = EventBuffer()
    poll = LongPoll(buf)
    woke_at: list[float] = []

    async def waiter() -> None:
        await poll.wait_newer(0, 30.0)
        woke_at.append(trio.current_time())

    nursery.start_soon(waiter)
    await trio.sleep(3.0)
    assert woke_at == []
    buf.push(StoredMergeFailure("a", "x", 10))
    await trio.testing.wait_all_tasks_blocked()
    assert woke_at == [3.0]


async def test_event_older_than_cursor_does_not_wake(
    autojump_clock: trio.testing.MockClock,
) -> None:
    buf = EventBuffer()
    buf.push(StoredMergeFailure("a", "x", 10))
    poll = LongPoll(buf)
    start = trio.current_time()
    assert await poll.wait_newer(10, 5.0) is False
    assert trio.current_time() - start == 5.0


async def test_wait_returns_at_once_when_something_newer_exists() -> None:
    buf = EventBuffer()
    buf.push(StoredMergeFailure("a", "x", 10))
    poll = LongPoll(buf)
    with trio.fail_after(1):  # would park for 30 s if it waited
        assert await poll.wait_newer(5, 30.0) is True


async def test_release_all_frees_every_waiter_at_once(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    poll = LongPoll(EventBuffer())
    released: list[float] = []

    async def waiter() -> None:
        await poll.wait_newer(0, 30.0)
        released.append(trio.current_time())

    for _ in range(3):
        nursery.start_soon(waiter)
    await trio.testing.wait_all_tasks_blocked()
    assert poll.waiting == 3
    await trio.sleep(1.0)
    poll.release_all()
    await trio.testing.wait_all_tasks_blocked()
    assert released == [1.0, 1.0, 1.0]
    start = trio.current_time()
    await poll.wait_newer(0, 30.0)  # after release, waits return at once
    assert trio.current_time() == start
