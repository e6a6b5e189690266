"""The subscriber: broadcast receiver -> event buffer.

Maps each :data:`~events_trio.core.events.WatcherEvent` to the
:data:`~events_trio.core.events.StoredEvent` the seed stores (see
:func:`~events_trio.core.events.to_stored`), stamped with the buffer's clock.
"""

from __future__ import annotations

import logging

import trio

from ..core.broadcast import BroadcastReceiver, Lagged
from ..core.buffer import EventBuffer
from ..core.events import WatcherEvent, to_stored

log = logging.getLogger("events_trio.subscriber")


async def run_subscriber(
    buffer: EventBuffer,
    receiver: BroadcastReceiver[WatcherEvent],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Store relevant watcher events in ``buffer`` until the channel closes.

    On :class:`~events_trio.core.broadcast.Lagged` the skipped count is logged and
    recorded as lost in the buffer (clients see it as missed events); on
    :class:`trio.EndOfChannel` it logs and returns. Closes ``receiver``.
    """
    async with receiver:
        task_status.started()
        while True:
            try:
                event = await _next(receiver)
            except Lagged as lag:
                log.warning("subscriber lagged, skipped %d events", lag.skipped)
                buffer.record_lost(lag.skipped)
                continue
            except trio.EndOfChannel:
                log.info("watcher channel closed; stopping event subscriber")
                return
            stored = to_stored(event, buffer.next_stamp())
            if stored is not None:
                buffer.push(stored)


async def _next(receiver: BroadcastReceiver[WatcherEvent]) -> WatcherEvent:
    # Take what is already sent without a scheduler round trip per event;
    # senders cannot add more meanwhile (same thread), so one turn is bounded
    # by the channel's capacity and a burst never outruns the subscriber.
    try:
        return receiver.receive_nowait()
    except trio.WouldBlock:
        return await receiver.receive()
