"""Wire encoding of events: byte-for-byte equal to the Rust original's serde output."""

from __future__ import annotations

import msgspec
import pytest

from events_trio.core.events import (
    ConfigChanged,
    MergeFailure,
    StageTransition,
    StoredMergeFailure,
    StoredStoryBlocked,
    StoryBlocked,
    WorkItem,
    decode_stored,
    decode_stored_list,
    decode_watcher,
    encode,
    to_stored,
)

# The three lines of the wire contract (docs/protocol.md), as the Rust server sends them.
DESIGN_STAGE = (
    b'{"type":"stage_transition","story_id":"42_story_my_feature","from_stage":"2_current",'
    b'"to_stage":"3_qa","timestamp_ms":1764201600123}'
)
DESIGN_MERGE = (
    b'{"type":"merge_failure","story_id":"42_story_my_feature","reason":"merge conflict",'
    b'"timestamp_ms":1764201600124}'
)
DESIGN_BLOCKED = (
    b'{"type":"story_blocked","story_id":"43_story_other","reason":"retry limit exceeded",'
    b'"timestamp_ms":1764201600125}'
)


def test_stage_transition_encodes_like_serde() -> None:
    event = StageTransition("42_story_my_feature", "2_current", "3_qa", 1764201600123)
    assert encode(event) == DESIGN_STAGE


def test_merge_failure_encodes_like_serde() -> None:
    event = StoredMergeFailure("42_story_my_feature", "merge conflict", 1764201600124)
    assert encode(event) == DESIGN_MERGE


def test_story_blocked_encodes_like_serde() -> None:
    event = StoredStoryBlocked("43_story_other", "retry limit exceeded", 1764201600125)
    assert encode(event) == DESIGN_BLOCKED


@pytest.mark.parametrize("line", [DESIGN_STAGE, DESIGN_MERGE, DESIGN_BLOCKED])
def test_design_lines_round_trip(line: bytes) -> None:
    assert encode(decode_stored(line)) == line


def test_u64_max_timestamp_round_trips() -> None:
    line = (
        b'{"type":"merge_failure","story_id":"x","reason":"r","timestamp_ms":18446744073709551615}'
    )
    assert encode(decode_stored(line)) == line


def test_timestamp_above_u64_is_rejected() -> None:
    line = (
        b'{"type":"merge_failure","story_id":"x","reason":"r","timestamp_ms":18446744073709551616}'
    )
    with pytest.raises(msgspec.ValidationError, match=r"<= 18446744073709551615"):
        decode_stored(line)


def test_negative_timestamp_is_rejected_naming_the_field() -> None:
    line = b'{"type":"merge_failure","story_id":"x","reason":"r","timestamp_ms":-1}'
    with pytest.raises(msgspec.ValidationError, match=r"at `\$\.timestamp_ms`$"):
        decode_stored(line)


def test_unknown_type_is_an_error_naming_type() -> None:
    with pytest.raises(
        msgspec.ValidationError, match=r"^Invalid value 'agent_started' - at `\$\.type`$"
    ):
        decode_stored(b'{"type":"agent_started","story_id":"x","timestamp_ms":1}')


def test_missing_field_is_an_error_naming_it() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"^Object missing required field `reason`$"):
        decode_stored(b'{"type":"merge_failure","story_id":"x","timestamp_ms":1}')


def test_unknown_fields_are_ignored_like_serde() -> None:
    line = (
        b'{"type":"merge_failure","story_id":"x","reason":"r","timestamp_ms":5,'
        b'"project":"billing","project_timestamp_ms":4}'
    )
    assert decode_stored(line) == StoredMergeFailure("x", "r", 5)


def test_body_decodes_as_list() -> None:
    body = b"[" + DESIGN_STAGE + b"," + DESIGN_MERGE + b"]"
    assert [e.timestamp_ms for e in decode_stored_list(body)] == [1764201600123, 1764201600124]


def test_ingest_work_item_decodes_with_optional_fields() -> None:
    line = (
        b'{"type":"work_item","item_id":"42_story_my_feature","stage":"3_qa",'
        b'"from_stage":"2_current","action":"qa","commit_msg":"qa 42_story_my_feature"}'
    )
    assert decode_watcher(line) == WorkItem(
        "42_story_my_feature", "3_qa", "2_current", "qa", "qa 42_story_my_feature"
    )
    assert decode_watcher(b'{"type":"work_item","item_id":"1_story_a","stage":"3_qa"}') == WorkItem(
        "1_story_a", "3_qa"
    )


def test_work_item_with_from_stage_maps_to_stage_transition() -> None:
    event = WorkItem("42_story_foo", "3_qa", from_stage="2_current")
    assert to_stored(event, 7) == StageTransition("42_story_foo", "2_current", "3_qa", 7)


def test_work_item_without_from_stage_is_not_stored() -> None:
    assert to_stored(WorkItem("99_story_syn", "2_current"), 7) is None


def test_merge_failure_and_story_blocked_map_one_to_one() -> None:
    assert to_stored(MergeFailure("a", "conflict"), 3) == StoredMergeFailure("a", "conflict", 3)
    assert to_stored(StoryBlocked("b", "retries"), 4) == StoredStoryBlocked("b", "retries", 4)


def test_other_watcher_variants_are_not_stored() -> None:
    assert to_stored(ConfigChanged("project.toml"), 3) is None


def test_stage_transition_timestamp_ms_accessor() -> None:
    # Seed test: stage_transition_timestamp_ms_accessor.
    event = StageTransition("1", "2_current", "3_qa", 9999)
    assert event.timestamp_ms == 9999
