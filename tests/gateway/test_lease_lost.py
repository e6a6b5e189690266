"""A poller or sink whose lease another gateway took (cluster mode) stops, once, cleanly.

The log refuses with ``LeaseLost`` (what the PostgreSQL log raises when the
append's fence no longer holds: test_pg_log.py); here the callers' side.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import httpx
import pytest
import trio
import trio.testing

from events_trio.gateway.errors import LeaseLost
from events_trio.gateway.records import Incoming, LogEntry
from events_trio.gateway.sinks import SinkRunner
from events_trio.gateway.tracker import Position

from .helpers import BASE_MS, FakeProject, InlineLog, failure, make_poller
from .test_sinks import RecordingSink, append


class TakenLog(InlineLog):
    """An in-memory log on which this gateway lost its leases once ``taken`` is set."""

    taken = False

    async def append(
        self, project: str, records: Sequence[Incoming], position: Position | None
    ) -> list[LogEntry]:
        if self.taken:
            raise LeaseLost(f"project {project}: this gateway no longer holds its lease")
        return await super().append(project, records, position)

    async def commit(self, sink: str, offset: int) -> None:
        if self.taken:
            raise LeaseLost(f"sink {sink}: this gateway no longer holds its lease")
        await super().commit(sink, offset)


async def test_poller_stops_polling_when_another_gateway_took_its_project(
    autojump_clock: trio.testing.MockClock,
    fake: FakeProject,
    http: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = TakenLog()
    poller = make_poller(log, http, position=Position(fake.instance, BASE_MS))
    fake.publish(failure("1_before", BASE_MS + 1))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(poller.run)
        await trio.sleep(1)
        log.taken = True
        fake.publish(failure("2_after", BASE_MS + 2))
        with trio.fail_after(60):
            await trio.sleep(30)
            nursery.cancel_scope.cancel()
    assert (poller.stopped, log.texts(), poller.position) == (
        True,
        ["1_before"],
        Position(fake.instance, BASE_MS + 1),
    )
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [
        "[billing] stopped polling: project billing: this gateway no longer holds its lease"
    ]


async def test_poller_run_returns_once_its_lease_is_lost(
    autojump_clock: trio.testing.MockClock, fake: FakeProject, http: httpx.AsyncClient
) -> None:
    log = TakenLog()
    log.taken = True
    poller = make_poller(log, http, position=Position(fake.instance, BASE_MS))
    fake.publish(failure("1_a", BASE_MS + 1))
    with trio.fail_after(60):
        await poller.run()  # returns: nothing more to do for this project here
    assert log.texts() == []


async def test_sink_stops_when_another_gateway_took_it_over(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    log = TakenLog()
    sink = RecordingSink()
    runner = SinkRunner(sink, log)
    with trio.fail_after(60):  # the runner returns by itself: the nursery closes
        async with trio.open_nursery() as nursery:
            await nursery.start(runner.run)
            await append(log, "1_a")
            await trio.sleep(1)
            log.taken = True
            await InlineLog.append(log, "billing", [Incoming(failure("2_b", BASE_MS + 9), 9)], None)
    assert (runner.stopped, sink.delivered) == (True, ["1_a", "2_b"])
    assert "sink recording stopped: sink recording: this gateway no longer holds its lease" in [
        r.getMessage() for r in caplog.records
    ]
