"""The sink interface and the task that feeds one sink from the durable log.

Each sink reads the merged log from its own persisted offset, so a slow or
broken sink only falls behind; pollers and other sinks never wait for it.
Delivery is at-least-once and in order: the offset is committed after the
sink returns, shielded from cancellation, and made durable before the next
batch goes out, so only the delivery in flight at a crash can be repeated.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

import trio

from ..backoff import Backoff
from ..errors import LeaseLost, SinkError, StoreError
from ..eventlog import EventLog
from ..records import LogEntry
from ..routing import EVERYTHING, Route

log = logging.getLogger("events_trio.gateway.sinks")

#: Entries handed to a sink in one delivery at most.
DEFAULT_BATCH_LIMIT: Final = 100
SINK_BACKOFF_INITIAL_S: Final = 1.0
SINK_BACKOFF_MAX_S: Final = 60.0


class Sink(Protocol):
    """A destination of the merged stream.

    Attributes:
        name: Stable key of its persisted offset.
        group_window_s: After new entries appear, wait this long to deliver
            the burst in one batch (0: deliver at once).
        min_interval_s: Minimum time between deliveries (rate limit).
    """

    name: str
    group_window_s: float
    min_interval_s: float

    async def resume(self, committed: int) -> int:
        """The offset to continue from, given the committed one."""
        ...

    async def deliver(self, entries: Sequence[LogEntry]) -> None:
        """Deliver ``entries`` (in order); raise :class:`SinkError` to retry them."""
        ...


@dataclass(frozen=True, slots=True)
class SinkSettings:
    """How the runner paces and retries one sink."""

    batch_limit: int = DEFAULT_BATCH_LIMIT
    backoff_initial_s: float = SINK_BACKOFF_INITIAL_S
    backoff_max_s: float = SINK_BACKOFF_MAX_S


class SinkRunner:
    """Feeds one sink from the log until cancelled.

    Args:
        sink: The sink.
        log_store: The merged log.
        settings: Batch size and retry timings.
        rand: Jitter source in [0, 1).
        route: Which entries the sink gets; the offset advances over the rest.
    """

    def __init__(
        self,
        sink: Sink,
        log_store: EventLog,
        settings: SinkSettings = SinkSettings(),
        *,
        rand: Callable[[], float] = random.random,
        route: Route = EVERYTHING,
    ) -> None:
        self.sink = sink
        self.route = route
        self.log_store = log_store
        self.settings = settings
        self.backoff = Backoff(settings.backoff_initial_s, settings.backoff_max_s, rand)
        self.offset = 0
        self.failures = 0
        self._last_delivery = -math.inf
        #: Set when another gateway took the sink over (cluster mode).
        self.stopped = False

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Deliver until the log's watch is released and everything is delivered.

        Reports started once the offset is known (so a new sink is
        registered at the log's end before any poller appends).
        """
        self.offset = await self.sink.resume(await self.log_store.sink_offset(self.sink.name))
        task_status.started()
        while not self.stopped:
            watch = self.log_store.watch
            await watch.wait_newer(self.offset)
            if watch.released and not watch.has_newer(self.offset):
                return  # shutting down and drained
            await self.deliver_pending()

    async def deliver_pending(self) -> None:
        """Wait out the grouping window and rate limit, then deliver one batch."""
        if self.sink.group_window_s > 0:
            await trio.sleep(self.sink.group_window_s)
        next_allowed = self._last_delivery + self.sink.min_interval_s
        if next_allowed > trio.current_time():  # a sleep in the past still costs a cancellation
            await trio.sleep_until(next_allowed)
        try:
            page = await self.log_store.read(self.offset, self.settings.batch_limit)
        except StoreError as error:
            log.error("sink %s cannot read the state store: %s", self.sink.name, error)
            await trio.sleep(self.backoff.next_delay())
            return
        entries = self.route.select(page.entries)
        if not self.log_store.may_deliver(self.sink.name):
            # Cluster mode: the lease may have passed to another gateway.
            log.warning("sink %s paused: its lease is not confirmed", self.sink.name)
            self.stopped = True
            return
        if entries:
            await self._sync()
            await self._deliver_with_retries(entries)
        with trio.CancelScope(shield=True):
            await self._commit(page.covered_seq)
        self.offset = page.covered_seq

    async def _sync(self) -> None:
        """The last offset durable before more is delivered (else a crash repeats both)."""
        try:
            with trio.CancelScope(shield=True):
                await self.log_store.sync_offset(self.sink.name)
        except StoreError as error:
            # As in _commit: deliveries go on; the next write that succeeds records them.
            log.error("sink %s cannot record its offset: %s", self.sink.name, error)

    async def _commit(self, offset: int) -> None:
        try:
            await self.log_store.commit(self.sink.name, offset)
        except LeaseLost as error:
            # Another gateway delivers this sink now, from the last offset committed.
            log.warning("sink %s stopped: %s", self.sink.name, error)
            self.stopped = True
        except StoreError as error:
            # Delivered but not recorded (disk full, read-only state dir): the
            # offset still advances in memory, so nothing repeats while this
            # process runs; the next commit that succeeds records it.
            log.error("sink %s cannot record its offset: %s", self.sink.name, error)

    async def _deliver_with_retries(self, entries: Sequence[LogEntry]) -> None:
        while True:
            self._last_delivery = trio.current_time()
            try:
                await self.sink.deliver(entries)
            except SinkError as error:
                self.failures += 1
                delay = self.backoff.next_delay()
                log.warning("sink %s failed (%s); retrying in %.1f s", self.sink.name, error, delay)
                await trio.sleep(delay)
                continue
            if self.backoff.failures:
                log.warning("sink %s recovered", self.sink.name)
            self.backoff.reset()
            return
