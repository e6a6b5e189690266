"""The Trio layer of the pipeline watcher: an event source driving ``watchfiles.awatch``.

:class:`PipelineWatcher` (a ``hub.Source``) watches a pipeline directory and
publishes a :class:`~events_trio.core.events.WorkItem` for every item that
appears or moves. It owns only the waiting: awatch batches, the hold
deadlines, a pipeline directory that goes away and comes back. What a batch
means is decided below it, data flowing down:

* ``pipeline_fs.py`` (synchronous): :func:`~events_trio.sources.pipeline_fs.observe`
  looks at the paths of one batch, :func:`~events_trio.sources.pipeline_fs.scan_pipeline`
  at the whole directory;
* ``pipeline.py`` (sans IO): :class:`~events_trio.sources.pipeline.PipelineState`
  turns those observations into events (the rules, docs/sources.md).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Final

import trio
from watchfiles import Change, awatch
from watchfiles.main import FileChange

from ..core.broadcast import BroadcastSender
from ..core.events import WatcherEvent, WorkItem
from .pipeline import DEFAULT_STAGES, MOVE_HOLD_S, PipelineState
from .pipeline_fs import ensure_pipeline, observe, once, rescan_observations, scan_pipeline

log = logging.getLogger("events_trio.watcher")

#: awatch groups changes for at most this long before yielding a batch.
DEBOUNCE_MS: Final = 50
#: awatch yields once no new change arrived for this long.
STEP_MS: Final = 20
#: awatch returns this often even when idle, so a replaced directory is noticed.
ROOT_CHECK_MS: Final = 1_000
#: How often a missing pipeline directory is looked for (and how often the
#: polling fallback rescans).
ROOT_POLL_S: Final = 0.5
#: How long the polling fallback runs before awatch is tried again.
WATCH_RETRY_S: Final = 5.0


def _log_event(event: WorkItem) -> None:
    if event.from_stage is None:
        log.info("new work item %s in %s", event.item_id, event.stage)
    else:
        log.info("work item %s moved %s -> %s", event.item_id, event.from_stage, event.stage)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


class PipelineWatcher:
    """Event source watching a pipeline directory (``hub.Source``).

    Publishes a :class:`~events_trio.core.events.WorkItem` for every item that
    appears (no ``from_stage``) or moves (with ``from_stage``).

    Args:
        root: The pipeline directory.
        create: Create ``root`` with :data:`DEFAULT_STAGES` when it is
            missing or holds no stage folder.
        debounce_ms: awatch's ``debounce``.
        step_ms: awatch's ``step``.
        hold_s: How long a vanished item may reappear as a move.
        root_poll_s: How often a missing ``root`` is looked for.
    """

    def __init__(
        self,
        root: Path,
        *,
        create: bool = True,
        debounce_ms: int = DEBOUNCE_MS,
        step_ms: int = STEP_MS,
        hold_s: float = MOVE_HOLD_S,
        root_poll_s: float = ROOT_POLL_S,
    ) -> None:
        self.root = root.absolute()
        self.create = create
        self.debounce_ms = debounce_ms
        self.step_ms = step_ms
        self.hold_s = hold_s
        self.root_poll_s = root_poll_s
        self.watch_retry_s = WATCH_RETRY_S
        # Set by the pump when awatch cannot watch the tree (an unreadable
        # folder inside: inotify and watchfiles' polling both give up).
        self._unwatchable = False
        self._retrying = False

    async def __call__(
        self,
        sender: BroadcastSender[WatcherEvent],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Watch until cancelled; ``task_status.started()`` after the startup scan.

        Closes ``sender`` on the way out.

        Raises:
            StartupError: ``create`` is set and ``root`` cannot be a pipeline directory.
        """
        async with sender:
            self.prepare()
            state = PipelineState(hold_s=self.hold_s)
            status: trio.TaskStatus[None] | None = task_status
            while True:
                if self.root.is_dir():
                    await self._session(state, sender, status)
                    status = None
                    if self._unwatchable:
                        await self._poll_fallback(state, sender)
                        continue
                    log.warning(
                        "pipeline directory %s is gone; waiting for it to return", self.root
                    )
                else:
                    if status is not None:
                        status.started()
                    log.warning("pipeline directory %s does not exist; waiting for it", self.root)
                status = None
                state.clear()
                await self._wait_for_root()

    def prepare(self) -> None:
        """Create the pipeline directory if ``create`` is set and it is needed.

        The watcher does this when it starts; call it earlier to fail before
        a server starts (a plain exception instead of one inside nurseries).

        Raises:
            StartupError: ``root`` cannot be a pipeline directory.
        """
        if self.create and ensure_pipeline(self.root):
            stages = " ".join(DEFAULT_STAGES)
            log.info("created pipeline directory %s with stages %s", self.root, stages)

    async def _wait_for_root(self) -> None:
        # Polling: inotify cannot watch a directory that does not exist yet.
        while True:
            await trio.sleep(self.root_poll_s)
            if self.root.is_dir():
                break
        log.info("pipeline directory %s is back", self.root)

    async def _session(
        self,
        state: PipelineState,
        sender: BroadcastSender[WatcherEvent],
        task_status: trio.TaskStatus[None] | None,
    ) -> None:
        """Watch ``root`` until it is removed or replaced (or we are cancelled)."""
        identity = _identity(self.root)
        stop = trio.Event()
        batches_in, batches_out = trio.open_memory_channel[set[FileChange]](math.inf)
        async with trio.open_nursery() as nursery:
            # awatch puts its inotify watch in place before the pump's first
            # checkpoint, so once start() returns the scan below misses nothing.
            await nursery.start(self._pump, stop, batches_in)
            state.reset(scan_pipeline(self.root))
            # After a polling fallback awatch is retried every few seconds: quietly.
            level = logging.DEBUG if self._retrying else logging.INFO
            log.log(level, "watching %s: %d work items", self.root, len(state.items))
            self._retrying = False
            if task_status is not None:
                task_status.started()
            try:
                await self._consume(state, batches_out, sender, identity)
            finally:
                # awatch's thread cannot be cancelled: without this, cancelling waits
                # for its rust_timeout (1 s here, 5 s by default) instead of one step.
                stop.set()

    async def _pump(
        self,
        stop: trio.Event,
        batches: trio.MemorySendChannel[set[FileChange]],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        async with batches:
            task_status.started()
            changes = awatch(
                self.root,
                watch_filter=None,
                debounce=self.debounce_ms,
                step=self.step_ms,
                stop_event=stop,
                rust_timeout=ROOT_CHECK_MS,
                yield_on_timeout=True,
            )
            try:
                async for batch in changes:
                    batches.send_nowait(batch)
            except OSError as error:  # vanished before the watch began, or unreadable inside
                once.log(logging.WARNING, "cannot watch %r: %s", self.root, error)
                self._unwatchable = self.root.is_dir()

    async def _poll_fallback(
        self, state: PipelineState, sender: BroadcastSender[WatcherEvent]
    ) -> None:
        """Rescan every ``root_poll_s`` for ``watch_retry_s``, then let awatch try again."""
        self._unwatchable = False
        self._retrying = True
        once.log(
            logging.WARNING,
            "polling %r every %g s until it can be watched",
            self.root,
            self.root_poll_s,
        )
        deadline = trio.current_time() + self.watch_retry_s
        while self.root.is_dir() and trio.current_time() < deadline:
            now = trio.current_time()
            seen = rescan_observations(state.items, scan_pipeline(self.root))
            for event in state.apply(seen, now):
                _log_event(event)
                sender.send_nowait(event)
            state.expire(now)
            await trio.sleep(self.root_poll_s)

    async def _consume(
        self,
        state: PipelineState,
        batches: trio.MemoryReceiveChannel[set[FileChange]],
        sender: BroadcastSender[WatcherEvent],
        identity: tuple[int, int] | None,
    ) -> None:
        root_real = self.root.resolve()
        gone = (Change.deleted, str(self.root))
        while True:
            with trio.move_on_at(state.next_deadline()):
                try:
                    batch = await batches.receive()
                except trio.EndOfChannel:
                    return
                if gone in batch or _identity(self.root) != identity:
                    return
                for event in state.apply(observe(self.root, root_real, batch), trio.current_time()):
                    _log_event(event)
                    sender.send_nowait(event)
            state.expire(trio.current_time())


# DEFAULT_STAGES stays importable from here for callers written before the
# split (benchmarks/bench_watcher.py); its home is events_trio.sources.pipeline.
__all__ = ["DEFAULT_STAGES", "PipelineWatcher"]
