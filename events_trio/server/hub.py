"""EventHub: the background unit both hosting doors start.

It owns the broadcast channel, the subscriber and the buffer, and runs the
event sources (pipeline watcher, ...) that publish into the channel:

    source -> BroadcastSender -> BroadcastReceiver -> subscriber -> EventBuffer

``run_server`` starts :meth:`EventHub.run` beside Hypercorn; the ASGI entry
starts it in the app's lifespan nursery. Either way one process owns one hub.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any, Protocol

import trio

from ..core.broadcast import (
    DEFAULT_CHANNEL_CAPACITY,
    BroadcastReceiver,
    BroadcastSender,
    open_broadcast_channel,
)
from ..core.buffer import DEFAULT_CAPACITY, EventBuffer
from ..core.clock import ClockMs, wall_clock_ms
from ..core.events import WatcherEvent
from ..core.waiting import LongPoll
from .subscriber import run_subscriber


class Source(Protocol):
    """An event source: publishes on ``sender`` until cancelled, then closes it."""

    def __call__(
        self,
        sender: BroadcastSender[WatcherEvent],
        *,
        task_status: trio.TaskStatus[Any] = ...,
    ) -> Awaitable[None]: ...


class EventHub:
    """Broadcast channel + subscriber + buffer + long-poll waiters.

    Args:
        capacity: Buffer capacity (events).
        channel_capacity: Broadcast channel capacity (messages).
        clock_ms: Wall clock in milliseconds for stamps.
    """

    def __init__(
        self,
        capacity: int = DEFAULT_CAPACITY,
        *,
        channel_capacity: int = DEFAULT_CHANNEL_CAPACITY,
        clock_ms: ClockMs = wall_clock_ms,
    ) -> None:
        self.buffer = EventBuffer(capacity, clock_ms=clock_ms)
        self.longpoll = LongPoll(self.buffer)
        self.sender: BroadcastSender[WatcherEvent]
        self._receiver: BroadcastReceiver[WatcherEvent]
        self.sender, self._receiver = open_broadcast_channel(channel_capacity)
        self._stop = trio.Event()
        self._draining = False
        self._stopped = trio.Event()

    def publish(self, event: WatcherEvent) -> None:
        """Publish ``event`` on the broadcast channel (never blocks).

        Raises:
            trio.ClosedResourceError: the hub is shutting down (draining or stopped).
        """
        if self._draining:
            raise trio.ClosedResourceError("the hub is shutting down")
        self.sender.send_nowait(event)

    @property
    def draining(self) -> bool:
        """Whether shutdown began: no new events are taken, long-polls are released."""
        return self._draining

    async def drain(self, settle_s: float) -> None:
        """First step of a shutdown: take no new events, store what was taken, let pollers catch up.

        Publishing is refused from now on and every long-poll is released;
        the subscriber stores everything already published (the 202s already
        sent), and pollers fetch it: the whole drain takes ``settle_s``.
        """
        self._draining = True
        self.longpoll.release_all()
        deadline = trio.current_time() + settle_s
        with trio.move_on_at(deadline):
            # Woken by the subscriber taking the last published event (it
            # stores it in the same turn), or by its receiver closing.
            await self._receiver.wait_caught_up()
        await trio.sleep_until(deadline)

    async def run(
        self,
        sources: Sequence[Source] = (),
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run the subscriber and ``sources`` until :meth:`stop`.

        On stop the sources are cancelled, the channel is closed, and the
        subscriber drains what was already published before this returns.
        """
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(run_subscriber, self.buffer, self._receiver)
                async with trio.open_nursery() as source_nursery:
                    for source in sources:
                        await source_nursery.start(source, self.sender.clone())
                    task_status.started()
                    await self._stop.wait()
                    source_nursery.cancel_scope.cancel()
                self.sender.close()
        finally:
            self.sender.close()
            self._stopped.set()

    def stop(self) -> None:
        """Release long-polls and ask :meth:`run` to wind down (idempotent)."""
        self.longpoll.release_all()
        self._stop.set()

    async def wait_stopped(self) -> None:
        """Wait until :meth:`run` has returned."""
        await self._stopped.wait()
