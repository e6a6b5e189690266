"""One poller per project: stream or poll, interpret, append durably, pace.

The loop, for each project, in the mode detected for it
(transports/modes.py)::

    stream:     GET {url}/api/events/stream   (Last-Event-ID: {cursor})
                  -> each chunk fed to StreamProtocol (sans-IO)
                  -> events + new position appended (streamer.py)
    long-poll / interval:
                GET {url}/api/events?since={cursor}&wait={s}
                  -> interpret (tracker.py, sans-IO)
                  -> append events + new position in one transaction (store.py)
                  -> long-polling server: poll again at once; otherwise sleep

Failures (refused, timeout, 5xx, bad body) back off exponentially with
jitter; after ``DOWN_AFTER_FAILURES`` in a row the project is declared down
with one "unreachable" notice, and the first good poll after that sends one
"recovered" notice. A failing state store pauses the poller (nothing is
acknowledged, so nothing is lost: the next poll re-reads from the cursor).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import httpx
import trio

from .backoff import Backoff
from .config import DEFAULT_STREAM_IDLE_S, GatewayConfig, ProjectConfig
from .errors import BadResponse, LeaseLost, ProjectError, ProjectUnreachable, StoreError
from .eventlog import EventLog
from .records import Incoming, LogEntry, Notice
from .status import PollMode, ProjectStatus
from .streamer import StreamReader, stream_request
from .tracker import PollResponse, PollResult, Position, interpret
from .transports.modes import ModeChoice
from .transports.records import NoStream, StreamStep
from .transports.stream_protocol import StreamProtocol

log = logging.getLogger("events_trio.gateway.poller")

#: Consecutive failed polls before a project is declared down (one blip is not news).
DOWN_AFTER_FAILURES: Final = 2
#: An empty long-poll answer quicker than this is followed by a pause (no busy loop
#: against a server that returns at once although it claims to long-poll).
MIN_EMPTY_LONG_POLL_S: Final = 1.0
#: Largest response body accepted (a full 500-event buffer is about 70 KB).
MAX_BODY_BYTES: Final = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class PollerSettings:
    """Timings of one poller.

    Attributes:
        interval_s: Pause between polls of a server that ignores ``wait``.
        wait_s: ``wait`` asked of a long-polling server.
        timeout_s: Time allowed for a request beyond its ``wait``.
        backoff_initial_s: First retry delay after a failure.
        backoff_max_s: Cap of the retry delay.
        replay: A new project starts from its whole buffer.
        idle_s: A stream silent this long (no event, no keep-alive) is reconnected.
    """

    interval_s: float
    wait_s: float
    timeout_s: float
    backoff_initial_s: float
    backoff_max_s: float
    replay: bool = False
    idle_s: float = DEFAULT_STREAM_IDLE_S

    @classmethod
    def for_project(cls, config: GatewayConfig, project: ProjectConfig) -> PollerSettings:
        """The settings ``config`` gives ``project``."""
        poll = config.poll
        return cls(
            config.interval_for(project),
            poll.wait_s,
            poll.timeout_s,
            poll.backoff_initial_s,
            poll.backoff_max_s,
            config.replay,
            poll.stream_idle_s,
        )


class Poller:
    """Polls one project server forever (until cancelled).

    Args:
        project: The project.
        client: Shared HTTP client (injected; its pool is sized by the caller).
        log_store: The durable merged log.
        settings: Timings.
        position: The persisted position, ``None`` for a new project.
        rand: Jitter source in [0, 1) (tests pin it).
    """

    def __init__(
        self,
        project: ProjectConfig,
        client: httpx.AsyncClient,
        log_store: EventLog,
        settings: PollerSettings,
        *,
        position: Position | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.project = project
        self.client = client
        self.log_store = log_store
        self.settings = settings
        self.position = position
        self.status = ProjectStatus(project.name, project.url)
        if position is not None:
            self.status.cursor = position.cursor
        self.backoff = Backoff(settings.backoff_initial_s, settings.backoff_max_s, rand)
        self._rand = rand
        # Pollers started together would all poll interval servers in the
        # same instant every interval: the first paced pause is cut short at
        # random (by up to one interval), which spreads them for good.
        self._spread_next_pause = True
        self._down_since: float | None = None
        self._failures_in_row = 0
        # Paces restarts in a row (an instance that changes on every answer).
        self._restarts_in_row = 0
        self._restart_backoff = Backoff(settings.backoff_initial_s, settings.backoff_max_s, rand)
        self.modes = ModeChoice()
        #: Set when the log refused an append because another gateway owns the project.
        self.stopped = False

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Stream or poll until cancelled or the project's lease is lost (cluster mode).

        The first request goes out at once.
        """
        task_status.started()
        while not self.stopped:
            if self.modes.next_transport(has_position=self.position is not None) == "stream":
                await self.stream_once()
            else:
                await self.poll_once()

    # -- stream mode -------------------------------------------------------

    async def stream_once(self) -> None:
        """One stream connection, read until it ends, and the pause before the next."""
        assert self.position is not None, "a new project is polled first"
        started = trio.current_time()
        protocol = StreamProtocol(self.position, project=self.project.name)
        try:
            response = await self._open_stream()
        except ProjectError as error:
            await self._failed(error)
            return
        try:
            await self._follow(response, protocol, started)
        except StoreError as error:
            await self._store_failed(error)
        finally:
            with trio.CancelScope(shield=True) as closing:
                closing.deadline = trio.current_time() + 1.0
                await response.aclose()

    async def _open_stream(self) -> httpx.Response:
        assert self.position is not None
        request = stream_request(self.client, self.project, self.position.cursor)
        limit_s = self.settings.timeout_s
        try:
            with trio.fail_after(limit_s):
                return await self.client.send(request, stream=True)
        except trio.TooSlowError:
            raise ProjectUnreachable(f"no answer within {limit_s:g} s") from None
        except httpx.TransportError as error:
            raise ProjectUnreachable(_describe(error)) from None
        except httpx.HTTPError as error:
            raise BadResponse(_describe(error)) from None

    async def _follow(
        self, response: httpx.Response, protocol: StreamProtocol, started: float
    ) -> None:
        try:
            opened = protocol.open(response.status_code, response.headers)
        except NoStream as why:
            log.info("[%s] %s: polling /api/events", self.project.name, why)
            self.modes.stream_refused()
            return
        except BadResponse as error:
            await self._failed(error)
            return
        await self._stream_up(opened)
        if opened.reconnect:
            await self._pace_restart()
            return
        self._restarts_in_row = 0
        self._restart_backoff.reset()
        outcome = await StreamReader(
            response, protocol, self._append_step, self.settings.idle_s
        ).run()
        if outcome.error is not None:
            await self._failed(ProjectUnreachable(outcome.error))
        elif not outcome.delivered:
            # Ended by the server at once: no busy loop of reconnects.
            await trio.sleep_until(started + MIN_EMPTY_LONG_POLL_S)

    async def _stream_up(self, opened: StreamStep) -> None:
        """The stream opened: the project is up (one recovered notice after an outage)."""
        if opened.records or self._down_since is not None or opened.position != self.position:
            await self._append_step(opened)
        self._down_since = None
        self._failures_in_row = 0
        self.backoff.reset()
        status = self.status
        status.state, status.last_error = "up", None
        self._set_mode("stream")
        status.polls += 1

    async def _append_step(self, step: StreamStep) -> None:
        await self._persist(step.records, step.position)
        self.position = step.position
        status = self.status
        status.cursor = step.position.cursor
        if step.newest_event_ms is not None:
            status.last_event_ms = step.newest_event_ms
        self._skipped(step.skipped_unknown)

    async def _persist(
        self, records: tuple[Incoming, ...], position: Position | None
    ) -> list[LogEntry]:
        """Append ``records`` with ``position``; a recovered notice first after an outage."""
        if self._down_since is not None:
            records = (self._recovered_notice(), *records)
        entries = await self.log_store.append(self.project.name, records, position)
        self._down_since = None  # only once the notice is in the log
        self.status.events_received += sum(entry.kind == "event" for entry in entries)
        return entries

    async def _store_failed(self, error: StoreError) -> None:
        # Nothing acknowledged, cursor unchanged: the next connection re-reads.
        self._note_store_error(error)
        if not self.stopped:
            await trio.sleep(self.backoff.next_delay())

    def _note_store_error(self, error: StoreError) -> None:
        if isinstance(error, LeaseLost):
            # Another gateway owns the project now: it continues from the cursor.
            log.warning("[%s] stopped polling: %s", self.project.name, error)
            self.stopped = True
            return
        log.error("[%s] cannot write the state store: %s", self.project.name, error)
        self.status.last_error = f"state store: {error}"

    async def _pace_restart(self) -> None:
        self._restarts_in_row += 1
        if self._restarts_in_row > 1:
            # Restarted again at once: the instance changes on every answer
            # (two servers behind one URL?). Back off rather than spin
            # re-reading and posting "restarted" notices.
            log.warning("[%s] server instance keeps changing", self.project.name)
            await trio.sleep(self._restart_backoff.next_delay())

    # -- long-poll and interval modes --------------------------------------

    async def poll_once(self) -> None:
        """One request, its outcome appended, and the pause before the next."""
        started = trio.current_time()
        first = self.position is None
        try:
            result = interpret(
                await self.fetch(),
                self.position,
                project=self.project.name,
                replay=self.settings.replay,
            )
        except ProjectError as error:
            await self._failed(error)
            return
        try:
            await self._accept(result)
        except StoreError as error:
            await self._store_failed(error)
            return
        await self._pace(result, started, first)

    # -- the one boundary where transport errors become ours ---------------

    async def fetch(self) -> PollResponse:
        """``GET /api/events`` once, within the per-request timeout.

        Raises:
            ProjectUnreachable: refused, reset, DNS failure, timed out.
            BadResponse: the body is too large or not decodable as HTTP.
        """
        wait = 0.0 if self.position is None else self.settings.wait_s
        limit_s = wait + self.settings.timeout_s
        try:
            with trio.fail_after(limit_s):
                return await self._get(wait)
        except trio.TooSlowError:
            raise ProjectUnreachable(f"no answer within {limit_s:g} s") from None
        except httpx.TransportError as error:
            raise ProjectUnreachable(_describe(error)) from None
        except httpx.HTTPError as error:
            raise BadResponse(_describe(error)) from None

    async def _get(self, wait: float) -> PollResponse:
        since = 0 if self.position is None else self.position.cursor
        params = {"since": str(since), "wait": f"{wait:g}"}
        # identity: a compressed body could inflate far past the cap in one chunk.
        headers = {"Accept": "application/json", "Accept-Encoding": "identity"}
        if self.project.token:
            headers["Authorization"] = f"Bearer {self.project.token}"
        url = f"{self.project.url}/api/events"
        # timeout=None: trio.fail_after above is the one per-request bound.
        async with self.client.stream(
            "GET", url, params=params, headers=headers, timeout=None
        ) as r:
            if int(r.headers.get("content-length", 0)) > MAX_BODY_BYTES:
                raise BadResponse(f"response body over {MAX_BODY_BYTES} bytes")
            body = await _read_capped(r)
            return PollResponse(r.status_code, r.headers, body)

    # -- outcomes ----------------------------------------------------------

    async def _accept(self, result: PollResult) -> None:
        recovered = self._down_since is not None
        if result.records or recovered or result.position != self.position:
            await self._persist(result.records, result.position)
        # else: an empty answer that moves nothing (every idle long-poll's end)
        # has nothing to persist; skipping the transaction saves a worker-thread
        # round trip and a WAL write per poll (most of an idle fleet's polls).
        self.modes.polled(
            long_poll=result.long_poll, restarted=result.restarted, recovered=recovered
        )
        self._down_since = None
        self._failures_in_row = 0
        self.backoff.reset()
        self.position = result.position
        self._update_status(result)

    def _update_status(self, result: PollResult) -> None:
        status = self.status
        status.state = "up"
        status.last_error = None
        status.cursor = result.position.cursor
        self._set_mode("long-poll" if result.long_poll else "interval")
        status.polls += 1
        if result.newest_event_ms is not None:
            status.last_event_ms = result.newest_event_ms
        self._skipped(result.skipped_unknown)

    def _set_mode(self, mode: PollMode) -> None:
        """Record how the project is read; logged when first known and when it changes."""
        if mode != self.status.mode:
            log.info("[%s] reading in %s mode", self.project.name, mode)
            self.status.mode = mode

    def _skipped(self, count: int) -> None:
        if count:
            self.status.skipped_unknown += count
            log.info("[%s] skipped %d events of unknown type", self.project.name, count)

    def _recovered_notice(self) -> Incoming:
        down_s = trio.current_time() - (self._down_since or 0.0)
        text = f"project {self.project.name} recovered after {down_s:.0f} s unreachable"
        log.warning("[%s] recovered", self.project.name)
        return Incoming(Notice("recovered", text), 0)

    async def _failed(self, error: ProjectError) -> None:
        self._failures_in_row += 1
        self.status.failures += 1
        self.status.last_error = str(error)
        if self._failures_in_row == DOWN_AFTER_FAILURES:
            await self._declare_down(error)
        await trio.sleep(self.backoff.next_delay())

    async def _declare_down(self, error: ProjectError) -> None:
        log.warning("[%s] unreachable: %s", self.project.name, error)
        self.status.state = "down"
        self._down_since = trio.current_time()
        text = f"project {self.project.name} unreachable: {error}"
        try:
            await self.log_store.append(
                self.project.name, (Incoming(Notice("unreachable", text), 0),), self.position
            )
        except StoreError as store_error:
            self._note_store_error(store_error)

    async def _pace(self, result: PollResult, started: float, first: bool) -> None:
        if result.restarted:
            await self._pace_restart()
            return
        self._restarts_in_row = 0
        self._restart_backoff.reset()
        if first:
            return
        if not result.long_poll:
            pause = self.settings.interval_s
            if self._spread_next_pause:
                self._spread_next_pause = False
                pause *= 1.0 - self._rand()
            await trio.sleep_until(started + pause)
        elif not result.records:
            await trio.sleep_until(started + MIN_EMPTY_LONG_POLL_S)


async def _read_capped(response: httpx.Response) -> bytes:
    """The body, or :class:`BadResponse` as soon as it grows past ``MAX_BODY_BYTES``.

    Reading stops by cancelling the next read rather than by raising between
    reads: the cancellation then unwinds httpcore's body generators from
    inside, where raising here would leave them suspended until garbage
    collection (a ``ResourceWarning`` under Trio). Nothing past the cap plus
    one chunk is held in memory.
    """
    body = bytearray()
    with trio.CancelScope() as cut:
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                cut.cancel()
    if len(body) > MAX_BODY_BYTES:
        raise BadResponse(f"response body over {MAX_BODY_BYTES} bytes")
    return bytes(body)


def _describe(error: httpx.HTTPError) -> str:
    detail = str(error) or type(error).__name__
    return f"{type(error).__name__}: {detail}".splitlines()[0][:200]
