"""The pipeline watcher: the pure core without an event loop, then real files through awatch."""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing
from watchfiles import Change

from events_trio.core.broadcast import BroadcastReceiver, open_broadcast_channel
from events_trio.core.errors import StartupError
from events_trio.core.events import StageTransition, WatcherEvent, WorkItem
from events_trio.server.hub import EventHub
from events_trio.sources import watcher as watcher_module
from events_trio.sources.pipeline import (
    DEFAULT_STAGES,
    ItemPath,
    ItemSeen,
    PipelineState,
    StagePath,
    StageSeen,
    derive_action,
    is_valid_item_id,
    parse_path,
)
from events_trio.sources.pipeline_fs import ensure_pipeline, observe, scan_pipeline
from events_trio.sources.watcher import PipelineWatcher
from tests.support import EVENTS_TRIO, CliProcess, until

EVENT_TIMEOUT_S = 10.0


# --- pure core: ids, paths, actions -------------------------------------------


@pytest.mark.parametrize("name", ["42_story_my_feature", "1_x", "007_bug-fix_2", "3_9"])
def test_valid_item_ids(name: str) -> None:
    assert is_valid_item_id(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "42",
        "42_",
        "_x",
        "x_42",
        "42_Story",
        "42 story",
        "42_story.md",
        ".42_x",
        "42_-x",
        "٤٢_x",
    ],
)
def test_invalid_item_ids(name: str) -> None:
    assert not is_valid_item_id(name)


def test_item_id_longer_than_200_chars_is_invalid() -> None:
    assert not is_valid_item_id("1_" + "a" * 199)


def test_path_of_an_item_file_names_stage_and_id() -> None:
    assert parse_path(("2_current", "42_story_x.md")) == ItemPath("2_current", "42_story_x")


def test_path_of_a_stage_folder_names_the_stage() -> None:
    assert parse_path(("3_qa",)) == StagePath("3_qa")


@pytest.mark.parametrize(
    "parts",
    [
        (),
        ("42_story_x.md",),
        ("notes", "42_story_x.md"),
        ("2_current", "sub", "42_story_x.md"),
        ("2_current", "42_story_x.txt"),
        ("2_current", ".42_story_x.md"),
        ("2_current", ".42_story_x.md.swp"),
        ("2_current", "42_story_x.md.swp"),
        ("2_current", "42_story_x.md~"),
        ("2_current", "42_story_x.md.tmp"),
        ("2_current", "Story.md"),
        ("current", "42_story_x.md"),
    ],
)
def test_ignored_paths_parse_to_none(parts: tuple[str, ...]) -> None:
    assert parse_path(parts) is None


@pytest.mark.parametrize(
    ("stage", "action", "commit_msg"),
    [
        ("1_backlog", "backlog", "backlog 42_x"),
        ("2_current", "start", "start 42_x"),
        ("3_qa", "qa", "qa 42_x"),
        ("4_merge", "merge", "merge 42_x"),
        ("5_done", "done", "done 42_x"),
        ("6_archived", "archive", "archive 42_x"),
        ("7_review", "move", "move 42_x to 7_review"),
    ],
)
def test_action_and_commit_msg_come_from_the_target_stage(
    stage: str, action: str, commit_msg: str
) -> None:
    assert derive_action(stage, "42_x") == (action, commit_msg)


# --- pure core: PipelineState -------------------------------------------------


def state_with(*entries: tuple[str, str]) -> PipelineState:
    state = PipelineState(hold_s=0.5)
    state.reset(entries)
    return state


def test_move_of_a_scanned_item_has_its_from_stage() -> None:
    state = state_with(("2_current", "42_x"))
    seen = [ItemSeen("2_current", "42_x", False), ItemSeen("3_qa", "42_x", True)]
    assert state.apply(seen, now=0.0) == [WorkItem("42_x", "3_qa", "2_current", "qa", "qa 42_x")]


def test_new_item_has_no_from_stage() -> None:
    state = state_with()
    events = state.apply([ItemSeen("1_backlog", "42_x", True)], now=0.0)
    assert events == [WorkItem("42_x", "1_backlog", None, "backlog", "backlog 42_x")]


