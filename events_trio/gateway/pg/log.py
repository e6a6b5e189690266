"""``PgLog``: the merged log (:class:`~events_trio.gateway.store.EventLog`) on PostgreSQL.

Operations: those of every log backend (append, read, positions, sink
offsets, prune), plus :meth:`PgLog.follow`, a task that keeps this
gateway's watch and in-memory tail current with what OTHER gateways append,
and :attr:`PgLog.held`, the leases the cluster supervisor grants it.

Goals: pollers and sinks cannot tell it from SQLite (same interface, same
answers, ``StoreError`` for every failure); appends from one gateway are
group-committed as with SQLite; sinks and readers at the head of the log
are served from memory; a reader woken by another gateway's append learns
of it within moments (LISTEN/NOTIFY), and within :data:`FALLBACK_POLL_S`
when a notification is lost.

Plan: :class:`~events_trio.gateway.writer.GroupCommit` over
:class:`~.core.PgCore`, its commits serialised by a limiter of one (so they
finish in log order; the SQL itself runs in the pool's threads). After a
commit the tail is extended locally when nothing from another gateway came
between (the tail's end is the group's start); otherwise the follower is
poked to read from the database. The follower listens on a dedicated
autocommit connection without a thread (``wait_readable`` on its socket,
then ``consume_input`` and ``notifies``), reads everything past the tail's
end after a notification or poke (at most once per :data:`FOLLOW_WINDOW_S`,
so that under load the commits of several gateways cost one read) or a
fallback tick, and reconnects with backoff when the connection drops.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Final, TypeVar

import psycopg
import trio

from ...core.clock import ClockMs, wall_clock_ms
from ..backoff import Backoff
from ..errors import LeaseLost, StoreError, StoreUnavailable
from ..records import Incoming, LogEntry, Page
from ..tail import DEFAULT_TAIL_ENTRIES, LogTail
from ..tracker import Position
from ..watch import LogWatch
from ..writer import DEFAULT_WINDOW_S, GroupCommit
from .core import ItemResult, PgCore
from .runner import PgRunner, connection_kwargs
from .schema import LOG_CHANNEL, migrate, sink_resource

T = TypeVar("T")
log = logging.getLogger("events_trio.gateway.pg")

#: Longest a lost notification can delay a reader.
FALLBACK_POLL_S: Final = 1.0
#: Entries the follower reads per query.
FOLLOW_PAGE: Final = 2000
#: The follower reads at most once per this long (the commits in between wait for it).
FOLLOW_WINDOW_S: Final = DEFAULT_WINDOW_S


class PgLog:
    """The merged log of a cluster, as one gateway sees it.

    Use :func:`open_pg_log`. Run :meth:`follow` in the gateway's nursery.

    Args:
        runner: The connection pool.
        core: The SQL.
        instance: The cluster log's instance id.
        last_seq: Newest offset at start.
        last_event_seq: Newest event offset at start.
        window_s: Group commit window.
        tail_entries: Newest entries kept in memory.
    """

    def __init__(
        self,
        runner: PgRunner,
        core: PgCore,
        instance: str,
        last_seq: int,
        last_event_seq: int,
        *,
        window_s: float = DEFAULT_WINDOW_S,
        tail_entries: int = DEFAULT_TAIL_ENTRIES,
    ) -> None:
        self.runner = runner
        self.core = core
        self.gateway_id = core.gateway_id
        self.instance = instance
        self.watch = LogWatch(last_seq, last_event_seq)
        self.tail = LogTail(last_seq, tail_entries)
        #: Whether the database answered the last operation (for /healthz).
        self.available = True
        #: Until when (``trio.current_time()``) the leases in :attr:`held` can be
        #: trusted without asking the database (the supervisor sets it after
        #: each renewal, with a margin); past it, sinks do not deliver.
        self.leases_trusted_until = -math.inf
        self._poke = trio.Event()
        #: See :data:`FOLLOW_WINDOW_S`.
        self.follow_window_s = FOLLOW_WINDOW_S
        self._last_read = -math.inf
        self._commits = trio.CapacityLimiter(1)
        self.group = GroupCommit(core, self._commit, self._committed, window_s=window_s)

    @property
    def held(self) -> dict[str, int]:
        """Resource -> epoch of every lease this gateway holds (the supervisor keeps it)."""
        return self.core.held

    async def _call(self, fn: Callable[[], T]) -> T:
        try:
            result = await self.runner.call(fn)
        except StoreUnavailable:
            self.available = False
            raise
        self.available = True
        return result

    async def _commit(self, fn: Callable[[], Sequence[ItemResult]]) -> Sequence[ItemResult]:
        async with self._commits:
            return await self._call(fn)

    def _committed(self, entries: list[LogEntry]) -> None:
        # Runs in commit order (one commit at a time).
        if not entries:
            return
        if self.tail.last_seq == self.core.group_start:
            self._extend(entries, entries[-1].seq)
        else:
            self._poke.set()  # another gateway appended in between: read it

    def _extend(self, entries: list[LogEntry], last_seq: int) -> None:
        fresh = [e for e in entries if e.seq > self.tail.last_seq]
        if not fresh and last_seq <= self.tail.last_seq:
            return
        self.tail.extend(fresh, last_seq)
        events = [e.seq for e in fresh if e.kind == "event"]
        self.watch.advance(self.tail.last_seq, max(events, default=0))

    def may_deliver(self, sink: str) -> bool:
        """Whether this gateway holds ``sink``'s lease and renewed it recently enough.

        A sink's delivery is outside the database (a chat message, a file
        line), so fencing its offset is not enough: a gateway that was paused
        past its TTL must not deliver what it read before it knows it still
        owns the sink. Monotonic time runs on while a process is stopped.
        """
        return sink_resource(sink) in self.held and trio.current_time() < self.leases_trusted_until

    async def positions(self) -> dict[str, Position]:
        """Every project's persisted position."""
        return await self._call(self.core.positions)

    async def append(
        self, project: str, records: Sequence[Incoming], position: Position | None
    ) -> list[LogEntry]:
        """Append ``records`` and set ``project``'s position atomically, fenced by its lease.

        Raises:
            LeaseLost: this gateway does not hold the project's lease (nothing written).
            StoreUnavailable: PostgreSQL cannot be reached (nothing written, or an
                idempotent retry will find it written).
        """
        return await self.group.append(project, records, position)

    async def read(self, after: int, limit: int, *, notices: bool = True) -> Page:
        """Up to ``limit`` entries with ``seq > after`` (from memory when the tail covers it)."""
        page = self.tail.read(after, limit, notices=notices)
        if page is not None:
            await trio.lowlevel.checkpoint()
            return page
        return await self._call(partial(self.core.read, after, limit, notices=notices))

    async def oldest_seq(self) -> int | None:
        """Offset of the oldest retained entry."""
        return await self._call(self.core.oldest_seq)

    async def sink_offset(self, sink: str) -> int:
        """A sink's committed offset; a new sink starts at the log's current end."""
        return await self._call(partial(self.core.sink_offset, sink))

    async def commit(self, sink: str, offset: int) -> None:
        """Persist ``sink``'s offset with the next group commit, fenced by the sink's lease.

        Raises:
            LeaseLost: this gateway does not hold the sink's lease.
        """
        if sink_resource(sink) not in self.held:
            raise LeaseLost(f"sink {sink}: this gateway no longer holds its lease")
        await self.group.commit_offset(sink, offset)

    async def sync_offset(self, sink: str) -> None:
        """Return once ``sink``'s last offset is written or refused by the fence.

        Without it a gateway that delivers a sink but rarely appends (few
        projects of its own) would write the offset only with retention's
        flush: a kill -9 would make the survivor repeat every batch since.
        """
        await self.group.sync_offset(sink)

    async def prune(self, keep: int, max_age_s: float) -> int:
        """Apply retention; returns how many entries were deleted."""
        await self.group.flush()
        deleted = await self._call(partial(self.core.prune, keep, max_age_s))
        if deleted:
            self.tail.reset(self.tail.last_seq)
        return deleted

    async def follow(self, rand: Callable[[], float] = random.random) -> None:
        """Keep the watch and tail current with every gateway's appends (runs until cancelled)."""
        backoff = Backoff(0.2, 5.0, rand)
        while True:
            try:
                conn = await trio.to_thread.run_sync(self._listen_connection)
            except psycopg.Error as error:
                delay = backoff.next_delay()
                if backoff.failures == 1:
                    log.warning(
                        "cannot listen for log notifications (%s); reading every %.0f s",
                        _line(error),
                        FALLBACK_POLL_S,
                    )
                await self._catch_up_for(delay)
                continue
            if backoff.failures:
                log.info("listening for log notifications again")
            backoff.reset()
            try:
                await self._follow_on(conn)
            except psycopg.Error as error:
                log.warning("log notifications lost (%s); reconnecting", _line(error))
            finally:
                conn.close()

    def _listen_connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        kwargs = connection_kwargs(autocommit=True)
        conn: psycopg.Connection[tuple[Any, ...]] = psycopg.connect(self.runner.url, **kwargs)  # type: ignore[arg-type]
        conn.execute(f"LISTEN {LOG_CHANNEL}")
        return conn

    async def _follow_on(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        broken: list[psycopg.Error] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._listen, conn, broken, nursery.cancel_scope)
            await self._catch_up()  # what was appended while nobody listened
            while not broken:  # (the listener cancels this scope when it breaks)
                with trio.move_on_after(FALLBACK_POLL_S):
                    await self._poke.wait()
                # At most one read per window: under load the commits of several
                # gateways cost one read; a lone commit is read at once.
                await trio.sleep_until(self._last_read + self.follow_window_s)
                self._last_read = trio.current_time()
                await self._catch_up()
        if broken:
            raise broken[0]

    async def _listen(
        self,
        conn: psycopg.Connection[tuple[Any, ...]],
        broken: list[psycopg.Error],
        scope: trio.CancelScope,
    ) -> None:
        """Poke the follower for every notification of an entry past the tail."""
        try:
            while True:
                await trio.lowlevel.wait_readable(conn.fileno())
                conn.pgconn.consume_input()
                newest = 0
                while (notify := conn.pgconn.notifies()) is not None:
                    newest = max(newest, int(notify.extra.decode() or 0))
                if conn.pgconn.status != psycopg.pq.ConnStatus.OK:
                    raise psycopg.OperationalError("the listening connection was closed")
                if newest > self.tail.last_seq:
                    self._poke.set()
        except psycopg.Error as error:
            broken.append(error)
            scope.cancel()

    async def _catch_up_for(self, seconds: float) -> None:
        with trio.move_on_after(seconds):
            while True:
                await self._catch_up()
                with trio.move_on_after(FALLBACK_POLL_S):
                    await self._poke.wait()

    async def _catch_up(self) -> None:
        self._poke = trio.Event()
        while True:
            after = self.tail.last_seq
            try:
                page = await self._call(partial(self.core.read, after, FOLLOW_PAGE))
            except StoreError:
                return  # the next tick retries; /healthz shows the store down
            self._extend(page.entries, page.covered_seq)
            if len(page.entries) < FOLLOW_PAGE:
                return

    async def aclose(self) -> None:
        """Write the sink offsets still waiting, then close the pool."""
        try:
            with trio.move_on_after(5):
                await self.group.flush()
        except StoreError as error:
            log.error("cannot write the last sink offsets: %s", error)
        finally:
            await self.runner.close()


def _line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


async def open_pg_log(
    url: str,
    gateway_id: str,
    *,
    clock_ms: ClockMs = wall_clock_ms,
    window_s: float = DEFAULT_WINDOW_S,
) -> PgLog:
    """Connect, create or migrate the schema, and return the cluster's log.

    Raises:
        StoreUnavailable: PostgreSQL cannot be reached.
        SchemaTooNew: the database was migrated by a newer events-trio.
    """
    runner = PgRunner(url)
    await runner.open()
    try:
        await runner.run(migrate)
        core = PgCore(runner.pool, gateway_id, clock_ms)
        instance, last, last_event = await runner.call(core.start)
    except BaseException:
        await runner.close()
        raise
    return PgLog(runner, core, instance, last, last_event, window_s=window_s)
