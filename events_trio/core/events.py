"""Event types and their JSON codec.

Two families of records flow through events-trio:

* ``WatcherEvent`` — what sources emit (the pipeline watcher, the ingest
  endpoint, Python code calling ``publish``). They carry no timestamp.
* ``StoredEvent`` — what the buffer keeps and ``GET /api/events`` serves.
  Each carries the ``timestamp_ms`` the buffer stamped it with.

Both are internally tagged JSON objects, ``type`` first, fields in
declaration order, exactly as the Rust original's serde derives encode them.
``msgspec`` gives that byte for byte and decodes strictly, with errors that
name the offending field.
"""

from __future__ import annotations

from typing import Annotated, Final, TypeAlias

import msgspec

U64_MAX: Final = 2**64 - 1

#: A JSON integer in the range of a Rust ``u64``.
U64 = Annotated[int, msgspec.Meta(ge=0)]


# --- watcher events (sources -> broadcast channel) -------------------------


class WorkItem(msgspec.Struct, frozen=True, tag="work_item", tag_field="type"):
    """A work item appeared in, or moved into, a pipeline stage.

    ``from_stage`` is ``None`` for a newly created item; only events with a
    known ``from_stage`` are stored (as :class:`StageTransition`).
    """

    item_id: str
    stage: str
    from_stage: str | None = None
    action: str = ""
    commit_msg: str = ""


class MergeFailure(msgspec.Struct, frozen=True, tag="merge_failure", tag_field="type"):
    """A merge operation failed for a story."""

    story_id: str
    reason: str


class StoryBlocked(msgspec.Struct, frozen=True, tag="story_blocked", tag_field="type"):
    """A story was blocked (for example: retry limit exceeded)."""

    story_id: str
    reason: str


class ConfigChanged(msgspec.Struct, frozen=True, tag="config_changed", tag_field="type"):
    """The project's configuration changed. Sources emit it; the buffer ignores it."""

    path: str = ""


WatcherEvent: TypeAlias = WorkItem | MergeFailure | StoryBlocked | ConfigChanged


# --- stored events (buffer -> HTTP) ----------------------------------------


def _check_u64(value: int) -> None:
    # msgspec's Meta bounds stop at int64, so the top of the u64 range is checked here.
    if value > U64_MAX:
        raise ValueError(f"Expected `int` <= {U64_MAX}")


class StageTransition(msgspec.Struct, frozen=True, tag="stage_transition", tag_field="type"):
    """A work item moved from one pipeline stage to another."""

    story_id: str
    from_stage: str
    to_stage: str
    timestamp_ms: U64

    def __post_init__(self) -> None:
        _check_u64(self.timestamp_ms)


class StoredMergeFailure(msgspec.Struct, frozen=True, tag="merge_failure", tag_field="type"):
    """A merge failed for a story (stored form of :class:`MergeFailure`)."""

    story_id: str
    reason: str
    timestamp_ms: U64

    def __post_init__(self) -> None:
        _check_u64(self.timestamp_ms)


class StoredStoryBlocked(msgspec.Struct, frozen=True, tag="story_blocked", tag_field="type"):
    """A story was blocked (stored form of :class:`StoryBlocked`)."""

    story_id: str
    reason: str
    timestamp_ms: U64

    def __post_init__(self) -> None:
        _check_u64(self.timestamp_ms)


StoredEvent: TypeAlias = StageTransition | StoredMergeFailure | StoredStoryBlocked

#: ``type`` tags of the stored variants, in wire order of the docs.
STORED_TYPES: Final = ("stage_transition", "merge_failure", "story_blocked")


def to_stored(event: WatcherEvent, timestamp_ms: int) -> StoredEvent | None:
    """Map a watcher event to the event the buffer stores, as the seed does.

    Args:
        event: What a source emitted.
        timestamp_ms: The stamp to give the stored event.

    Returns:
        The stored form, or ``None`` for events that are not stored: a work
        item without ``from_stage`` (a new item) and every other variant.
    """
    match event:
        case WorkItem(item_id=item_id, stage=stage, from_stage=str(from_stage)):
            return StageTransition(item_id, from_stage, stage, timestamp_ms)
        case MergeFailure(story_id=story_id, reason=reason):
            return StoredMergeFailure(story_id, reason, timestamp_ms)
        case StoryBlocked(story_id=story_id, reason=reason):
            return StoredStoryBlocked(story_id, reason, timestamp_ms)
        case _:
            return None


# --- codec -----------------------------------------------------------------

_encoder: Final = msgspec.json.Encoder()
_stored_decoder: Final[msgspec.json.Decoder[StoredEvent]] = msgspec.json.Decoder(StoredEvent)
_stored_list_decoder: Final[msgspec.json.Decoder[list[StoredEvent]]] = msgspec.json.Decoder(
    list[StoredEvent]
)
_watcher_decoder: Final[msgspec.json.Decoder[WatcherEvent]] = msgspec.json.Decoder(WatcherEvent)


def encode(event: StoredEvent | WatcherEvent) -> bytes:
    """Encode one event as compact JSON, ``type`` first, like serde."""
    return _encoder.encode(event)


def decode_stored(data: bytes | str) -> StoredEvent:
    """Decode one stored event.

    Unknown fields are ignored (as serde does); an unknown ``type``, a missing
    field or a wrongly typed one raises :class:`msgspec.ValidationError`
    whose message names it.
    """
    return _stored_decoder.decode(data)


def decode_stored_list(data: bytes | str) -> list[StoredEvent]:
    """Decode a ``GET /api/events`` body (a JSON array of stored events)."""
    return _stored_list_decoder.decode(data)


def decode_watcher(data: bytes | str) -> WatcherEvent:
    """Decode one watcher event (the ingest format, no timestamp)."""
    return _watcher_decoder.decode(data)
