"""Small records the transport state machines hand to the IO layer."""

from __future__ import annotations

from dataclasses import dataclass

from ..records import Incoming
from ..tracker import Position


@dataclass(frozen=True, slots=True)
class StreamStep:
    """What one chunk of a stream (or its opening) means.

    Attributes:
        records: Events and notices to append, in order.
        position: The position to persist with them.
        skipped_unknown: Events of an unknown ``type`` skipped.
        newest_event_ms: Project stamp of the newest accepted event, if any.
        reconnect: The server restarted: close and read it again from its start.
        error: A malformed event: what precedes it is in ``records``; the
            connection is dropped and retried from ``position``.
    """

    records: tuple[Incoming, ...]
    position: Position
    skipped_unknown: int = 0
    newest_event_ms: int | None = None
    reconnect: bool = False
    error: str | None = None


class NoStream(Exception):
    """The server has no usable event stream (404, not SSE, no instance header)."""
