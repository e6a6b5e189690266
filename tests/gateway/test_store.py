"""The SQLite log: atomic appends, reads, sink offsets, retention, reopening."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from events_trio.gateway.records import Incoming, Notice
from events_trio.gateway.store import SqliteCore, open_sqlite_log
from events_trio.gateway.tracker import Position

from .helpers import BASE_MS, ManualClockMs, failure


@pytest.fixture
def clock() -> ManualClockMs:
    return ManualClockMs(BASE_MS)


@pytest.fixture
def core(tmp_path: Path, clock: ManualClockMs) -> Iterator[SqliteCore]:
    db = SqliteCore(tmp_path / "log.sqlite3", clock)
    yield db
    db.close()


def event(story: str, stamp: int) -> Incoming:
    return Incoming(failure(story, stamp), stamp)


def stories(core: SqliteCore, after: int = 0) -> list[str]:
    return [e.payload().story_id for e in core.read(after, 1000).entries]  # type: ignore[union-attr]


def test_append_stores_events_and_position_together(core: SqliteCore) -> None:
    core.append("billing", [event("1_a", 11), event("2_b", 12)], Position("i1", 12))
    assert (stories(core), core.positions()) == (["1_a", "2_b"], {"billing": Position("i1", 12)})


def test_failed_append_leaves_neither_events_nor_position(core: SqliteCore) -> None:
    with pytest.raises(OverflowError):
        core.append("billing", [event("1_a", 11)], Position("i1", 2**64))
    assert (stories(core), core.positions()) == ([], {})


def test_same_event_appended_twice_is_stored_once(core: SqliteCore) -> None:
    core.append("billing", [event("1_a", 11)], Position("i1", 11))
    core.append("billing", [event("1_a", 11), event("2_b", 12)], Position("i1", 12))
    assert stories(core) == ["1_a", "2_b"]


def test_same_stamp_from_a_new_server_instance_is_a_new_event(core: SqliteCore) -> None:
    core.append("billing", [event("1_a", 11)], Position("i1", 11))
    core.append("billing", [event("1_b", 11)], Position("i2", 11))
    assert stories(core) == ["1_a", "1_b"]


def test_stamps_are_unique_and_increasing_while_the_clock_stands_still(core: SqliteCore) -> None:
    entries = core.append("billing", [event("1_a", 1), event("2_b", 2)], Position("", 2))
    assert [e.seq for e in entries] == [BASE_MS, BASE_MS + 1]


def test_entry_body_has_gateway_stamp_then_project_fields(core: SqliteCore) -> None:
    core.append("billing", [event("1_a", 11)], Position("", 11))
    assert core.read(0, 10).entries[0].body == (
        b'{"type":"merge_failure","story_id":"1_a","reason":"conflict",'
        b'"timestamp_ms":1764201600000,"project":"billing","project_timestamp_ms":11}'
    )


def test_read_returns_only_entries_after_the_offset(core: SqliteCore) -> None:
    first, _ = core.append("billing", [event("1_a", 1), event("2_b", 2)], Position("", 2))
    assert stories(core, after=first.seq) == ["2_b"]


def test_full_page_covers_up_to_its_last_entry(core: SqliteCore) -> None:
    entries = core.append("p", [event(f"{n}_s", n) for n in range(1, 6)], Position("", 5))
    assert core.read(0, 2).covered_seq == entries[1].seq


def test_read_without_notices_leaves_them_out_but_covers_them(core: SqliteCore) -> None:
    core.append("p", [event("1_a", 1), Incoming(Notice("recovered", "back"), 0)], Position("", 1))
    page = core.read(0, 10, notices=False)
    assert ([e.kind for e in page.entries], page.covered_seq) == (["event"], BASE_MS + 1)


def test_new_sink_starts_at_the_end_of_the_log(core: SqliteCore) -> None:
    core.append("p", [event("1_a", 1)], Position("", 1))
    assert core.sink_offset("console") == BASE_MS


def test_sink_offset_and_positions_survive_reopening(tmp_path: Path, clock: ManualClockMs) -> None:
    first = SqliteCore(tmp_path / "log.sqlite3", clock)
    first.append("p", [event("1_a", 1)], Position("i", 1))
    first.sink_offset("console")
    first.commit("console", 42)
    first.close()
    again = SqliteCore(tmp_path / "log.sqlite3", clock)
    assert (again.sink_offset("console"), again.positions()) == (42, {"p": Position("i", 1)})
    again.close()


def test_stamps_keep_increasing_after_reopening_with_a_clock_that_went_back(
    tmp_path: Path, clock: ManualClockMs
) -> None:
    first = SqliteCore(tmp_path / "log.sqlite3", clock)
    first.append("p", [event("1_a", 1)], Position("", 1))
    first.close()
    clock.now -= 60_000
    again = SqliteCore(tmp_path / "log.sqlite3", clock)
    assert again.append("p", [event("2_b", 2)], Position("", 2))[0].seq == BASE_MS + 1
    again.close()


def test_retention_keeps_the_newest_entries_by_count(core: SqliteCore) -> None:
    core.append("p", [event(f"{n}_s", n) for n in range(1, 6)], Position("", 5))
    assert (core.prune(keep=2, max_age_s=3600), stories(core)) == (3, ["4_s", "5_s"])


def test_retention_deletes_entries_older_than_the_age_limit(
    core: SqliteCore, clock: ManualClockMs
) -> None:
    core.append("p", [event("1_old", 1)], Position("", 1))
    clock.now += 10_000
    core.append("p", [event("2_new", 2)], Position("", 2))
    core.prune(keep=100, max_age_s=5.0)
    assert stories(core) == ["2_new"]


async def test_append_wakes_tasks_waiting_for_newer_entries(tmp_path: Path) -> None:
    log = await open_sqlite_log(tmp_path)
    woke = trio.Event()

    async def waiter() -> None:
        await log.watch.wait_newer(log.watch.latest_seq)
        woke.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await log.append("p", [event("1_a", 1)], Position("", 1))
        with trio.fail_after(10):
            await woke.wait()
    await log.aclose()