def test_move_split_over_two_batches_is_one_transition() -> None:
    state = state_with(("2_current", "42_x"))
    assert state.apply([ItemSeen("2_current", "42_x", False)], now=0.0) == []
    events = state.apply([ItemSeen("3_qa", "42_x", True)], now=0.1)
    assert [(e.from_stage, e.stage) for e in events] == [("2_current", "3_qa")]


def test_move_split_the_other_way_round_is_one_transition() -> None:
    state = state_with(("2_current", "42_x"))
    first = state.apply([ItemSeen("3_qa", "42_x", True)], now=0.0)
    assert state.apply([ItemSeen("2_current", "42_x", False)], now=0.1) == []
    assert [(e.from_stage, e.stage) for e in first] == [("2_current", "3_qa")]


def test_deleted_item_is_forgotten_after_the_hold() -> None:
    state = state_with(("2_current", "42_x"))
    state.apply([ItemSeen("2_current", "42_x", False)], now=0.0)
    assert state.next_deadline() == 0.5
    assert state.expire(0.5) == ["42_x"]
    events = state.apply([ItemSeen("3_qa", "42_x", True)], now=0.6)
    assert [e.from_stage for e in events] == [None]


def test_nothing_is_held_when_nothing_vanished() -> None:
    assert state_with(("2_current", "42_x")).next_deadline() == float("inf")


def test_edit_in_place_is_no_event() -> None:
    state = state_with(("2_current", "42_x"))
    assert state.apply([ItemSeen("2_current", "42_x", True)], now=0.0) == []


def test_atomic_save_split_over_batches_is_no_event() -> None:
    state = state_with(("2_current", "42_x"))
    state.apply([ItemSeen("2_current", "42_x", False)], now=0.0)
    assert state.apply([ItemSeen("2_current", "42_x", True)], now=0.1) == []
    assert state.items == {"42_x": "2_current"}


def test_there_and_back_within_one_batch_is_no_event() -> None:
    state = state_with(("2_current", "42_x"))
    seen = [ItemSeen("3_qa", "42_x", False), ItemSeen("2_current", "42_x", True)]
    assert state.apply(seen, now=0.0) == []


def test_removed_stage_folder_forgets_its_items_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    state = state_with(("3_qa", "42_x"), ("2_current", "43_y"))
    with caplog.at_level(logging.WARNING, logger="events_trio.watcher"):
        state.apply([StageSeen("3_qa", False)], now=0.0)
    assert state.items == {"43_y": "2_current"}
    assert "stage folder 3_qa was removed; forgot 1 items" in caplog.messages


def test_item_reappearing_after_its_stage_was_removed_is_new() -> None:
    state = state_with(("3_qa", "42_x"))
    state.apply([StageSeen("3_qa", False), ItemSeen("3_qa", "42_x", False)], now=0.0)
    events = state.apply([ItemSeen("4_merge", "42_x", True)], now=0.1)
    assert [e.from_stage for e in events] == [None]


def test_scan_with_duplicate_id_keeps_the_furthest_stage() -> None:
    state = state_with(("10_late", "42_x"), ("2_current", "42_x"))
    assert state.items == {"42_x": "10_late"}


def test_batch_events_are_sorted_by_item_id() -> None:
    state = state_with()
    seen = [ItemSeen("1_backlog", "9_b", True), ItemSeen("1_backlog", "10_a", True)]
    assert [e.item_id for e in state.apply(seen, now=0.0)] == ["10_a", "9_b"]


# --- filesystem helpers (synchronous, real tmp_path) ----------------------------


def test_missing_pipeline_is_created_with_default_stages(tmp_path: Path) -> None:
    root = tmp_path / "pipeline"
    assert ensure_pipeline(root)
    assert sorted(p.name for p in root.iterdir()) == list(DEFAULT_STAGES)


