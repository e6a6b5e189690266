"""The durable merged log's embedded backend: SQLite (the interface is eventlog.py).

Operations (:class:`~.eventlog.EventLog`): append a project's records together with its
new position in one transaction; read entries after an offset; register a
sink and commit its offset; prune by count and age.

Goals: a kill -9 at any moment loses nothing that was acknowledged and
never half-applies an append (events without their cursor, or the reverse);
a restarted gateway never appends the same project event twice (unique
key: project, server instance, project stamp).

Appends are group-committed (writer.py) and the newest entries are read
from memory (tail.py).

Plan: stdlib ``sqlite3`` in WAL mode with ``synchronous=NORMAL`` (a process
crash loses no committed transaction; a power cut may roll back the last
few, cursors together with their events). Calls run on one connection
behind a ``CapacityLimiter(1)``, so they are serialised: reads, retention
and start-up in a worker thread (``trio.to_thread.run_sync``); group
commits, which only append to the WAL, on the event loop; the WAL
checkpoints, which fsync, in a worker thread on a connection of their own. The log offset ``seq`` is
the gateway's own stamp, ``max(now_ms, last + 1)``: unique, increasing, and
also the ``timestamp_ms`` the gateway's ``/api/events`` serves.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Final, TypeVar

import trio

from ..core.clock import ClockMs, next_stamp, wall_clock_ms
from .errors import StoreError
from .records import (
    EntryKind,
    Incoming,
    LogEntry,
    Page,
    encode_entry,
)
from .tail import DEFAULT_TAIL_ENTRIES, LogTail
from .tracker import Position
from .watch import LogWatch
from .writer import DEFAULT_WINDOW_S, AppendItem, GroupCommit, taken

T = TypeVar("T")
log = logging.getLogger("events_trio.gateway.store")

DB_FILENAME: Final = "gateway.sqlite3"
#: The WAL is copied into the database every this many group commits.
CHECKPOINT_EVERY_GROUPS: Final = 200

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS log (
    seq INTEGER PRIMARY KEY,
    project TEXT NOT NULL,
    kind TEXT NOT NULL,
    instance TEXT NOT NULL,
    project_ts INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS log_dedup ON log (project, instance, project_ts)
    WHERE kind = 'event';
CREATE TABLE IF NOT EXISTS positions (
    project TEXT PRIMARY KEY, instance TEXT NOT NULL, cursor INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sinks (sink TEXT PRIMARY KEY, offset INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
"""


