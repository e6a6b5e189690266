"""Interval pollers started together are spread over the interval by their first pause."""

from __future__ import annotations

import httpx
import trio
import trio.testing

from events_trio.gateway.config import ProjectConfig
from events_trio.gateway.poller import Poller

from .helpers import FakeProject, InlineLog, settings


async def test_first_interval_pause_is_cut_short_at_random_then_intervals_are_full(
    autojump_clock: trio.testing.MockClock, log: InlineLog, nursery: trio.Nursery
) -> None:
    fake = FakeProject(rust=True)
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        project = ProjectConfig("billing", "http://billing.test")
        poller = Poller(project, http, log, settings(), rand=lambda: 0.75)
        start = trio.current_time()
        nursery.start_soon(poller.run)
        await trio.sleep(5)
        times = [round(t - start, 2) for t, _ in fake.requests]
        # first poll (sets the cursor), the next at once, then 2 s * (1 - 0.75), then every 2 s
        assert times == [0.0, 0.0, 0.5, 2.5, 4.5]
