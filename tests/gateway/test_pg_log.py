"""What only the PostgreSQL log must do: many writers, fencing, wake-ups across gateways, outages.

Every test runs against the suite's own PostgreSQL (tests/postgres.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial

import pytest
import trio

from events_trio.gateway.errors import LeaseLost, StoreUnavailable
from events_trio.gateway.pg.log import FALLBACK_POLL_S, PgLog, open_pg_log
from events_trio.gateway.pg.schema import SchemaTooNew, sink_resource
from events_trio.gateway.records import Incoming
from events_trio.gateway.tracker import Position
from tests.postgres import PgServer
from tests.support import free_port

from .backends import grant
from .helpers import failure

Opener = Callable[[str], Awaitable[PgLog]]


def event(story: str, stamp: int) -> Incoming:
    return Incoming(failure(story, stamp), stamp)


@pytest.fixture
async def gateways(pg_url: str) -> AsyncIterator[Opener]:
    """Opens PgLogs on one database, each with its follower running; closes them after."""
    opened: list[PgLog] = []
    async with trio.open_nursery() as nursery:

        async def open_one(gateway_id: str) -> PgLog:
            log = await open_pg_log(pg_url, gateway_id, window_s=0.002)
            nursery.start_soon(log.follow)
            opened.append(log)
            return log

        yield open_one
        nursery.cancel_scope.cancel()
    for log in opened:
        await log.aclose()


async def test_concurrent_writers_never_let_a_reader_skip_an_entry(
    gateways: Opener, pg_server: PgServer
) -> None:
    writers = [await gateways(f"gw-{n}") for n in range(2)]
    for n, writer in enumerate(writers):
        grant(writer, pg_server, tuple(f"p{n}-{k}" for k in range(10)), ())
    reader: PgLog = await gateways("reader")
    seen: list[int] = []
    done = trio.Event()

    async def write(log: PgLog, project: str) -> None:
        for stamp in range(1, 31):
            await log.append(project, [event(f"{stamp}_{project}", stamp)], Position("", stamp))

    async def read_from_the_database() -> None:
        # Straight from PostgreSQL (no tail): what a sink behind the head sees.
        offset = 0
        while True:
            finished = done.is_set()
            page = await reader.runner.call(partial(reader.core.read, offset, 7))
            seen.extend(e.seq for e in page.entries)
            offset = page.covered_seq
            if finished and not page.entries:
                return

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_from_the_database)
        async with trio.open_nursery() as writing:
            for n, writer in enumerate(writers):
                for k in range(10):
                    writing.start_soon(write, writer, f"p{n}-{k}")
        done.set()
    everything = (await reader.runner.call(lambda: reader.core.read(0, 10_000))).entries
    assert len(everything) == 2 * 10 * 30
    assert seen == [e.seq for e in everything]  # none skipped, none twice, in order


async def test_an_append_after_another_gateway_took_the_lease_is_refused(
    gateways: Opener, pg_server: PgServer
) -> None:
    old: PgLog = await gateways("gw-old")
    grant(old, pg_server, ("billing", "other"), ())
    await old.append("billing", [event("1_a", 1)], Position("i", 1))
    pg_server.sql(
        old.runner.url,
        "UPDATE et_leases SET owner = 'gw-new', epoch = 2 WHERE resource = 'project:billing'",
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(old.append, "other", [event("1_o", 1)], Position("i", 1))
        with pytest.raises(LeaseLost, match="project billing: this gateway no longer holds"):
            await old.append("billing", [event("2_b", 2)], Position("i", 2))
    log_rows = pg_server.sql(old.runner.url, "SELECT project, project_ts FROM et_log ORDER BY seq")
    assert log_rows.splitlines() == ["billing|1", "other|1"]  # the refused append left nothing
    assert (await old.positions())["billing"] == Position("i", 1)


async def test_an_expired_lease_fences_its_former_owner(
    gateways: Opener, pg_server: PgServer
) -> None:
    paused: PgLog = await gateways("gw-paused")
    grant(paused, pg_server, ("billing",), ("console",))
    await paused.sink_offset("console")
    pg_server.sql(paused.runner.url, "UPDATE et_leases SET expires = now() - interval '1 s'")
    with pytest.raises(LeaseLost):
        await paused.append("billing", [event("1_a", 1)], Position("i", 1))
    await paused.commit("console", 99)  # queued: the fence drops it at commit
    await paused.group.flush()
    assert pg_server.sql(paused.runner.url, 'SELECT "offset" FROM et_sinks') != "99"
    assert pg_server.sql(paused.runner.url, "SELECT count(*) FROM et_log") == "0"


async def test_a_sink_offset_without_the_sinks_lease_is_refused_at_once(
    gateways: Opener,
) -> None:
    log: PgLog = await gateways("gw-a")
    with pytest.raises(LeaseLost, match="sink console"):
        await log.commit("console", 5)
    assert sink_resource("console") not in log.held


async def test_another_gateways_append_wakes_readers_here(
    gateways: Opener, pg_server: PgServer
) -> None:
    here: PgLog = await gateways("gw-here")
    there: PgLog = await gateways("gw-there")
    grant(there, pg_server, ("billing",), ())
    start = here.watch.latest_seq
    appended = await there.append("billing", [event("1_a", 1)], Position("", 1))
    with trio.fail_after(FALLBACK_POLL_S * 0.9):  # a notification, not the fallback poll
        await here.watch.wait_newer(start)
    page = here.tail.read(start, 10)
    assert page is not None
    assert [e.seq for e in page.entries] == [appended[0].seq]


async def test_an_entry_committed_without_a_notification_is_found_by_the_fallback_poll(
    gateways: Opener, pg_server: PgServer
) -> None:
    here: PgLog = await gateways("gw-here")
    start = here.watch.latest_seq
    body = '{"type":"merge_failure","story_id":"9_z","reason":"r","timestamp_ms":5}'
    pg_server.sql(
        here.runner.url,
        "INSERT INTO et_log VALUES (5, 'p', 'event', '', 1, convert_to('" + body + "', 'UTF8'));"
        "UPDATE et_meta SET value = '5' WHERE key = 'last_seq'",
    )
    with trio.fail_after(FALLBACK_POLL_S * 10):
        await here.watch.wait_newer(start)
    assert [e.seq for e in (await here.read(start, 10)).entries] == [5]


async def test_postgresql_restarted_mid_stream_loses_nothing(
    gateways: Opener, pg_server: PgServer, caplog: pytest.LogCaptureFixture
) -> None:
    writer: PgLog = await gateways("gw-w")
    reader: PgLog = await gateways("gw-r")
    grant(writer, pg_server, ("billing",), ())
    written: list[int] = []

    async def append_until_written(stamp: int) -> None:
        while True:
            try:
                await writer.append("billing", [event(f"{stamp}_s", stamp)], Position("", stamp))
                written.append(stamp)
                return
            except StoreUnavailable:
                await trio.sleep(0.2)  # real time: the server is restarting

    for stamp in range(1, 6):
        await append_until_written(stamp)
    await trio.to_thread.run_sync(pg_server.restart)
    for stamp in range(6, 11):
        await append_until_written(stamp)
    with trio.fail_after(30):
        while reader.watch.latest_seq < writer.core.last_seq:
            await reader.watch.wait_newer(reader.watch.latest_seq, 1.0)
    stamps = [e.project_ts for e in (await reader.read(0, 100)).entries]
    assert (stamps, written) == (list(range(1, 11)), list(range(1, 11)))
    # The outage is reported in our words only: no driver or pool warning per retry.
    assert [r.getMessage() for r in caplog.records if r.name.startswith("psycopg")] == []


async def test_a_schema_newer_than_the_code_is_refused_in_one_line(
    pg_url: str, pg_server: PgServer
) -> None:
    log = await open_pg_log(pg_url, "gw")
    await log.aclose()
    pg_server.sql(pg_url, "UPDATE et_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(SchemaTooNew) as refused:
        await open_pg_log(pg_url, "gw")
    assert str(refused.value) == (
        "the PostgreSQL schema is version 99, newer than this events-trio knows (1): "
        "upgrade events-trio"
    )


async def test_an_unreachable_database_is_reported_without_its_password(
    pg_server: PgServer,
) -> None:
    url = f"postgresql://alice:hunter2@127.0.0.1:{free_port()}/cluster"
    with pytest.raises(StoreUnavailable) as failed:
        await open_pg_log(url, "gw")
    message = str(failed.value)
    assert "hunter2" not in message
    assert message.startswith("PostgreSQL postgresql://alice:***@127.0.0.1:")
    assert "\n" not in message
