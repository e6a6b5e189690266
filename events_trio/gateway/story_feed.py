"""The task that keeps the :class:`StoryBoard` in step with the merged log.

Like a sink without a stored offset: at start it reads the whole log (the
retention window) into the board, then follows new entries as they are
appended. A failing state store is retried after a pause; nothing here
writes to it.
"""

from __future__ import annotations

import logging
from typing import Final

import trio

from .errors import StoreError
from .eventlog import EventLog
from .stories import StoryBoard

log = logging.getLogger("events_trio.gateway.stories")

#: Entries read per page.
PAGE_ENTRIES: Final = 1000
#: Pause after a failed read.
RETRY_S: Final = 5.0


async def follow_log(
    board: StoryBoard,
    log_store: EventLog,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Feed ``board`` from ``log_store`` until cancelled or the log's watch is released."""
    await catch_up(board, log_store)
    task_status.started()
    while True:
        watch = log_store.watch
        await watch.wait_newer(board.offset)
        if watch.released and not watch.has_newer(board.offset):
            return
        await catch_up(board, log_store)


async def catch_up(board: StoryBoard, log_store: EventLog) -> None:
    """Feed ``board`` everything the log holds past its offset."""
    while True:
        try:
            page = await log_store.read(board.offset, PAGE_ENTRIES, notices=False)
        except StoreError as error:
            log.error("stories cannot read the state store: %s", error)
            await trio.sleep(RETRY_S)
            continue
        board.feed(page.entries)
        board.offset = max(board.offset, page.covered_seq)
        if not log_store.watch.has_newer(board.offset):
            return
