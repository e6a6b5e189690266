"""EventHub's shutdown drain: refuse new events, store what was taken, let pollers catch up."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from events_trio.core.events import MergeFailure
from events_trio.server.hub import EventHub


class StepLimit(trio.abc.Instrument):
    """Cancels ``scope`` once the current task has run ``limit`` steps (a spin guard)."""

    def __init__(self, scope: trio.CancelScope, limit: int) -> None:
        self.scope, self.limit, self.steps = scope, limit, 0
        self.task = trio.lowlevel.current_task()

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is self.task:
            self.steps += 1
            if self.steps > self.limit:
                self.scope.cancel()


async def test_drain_stores_everything_already_published_before_any_time_passes(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    hub = EventHub()
    await nursery.start(hub.run)
    for n in range(50):
        hub.publish(MergeFailure(f"{n}_story_x", "x"))  # the subscriber has not run yet
    start = trio.current_time()
    nursery.start_soon(hub.drain, 0.25)
    await trio.testing.wait_all_tasks_blocked()
    assert (len(hub.buffer), trio.current_time()) == (50, start)


async def test_drain_lasts_exactly_settle_s_when_events_were_pending(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    hub = EventHub()
    await nursery.start(hub.run)
    hub.publish(MergeFailure("1_story_x", "x"))
    start = trio.current_time()
    await hub.drain(0.25)
    assert trio.current_time() - start == 0.25  # not the catch-up plus another settle_s


async def test_drain_parks_while_the_subscriber_cannot_run(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hub = EventHub()  # not running: the published event stays pending
    hub.publish(MergeFailure("1_story_x", "x"))
    start = trio.current_time()
    with trio.CancelScope() as scope:
        guard = StepLimit(scope, limit=20)
        trio.lowlevel.add_instrument(guard)
        try:
            await hub.drain(0.25)
        finally:
            trio.lowlevel.remove_instrument(guard)
    assert (scope.cancelled_caught, trio.current_time() - start) == (False, 0.25)
    assert guard.steps < 5  # woken by the deadline, not a checkpoint loop


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