class SqliteCore:
    """The synchronous SQLite backend (used from one thread at a time).

    Args:
        path: Database file (created with its schema when missing).
        clock_ms: Wall clock in ms for stamps.
    """

    def __init__(self, path: Path, clock_ms: ClockMs = wall_clock_ms) -> None:
        self.clock_ms = clock_ms
        self.path = path
        # check_same_thread=False: Trio's worker threads vary, but a
        # CapacityLimiter(1) guarantees only one uses the connection at a time.
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        # Commits never checkpoint (a checkpoint fsyncs): checkpoint() does,
        # from a worker thread, on its own connection.
        self.db.execute("PRAGMA wal_autocheckpoint=0")
        self.db.executescript(_SCHEMA)
        self.instance = self._meta("instance") or self._init_instance()
        self.last_seq = int(self._meta("last_seq") or 0)
        self.last_event_seq = self._scalar("SELECT max(seq) FROM log WHERE kind = 'event'") or 0

    def _meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _scalar(self, sql: str, *args: object) -> int | None:
        row = self.db.execute(sql, args).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def _init_instance(self) -> str:
        instance = secrets.token_hex(8)
        self.db.execute("INSERT INTO meta VALUES ('instance', ?)", (instance,))
        return instance

    def positions(self) -> dict[str, Position]:
        """Every project's persisted position."""
        rows = self.db.execute("SELECT project, instance, cursor FROM positions")
        return {project: Position(instance, cursor) for project, instance, cursor in rows}

    def append(
        self, project: str, records: Sequence[Incoming], position: Position | None
    ) -> list[LogEntry]:
        """Append ``records`` (duplicates skipped) and set the position in one transaction.

        ``position`` ``None`` leaves it unset (a notice about a project that
        was never reached).
        """
        return self.append_group([AppendItem(project, records, position)])[0]

    def append_group(
        self, items: Sequence[AppendItem], offsets: Sequence[tuple[str, int]] = ()
    ) -> list[list[LogEntry]]:
        """Every item's records and position, and sink ``offsets``, in ONE transaction.

        Returns the entries appended for each item, in order. A failure rolls
        the whole group back: each project's events stay atomic with its cursor.
        """
        self.db.execute("BEGIN IMMEDIATE")
        try:
            appended, last = self._insert_items(items)
            self.db.executemany(
                "INSERT OR REPLACE INTO positions VALUES (?, ?, ?)",
                [
                    (item.project, item.position.instance, item.position.cursor)
                    for item in items
                    if item.position is not None
                ],
            )
            self.db.executemany("INSERT OR REPLACE INTO sinks VALUES (?, ?)", offsets)
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('last_seq', ?)", (str(last),))
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        self.last_seq = last
        events = [e.seq for entries in appended for e in entries if e.kind == "event"]
        self.last_event_seq = max([self.last_event_seq, *events])
        return appended

    def _insert_items(self, items: Sequence[AppendItem]) -> tuple[list[list[LogEntry]], int]:
        """Every item's records, in one statement; per item the entries kept, and the last seq.

        A record already in the log (a re-read after a restart) is skipped
        by the unique key; its seq is then simply not used.
        """
        last = self.last_seq
        appended: list[list[LogEntry]] = []
        rows: list[tuple[int, str, str, str, int, bytes]] = []
        for item in items:
            instance = "" if item.position is None else item.position.instance
            entries: list[LogEntry] = []
            for record in item.records:
                last = next_stamp(self.clock_ms(), last)
                body = encode_entry(record, item.project, last)
                rows.append((last, item.project, record.kind, instance, record.project_ts, body))
                entries.append(LogEntry(last, item.project, record.kind, record.project_ts, body))
            appended.append(entries)
        if not rows:
            return appended, last
        inserted = self.db.executemany(
            "INSERT OR IGNORE INTO log VALUES (?, ?, ?, ?, ?, ?)", rows
        ).rowcount
        if inserted == len(rows):
            return appended, last
        first = rows[0][0]  # every seq from here on is this group's
        kept = {seq for (seq,) in self.db.execute("SELECT seq FROM log WHERE seq >= ?", (first,))}
        appended = [[e for e in entries if e.seq in kept] for entries in appended]
        return appended, max(kept, default=self.last_seq)

    def read(self, after: int, limit: int, *, notices: bool = True) -> Page:
        """Up to ``limit`` entries with ``seq > after`` (notices left out unless ``notices``)."""
        rows = self.db.execute(
            "SELECT seq, project, kind, project_ts, body FROM log WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, limit),
        ).fetchall()
        covered = rows[-1][0] if len(rows) == limit else max(after, self.last_seq)
        entries = [
            LogEntry(seq, project, _kind(kind), ts, bytes(body))
            for seq, project, kind, ts, body in rows
            if notices or kind == "event"
        ]
        return Page(entries, covered)

    def oldest_seq(self) -> int | None:
        """Offset of the oldest retained entry."""
        return self._scalar("SELECT min(seq) FROM log")

    def sink_offset(self, sink: str) -> int:
        """A sink's committed offset, registering a new sink at the current end."""
        offset = self._scalar("SELECT offset FROM sinks WHERE sink = ?", sink)
        if offset is None:
            self.db.execute("INSERT INTO sinks VALUES (?, ?)", (sink, self.last_seq))
            return self.last_seq
        return offset

    def commit(self, sink: str, offset: int) -> None:
        """Persist a sink's offset."""
        self.db.execute("INSERT OR REPLACE INTO sinks VALUES (?, ?)", (sink, offset))

    def prune(self, keep: int, max_age_s: float) -> int:
        """Delete beyond ``keep`` newest entries and older than ``max_age_s``; returns the count."""
        cut_ms = self.clock_ms() - int(max_age_s * 1000)
        deleted = self.db.execute(
            "DELETE FROM log WHERE seq < ? OR seq <= "
            "(SELECT seq FROM log ORDER BY seq DESC LIMIT 1 OFFSET ?)",
            (cut_ms, keep),
        ).rowcount
        return int(deleted)

    def checkpoint(self) -> None:
        """Copy the WAL into the database file (PASSIVE: the writer is never blocked).

        Runs on a connection of its own, so a worker thread can do it while
        the event loop keeps committing on :attr:`db`.
        """
        if str(self.path) == ":memory:":
            return
        other = sqlite3.connect(self.path, isolation_level=None)
        try:
            other.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            other.close()

    def close(self) -> None:
        """Close the connection (checkpoints the WAL)."""
        self.db.close()


@contextmanager
def as_store_error() -> Iterator[None]:
    """SQLite's errors as the log's (callers never see which backend failed)."""
    try:
        yield
    except (sqlite3.Error, OverflowError) as error:
        raise StoreError(str(error)) from error


def _kind(value: str) -> EntryKind:
    return "notice" if value == "notice" else "event"