def test_pipeline_without_stage_folders_gets_default_stages(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("notes")
    assert ensure_pipeline(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {*DEFAULT_STAGES, "README.md"}


def test_pipeline_with_a_stage_folder_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "1_todo").mkdir()
    assert not ensure_pipeline(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["1_todo"]


def test_pipeline_path_that_is_a_file_is_a_startup_error(tmp_path: Path) -> None:
    (tmp_path / "pipeline").write_text("")
    with pytest.raises(StartupError, match=r"^pipeline path .*pipeline is not a directory$"):
        ensure_pipeline(tmp_path / "pipeline")


def test_scan_lists_items_and_skips_everything_else(tmp_path: Path) -> None:
    make_pipeline(tmp_path, {"2_current/42_x.md", "3_qa/43_y.md", "3_qa/notes.txt", "misc/44_z.md"})
    assert sorted(scan_pipeline(tmp_path)) == [("2_current", "42_x"), ("3_qa", "43_y")]


def test_symlink_pointing_outside_the_pipeline_is_absent(tmp_path: Path) -> None:
    root = tmp_path / "pipeline"
    make_pipeline(root, set())
    (tmp_path / "outside.md").write_text("x")
    (root / "2_current" / "42_x.md").symlink_to(tmp_path / "outside.md")
    changes = {(Change.added, str(root / "2_current" / "42_x.md"))}
    assert observe(root, root.resolve(), changes) == [ItemSeen("2_current", "42_x", False)]


def test_symlink_inside_the_pipeline_is_present(tmp_path: Path) -> None:
    make_pipeline(tmp_path, {"1_backlog/42_x.md"})
    (tmp_path / "2_current" / "43_y.md").symlink_to(tmp_path / "1_backlog" / "42_x.md")
    changes = {(Change.added, str(tmp_path / "2_current" / "43_y.md"))}
    assert observe(tmp_path, tmp_path.resolve(), changes) == [ItemSeen("2_current", "43_y", True)]


def test_stage_folder_that_appears_reports_the_items_inside(tmp_path: Path) -> None:
    make_pipeline(tmp_path, {"7_review/42_x.md"})
    changes = {(Change.added, str(tmp_path / "7_review"))}
    assert observe(tmp_path, tmp_path.resolve(), changes) == [
        StageSeen("7_review", True),
        ItemSeen("7_review", "42_x", True),
    ]


# --- real files through awatch --------------------------------------------------


def make_pipeline(root: Path, files: set[str]) -> Path:
    """Default stage folders under ``root`` plus ``files`` (relative paths)."""
    for stage in DEFAULT_STAGES:
        (root / stage).mkdir(parents=True, exist_ok=True)
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(name)
    return root


async def watch(
    nursery: trio.Nursery, root: Path, *, root_poll_s: float = 0.5
) -> BroadcastReceiver[WatcherEvent]:
    """Start a watcher on ``root``; return a receiver of everything it publishes."""
    sender, receiver = open_broadcast_channel[WatcherEvent]()
    await nursery.start(PipelineWatcher(root, root_poll_s=root_poll_s), sender)
    return receiver


async def next_event(receiver: BroadcastReceiver[WatcherEvent]) -> WatcherEvent:
    with trio.fail_after(EVENT_TIMEOUT_S):
        return await receiver.receive()


def transition(event: WatcherEvent) -> tuple[str, str | None, str]:
    assert isinstance(event, WorkItem)
    return event.item_id, event.from_stage, event.stage


def move(root: Path, item: str, src: str, dst: str) -> None:
    os.rename(root / src / f"{item}.md", root / dst / f"{item}.md")


async def test_moved_file_gives_one_transition_with_from_and_to(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    make_pipeline(tmp_path, {"2_current/42_story_x.md"})
    events = await watch(nursery, tmp_path)
    move(tmp_path, "42_story_x", "2_current", "3_qa")
    assert await next_event(events) == WorkItem(
        "42_story_x", "3_qa", "2_current", "qa", "qa 42_story_x"
    )


async def test_burst_of_100_moves_reports_each_exactly_once(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    ids = [f"{n}_story" for n in range(100)]
    make_pipeline(tmp_path, {f"1_backlog/{i}.md" for i in [*ids, "999_sentinel"]})
    events = await watch(nursery, tmp_path)
    for item in ids:
        move(tmp_path, item, "1_backlog", "2_current")
    got = [transition(await next_event(events)) for _ in ids]
    assert sorted(got) == sorted((i, "1_backlog", "2_current") for i in ids)
    move(tmp_path, "999_sentinel", "1_backlog", "5_done")
    assert transition(await next_event(events)) == ("999_sentinel", "1_backlog", "5_done")


async def test_moves_back_and_forth_are_each_reported(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    make_pipeline(tmp_path, {"2_current/42_x.md"})
    events = await watch(nursery, tmp_path)
    got = []
    for src, dst in [("2_current", "3_qa"), ("3_qa", "2_current"), ("2_current", "3_qa")]:
        move(tmp_path, "42_x", src, dst)
        got.append(transition(await next_event(events)))
    assert got == [
        ("42_x", "2_current", "3_qa"),
        ("42_x", "3_qa", "2_current"),
        ("42_x", "2_current", "3_qa"),
    ]


async def test_created_then_moved_item_is_stored_once_as_transition(
    nursery: trio.Nursery, tmp_path: Path, clock_ms: Callable[[], int]
) -> None:
    make_pipeline(tmp_path, set())
    hub = EventHub(clock_ms=clock_ms)
    events = hub.sender.subscribe()
    await nursery.start(hub.run, [PipelineWatcher(tmp_path)])
    (tmp_path / "2_current" / "9_new.md").write_text("new")
    assert transition(await next_event(events)) == ("9_new", None, "2_current")
    move(tmp_path, "9_new", "2_current", "3_qa")
    assert transition(await next_event(events)) == ("9_new", "2_current", "3_qa")
    await trio.testing.wait_all_tasks_blocked()
    assert hub.buffer.events_since(0) == [StageTransition("9_new", "2_current", "3_qa", clock_ms())]


def _edit(root: Path) -> None:
    with (root / "2_current" / "42_x.md").open("a") as item:
        item.write("more")


def _symlink_outside(root: Path) -> None:
    (root.parent / "outside.md").write_text("x")
    (root / "2_current" / "43_y.md").symlink_to(root.parent / "outside.md")


def _nested(root: Path) -> None:
    (root / "2_current" / "sub").mkdir()
    (root / "2_current" / "sub" / "43_y.md").write_text("x")


def _non_stage_folder(root: Path) -> None:
    (root / "notes").mkdir()
    (root / "notes" / "43_y.md").write_text("x")


def _writer(relative: str) -> Callable[[Path], object]:
    return lambda root: (root / relative).write_text("x")


IGNORED_CASES: dict[str, Callable[[Path], object]] = {
    "edit_in_place": _edit,
    "dotfile": _writer("2_current/.43_y.md"),
    "vim_swap_file": _writer("2_current/.42_x.md.swp"),
    "backup_tilde": _writer("2_current/42_x.md~"),
    "tmp_file": _writer("2_current/43_y.md.tmp"),
    "non_md_file": _writer("2_current/43_y.txt"),
    "top_level_file": _writer("43_y.md"),
    "invalid_id": _writer("2_current/Story_Y.md"),
    "nested_deeper": _nested,
    "non_stage_folder": _non_stage_folder,
    "symlink_outside": _symlink_outside,
    "non_md_moved": lambda root: os.rename(root / "1_backlog/n.txt", root / "3_qa/n.txt"),
}


@pytest.mark.parametrize("case", IGNORED_CASES)
async def test_ignored_change_produces_no_event(
    nursery: trio.Nursery, tmp_path: Path, case: str
) -> None:
    root = make_pipeline(
        tmp_path / "pipeline", {"2_current/42_x.md", "1_backlog/1_s.md", "1_backlog/n.txt"}
    )
    events = await watch(nursery, root)
    IGNORED_CASES[case](root)
    move(root, "1_s", "1_backlog", "5_done")  # a sentinel: changes are handled in order
    assert transition(await next_event(events)) == ("1_s", "1_backlog", "5_done")
    with pytest.raises(trio.WouldBlock):
        events.receive_nowait()


async def test_stage_folder_removed_and_recreated_is_watched_again(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="events_trio.watcher")
    make_pipeline(tmp_path, {"3_qa/42_x.md", "1_backlog/43_y.md"})
    events = await watch(nursery, tmp_path)
    shutil.rmtree(tmp_path / "3_qa")
    await until(lambda: "stage folder 3_qa was removed; forgot 1 items" in caplog.messages)
    (tmp_path / "3_qa").mkdir()
    move(tmp_path, "43_y", "1_backlog", "3_qa")
    assert transition(await next_event(events)) == ("43_y", "1_backlog", "3_qa")


async def test_removed_pipeline_directory_is_watched_again_when_it_returns(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="events_trio.watcher")
    root = make_pipeline(tmp_path / "pipeline", set())
    events = await watch(nursery, root, root_poll_s=0.02)
    shutil.rmtree(root)
    await until(lambda: any("is gone; waiting for it to return" in m for m in caplog.messages))
    make_pipeline(root, {"2_current/42_x.md"})
    await until(lambda: any(m.endswith(": 1 work items") for m in caplog.messages))
    move(root, "42_x", "2_current", "4_merge")
    assert transition(await next_event(events)) == ("42_x", "2_current", "4_merge")


async def test_missing_pipeline_directory_is_created_with_default_stages(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    await watch(nursery, tmp_path / "pipeline")
    assert sorted(p.name for p in (tmp_path / "pipeline").iterdir()) == list(DEFAULT_STAGES)


async def test_cancelled_watcher_stops_without_waiting_for_awatchs_thread_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # awatch's thread returns only on a change, its stop event or this timeout:
    # a minute, so a cancel that waited for it could not pass for a slow machine.
    monkeypatch.setattr(watcher_module, "ROOT_CHECK_MS", 60_000)
    make_pipeline(tmp_path, {"2_current/42_x.md"})
    async with trio.open_nursery() as nursery:
        events = await watch(nursery, tmp_path)
        move(tmp_path, "42_x", "2_current", "3_qa")
        await next_event(events)  # the pump is back in awatch's thread, waiting
        started = time.monotonic()
        nursery.cancel_scope.cancel()
    assert time.monotonic() - started < 10.0  # one 20 ms step, on a busy machine


async def test_cancelled_watcher_closes_its_sender(tmp_path: Path) -> None:
    make_pipeline(tmp_path, set())
    async with trio.open_nursery() as nursery:
        events = await watch(nursery, tmp_path)
        nursery.cancel_scope.cancel()
    with pytest.raises(trio.EndOfChannel):
        events.receive_nowait()


# --- the command line -----------------------------------------------------------


def test_serve_reports_a_moved_file_at_api_events(tmp_path: Path) -> None:
    root = make_pipeline(tmp_path / "pipeline", {"2_current/42_story_x.md"})
    args = [EVENTS_TRIO, "serve", "--port", "0", "--pipeline", str(root)]
    with CliProcess(args, cwd=tmp_path) as server:
        url = server.url()
        move(root, "42_story_x", "2_current", "3_qa")
        # The server's long-poll does the waiting: it answers when the event lands.
        params = {"since": "0", "wait": str(EVENT_TIMEOUT_S)}
        body = httpx.get(f"{url}/api/events", params=params, timeout=EVENT_TIMEOUT_S + 5).json()
        assert [(e["type"], e["story_id"], e["from_stage"], e["to_stage"]) for e in body] == [
            ("stage_transition", "42_story_x", "2_current", "3_qa")
        ]
        assert server.stop() == 0


def test_serve_with_a_file_as_pipeline_fails_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "pipeline").write_text("not a directory")
    args = [EVENTS_TRIO, "serve", "--port", "0", "--pipeline", str(tmp_path / "pipeline")]
    with CliProcess(args, cwd=tmp_path) as server:
        assert server.proc.wait(10) == 1
        server.wait_for("error")
    assert server.lines == [
        f"events-trio: error: pipeline path {tmp_path}/pipeline is not a directory"
    ]
