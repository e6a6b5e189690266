"""Group commit: what every project delivered within a short window, in one transaction.

Operations: :meth:`GroupCommit.append` (a project's records and its new
position) joins the open group and returns once it is committed;
:meth:`GroupCommit.commit_offset` (a sink's offset) rides with the group
being gathered or the next one, without waiting; :meth:`GroupCommit.sync_offset`
returns once a sink's last offset is written (committing it at once when no
group carries it); :meth:`GroupCommit.flush` writes offsets still waiting.

Goals: one SQLite transaction (one worker-thread round trip, one WAL
write) for everything that arrives within ``window_s`` or up to
``max_items`` items, instead of one per poll and one per sink batch; each
project's events still atomic with its cursor (the group is one
transaction: a kill -9 leaves all of it or none); no caller waits longer
than the window plus the commit.

Plan (leader and followers, no writer task to supervise): the first caller
to find no open group opens one and leads it: it waits out the window (or
until the group is full), closes the group to newcomers and commits it
through ``run`` (the log's one-thread limiter, so commits never overlap);
later callers join the open group and wait for its result. A group stays
open while the one before it commits, so under load each transaction
carries what arrived during the previous one. Both waits are
shielded: like the thread call they wrap, a commit once begun is seen
through before a cancelled caller unwinds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Final, Protocol, TypeVar

import trio

from .errors import StoreError
from .records import Incoming, LogEntry
from .tracker import Position

T = TypeVar("T")

#: Longest a caller waits for others to join its group (the latency cost).
DEFAULT_WINDOW_S: Final = 0.01
#: A group this large is committed without waiting out the window.
DEFAULT_MAX_ITEMS: Final = 1000

Runner = Callable[[Callable[[], T]], Awaitable[T]]


@dataclass(frozen=True, slots=True)
class AppendItem:
    """One project's share of a group commit: its records and new position."""

    project: str
    records: Sequence[Incoming]
    position: Position | None


class taken:  # lower case: used like a function, ``async with taken(lock):``
    """Hold ``lock`` (a Lock or CapacityLimiter) for the block, without a yield when it is free.

    ``async with lock`` always yields once, even uncontended: a pass of the
    event loop per group commit, on the path every event takes. The group's
    window has already been a checkpoint.
    """

    __slots__ = ("_lock",)

    def __init__(self, lock: trio.Lock | trio.CapacityLimiter) -> None:
        self._lock = lock

    async def __aenter__(self) -> None:
        try:
            self._lock.acquire_nowait()
        except trio.WouldBlock:
            await self._lock.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self._lock.release()


class GroupWriter(Protocol):
    """Commits a group in one transaction (``SqliteCore``)."""

    def append_group(
        self, items: Sequence[AppendItem], offsets: Sequence[tuple[str, int]] = ()
    ) -> Sequence[list[LogEntry] | StoreError]:
        """Append every item and set every offset atomically; per item its entries or why not."""
        ...


class _Group:
    __slots__ = ("done", "error", "full", "items", "offsets", "result")

    def __init__(self) -> None:
        self.items: list[AppendItem] = []
        self.offsets: dict[str, int] = {}
        self.full = trio.Event()
        self.done = trio.Event()
        self.result: Sequence[list[LogEntry] | StoreError] = []
        self.error: BaseException | None = None

    @property
    def size(self) -> int:
        return len(self.items) + len(self.offsets)


