"""What the merged log holds: project events and gateway notices.

Each log entry is stored with its wire body already encoded (fast path: a
``GET /api/events`` response on the gateway joins stored bytes). The body
is the project's event re-stamped with the gateway's own ``timestamp_ms``,
followed by two extra fields, after the documented ones (serde ignores
them)::

    {"type":"merge_failure","story_id":"42_story_x","reason":"conflict",
     "timestamp_ms":1764201600500,"project":"billing","project_timestamp_ms":1764201600123}

Notices (project unreachable, recovered, events missed, restarted) go
through the same log so chat sees them, tagged ``"type":"gateway_notice"``
and kind ``notice``. The gateway's ``/api/events`` leaves them out unless
asked (``notices=1``), because a Rust consumer fails on an unknown ``type``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

import msgspec

from ..core.events import StoredEvent, encode

NoticeKind: TypeAlias = Literal["unreachable", "recovered", "missed", "restarted"]
EntryKind: TypeAlias = Literal["event", "notice"]

NOTICE_TYPE: Final = "gateway_notice"


class Notice(msgspec.Struct, frozen=True, tag=NOTICE_TYPE, tag_field="type"):
    """A gateway notice about a project (goes to the sinks like an event).

    Attributes:
        notice: ``unreachable``, ``recovered``, ``missed`` or ``restarted``.
        message: Human-readable text naming the project.
        missed: For ``missed``: how many events, ``None`` when unknown ("some").
        timestamp_ms: The gateway's stamp (set when appended).
    """

    notice: NoticeKind
    message: str
    missed: int | None = None
    timestamp_ms: int = 0


LogPayload: TypeAlias = StoredEvent | Notice


@dataclass(frozen=True, slots=True)
class Incoming:
    """One record a poller appends: an event from a project, or a notice.

    Attributes:
        payload: The project's event (its own stamp) or a notice.
        project_ts: The project's stamp (0 for notices).
    """

    payload: LogPayload
    project_ts: int

    @property
    def kind(self) -> EntryKind:
        """``notice`` for notices, ``event`` otherwise."""
        return "notice" if isinstance(self.payload, Notice) else "event"


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One entry of the merged log, as read back.

    Attributes:
        seq: The gateway's stamp: unique, increasing; also the log offset.
        project: Project name.
        kind: ``event`` or ``notice``.
        project_ts: The project's own stamp (0 for notices).
        body: The wire JSON object (see module docstring).
    """

    seq: int
    project: str
    kind: EntryKind
    project_ts: int
    body: bytes

    def payload(self) -> LogPayload:
        """Decode the body (the extra ``project`` fields are ignored)."""
        return _payload_decoder.decode(self.body)


@dataclass(frozen=True, slots=True)
class Page:
    """A read of the log.

    Attributes:
        entries: Entries after the offset asked for, oldest first.
        covered_seq: Every entry up to this offset was considered (a client
            may advance its cursor to it even when notices were left out).
    """

    entries: list[LogEntry]
    covered_seq: int


_payload_decoder: Final[msgspec.json.Decoder[LogPayload]] = msgspec.json.Decoder(LogPayload)
_str_encoder: Final = msgspec.json.Encoder()


def encode_entry(record: Incoming, project: str, seq: int) -> bytes:
    """The wire body of ``record`` stamped ``seq`` (see module docstring)."""
    stamped = msgspec.structs.replace(record.payload, timestamp_ms=seq)
    head = encode(stamped) if not isinstance(stamped, Notice) else _str_encoder.encode(stamped)
    extra = b',"project":%s,"project_timestamp_ms":%d}' % (
        _str_encoder.encode(project),
        record.project_ts,
    )
    return head[:-1] + extra
