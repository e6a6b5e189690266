"""``POST /api/events`` bodies: decoding and checking what tools push.

The body is one event or a JSON array of them, in the ingest format
(docs/sources.md), without timestamps: the server stamps them. Events are
published on the broadcast channel (``hub.publish``), so they flow through
the same subscriber and buffer as the watcher's.

Order of checks, each answered with a JSON error (docs/sources.md):

1. the body is read in full, at most :data:`MAX_BODY_BYTES` (413);
2. ingest is enabled, i.e. a token is configured (403);
3. ``Authorization: Bearer <token>`` matches, in constant time (401);
4. ``Content-Type`` is ``application/json`` (415);
5. the body is UTF-8 JSON (400) of known events with exactly the
   documented fields (422, the message names the field);
6. at most :data:`MAX_BATCH_EVENTS` events (413).

All-or-nothing: every event is validated before the first is published.
The route itself (reading the body, publishing) is ``server/ingest.py``.
"""

from __future__ import annotations

import re
from typing import Annotated, Final, TypeAlias

import msgspec

from ..core.events import MergeFailure, StoryBlocked, WatcherEvent, WorkItem
from ..wire.auth import UNAUTHORIZED_MESSAGE, bearer_matches
from ..wire.responses import JSON
from .ingest_schema import MAX_ID_CHARS, TOO_DEEP_MESSAGE, explain
from .pipeline import derive_action

#: Largest request body accepted (also Quart's ``MAX_CONTENT_LENGTH``).
MAX_BODY_BYTES: Final = 64 * 1024
#: Most events accepted in one request.
MAX_BATCH_EVENTS: Final = 1000

DISABLED_MESSAGE: Final = "ingest disabled: no ingest token configured"
NOT_UTF8_MESSAGE: Final = "request body is not valid UTF-8"
NOT_JSON_MESSAGE: Final = "request body is not valid JSON"

NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS)]
#: What an id or stage must not be or contain: it ends up in chat lines,
#: terminals and possibly file names downstream.
_UNSAFE_ID: Final = re.compile(r"[\x00-\x1f\x7f-\x9f/\\]|^\.\.?$")
UNSAFE_ID_MESSAGE: Final = "must not contain control characters, '/' or '\\', nor be '.' or '..'"


class _Ingest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type"):
    """Base of the ingest records: strict, so ``timestamp_ms`` is refused by name."""


class IngestWorkItem(_Ingest, frozen=True, tag="work_item"):
    """A stage transition reported by a tool (``from_stage`` is required here)."""

    item_id: Id
    stage: Id
    from_stage: Id
    action: str = ""
    commit_msg: str = ""


class IngestMergeFailure(_Ingest, frozen=True, tag="merge_failure"):
    """A merge failure reported by a tool."""

    story_id: Id
    reason: str


class IngestStoryBlocked(_Ingest, frozen=True, tag="story_blocked"):
    """A blocked story reported by a tool."""

    story_id: Id
    reason: str


IngestEvent: TypeAlias = IngestWorkItem | IngestMergeFailure | IngestStoryBlocked

_decoder: Final = msgspec.json.Decoder(IngestEvent | list[IngestEvent])


