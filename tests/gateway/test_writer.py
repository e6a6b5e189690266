"""Group commit (writer.py) and the in-memory tail (tail.py), in virtual time."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import pytest
import trio
import trio.testing

from events_trio.gateway.config import GatewayConfig, load_config
from events_trio.gateway.errors import StoreError
from events_trio.gateway.records import Incoming, LogEntry, Notice
from events_trio.gateway.service import _open_log
from events_trio.gateway.store import CHECKPOINT_EVERY_GROUPS, DB_FILENAME, open_sqlite_log
from events_trio.gateway.tracker import Position
from events_trio.gateway.writer import AppendItem, GroupCommit, taken

from .helpers import BASE_MS, InlineLog, failure

WINDOW_S = 0.005
T = TypeVar("T")


def event(story: str, stamp: int) -> Incoming:
    return Incoming(failure(story, stamp), stamp)


async def append_all(log: InlineLog, projects: list[str]) -> dict[str, list[LogEntry]]:
    got: dict[str, list[LogEntry]] = {}

    async def one(name: str) -> None:
        got[name] = await log.append(name, [event(f"1_story_{name}", 7)], Position("i", 7))

    async with trio.open_nursery() as nursery:
        for name in projects:
            nursery.start_soon(one, name)
    return got


async def test_appends_within_the_window_share_one_transaction(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = InlineLog(window_s=WINDOW_S)
    got = await append_all(log, [f"p{n}" for n in range(10)])
    assert trio.current_time() == pytest.approx(WINDOW_S)  # nobody waited longer
    assert log.group.groups == 1
    assert {name: [e.project for e in entries] for name, entries in got.items()} == {
        f"p{n}": [f"p{n}"] for n in range(10)
    }
    assert log.core.positions() == {f"p{n}": Position("i", 7) for n in range(10)}


async def test_a_full_group_is_committed_without_waiting_out_the_window(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = InlineLog(window_s=WINDOW_S)
    log.group.max_items = 5
    await append_all(log, [f"p{n}" for n in range(10)])
    assert (log.group.groups, trio.current_time()) == (2, 0.0)


async def test_failing_group_fails_every_member_and_keeps_none_of_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = InlineLog(window_s=WINDOW_S)
    log.core.db.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON log WHEN NEW.project = 'bad' "
        "BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
    )
    with pytest.RaisesGroup(
        pytest.RaisesExc(StoreError, match="^disk says no$"),
        pytest.RaisesExc(StoreError, match="^disk says no$"),
    ):  # both members of the group get the error
        await append_all(log, ["good", "bad"])
    assert log.entries() == []
    assert log.core.positions() == {}
    await append_all(log, ["good"])  # the next group is not affected
    assert [e.project for e in log.entries()] == ["good"]


async def test_sink_offsets_ride_with_the_next_group_without_waiting(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = InlineLog(window_s=WINDOW_S)
    await log.commit("console", BASE_MS)  # returns at once, opens no transaction
    assert (trio.current_time(), log.group.groups) == (0.0, 0)
    await log.append("p", [event("1_story_p", 7)], Position("i", 7))  # rides with this one
    assert log.group.groups == 1
    assert log.core.sink_offset("console") == BASE_MS
    async with trio.open_nursery() as nursery:
        nursery.start_soon(log.append, "p", [event("2_story_p", 8)], Position("i", 8))
        await trio.testing.wait_all_tasks_blocked()  # the group is gathering
        await log.commit("console", BASE_MS + 1)  # joins it
    assert (log.group.groups, log.core.sink_offset("console")) == (2, BASE_MS + 1)


async def test_reads_at_the_head_come_from_memory_and_match_sqlite(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = iter(range(BASE_MS, BASE_MS + 1000))
    log = InlineLog(lambda: next(clock))
    for n in range(10):
        records = [event(f"{n}_story_x", n + 1)]
        if n % 3 == 0:
            records.insert(0, Incoming(Notice("missed", "1 event missed from p", 1), 0))
        await log.append("p", records, Position("i", n + 1))
    seqs = [e.seq for e in log.entries()]
    cases = [
        (after, limit, notices)
        for after in [0, *seqs]
        for limit in (1, 3, 100)
        for notices in (True, False)
    ]
    from_sqlite = [log.core.read(a, lim, notices=n) for a, lim, n in cases]

    def refuse(*args: object, **kwargs: object) -> object:
        pytest.fail("read from SQLite")

    monkeypatch.setattr(log.core, "read", refuse)
    from_memory = [await log.read(a, lim, notices=n) for a, lim, n in cases]
    assert from_memory == from_sqlite


async def test_a_reader_behind_the_tail_pages_through_sqlite(
    autojump_clock: trio.testing.MockClock,
) -> None:
    clock = iter(range(BASE_MS, BASE_MS + 1000))
    log = InlineLog(lambda: next(clock))
    log.tail.capacity = 3
    for n in range(10):
        await log.append("p", [event(f"{n}_story_x", n + 1)], Position("i", n + 1))
    assert log.tail.read(0, 100) is None
    page = await log.read(0, 100)
    assert [e.project_ts for e in page.entries] == list(range(1, 11))


async def test_offsets_waiting_for_a_group_are_written_at_close(tmp_path: Path) -> None:
    log = await open_sqlite_log(tmp_path)
    assert await log.sink_offset("console") == 0
    await log.commit("console", BASE_MS)  # no group open: waits for one
    await log.aclose()
    reopened = await open_sqlite_log(tmp_path)
    try:
        assert await reopened.sink_offset("console") == BASE_MS
    finally:
        await reopened.aclose()


async def test_group_commits_reach_the_database_file_by_checkpoint(tmp_path: Path) -> None:
    def in_database_file() -> int:
        # immutable=1 reads the database file alone, ignoring the WAL.
        db = sqlite3.connect(f"file:{tmp_path / DB_FILENAME}?immutable=1", uri=True)
        try:
            tables = db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'log'")
            if not tables.fetchone()[0]:
                return 0  # even the schema is still in the WAL
            return int(db.execute("SELECT count(*) FROM log").fetchone()[0])
        finally:
            db.close()

    log = await open_sqlite_log(tmp_path)
    try:
        for n in range(CHECKPOINT_EVERY_GROUPS - 1):
            await log.append("p", [event(f"{n}_story_p", n + 1)], Position("i", n + 1))
        assert in_database_file() == 0  # commits only wrote the WAL
        await log.append("p", [event("last_story_p", 999)], Position("i", 999))
        assert in_database_file() == CHECKPOINT_EVERY_GROUPS  # checkpointed while open
    finally:
        await log.aclose()


async def test_a_group_gathers_while_the_one_before_it_commits(
    autojump_clock: trio.testing.MockClock,
) -> None:
    commit_s = 0.05
    committed: list[list[str]] = []

    class Writer:
        def append_group(
            self, items: Sequence[AppendItem], offsets: Sequence[tuple[str, int]] = ()
        ) -> list[list[LogEntry] | StoreError]:
            committed.append([item.project for item in items])
            return [[] for _ in items]

    async def slow_commit(fn: Callable[[], T]) -> T:
        await trio.sleep(commit_s)  # a database far away, or busy
        return fn()

    group = GroupCommit(Writer(), slow_commit, lambda entries: None, window_s=WINDOW_S)

    async def append_at(delay_s: float, project: str) -> None:
        await trio.sleep(delay_s)
        await group.append(project, [], None)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(append_at, 0.0, "a")  # commits from 5 ms to 55 ms
        nursery.start_soon(append_at, 0.010, "b")  # its window ends at 15 ms: waits its turn
        nursery.start_soon(append_at, 0.040, "c")  # joins b's group, still open
        nursery.start_soon(append_at, 0.070, "d")
    assert committed == [["a"], ["b", "c"], ["d"]]


async def test_the_gateway_commits_in_the_window_its_configuration_gives(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    config = load_config_text(tmp_path, "[gateway]\ncommit_window_ms = 250\n")
    log = await _open_log(config.replace(state_dir=tmp_path / "state"), "gw")
    try:
        started = trio.current_time()
        async with trio.open_nursery() as nursery:
            for name in ("p", "q"):
                nursery.start_soon(
                    log.append, name, [event(f"1_story_{name}", 7)], Position("i", 7)
                )
        assert trio.current_time() - started == pytest.approx(0.25)
        assert log.group.groups == 1  # type: ignore[attr-defined]
    finally:
        await log.aclose()  # type: ignore[attr-defined]


def load_config_text(tmp_path: Path, text: str) -> GatewayConfig:
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return load_config(path)


async def test_taken_holds_a_free_lock_without_a_yield_and_waits_for_a_held_one() -> None:
    lock = trio.Lock()
    with trio.testing.assert_no_checkpoints():
        async with taken(lock):
            assert lock.locked()
    assert not lock.locked()
    order: list[str] = []

    async def second() -> None:
        async with taken(lock):
            order.append("second")

    async with trio.open_nursery() as nursery, taken(lock):
        nursery.start_soon(second)
        await trio.testing.wait_all_tasks_blocked()
        order.append("first")
    assert order == ["first", "second"]
