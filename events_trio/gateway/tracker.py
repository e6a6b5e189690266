"""Interpreting one poll response (sans-IO: no Trio, no HTTP client).

Operations: :func:`interpret` takes what a project server answered and the
project's persisted position (instance id and cursor) and returns what to
append to the log, the new position, and how to poll next.

Goals:

* The cursor only moves forward within one server instance; an event at or
  below it is never accepted again.
* A restarted server (a new ``X-Events-Instance``, or its newest stamp
  below our cursor) neither hides its new events behind the old cursor nor
  re-delivers old ones: the position resets to (new instance, 0) and the
  log's dedup key (project, instance, stamp) keeps re-reads harmless.
* Gaps become notices: ``X-Events-Missed`` gives the exact count; a server
  without headers that returns a whole buffer's worth gets "some".
* Unknown event types are skipped and counted (forward compatibility), but
  a malformed event of a known type fails the whole response, before any
  state changes, so it is retried rather than half-applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import msgspec

from ..core.events import STORED_TYPES, StoredEvent, decode_stored
from ..wire.query import H_INSTANCE, H_LATEST, H_MISSED, H_WAIT, parse_u64
from .errors import BadResponse
from .records import Incoming, Notice

#: Capacity of the Rust original's buffer: a body this long may hide a gap.
RUST_BUFFER_SIZE: Final = 500
#: Largest stamp accepted: SQLite integers are signed 64-bit (real stamps are ~2^40).
MAX_STAMP_MS: Final = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Position:
    """Where a project's stream stands (persisted with every append).

    Attributes:
        instance: The server's ``X-Events-Instance`` ("" when it sends none).
        cursor: Newest project stamp accepted (or skipped as history).
    """

    instance: str
    cursor: int


@dataclass(frozen=True, slots=True)
class PollResponse:
    """What a project server answered (status 200 checked by :func:`interpret`)."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class PollResult:
    """What one response means.

    Attributes:
        records: Events (and notices) to append, in order.
        position: The position to persist with them.
        long_poll: The server honours ``wait`` (it sent ``X-Events-Wait-Max``).
        skipped_unknown: Events of an unknown ``type`` skipped.
        restarted: The server restarted; poll again at once from 0.
        newest_event_ms: Project stamp of the newest accepted event, if any.
    """

    records: tuple[Incoming, ...]
    position: Position
    long_poll: bool
    skipped_unknown: int = 0
    restarted: bool = False
    newest_event_ms: int | None = None


class _Envelope(msgspec.Struct):
    """Just enough of an event to route it (unknown fields ignored)."""

    type: str
    timestamp_ms: int | None = None


_raw_list: Final = msgspec.json.Decoder(list[msgspec.Raw])
_envelope: Final = msgspec.json.Decoder(_Envelope)


def decode_body(body: bytes) -> tuple[list[StoredEvent], list[int]]:
    """Decode an events array into known events and stamps of unknown ones.

    Raises:
        BadResponse: not JSON, not an array, or a malformed event.
    """
    try:
        raws = _raw_list.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as error:
        raise BadResponse(f"response is not a JSON array of events: {error}") from None
    events: list[StoredEvent] = []
    unknown: list[int] = []
    for index, raw in enumerate(raws):
        try:
            envelope = _envelope.decode(raw)
            if envelope.type not in STORED_TYPES:
                unknown.append(envelope.timestamp_ms or 0)
                continue
            events.append(decode_stored(raw))
        except (msgspec.DecodeError, RecursionError) as error:
            raise BadResponse(f"malformed event at index {index}: {error}") from None
    return events, unknown


def _header_u64(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    return None if value is None else parse_u64(value.strip())


def interpret(
    response: PollResponse, position: Position | None, *, project: str, replay: bool
) -> PollResult:
    """Turn one response into log records and a new position.

    Args:
        response: The server's answer to ``since=<position.cursor>``
            (``since=0`` when ``position`` is ``None``: a new project).
        position: The persisted position, ``None`` for a new project.
        project: Project name (for notice texts).
        replay: For a new project, deliver its whole buffer instead of
            starting from its newest event.

    Raises:
        BadResponse: a status other than 200, or a body that is not a
            valid events array.
    """
    if response.status != 200:
        raise BadResponse(f"HTTP {response.status} from /api/events")
    events, unknown = decode_body(response.body)
    headers = response.headers
    instance = headers.get(H_INSTANCE, "")
    latest = _header_u64(headers, H_LATEST)
    _check_stamps(events, unknown, latest)
    long_poll = H_WAIT in headers
    if position is None:
        return _first(events, unknown, latest, instance, long_poll, replay)
    if _restarted(position, instance, latest):
        notice = Notice("restarted", f"project {project} restarted; reading its new events")
        return PollResult((Incoming(notice, 0),), Position(instance, 0), long_poll, restarted=True)
    return _follow(events, unknown, position, headers, project, long_poll)


def _check_stamps(events: list[StoredEvent], unknown: list[int], latest: int | None) -> None:
    newest = max([latest or 0, *unknown, *(e.timestamp_ms for e in events)])
    if newest > MAX_STAMP_MS:
        raise BadResponse(f"timestamp {newest} is beyond {MAX_STAMP_MS}")


def _restarted(position: Position, instance: str, latest: int | None) -> bool:
    if instance != position.instance and (instance or position.instance):
        return True
    return latest is not None and latest < position.cursor


def _first(
    events: list[StoredEvent],
    unknown: list[int],
    latest: int | None,
    instance: str,
    long_poll: bool,
    replay: bool,
) -> PollResult:
    newest = max([0, latest or 0, *unknown, *(e.timestamp_ms for e in events)])
    records = (
        tuple(Incoming(e, e.timestamp_ms) for e in sorted(events, key=_stamp)) if replay else ()
    )
    newest_event = records[-1].project_ts if records else None
    return PollResult(
        records, Position(instance, newest), long_poll, len(unknown), False, newest_event
    )


def _follow(
    events: list[StoredEvent],
    unknown: list[int],
    position: Position,
    headers: Mapping[str, str],
    project: str,
    long_poll: bool,
) -> PollResult:
    records: list[Incoming] = []
    gap = _gap_notice(headers, position, len(events) + len(unknown), project)
    if gap is not None:
        records.append(gap)
    newest_event: int | None = None
    # Sorted: a server that answers out of order still yields a log in stamp
    # order per project; the cursor then lands on the newest, never lower.
    for event in sorted(events, key=_stamp):
        if event.timestamp_ms > position.cursor:
            records.append(Incoming(event, event.timestamp_ms))
            newest_event = event.timestamp_ms
    cursor = max(
        [position.cursor, newest_event or 0, *unknown, _header_u64(headers, H_LATEST) or 0]
    )
    new_position = Position(position.instance, cursor)
    return PollResult(tuple(records), new_position, long_poll, len(unknown), False, newest_event)


def _stamp(event: StoredEvent) -> int:
    return event.timestamp_ms


def _gap_notice(
    headers: Mapping[str, str], position: Position, returned: int, project: str
) -> Incoming | None:
    missed = _header_u64(headers, H_MISSED)
    if missed is None and H_LATEST not in headers and returned >= RUST_BUFFER_SIZE:
        # A headerless (Rust) server returned a whole buffer: older ones may be gone.
        text = f"some events may have been missed from {project}"
        return Incoming(Notice("missed", text, None), 0)
    if not missed:
        return None
    noun = "event" if missed == 1 else "events"
    return Incoming(Notice("missed", f"{missed} {noun} missed from {project}", missed), 0)
