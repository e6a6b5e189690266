"""The log-store contract, run against both backends (SQLite and PostgreSQL): same answers.

Atomic appends with their position, dedup, stamps, reads and pages, sink
offsets, retention, reopening.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
import trio.testing

from events_trio.gateway.errors import StoreError
from events_trio.gateway.eventlog import EventLog
from events_trio.gateway.records import Incoming, Notice
from events_trio.gateway.tracker import Position
from tests.postgres import PgServer

from .backends import Backend
from .helpers import BASE_MS, ManualClockMs, failure


@pytest.fixture
def clock() -> ManualClockMs:
    return ManualClockMs(BASE_MS)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    pg: PgServer | None = (
        request.getfixturevalue("pg_server") if request.param == "postgresql" else None
    )
    return Backend(request.param, tmp_path, pg)


@pytest.fixture
async def store(backend: Backend, clock: ManualClockMs) -> AsyncIterator[EventLog]:
    opened = await backend.open(clock)
    yield opened
    await opened.aclose()  # type: ignore[attr-defined]


def event(story: str, stamp: int) -> Incoming:
    return Incoming(failure(story, stamp), stamp)


async def stories(store: EventLog, after: int = 0) -> list[str]:
    page = await store.read(after, 1000)
    return [e.payload().story_id for e in page.entries]  # type: ignore[union-attr]


async def test_append_stores_events_and_position_together(store: EventLog) -> None:
    await store.append("billing", [event("1_a", 11), event("2_b", 12)], Position("i1", 12))
    assert (await stories(store), await store.positions()) == (
        ["1_a", "2_b"],
        {"billing": Position("i1", 12)},
    )


async def test_failed_append_leaves_neither_events_nor_position(store: EventLog) -> None:
    with pytest.raises(StoreError):
        await store.append("billing", [event("1_a", 11)], Position("i1", 2**64))
    assert (await stories(store), await store.positions()) == ([], {})


async def test_same_event_appended_twice_is_stored_once(store: EventLog) -> None:
    await store.append("billing", [event("1_a", 11)], Position("i1", 11))
    again = await store.append("billing", [event("1_a", 11), event("2_b", 12)], Position("i1", 12))
    assert (await stories(store), [e.project_ts for e in again]) == (["1_a", "2_b"], [12])


async def test_same_stamp_from_a_new_server_instance_is_a_new_event(store: EventLog) -> None:
    await store.append("billing", [event("1_a", 11)], Position("i1", 11))
    await store.append("billing", [event("1_b", 11)], Position("i2", 11))
    assert await stories(store) == ["1_a", "1_b"]


async def test_stamps_are_unique_and_increasing_while_the_clock_stands_still(
    store: EventLog,
) -> None:
    entries = await store.append("billing", [event("1_a", 1), event("2_b", 2)], Position("", 2))
    assert [e.seq for e in entries] == [BASE_MS, BASE_MS + 1]


async def test_entry_body_has_gateway_stamp_then_project_fields(store: EventLog) -> None:
    await store.append("billing", [event("1_a", 11)], Position("", 11))
    assert (await store.read(0, 10)).entries[0].body == (
        b'{"type":"merge_failure","story_id":"1_a","reason":"conflict",'
        b'"timestamp_ms":1764201600000,"project":"billing","project_timestamp_ms":11}'
    )


async def test_read_returns_only_entries_after_the_offset(store: EventLog) -> None:
    first, _ = await store.append("billing", [event("1_a", 1), event("2_b", 2)], Position("", 2))
    assert await stories(store, after=first.seq) == ["2_b"]


async def test_full_page_covers_up_to_its_last_entry(store: EventLog) -> None:
    entries = await store.append("p", [event(f"{n}_s", n) for n in range(1, 6)], Position("", 5))
    assert (await store.read(0, 2)).covered_seq == entries[1].seq


async def test_read_without_notices_leaves_them_out_but_covers_them(store: EventLog) -> None:
    records = [event("1_a", 1), Incoming(Notice("recovered", "back"), 0)]
    await store.append("p", records, Position("", 1))
    page = await store.read(0, 10, notices=False)
    assert ([e.kind for e in page.entries], page.covered_seq) == (["event"], BASE_MS + 1)


async def test_reads_from_memory_and_from_storage_agree(
    backend: Backend, clock: ManualClockMs
) -> None:
    first = await backend.open(clock)
    await first.append("p", [event(f"{n}_s", n) for n in range(1, 8)], Position("", 7))
    hot = [await first.read(after, 3, notices=False) for after in (0, BASE_MS + 2)]
    await first.aclose()  # type: ignore[attr-defined]
    cold_log = await backend.open(clock)  # a new process: nothing in memory
    cold = [await cold_log.read(after, 3, notices=False) for after in (0, BASE_MS + 2)]
    await cold_log.aclose()  # type: ignore[attr-defined]
    assert hot == cold


async def test_new_sink_starts_at_the_end_of_the_log(store: EventLog) -> None:
    await store.append("p", [event("1_a", 1)], Position("", 1))
    assert await store.sink_offset("console") == BASE_MS


async def test_sink_offset_and_positions_survive_reopening(
    backend: Backend, clock: ManualClockMs
) -> None:
    first = await backend.open(clock)
    await first.append("p", [event("1_a", 1)], Position("i", 1))
    await first.sink_offset("console")
    await first.commit("console", 42)
    await first.aclose()  # type: ignore[attr-defined]
    again = await backend.open(clock)
    assert (await again.sink_offset("console"), await again.positions()) == (
        42,
        {"p": Position("i", 1)},
    )
    await again.aclose()  # type: ignore[attr-defined]


async def test_a_synced_sink_offset_is_durable_without_waiting_for_an_append(
    backend: Backend, clock: ManualClockMs
) -> None:
    first = await backend.open(clock)
    await first.append("p", [event("1_a", 1)], Position("i", 1))
    await first.sink_offset("console")
    await first.commit("console", 42)
    await first.sync_offset("console")
    # Another opener before the first one closes: what a survivor of a kill -9 reads.
    other = await backend.open(clock)
    assert await other.sink_offset("console") == 42
    await other.aclose()  # type: ignore[attr-defined]
    await first.aclose()  # type: ignore[attr-defined]


async def test_stamps_keep_increasing_after_reopening_with_a_clock_that_went_back(
    backend: Backend, clock: ManualClockMs
) -> None:
    first = await backend.open(clock)
    await first.append("p", [event("1_a", 1)], Position("", 1))
    await first.aclose()  # type: ignore[attr-defined]
    clock.now -= 60_000
    again = await backend.open(clock)
    assert (await again.append("p", [event("2_b", 2)], Position("", 2)))[0].seq == BASE_MS + 1
    await again.aclose()  # type: ignore[attr-defined]


async def test_offsets_never_go_back_after_retention_emptied_the_log(
    store: EventLog, clock: ManualClockMs
) -> None:
    await store.append("p", [event("1_a", 1)], Position("", 1))
    clock.now -= 60_000
    assert await store.prune(keep=0, max_age_s=3600) == 1
    assert (await store.append("p", [event("2_b", 2)], Position("", 2)))[0].seq == BASE_MS + 1


async def test_retention_keeps_the_newest_entries_by_count(store: EventLog) -> None:
    await store.append("p", [event(f"{n}_s", n) for n in range(1, 6)], Position("", 5))
    assert (await store.prune(keep=2, max_age_s=3600), await stories(store)) == (3, ["4_s", "5_s"])


async def test_retention_deletes_entries_older_than_the_age_limit(
    store: EventLog, clock: ManualClockMs
) -> None:
    await store.append("p", [event("1_old", 1)], Position("", 1))
    clock.now += 10_000
    await store.append("p", [event("2_new", 2)], Position("", 2))
    await store.prune(keep=100, max_age_s=5.0)
    assert (await stories(store), await store.oldest_seq()) == (["2_new"], BASE_MS + 10_000)


async def test_group_commit_keeps_each_projects_events_with_its_position(
    backend: Backend, clock: ManualClockMs
) -> None:
    grouped = await backend.open(clock, window_s=0.05)
    async with trio.open_nursery() as nursery:
        for name in ("p", "q"):
            nursery.start_soon(grouped.append, name, [event(f"1_{name}", 1)], Position("", 1))
    assert (sorted(await stories(grouped)), await grouped.positions()) == (
        ["1_p", "1_q"],
        {"p": Position("", 1), "q": Position("", 1)},
    )
    await grouped.aclose()  # type: ignore[attr-defined]


async def test_a_repeat_in_a_group_is_skipped_and_the_rest_of_the_group_kept(
    backend: Backend, clock: ManualClockMs
) -> None:
    grouped = await backend.open(clock, window_s=0.05)
    await grouped.append("p", [event("1_p", 1)], Position("i", 1))
    results: dict[str, list[int]] = {}

    async def append(name: str, records: list[Incoming], cursor: int) -> None:
        entries = await grouped.append(name, records, Position("i", cursor))
        results[name] = [e.project_ts for e in entries]

    async with trio.open_nursery() as nursery:  # one group: a re-read of p, new events of q
        nursery.start_soon(append, "p", [event("1_p", 1), event("2_p", 2)], 2)
        nursery.start_soon(append, "q", [event("1_q", 1)], 1)
    page = await grouped.read(0, 10)
    assert results == {"p": [2], "q": [1]}
    assert sorted(await stories(grouped)) == ["1_p", "1_q", "2_p"]
    assert [e.seq for e in page.entries] == sorted({e.seq for e in page.entries})
    assert await grouped.positions() == {"p": Position("i", 2), "q": Position("i", 1)}
    await grouped.aclose()  # type: ignore[attr-defined]


async def test_append_wakes_tasks_waiting_for_newer_entries(store: EventLog) -> None:
    woke = trio.Event()

    async def waiter() -> None:
        await store.watch.wait_newer(store.watch.latest_seq)
        woke.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()  # parked before the append
        await store.append("p", [event("1_a", 1)], Position("", 1))
        with trio.fail_after(10):
            await woke.wait()