class IngestError(Exception):
    """A request ``POST /api/events`` refuses.

    Args:
        status: HTTP status.
        error: Short machine-readable code (the body's ``error``).
        message: Human-readable explanation (the body's ``message``).
    """

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        *,
        field: str | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.field = field
        self.detail = detail

    def body(self) -> dict[str, str]:
        """The JSON error body: ``error``, ``message``, then ``field`` and ``detail``
        where known (``detail`` is a library's text: informative, not a contract)."""
        body = {"error": self.error, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        if self.detail is not None:
            body["detail"] = self.detail
        return body


def to_watcher_event(event: IngestEvent) -> WatcherEvent:
    """The watcher event for an ingested one; a work item without ``action``
    gets ``action`` and ``commit_msg`` from the stage table (docs/sources.md)."""
    if isinstance(event, IngestMergeFailure):
        return MergeFailure(event.story_id, event.reason)
    if isinstance(event, IngestStoryBlocked):
        return StoryBlocked(event.story_id, event.reason)
    action, commit_msg = event.action, event.commit_msg
    if not action:
        action, derived_msg = derive_action(event.stage, event.item_id)
        commit_msg = commit_msg or derived_msg
    return WorkItem(event.item_id, event.stage, event.from_stage, action, commit_msg)


def decode_events(body: bytes) -> list[WatcherEvent]:
    """Decode and validate a whole request body.

    Raises:
        IngestError: 400 (not UTF-8 JSON), 422 (schema), 413 (too many events).
    """
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise IngestError(400, "invalid_json", NOT_UTF8_MESSAGE, detail=str(error)) from None
    try:
        decoded = _decoder.decode(body)
    except msgspec.ValidationError as error:  # before DecodeError: it is a subclass
        raise _schema_error(body, str(error)) from None
    except msgspec.DecodeError as error:
        raise IngestError(400, "invalid_json", NOT_JSON_MESSAGE, detail=str(error)) from None
    except RecursionError:  # defensive: the schema stops nesting at depth 2 today
        raise IngestError(400, "invalid_json", TOO_DEEP_MESSAGE) from None
    records = decoded if isinstance(decoded, list) else [decoded]
    if len(records) > MAX_BATCH_EVENTS:
        raise IngestError(
            413,
            "too_many_events",
            f"at most {MAX_BATCH_EVENTS} events per request, got {len(records)}",
        )
    for index, record in enumerate(records):
        check_ids(record, f"$[{index}]" if isinstance(decoded, list) else "$")
    return [to_watcher_event(record) for record in records]


def _schema_error(body: bytes, detail: str) -> IngestError:
    # msgspec refused the body: say what is wrong in our words (ingest_schema).
    problem = explain(body)
    message = problem.message if problem.field is None else f"{problem.field}: {problem.message}"
    return IngestError(422, "invalid_event", message, field=problem.field, detail=detail)


def check_ids(record: IngestEvent, where: str) -> None:
    """Refuse ids and stages with control characters or path separators, ``.``, ``..``.

    Args:
        record: A decoded event.
        where: Its position for the message, ``$`` or ``$[i]``.

    Raises:
        IngestError: 422 naming the field.
    """
    names = (
        ("item_id", "stage", "from_stage") if isinstance(record, IngestWorkItem) else ("story_id",)
    )
    for name in names:
        if _UNSAFE_ID.search(getattr(record, name)):
            field = f"{where}.{name}"
            raise IngestError(422, "invalid_event", f"{field}: {UNSAFE_ID_MESSAGE}", field=field)


def check_token(header: str | None, token: str | None) -> None:
    """Check an ``Authorization`` header against the configured ``token``.

    Raises:
        IngestError: 403 when no token is configured, 401 when the header is
            missing, not ``Bearer``, or carries another token.
    """
    if not token:
        raise IngestError(403, "forbidden", DISABLED_MESSAGE)
    if not bearer_matches(header, token):
        raise IngestError(401, "unauthorized", UNAUTHORIZED_MESSAGE)


def check_content_type(mimetype: str) -> None:
    """Raises :class:`IngestError` 415 unless ``mimetype`` is ``application/json``."""
    if mimetype != JSON:
        shown = mimetype or "none"
        raise IngestError(
            415, "unsupported_media_type", f"Content-Type must be {JSON}, got {shown}"
        )


__all__ = [
    "MAX_BATCH_EVENTS",
    "MAX_BODY_BYTES",
    "IngestError",
    "IngestEvent",
    "IngestMergeFailure",
    "IngestStoryBlocked",
    "IngestWorkItem",
    "check_content_type",
    "check_token",
    "decode_events",
    "to_watcher_event",
]
