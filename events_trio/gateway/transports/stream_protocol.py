"""The ``stream`` mode as a state machine (sans-IO: no Trio, no HTTP client).

Operations: :meth:`StreamProtocol.open` takes the response head of
``GET /api/events/stream`` (sent with ``Last-Event-ID: <cursor>``);
:meth:`StreamProtocol.feed` takes body bytes as they arrive. Each returns a
:class:`StreamStep`: what to append, the position to persist with it.

Goals, the same as for polling (tracker.py):

* The cursor only moves forward within one server instance; an event at or
  below it is never accepted again. ``id:``-only frames move it too (the
  server's stamps of losses), so a reconnect is not told of them twice.
* A restart (a new ``X-Events-Instance``, or ``X-Events-Latest-Ms`` below
  the cursor) yields one "restarted" notice, the position (new instance, 0)
  and ``reconnect``: the new server is read from its start.
* ``event: gap`` frames give exact "N events missed" notices.
* Unknown event types are skipped and counted; a malformed event of a known
  type stops the step there (``error``): what came before it is kept, the
  connection is retried from the cursor.
* A server whose stream is not ours (not 200 ``text/event-stream``, or no
  ``X-Events-Instance``) raises :class:`NoStream`: the project is long-polled.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import msgspec

from ...core.events import STORED_TYPES, StoredEvent, decode_stored
from ...wire.query import H_INSTANCE, H_LATEST, parse_u64
from ...wire.sse import CONTENT_TYPE, SseLineTooLong, SseMessage, SseParser
from ..errors import BadResponse
from ..records import Incoming, Notice
from ..tracker import MAX_STAMP_MS, Position
from .records import NoStream, StreamStep

#: Statuses that mean "no stream here" rather than "the server is failing".
NO_STREAM_STATUSES: Final = frozenset({404, 405, 406, 501})
GAP_EVENT: Final = "gap"


class _Envelope(msgspec.Struct):
    type: str
    timestamp_ms: int | None = None


class _Gap(msgspec.Struct):
    missed: int


_envelope: Final = msgspec.json.Decoder(_Envelope)
_gap: Final = msgspec.json.Decoder(_Gap)


class StreamProtocol:
    """One connection's worth of a project's event stream.

    Args:
        position: The persisted position the connection resumes from.
        project: Project name (for notice texts).
    """

    def __init__(self, position: Position, *, project: str) -> None:
        self.position = position
        self.project = project
        self._parser = SseParser()

    def open(self, status: int, headers: Mapping[str, str]) -> StreamStep:
        """Check the response head.

        Raises:
            NoStream: the server has no usable stream.
            BadResponse: it has one but refuses us (401, 5xx, ...).
        """
        if status in NO_STREAM_STATUSES:
            raise NoStream(f"HTTP {status} from /api/events/stream")
        if status != 200:
            raise BadResponse(f"HTTP {status} from /api/events/stream")
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        instance = headers.get(H_INSTANCE)
        if kind != CONTENT_TYPE or not instance:
            raise NoStream("/api/events/stream is not our event stream")
        latest = parse_u64(headers.get(H_LATEST, "").strip())
        if self._restarted(instance, latest):
            text = f"project {self.project} restarted; reading its new events"
            self.position = Position(instance, 0)
            notice = Incoming(Notice("restarted", text), 0)
            return StreamStep((notice,), self.position, reconnect=True)
        return StreamStep((), self.position)

    def _restarted(self, instance: str, latest: int | None) -> bool:
        if instance != self.position.instance:
            return True
        return latest is not None and latest < self.position.cursor

    def feed(self, chunk: bytes) -> StreamStep:
        """Interpret ``chunk`` of the body (any size, frames may be split anywhere)."""
        try:
            messages = self._parser.feed(chunk)
        except SseLineTooLong as error:
            return StreamStep((), self.position, error=str(error))
        step = _Step(self.position.cursor)
        for message in messages:
            try:
                self._message(message, step)
            except BadResponse as error:
                step.error = str(error)
                break
        self.position = Position(self.position.instance, step.cursor)
        return StreamStep(
            tuple(step.records), self.position, step.unknown, step.newest, error=step.error
        )

    def _message(self, message: SseMessage, step: _Step) -> None:
        stamp = _stamp(message.id)
        if message.event == GAP_EVENT:
            step.records.append(self._gap_notice(message.data))
        elif message.data is not None and message.event in (None, "message"):
            _event(message.data, step)
        if stamp is not None:
            step.cursor = max(step.cursor, stamp)

    def _gap_notice(self, data: bytes | None) -> Incoming:
        try:
            missed = _gap.decode(data or b"").missed
        except msgspec.DecodeError:
            raise BadResponse("malformed gap frame on /api/events/stream") from None
        noun = "event" if missed == 1 else "events"
        text = f"{missed} {noun} missed from {self.project}"
        return Incoming(Notice("missed", text, missed), 0)


def _unknown_type(data: bytes, step: _Step) -> bool:
    """Skip and count an event of a type we do not know (``False``: the type is known)."""
    try:
        envelope = _envelope.decode(data)
    except msgspec.DecodeError:
        return False
    if envelope.type in STORED_TYPES:
        return False
    step.unknown += 1
    step.cursor = max(step.cursor, min(envelope.timestamp_ms or 0, MAX_STAMP_MS))
    return True


class _Step:
    """What a chunk accumulates while its messages are interpreted."""

    __slots__ = ("cursor", "error", "newest", "records", "unknown")

    def __init__(self, cursor: int) -> None:
        self.cursor = cursor
        self.records: list[Incoming] = []
        self.unknown = 0
        self.newest: int | None = None
        self.error: str | None = None


def _stamp(raw: str | None) -> int | None:
    if raw is None:
        return None
    stamp = parse_u64(raw.strip())
    if stamp is None or stamp > MAX_STAMP_MS:
        raise BadResponse(f"bad id {raw[:40]!r} on /api/events/stream")
    return stamp


def _event(data: bytes, step: _Step) -> None:
    try:
        event: StoredEvent = decode_stored(data)  # one decode for the usual case
    except msgspec.ValidationError as error:
        # An unknown type, or a known one malformed: the envelope tells which.
        if _unknown_type(data, step):
            return
        raise BadResponse(f"malformed event on /api/events/stream: {error}") from None
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as error:
        raise BadResponse(f"malformed event on /api/events/stream: {error}") from None
    stamp = event.timestamp_ms
    if stamp > MAX_STAMP_MS:
        raise BadResponse(f"timestamp {stamp} is beyond {MAX_STAMP_MS}")
    if stamp > step.cursor:
        step.records.append(Incoming(event, stamp))
        step.newest = step.cursor = stamp