class SqliteLog:
    """:class:`EventLog` on :class:`SqliteCore`, run in a worker thread.

    Appends and sink offsets are group-committed (writer.py: one
    transaction per ``window_s``); reads after an offset the in-memory tail
    still covers are answered from it (tail.py), others from SQLite. Use
    :func:`open_sqlite_log` to create one.

    Args:
        core: The database.
        window_s: Group commit window (the latency it may add to an append).
        tail_entries: Newest entries kept in memory for readers at the head.
    """

    def __init__(
        self,
        core: SqliteCore,
        *,
        window_s: float = DEFAULT_WINDOW_S,
        tail_entries: int = DEFAULT_TAIL_ENTRIES,
    ) -> None:
        self.core = core
        self.instance = core.instance
        self.watch = LogWatch(core.last_seq, core.last_event_seq)
        self.tail = LogTail(core.last_seq, tail_entries)
        self._limiter = trio.CapacityLimiter(1)
        self._groups_since_checkpoint = 0
        self.group = GroupCommit(
            core, self._commit, self._committed, window_s=window_s, after=self._maintain
        )

    async def _run(self, fn: Callable[[], T]) -> T:
        # Not abandoned on cancel: a transaction either commits or rolls back
        # before the caller sees the cancellation.
        with as_store_error():
            return await trio.to_thread.run_sync(fn, limiter=self._limiter)

    async def _commit(self, fn: Callable[[], T]) -> T:
        # A group's transaction runs on the event loop: in WAL mode without
        # checkpoints it writes the WAL and fsyncs nothing (well under a ms
        # for hundreds of entries), and the hop to a worker thread and back
        # cost more CPU than the commit itself. Checkpoints, which fsync, run
        # in a worker thread (_maintain).
        async with taken(self._limiter):
            with as_store_error():
                return fn()

    async def _maintain(self) -> None:
        self._groups_since_checkpoint += 1
        if self._groups_since_checkpoint >= CHECKPOINT_EVERY_GROUPS:
            self._groups_since_checkpoint = 0
            try:
                await trio.to_thread.run_sync(self.core.checkpoint)
            except sqlite3.Error as error:
                # Nothing is lost (the WAL keeps every commit): the next one retries.
                log.error("cannot checkpoint the state store: %s", error)

    def _committed(self, entries: list[LogEntry]) -> None:
        self.tail.extend(entries, self.core.last_seq)
        if entries:
            self.watch.advance(self.core.last_seq, self.core.last_event_seq)

    def may_deliver(self, sink: str) -> bool:
        """Always: one gateway owns its SQLite file and every sink in it."""
        return True

    async def positions(self) -> dict[str, Position]:
        """Every project's persisted position."""
        return await self._run(self.core.positions)

    async def append(
        self, project: str, records: Sequence[Incoming], position: Position | None
    ) -> list[LogEntry]:
        """Append ``records`` and set ``project``'s position atomically; wakes readers."""
        return await self.group.append(project, records, position)

    async def read(self, after: int, limit: int, *, notices: bool = True) -> Page:
        """Up to ``limit`` entries with ``seq > after`` (from memory when the tail covers it)."""
        page = self.tail.read(after, limit, notices=notices)
        if page is not None:
            await trio.lowlevel.checkpoint()
            return page
        return await self._run(partial(self.core.read, after, limit, notices=notices))

    async def oldest_seq(self) -> int | None:
        """Offset of the oldest retained entry."""
        return await self._run(self.core.oldest_seq)

    async def sink_offset(self, sink: str) -> int:
        """A sink's committed offset; a new sink starts at the current end."""
        return await self._run(partial(self.core.sink_offset, sink))

    async def commit(self, sink: str, offset: int) -> None:
        """Persist that ``sink`` delivered everything up to ``offset`` (in the next group)."""
        await self.group.commit_offset(sink, offset)

    async def sync_offset(self, sink: str) -> None:
        """Return once ``sink``'s last offset is written (committing it now if no group carries it)."""
        await self.group.sync_offset(sink)

    async def prune(self, keep: int, max_age_s: float) -> int:
        """Apply retention; returns how many entries were deleted."""
        await self.group.flush()  # an idle gateway's last sink offsets, once a minute
        deleted = await self._run(partial(self.core.prune, keep, max_age_s))
        if deleted:
            self.tail.reset(self.core.last_seq)  # it may hold deleted entries
        return deleted

    async def aclose(self) -> None:
        """Write the sink offsets still waiting, then close the database."""
        try:
            await self.group.flush()
        finally:
            await self._run(self.core.close)


async def open_sqlite_log(
    state_dir: Path, clock_ms: ClockMs = wall_clock_ms, *, window_s: float = DEFAULT_WINDOW_S
) -> SqliteLog:
    """Open (creating when needed) the log in ``state_dir``, committing in ``window_s`` groups.

    Raises:
        OSError: the directory cannot be created.
        sqlite3.Error: the database cannot be opened.
    """
    await trio.Path(state_dir).mkdir(parents=True, exist_ok=True)
    core = await trio.to_thread.run_sync(SqliteCore, state_dir / DB_FILENAME, clock_ms)
    return SqliteLog(core, window_s=window_s)
