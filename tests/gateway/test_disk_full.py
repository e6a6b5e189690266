"""The gateway's state store refusing writes: disk full, read-only state dir.

The fault is injected at the store boundary (:class:`RefusingLog` raises
what SQLite raises) rather than produced for real: the tests run as root,
which ignores ``chmod`` (a read-only directory stays writable), and
mounting a small filesystem to fill needs privileges CI does not have.
The messages are SQLite's own, so the log lines match what an operator sees.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence

import httpx
import pytest
import trio
import trio.testing

from events_trio.gateway.records import Incoming, LogEntry
from events_trio.gateway.sinks import SinkRunner
from events_trio.gateway.store import as_store_error
from events_trio.gateway.tracker import Position

from .helpers import BASE_MS, FakeProject, InlineLog, failure, make_poller
from .test_sinks import RecordingSink, append

DISK_FULL = "database or disk is full"
READ_ONLY = "attempt to write a readonly database"


class RefusingLog(InlineLog):
    """An in-memory log whose writes fail with ``refusal`` while it is set."""

    def __init__(self) -> None:
        super().__init__()
        self.refusal: str | None = None
        self.refused = 0

    def _check(self) -> None:
        if self.refusal is not None:
            self.refused += 1
            with as_store_error():  # what SQLite raises, as the SQLite log reports it
                raise sqlite3.OperationalError(self.refusal)

    async def append(
        self, project: str, records: Sequence[Incoming], position: Position | None
    ) -> list[LogEntry]:
        self._check()
        return await super().append(project, records, position)

    async def commit(self, sink: str, offset: int) -> None:
        self._check()
        await super().commit(sink, offset)


@pytest.fixture
def refusing() -> RefusingLog:
    return RefusingLog()


@pytest.mark.parametrize("refusal", [DISK_FULL, READ_ONLY])
async def test_poller_pauses_while_the_store_refuses_writes_and_loses_nothing(
    autojump_clock: trio.testing.MockClock,
    fake: FakeProject,
    refusing: RefusingLog,
    http: httpx.AsyncClient,
    nursery: trio.Nursery,
    refusal: str,
) -> None:
    poller = make_poller(refusing, http, position=Position(fake.instance, BASE_MS))
    nursery.start_soon(poller.run)
    await trio.sleep(1)
    refusing.refusal = refusal
    for n in range(1, 4):
        fake.publish(failure(f"{n}_story_full", BASE_MS + n))
    await trio.sleep(60)
    assert (poller.position, refusing.texts()) == (Position(fake.instance, BASE_MS), [])
    refusing.refusal = None
    fake.publish(failure("4_story_after", BASE_MS + 4))
    await trio.sleep(10)
    assert refusing.texts() == ["1_story_full", "2_story_full", "3_story_full", "4_story_after"]
    assert poller.status.cursor == BASE_MS + 4


async def test_store_refusing_writes_is_logged_with_a_clear_error_per_retry(
    autojump_clock: trio.testing.MockClock,
    fake: FakeProject,
    refusing: RefusingLog,
    http: httpx.AsyncClient,
    nursery: trio.Nursery,
    caplog: pytest.LogCaptureFixture,
) -> None:
    nursery.start_soon(make_poller(refusing, http, position=Position(fake.instance, BASE_MS)).run)
    refusing.refusal = DISK_FULL
    fake.publish(failure("1_story_full", BASE_MS + 1))
    await trio.sleep(15.5)  # retries after 1, 2, 4, 8 s of backoff
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == ["[billing] cannot write the state store: database or disk is full"] * 5


async def test_store_refusing_writes_shows_as_the_projects_last_error(
    autojump_clock: trio.testing.MockClock,
    fake: FakeProject,
    refusing: RefusingLog,
    http: httpx.AsyncClient,
    nursery: trio.Nursery,
) -> None:
    poller = make_poller(refusing, http, position=Position(fake.instance, BASE_MS))
    nursery.start_soon(poller.run)
    refusing.refusal = DISK_FULL
    fake.publish(failure("1_story_full", BASE_MS + 1))
    await trio.sleep(5)
    assert poller.status.last_error == "state store: database or disk is full"
    refusing.refusal = None
    await trio.sleep(10)
    assert poller.status.last_error is None


async def test_sink_keeps_delivering_when_its_offset_cannot_be_recorded(
    autojump_clock: trio.testing.MockClock, refusing: RefusingLog, nursery: trio.Nursery
) -> None:
    sink = RecordingSink()
    await nursery.start(SinkRunner(sink, refusing).run)
    await append(refusing, "1_a")
    await trio.sleep(1)
    refusing.refusal = DISK_FULL  # appends still work below: only commits fail
    await InlineLog.append(refusing, "billing", [Incoming(failure("2_b", BASE_MS + 9), 9)], None)
    await trio.sleep(1)
    refusing.refusal = None
    await append(refusing, "3_c")
    await trio.sleep(1)
    assert sink.delivered == ["1_a", "2_b", "3_c"]
    assert refusing.refused == 1
    # Offsets ride with the next group commit (or the flush at shutdown).
    await refusing.group.flush()
    assert await refusing.sink_offset("recording") == refusing.watch.latest_seq