class GroupCommit:
    """Collects appends and sink offsets into group transactions.

    Args:
        writer: Commits one group synchronously (``SqliteCore.append_group``).
        run: Runs a synchronous call off the event loop (the log's limiter).
        committed: Called with every group's entries, in log order, once committed.
        window_s: Longest wait for a group to fill.
        max_items: Items that close a group at once.
        after: Awaited by the leader after each good commit, once its group
            has its result (upkeep such as checkpoints: nobody waits for it).
    """

    def __init__(
        self,
        writer: GroupWriter,
        run: Runner[Sequence[list[LogEntry] | StoreError]],
        committed: Callable[[list[LogEntry]], None],
        *,
        window_s: float = DEFAULT_WINDOW_S,
        max_items: int = DEFAULT_MAX_ITEMS,
        after: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._after = after
        self._writer = writer
        self._run = run
        self._committed = committed
        self.window_s = window_s
        self.max_items = max_items
        self._open: _Group | None = None
        #: One group commits at a time (the next one gathers meanwhile).
        self._turn = trio.Lock()
        #: The group being committed (between its window and its result).
        self._inflight: _Group | None = None
        self._pending: dict[str, int] = {}
        #: Transactions committed (for tests and metrics).
        self.groups = 0

    async def append(
        self, project: str, records: Sequence[Incoming], position: Position | None
    ) -> list[LogEntry]:
        """Append ``records`` and set ``project``'s position in the next group commit.

        Raises:
            StoreError: the group's transaction failed (nothing of it was kept), or
                this item was refused (``LeaseLost``: the rest of the group committed).
        """
        group, leader = self._join()
        index = len(group.items)
        group.items.append(AppendItem(project, records, position))
        result = (await self._settle(group, leader))[index]
        if isinstance(result, StoreError):
            raise result
        return result

    async def commit_offset(self, sink: str, offset: int) -> None:
        """Persist ``sink``'s offset with the next group commit (never waits for it).

        An offset opens no transaction of its own and holds nobody up: it
        rides with the group being gathered, or the next one (or
        :meth:`flush`). A sink delivers right after each group commit, so its
        offset is written with the next group: after a kill -9 it is handed
        again at most what was delivered since (the batch in flight).
        """
        self._pending[sink] = offset
        await trio.lowlevel.checkpoint()

    async def sync_offset(self, sink: str) -> None:
        """Return once ``sink``'s last offset given is written.

        A sink calls it before delivering its next batch, so at most one batch
        is ever delivered past its durable offset: a gateway whose own appends
        are rare (a cluster member that holds a sink's lease but owns few
        projects, or a sink catching up on a quiet log) would otherwise write
        its offset only with retention's flush, and a kill -9 would repeat
        every batch since. Waits for the group carrying the offset, or has the
        one being gathered committed at once (it takes waiting offsets along),
        or commits now.

        Raises:
            StoreError: the transaction carrying the offset failed (it stays waiting).
        """
        inflight = self._inflight
        if inflight is not None and sink in inflight.offsets:
            await self._settle(inflight, leader=False)
        if sink in self._pending:
            group, leader = self._join()
            group.full.set()  # a delivery waits on it: commit what is gathered now
            await self._settle(group, leader, window_s=0.0)

    async def flush(self) -> None:
        """Commit offsets still waiting for a group (at shutdown, and before retention)."""
        if self._pending and self._open is None:
            group, leader = self._join()
            await self._settle(group, leader, window_s=0.0)

    def _join(self) -> tuple[_Group, bool]:
        if self._open is not None:
            return self._open, False
        self._open = _Group()
        return self._open, True

    async def _settle(
        self, group: _Group, leader: bool, *, window_s: float | None = None
    ) -> Sequence[list[LogEntry] | StoreError]:
        if group.size >= self.max_items:
            group.full.set()
            if self._open is group:
                self._open = None  # newcomers start the next group
        with trio.CancelScope(shield=True):
            if leader:
                await self._lead(group, self.window_s if window_s is None else window_s)
            else:
                await group.done.wait()
        if group.error is not None:
            raise group.error
        return group.result

    async def _lead(self, group: _Group, window_s: float) -> None:
        with trio.move_on_after(window_s):
            await group.full.wait()
        async with taken(self._turn):
            # While the previous group commits, this one stays open: under load
            # groups grow with the commit's latency instead of queueing up.
            await self._commit_group(group)
        if group.error is None and self._after is not None:
            await self._after()

    async def _commit_group(self, group: _Group) -> None:
        if self._open is group:
            self._open = None
        # Offsets given while no group was open ride with this one (older first).
        group.offsets = {**self._pending, **group.offsets}
        self._pending = {}
        self._inflight = group
        try:
            commit = partial(self._writer.append_group, group.items, list(group.offsets.items()))
            group.result = await self._run(commit)
        except Exception as error:  # noqa: BLE001 -- every member gets the store's error
            group.error = error
            # Not written: kept for the next group (newer ones given since win).
            self._pending = {**group.offsets, **self._pending}
        else:
            self.groups += 1
            self._committed([e for r in group.result if isinstance(r, list) for e in r])
        finally:
            self._inflight = None
            group.done.set()
