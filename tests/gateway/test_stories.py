"""What needs attention: the story board (sans-IO) and its routes."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
import trio
import trio.testing

from events_trio.core.events import StageTransition, StoredMergeFailure, StoredStoryBlocked
from events_trio.gateway.app import create_gateway_app
from events_trio.gateway.records import Incoming, LogEntry, Notice, encode_entry
from events_trio.gateway.stories import HOUR_MS, HOURS, MAX_HISTORY, StoryBoard
from events_trio.gateway.story_feed import follow_log
from events_trio.gateway.tracker import Position

from .helpers import BASE_MS, InlineLog

_seq = iter(range(BASE_MS, BASE_MS + 10_000_000, 1000))


def entry(payload: Any, project: str = "billing") -> LogEntry:
    seq = next(_seq)
    record = Incoming(payload, 7)
    return LogEntry(seq, project, record.kind, 7, encode_entry(record, project, seq))


def move(story: str, to: str = "3_qa", project: str = "billing") -> LogEntry:
    return entry(StageTransition(story, "2_current", to, 7), project)


def blocked(story: str, project: str = "billing", reason: str = "retry limit") -> LogEntry:
    return entry(StoredStoryBlocked(story, reason, 7), project)


def merge_failed(story: str, project: str = "billing") -> LogEntry:
    return entry(StoredMergeFailure(story, "conflict", 7), project)


def test_a_move_sets_the_stage_and_nothing_is_stuck() -> None:
    board = StoryBoard()
    board.feed([move("1_a", "2_current"), move("1_a", "3_qa")])
    [story] = board.stories()
    assert (story.stage, story.stuck, board.stories(attention=True)) == ("3_qa", None, [])


def test_blocked_and_failed_merges_need_attention_until_the_story_moves() -> None:
    board = StoryBoard()
    moved = move("1_a")
    first, second = blocked("1_a"), merge_failed("2_b")
    board.feed([moved, first, second])
    stuck = [(s.story_id, s.stuck, s.since_ms) for s in board.stories(attention=True)]
    assert stuck == [("1_a", "blocked", first.seq), ("2_b", "merge_failed", second.seq)]
    board.feed([move("1_a", "4_merge")])
    assert [s.story_id for s in board.stories(attention=True)] == ["2_b"]
    assert board.get("billing", "1_a").stage == "4_merge"  # type: ignore[union-attr]


def test_stuck_again_keeps_the_first_time_and_takes_the_latest_reason() -> None:
    board = StoryBoard()
    first = blocked("1_a", reason="retry limit")
    board.feed([first, merge_failed("1_a")])
    [story] = board.stories(attention=True)
    assert (story.stuck, story.reason, story.since_ms) == ("merge_failed", "conflict", first.seq)


def test_stories_of_the_same_id_in_two_projects_are_two_stories() -> None:
    board = StoryBoard()
    board.feed([blocked("1_a", "billing"), move("1_a", project="search")])
    assert [(s.project, s.stuck) for s in board.stories(attention=True)] == [("billing", "blocked")]
    assert [s.project for s in board.stories(project="search")] == ["search"]


def test_stage_counts_per_project() -> None:
    board = StoryBoard()
    board.feed([move("1_a"), move("2_b"), move("3_c", "2_current"), move("4_d", project="x")])
    assert board.stage_counts() == {"billing": {"3_qa": 2, "2_current": 1}, "x": {"3_qa": 1}}


def test_notices_and_entries_already_seen_change_nothing() -> None:
    board = StoryBoard()
    old = blocked("1_a")
    board.feed([old, entry(Notice("missed", "3 events missed from billing", 3))])
    board.feed([old])
    assert len(board.get("billing", "1_a").history) == 1  # type: ignore[union-attr]


def test_least_recently_updated_stories_go_first_beyond_the_cap() -> None:
    board = StoryBoard(max_stories=2)
    board.feed([move("1_a"), move("2_b"), move("1_a"), move("3_c")])
    assert [s.story_id for s in board.stories()] == ["3_c", "1_a"]


def test_a_story_keeps_its_latest_events_oldest_first() -> None:
    board = StoryBoard()
    moves = [move("1_a", f"{n}_stage") for n in range(MAX_HISTORY + 5)]
    board.feed(moves)
    story = board.get("billing", "1_a")
    assert story is not None
    assert [e.seq for e in story.history] == [e.seq for e in moves[5:]]
    assert story.stage == f"{MAX_HISTORY + 4}_stage"


def test_events_per_hour_cover_the_last_day() -> None:
    board = StoryBoard()
    now = BASE_MS - BASE_MS % HOUR_MS + 10
    board.feed(
        [
            LogEntry(now - 2 * HOUR_MS, "b", "event", 7, move("1_a").body),
            LogEntry(now - 5, "b", "event", 7, move("2_b").body),
            LogEntry(now, "b", "event", 7, move("3_c").body),
        ]
    )
    hours = board.events_per_hour(now)
    assert len(hours) == HOURS
    assert hours[-1] == (now - 10, 2)
    assert hours[-3] == (now - 10 - 2 * HOUR_MS, 1)
    assert sum(count for _, count in hours) == 3


async def append(log: InlineLog, project: str, payload: Any) -> None:
    await log.append(project, [Incoming(payload, payload.timestamp_ms)], Position("", 1))


async def test_the_board_follows_the_log_from_its_start(
    autojump_clock: trio.testing.MockClock, log: InlineLog, nursery: trio.Nursery
) -> None:
    await append(log, "billing", StoredStoryBlocked("1_a", "stuck", 1))
    board = StoryBoard()
    await nursery.start(follow_log, board, log)
    assert [s.story_id for s in board.stories(attention=True)] == ["1_a"]
    await append(log, "billing", StageTransition("1_a", "2_current", "3_qa", 2))
    await trio.testing.wait_all_tasks_blocked()
    assert board.stories(attention=True) == []


async def get(board: StoryBoard, path: str) -> tuple[int, Any]:
    app = create_gateway_app(InlineLog(), [], board=board, clock_ms=lambda: BASE_MS)
    response = await app.test_client().get(path)
    return response.status_code, msgspec.json.decode(await response.get_data())


async def test_attention_endpoint_lists_stuck_stories_with_why_and_since() -> None:
    board = StoryBoard()
    ok = move("42_story_ok")
    stuck = blocked("43_story_other", reason="retry limit exceeded")
    board.feed([ok, stuck])
    assert await get(board, "/api/stories?attention=1") == (
        200,
        [
            {
                "project": "billing",
                "story_id": "43_story_other",
                "stage": None,
                "stuck": "blocked",
                "reason": "retry limit exceeded",
                "since_ms": stuck.seq,
                "updated_ms": stuck.seq,
            }
        ],
    )
    status, everything = await get(board, "/api/stories")
    assert (status, [s["story_id"] for s in everything]) == (200, ["43_story_other", "42_story_ok"])


async def test_a_story_history_is_its_events_oldest_first() -> None:
    board = StoryBoard()
    board.feed([move("1_a", "2_current"), blocked("1_a"), move("2_b"), move("1_a", "3_qa")])
    status, story = await get(board, "/api/stories/billing/1_a")
    assert (status, story["stage"], [e["type"] for e in story["history"]]) == (
        200,
        "3_qa",
        ["stage_transition", "story_blocked", "stage_transition"],
    )
    assert (await get(board, "/api/stories/billing/9_none"))[0] == 404


async def test_summary_counts_stages_and_stuck_stories_per_project() -> None:
    board = StoryBoard()
    board.feed([move("1_a"), blocked("2_b"), move("3_c", project="search")])
    status, summary = await get(board, "/api/summary")
    assert (status, summary["projects"]) == (
        200,
        [
            {"name": "billing", "stages": {"3_qa": 1}, "stuck": 1},
            {"name": "search", "stages": {"3_qa": 1}, "stuck": 0},
        ],
    )
    assert len(summary["events_per_hour"]) == HOURS


@pytest.mark.parametrize(
    ("query", "parameter"),
    [("attention=maybe", "attention"), ("limit=0", "limit"), ("limit=x", "limit")],
)
async def test_bad_story_parameters_are_400_naming_them(query: str, parameter: str) -> None:
    status, body = await get(StoryBoard(), f"/api/stories?{query}")
    assert (status, body["error"], body["parameter"]) == (400, "invalid_parameter", parameter)
