"""The durable merged log: an interface and its embedded SQLite backend.

Operations (:class:`EventLog`): append a project's records together with its
new position in one transaction; read entries after an offset; register a
sink and commit its offset; prune by count and age.

Goals: a kill -9 at any moment loses nothing that was acknowledged and
never half-applies an append (events without their cursor, or the reverse);
a restarted gateway never appends the same project event twice (unique
key: project, server instance, project stamp).

Plan: stdlib ``sqlite3`` in WAL mode with ``synchronous=NORMAL`` (a process
crash loses no committed transaction; a power cut may roll back the last
few, cursors together with their events). Calls run on one connection
through ``trio.to_thread.run_sync`` behind a ``CapacityLimiter(1)``, so they
are serialised and never block the event loop. The log offset ``seq`` is
the gateway's own stamp, ``max(now_ms, last + 1)``: unique, increasing, and
also the ``timestamp_ms`` the gateway's ``/api/events`` serves.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Final, Protocol, TypeVar

import trio

from ..core.clock import ClockMs, next_stamp, wall_clock_ms
from .records import EntryKind, Incoming, LogEntry, encode_entry
from .tracker import Position
from .watch import LogWatch

T = TypeVar("T")

DB_FILENAME: Final = "gateway.sqlite3"

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
    project TEXT PRIMARY KEY, instance TEXT NOT NULL, cursor INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sinks (sink TEXT PRIMARY KEY, offset INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Page:
    """A read of the log.

    Attributes:
        entries: Entries after the offset asked for, oldest first.
        covered_seq: Every entry up to this offset was considered (a client
            may advance its cursor to it even when notices were left out).
    """

    entries: list[LogEntry]
    covered_seq: int


class EventLog(Protocol):
    """What pollers, sinks and the HTTP API need from the merged log."""

    watch: LogWatch
    instance: str

    async def positions(self) -> dict[str, Position]:
        """Every project's persisted position."""
        ...

    async def append(
        self, project: str, records: Sequence[Incoming], position: Position | None
    ) -> list[LogEntry]:
        """Append ``records`` and set ``project``'s position (unless ``None``), atomically."""
        ...

    async def read(self, after: int, limit: int, *, notices: bool = True) -> Page:
        """Up to ``limit`` entries with ``seq > after``."""
        ...

    async def oldest_seq(self) -> int | None:
        """Offset of the oldest retained entry."""
        ...

    async def sink_offset(self, sink: str) -> int:
        """A sink's committed offset; a new sink starts at the current end."""
        ...

    async def commit(self, sink: str, offset: int) -> None:
        """Persist that ``sink`` delivered everything up to ``offset``."""
        ...

    async def prune(self, keep: int, max_age_s: float) -> int:
        """Delete all but the newest ``keep`` entries and those older than ``max_age_s``."""
        ...


class SqliteCore:
    """The synchronous SQLite backend (used from one thread at a time).

    Args:
        path: Database file (created with its schema when missing).
        clock_ms: Wall clock in ms for stamps.
    """

    def __init__(self, path: Path, clock_ms: ClockMs = wall_clock_ms) -> None:
        self.clock_ms = clock_ms
        # check_same_thread=False: Trio's worker threads vary, but a
        # CapacityLimiter(1) guarantees only one uses the connection at a time.
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
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
        self.db.execute("BEGIN IMMEDIATE")
        try:
            instance = "" if position is None else position.instance
            entries = self._insert_all(project, instance, records)
            last = entries[-1].seq if entries else self.last_seq
            if position is not None:
                self.db.execute(
                    "INSERT OR REPLACE INTO positions VALUES (?, ?, ?)",
                    (project, position.instance, position.cursor),
                )
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('last_seq', ?)", (str(last),))
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        self.last_seq = last
        events = [e.seq for e in entries if e.kind == "event"]
        self.last_event_seq = max([self.last_event_seq, *events])
        return entries

    def _insert_all(
        self, project: str, instance: str, records: Sequence[Incoming]
    ) -> list[LogEntry]:
        entries: list[LogEntry] = []
        last = self.last_seq
        for record in records:
            seq = next_stamp(self.clock_ms(), last)
            body = encode_entry(record, project, seq)
            inserted = self.db.execute(
                "INSERT OR IGNORE INTO log VALUES (?, ?, ?, ?, ?, ?)",
                (seq, project, record.kind, instance, record.project_ts, body),
            ).rowcount
            if inserted:  # else: already in the log (a re-read after a restart)
                entries.append(LogEntry(seq, project, record.kind, record.project_ts, body))
                last = seq
        return entries

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

    def close(self) -> None:
        """Close the connection (checkpoints the WAL)."""
        self.db.close()


def _kind(value: str) -> EntryKind:
    return "notice" if value == "notice" else "event"


class SqliteLog:
    """:class:`EventLog` on :class:`SqliteCore`, run in a worker thread.

    Use :func:`open_sqlite_log` to create one.
    """

    def __init__(self, core: SqliteCore) -> None:
        self.core = core
        self.instance = core.instance
        self.watch = LogWatch(core.last_seq, core.last_event_seq)
        self._limiter = trio.CapacityLimiter(1)

    async def _run(self, fn: Callable[[], T]) -> T:
        # Not abandoned on cancel: a transaction either commits or rolls back
        # before the caller sees the cancellation.
        return await trio.to_thread.run_sync(fn, limiter=self._limiter)

    async def positions(self) -> dict[str, Position]:
        """Every project's persisted position."""
        return await self._run(self.core.positions)

    async def append(
        self, project: str, records: Sequence[Incoming], position: Position | None
    ) -> list[LogEntry]:
        """Append ``records`` and set ``project``'s position atomically; wakes readers."""
        entries = await self._run(partial(self.core.append, project, records, position))
        if entries:
            self.watch.advance(self.core.last_seq, self.core.last_event_seq)
        return entries

    async def read(self, after: int, limit: int, *, notices: bool = True) -> Page:
        """Up to ``limit`` entries with ``seq > after``."""
        return await self._run(partial(self.core.read, after, limit, notices=notices))

    async def oldest_seq(self) -> int | None:
        """Offset of the oldest retained entry."""
        return await self._run(self.core.oldest_seq)

    async def sink_offset(self, sink: str) -> int:
        """A sink's committed offset; a new sink starts at the current end."""
        return await self._run(partial(self.core.sink_offset, sink))

    async def commit(self, sink: str, offset: int) -> None:
        """Persist that ``sink`` delivered everything up to ``offset``."""
        await self._run(partial(self.core.commit, sink, offset))

    async def prune(self, keep: int, max_age_s: float) -> int:
        """Apply retention; returns how many entries were deleted."""
        return await self._run(partial(self.core.prune, keep, max_age_s))

    async def aclose(self) -> None:
        """Close the database."""
        await self._run(self.core.close)


async def open_sqlite_log(state_dir: Path, clock_ms: ClockMs = wall_clock_ms) -> SqliteLog:
    """Open (creating when needed) the log in ``state_dir``.

    Raises:
        OSError: the directory cannot be created.
        sqlite3.Error: the database cannot be opened.
    """
    await trio.Path(state_dir).mkdir(parents=True, exist_ok=True)
    core = await trio.to_thread.run_sync(SqliteCore, state_dir / DB_FILENAME, clock_ms)
    return SqliteLog(core)
