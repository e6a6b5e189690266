"""The merged log's SQL on PostgreSQL (synchronous; called from worker threads).

Operations mirror ``SqliteCore``: append a group (each project's records
with its position, plus sink offsets) in one transaction; read entries after
an offset; register a sink and commit its offset; prune.

Goals, beyond SQLite's (kill -9 safety, dedup on project + instance +
project stamp): several gateways append at once and a reader never skips
an entry; a gateway that lost a project's or a sink's lease cannot write
for it (fencing).

Plan: every append transaction takes the advisory lock ``APPEND_LOCK``
before it stamps, and holds it until it commits, so entries commit in
``seq`` order across the cluster: once a reader sees offset N, every entry
below N is committed and visible. Stamps are ``max(now_ms, last + 1)``
where ``last`` is ``et_meta.last_seq``, read under the lock (retention may
delete the newest rows; offsets never go back). Fencing: the group first
locks (``FOR KEY SHARE``) the lease rows of its projects and sinks that
still name this gateway at the epoch it holds and have not expired on the
database's clock; an item whose lease is not among them is skipped and
answered with :class:`LeaseLost`, the rest commit. A takeover locks the row
``FOR UPDATE`` first, which waits for that commit, so the new owner reads
the cursor the old one left; a renewal (``FOR NO KEY UPDATE``: it only
moves the expiry) does not wait for appends, nor they for it. Rows go in with one ``INSERT ... SELECT FROM unnest(...)``
per table; ``pg_notify`` in the same transaction wakes other gateways when
it commits.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any, Final

import psycopg
import psycopg_pool

from ...core.clock import ClockMs, next_stamp
from ..errors import LeaseLost, StoreError
from ..records import EntryKind, LogEntry, Page, encode_entry
from ..tracker import Position
from ..writer import AppendItem
from .schema import APPEND_LOCK, LOG_CHANNEL, project_resource, sink_resource

Conn = psycopg.Connection[tuple[Any, ...]]

_FENCE: Final = (
    "SELECT resource, epoch FROM et_leases WHERE resource = ANY(%s) AND owner = %s "
    "AND expires > now() ORDER BY resource FOR KEY SHARE"
)
_INSERT_LOG: Final = (
    "INSERT INTO et_log (seq, project, kind, instance, project_ts, body) "
    "SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::bigint[], "
    "%s::bytea[]) ON CONFLICT (project, instance, project_ts) WHERE kind = 'event' "
    "DO NOTHING RETURNING seq"
)
_UPSERT_POSITIONS: Final = (
    "INSERT INTO et_positions SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[]) "
    "ON CONFLICT (project) DO UPDATE SET instance = excluded.instance, cursor = excluded.cursor"
)
_LAST_SEQ: Final = "SELECT value FROM et_meta WHERE key = 'last_seq'"
_ADVANCE_LAST_SEQ: Final = (
    "UPDATE et_meta SET value = GREATEST(value::bigint, "
    "(SELECT COALESCE(max(seq), 0) FROM et_log WHERE seq > %s))::text WHERE key = 'last_seq'"
)
_NOTIFY: Final = "SELECT pg_notify(%s, value) FROM et_meta WHERE key = 'last_seq'"
_UPSERT_SINKS: Final = (
    "INSERT INTO et_sinks SELECT * FROM unnest(%s::text[], %s::bigint[]) ON CONFLICT (sink) "
    'DO UPDATE SET "offset" = excluded."offset"'
)

#: One item's answer: its new entries, or why nothing of it was written.
ItemResult = list[LogEntry] | StoreError


class PgCore:
    """The log's SQL for one gateway.

    Args:
        pool: Connections (each method takes one for its transaction).
        gateway_id: This gateway (the lease owner appends are fenced with).
        clock_ms: Wall clock in ms for stamps.

    Attributes:
        held: Resource (``project:NAME``, ``sink:NAME``) -> the epoch of the
            lease this gateway holds; the lease manager keeps it current.
        last_seq: The newest offset this gateway has seen committed.
    """

    def __init__(
        self, pool: psycopg_pool.ConnectionPool[Conn], gateway_id: str, clock_ms: ClockMs
    ) -> None:
        self.pool = pool
        self.gateway_id = gateway_id
        self.clock_ms = clock_ms
        self.held: dict[str, int] = {}
        self.last_seq = 0
        #: The log's end when the last group commit began (its entries follow it).
        self.group_start = 0

    def start(self) -> tuple[str, int, int]:
        """The cluster's log instance id, newest offset and newest event offset."""
        with self.pool.connection() as conn:
            conn.execute(
                "INSERT INTO et_meta VALUES ('instance', %s), ('last_seq', '0') "
                "ON CONFLICT DO NOTHING",
                (secrets.token_hex(8),),
            )
            instance = str(_one(conn, "SELECT value FROM et_meta WHERE key = 'instance'"))
            last = _last_seq(conn)
            last_event = _one(conn, "SELECT max(seq) FROM et_log WHERE kind = 'event'")
        self.last_seq = last
        return instance, last, int(last_event or 0)

    def positions(self) -> dict[str, Position]:
        """Every project's persisted position."""
        with self.pool.connection() as conn:
            rows = conn.execute("SELECT project, instance, cursor FROM et_positions").fetchall()
        return {p: Position(i, c) for p, i, c in rows}

    def append_group(
        self, items: Sequence[AppendItem], offsets: Sequence[tuple[str, int]] = ()
    ) -> list[ItemResult]:
        """Every fenced item's records and position, and sink offsets, in ONE transaction.

        Items and offsets whose lease this gateway no longer holds are left
        out (their items answered with :class:`LeaseLost`).
        """
        # Pipelined: two round trips in all, the advisory lock held for about one
        # and a half (held across many round trips, it serialised the cluster's
        # commits behind each other).
        with self.pool.connection() as conn, conn.pipeline(), conn.transaction():
            fence = self._fence(conn, items, offsets)
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (APPEND_LOCK,))
            last_row = conn.execute(_LAST_SEQ)
            valid = self._fenced(fence)  # first round trip: the fence, the lock, the end
            last = first = int(str(_fetch_one(last_row)))
            results: list[ItemResult] = []
            rows: list[tuple[int, str, str, str, int, bytes]] = []
            positions: dict[str, Position] = {}
            for item in items:
                if project_resource(item.project) not in valid:
                    results.append(self._lost(f"project {item.project}"))
                    continue
                instance = "" if item.position is None else item.position.instance
                entries = []
                for record in item.records:
                    last = next_stamp(self.clock_ms(), last)
                    body = encode_entry(record, item.project, last)
                    rows.append(
                        (last, item.project, record.kind, instance, record.project_ts, body)
                    )
                    entries.append(
                        LogEntry(last, item.project, record.kind, record.project_ts, body)
                    )
                results.append(entries)
                if item.position is not None:
                    positions[item.project] = item.position
            inserting = self._insert(conn, rows)
            kept = {sink: off for sink, off in offsets if sink_resource(sink) in valid}
            self._upsert(conn, positions, kept)
            if rows:
                # The end moves to the newest row kept (duplicates are left out).
                conn.execute(_ADVANCE_LAST_SEQ, (first,))
                conn.execute(_NOTIFY, (LOG_CHANNEL,))
        # Second round trip: the rows, the upserts, the end, the notification, COMMIT.
        inserted = {seq for (seq,) in inserting.fetchall()} if inserting is not None else set()
        end = max(inserted, default=first)
        self.last_seq = max(self.last_seq, end)
        self.group_start = first
        return [
            r if isinstance(r, StoreError) else [e for e in r if e.seq in inserted] for r in results
        ]

    def _lost(self, what: str) -> LeaseLost:
        return LeaseLost(
            f"{what}: this gateway no longer holds its lease (another gateway owns it)"
        )

    def _fence(
        self, conn: Conn, items: Sequence[AppendItem], offsets: Sequence[tuple[str, int]]
    ) -> tuple[psycopg.Cursor[tuple[Any, ...]], list[str]] | None:
        """Queue the check of the leases this group's items and offsets need."""
        wanted = {project_resource(i.project) for i in items}
        wanted |= {sink_resource(sink) for sink, _ in offsets}
        mine = [r for r in wanted if r in self.held]
        if not mine:
            return None
        return conn.execute(_FENCE, (mine, self.gateway_id)), mine

    def _fenced(self, fence: tuple[psycopg.Cursor[tuple[Any, ...]], list[str]] | None) -> set[str]:
        """The resources whose lease this gateway still holds at its epoch."""
        if fence is None:
            return set()
        rows = fence[0].fetchall()
        return {r for r, epoch in rows if self.held.get(r) == epoch}

    def _insert(
        self, conn: Conn, rows: list[tuple[int, str, str, str, int, bytes]]
    ) -> psycopg.Cursor[tuple[Any, ...]] | None:
        if not rows:
            return None
        columns = [list(column) for column in zip(*rows, strict=True)]
        return conn.execute(_INSERT_LOG, columns)

    def _upsert(self, conn: Conn, positions: dict[str, Position], offsets: dict[str, int]) -> None:
        if positions:
            names = list(positions)
            instances = [positions[n].instance for n in names]
            cursors = [positions[n].cursor for n in names]
            conn.execute(_UPSERT_POSITIONS, (names, instances, cursors))
        if offsets:
            conn.execute(_UPSERT_SINKS, (list(offsets), list(offsets.values())))

    def read(self, after: int, limit: int, *, notices: bool = True) -> Page:
        """Up to ``limit`` entries with ``seq > after`` (notices left out unless ``notices``)."""
        with self.pool.connection() as conn:
            # One snapshot for the rows and the end they cover.
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            rows = conn.execute(
                "SELECT seq, project, kind, project_ts, body FROM et_log WHERE seq > %s "
                "ORDER BY seq LIMIT %s",
                (after, limit),
            ).fetchall()
            end = _last_seq(conn) if len(rows) < limit else 0
        entries = [LogEntry(s, p, _kind(k), t, bytes(b)) for s, p, k, t, b in rows]
        covered = entries[-1].seq if len(rows) == limit else max(after, end)
        if not notices:
            entries = [e for e in entries if e.kind == "event"]
        return Page(entries, covered)

    def oldest_seq(self) -> int | None:
        """Offset of the oldest retained entry."""
        with self.pool.connection() as conn:
            value = _one(conn, "SELECT min(seq) FROM et_log")
        return None if value is None else int(value)

    def sink_offset(self, sink: str) -> int:
        """A sink's committed offset, registering a new sink at the log's current end."""
        with self.pool.connection() as conn:
            conn.execute(
                "INSERT INTO et_sinks SELECT %s, value::bigint FROM et_meta "
                "WHERE key = 'last_seq' ON CONFLICT DO NOTHING",
                (sink,),
            )
            return int(_one(conn, 'SELECT "offset" FROM et_sinks WHERE sink = %s', sink) or 0)

    def prune(self, keep: int, max_age_s: float) -> int:
        """Delete beyond the ``keep`` newest entries and older than ``max_age_s``."""
        cut_ms = self.clock_ms() - int(max_age_s * 1000)
        with self.pool.connection() as conn:
            deleted = conn.execute(
                "DELETE FROM et_log WHERE seq < %s OR seq <= "
                "(SELECT seq FROM et_log ORDER BY seq DESC LIMIT 1 OFFSET %s)",
                (cut_ms, keep),
            ).rowcount
        return int(deleted)


def _one(conn: Conn, sql: str, *args: object) -> int | str | None:
    value: int | str | None = _fetch_one(conn.execute(sql, args))
    return value


def _fetch_one(cursor: psycopg.Cursor[tuple[Any, ...]]) -> Any:
    row = cursor.fetchone()
    return None if row is None else row[0]


def _last_seq(conn: Conn) -> int:
    return int(str(_one(conn, _LAST_SEQ)))


def _kind(value: str) -> EntryKind:
    return "notice" if value == "notice" else "event"
