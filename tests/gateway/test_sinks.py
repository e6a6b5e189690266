"""Sinks: text formats, the runner (offsets, retries, isolation), JSON lines."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import pytest
import trio
import trio.testing

from events_trio.core.events import StageTransition, StoredStoryBlocked
from events_trio.gateway.errors import SinkError
from events_trio.gateway.records import Incoming, LogEntry, Notice, encode_entry
from events_trio.gateway.sinks import ConsoleSink, JsonlSink, SinkRunner, SinkSettings
from events_trio.gateway.sinks.format import console_line, stage_name, webhook_text
from events_trio.gateway.sinks.jsonl import INLINE_WRITE_BYTES
from events_trio.gateway.tracker import Position

from .helpers import BASE_MS, InlineLog, failure


def entry(
    payload: StageTransition | StoredStoryBlocked | Notice, project: str = "billing"
) -> LogEntry:
    record = Incoming(payload, 7)
    return LogEntry(1, project, record.kind, 7, encode_entry(record, project, 1))


def move(story: str, to: str = "3_qa", project: str = "billing") -> LogEntry:
    return entry(StageTransition(story, "2_current", to, 7), project)


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("3_qa", "QA"),
        ("2_current", "Current"),
        ("4_merge_queue", "Merge Queue"),
        ("Current", "Current"),
    ],
)
def test_stage_keys_are_shown_as_display_names(key: str, name: str) -> None:
    assert stage_name(key) == name


def test_console_line_for_a_stage_transition() -> None:
    assert (
        console_line(move("42_story_my_feature")) == "[billing] 42_story_my_feature  Current -> QA"
    )


def test_console_line_for_a_merge_failure() -> None:
    record = Incoming(failure("42_story_x", 7), 7)
    line = console_line(LogEntry(1, "billing", "event", 7, encode_entry(record, "billing", 1)))
    assert line == "[billing] merge failed: 42_story_x — conflict"


def test_console_line_for_a_blocked_story() -> None:
    blocked = entry(StoredStoryBlocked("43_story_y", "retry limit exceeded", 7))
    assert console_line(blocked) == "[billing] blocked: 43_story_y — retry limit exceeded"


def test_console_line_for_a_notice() -> None:
    notice = entry(Notice("missed", "3 events missed from billing", 3))
    assert console_line(notice) == "[billing] 3 events missed from billing"


def test_webhook_groups_moves_to_one_stage_per_project() -> None:
    burst = [move(f"{n}_story", project="billing") for n in range(12)] + [
        move("9_s", "4_done", "search")
    ]
    assert webhook_text(burst) == "billing: 12 stories moved to QA\nsearch: 9_s  Current -> Done"


def test_webhook_group_of_few_lists_the_story_ids() -> None:
    text = webhook_text([move("1_a"), move("2_b")])
    assert text == "billing: 2 stories moved to QA (1_a, 2_b)"


class RecordingSink:
    """A sink that records batches, failing the first ``fail`` deliveries."""

    name = "recording"
    group_window_s = 0.0
    min_interval_s = 0.0

    def __init__(self, fail: int = 0, block: bool = False) -> None:
        self.fail = fail
        self.block = block
        self.batches: list[list[str]] = []
        self.times: list[float] = []

    async def resume(self, committed: int) -> int:
        return committed

    async def deliver(self, entries: Sequence[LogEntry]) -> None:
        if self.block:
            await trio.sleep_forever()
        if self.fail:
            self.fail -= 1
            raise SinkError("HTTP 503")
        self.batches.append([e.payload().story_id for e in entries])  # type: ignore[union-attr]
        self.times.append(trio.current_time())

    @property
    def delivered(self) -> list[str]:
        return [story for batch in self.batches for story in batch]


async def append(log: InlineLog, *stories: str) -> None:
    start = len(log.entries())
    records = [
        Incoming(failure(s, BASE_MS + start + n), BASE_MS + start + n)
        for n, s in enumerate(stories)
    ]
    await log.append("billing", records, Position("", BASE_MS + start + len(stories)))


async def test_runner_delivers_in_order_and_commits_its_offset(
    autojump_clock: trio.testing.MockClock, log: InlineLog, nursery: trio.Nursery
) -> None:
    sink = RecordingSink()
    await nursery.start(SinkRunner(sink, log).run)
    await append(log, "1_a", "2_b")
    await append(log, "3_c")
    await trio.sleep(1)
    assert sink.delivered == ["1_a", "2_b", "3_c"]
    # Offsets ride with the next group commit (or the flush at shutdown).
    await log.group.flush()
    assert await log.sink_offset("recording") == log.watch.latest_seq


class DurabilityProbe(RecordingSink):
    """Notes, at each delivery, the offset the state store holds (what a crash resumes from)."""

    def __init__(self, log: InlineLog) -> None:
        super().__init__()
        self.log = log
        self.durable: list[int] = []

    async def deliver(self, entries: Sequence[LogEntry]) -> None:
        self.durable.append(self.log.core.sink_offset(self.name))
        await super().deliver(entries)


async def test_runner_makes_each_batchs_offset_durable_before_the_next_batch(
    autojump_clock: trio.testing.MockClock, log: InlineLog, nursery: trio.Nursery
) -> None:
    # A sink catching up on a quiet log: no appends come after its batches for
    # the offsets to ride with, so a crash would otherwise repeat all of them.
    sink = DurabilityProbe(log)
    await log.sink_offset(sink.name)
    start = log.watch.latest_seq
    await append(log, *(f"{n}_s" for n in range(5)))
    firsts = [e.seq for e in log.entries()]
    await nursery.start(SinkRunner(sink, log, SinkSettings(batch_limit=2)).run)
    await trio.sleep(1)
    assert sink.batches == [["0_s", "1_s"], ["2_s", "3_s"], ["4_s"]]
    # Each batch goes out only once the batch before it is recorded.
    assert sink.durable == [start, firsts[1], firsts[3]]


async def test_new_sink_does_not_get_entries_from_before_it_existed(
    autojump_clock: trio.testing.MockClock, log: InlineLog, nursery: trio.Nursery
) -> None:
    await append(log, "1_old")
    sink = RecordingSink()
    await nursery.start(SinkRunner(sink, log).run)
    await append(log, "2_new")
    await trio.sleep(1)
    assert sink.delivered == ["2_new"]


async def test_failing_sink_retries_with_backoff_and_catches_up(
    autojump_clock: trio.testing.MockClock, log: InlineLog, nursery: trio.Nursery
) -> None:
    sink = RecordingSink(fail=3)
    runner = SinkRunner(sink, log, SinkSettings(backoff_initial_s=1.0), rand=lambda: 0.0)
    await nursery.start(runner.run)
    start = trio.current_time()
    await append(log, "1_a")
    await trio.sleep(3)
    await append(log, "2_b")
    await trio.sleep(10)
    assert (sink.batches, runner.failures) == ([["1_a"], ["2_b"]], 3)
    assert sink.times[0] - start == pytest.approx(1.0 + 2.0 + 4.0)


async def test_stuck_sink_does_not_hold_up_another_sink(
    autojump_clock: trio.testing.MockClock, log: InlineLog, nursery: trio.Nursery
) -> None:
    stuck, healthy = RecordingSink(block=True), RecordingSink()
    healthy.name = "healthy"
    await nursery.start(SinkRunner(stuck, log).run)
    await nursery.start(SinkRunner(healthy, log).run)
    await append(log, "1_a")
    await append(log, "2_b")
    await trio.sleep(1)
    assert healthy.delivered == ["1_a", "2_b"]


async def test_console_sink_writes_one_line_per_event(
    autojump_clock: trio.testing.MockClock, log: InlineLog, nursery: trio.Nursery
) -> None:
    out = io.StringIO()
    await nursery.start(SinkRunner(ConsoleSink(out), log).run)
    await append(log, "42_story_x")
    await trio.sleep(1)
    assert out.getvalue() == "[billing] merge failed: 42_story_x — conflict\n"


async def test_jsonl_sink_writes_wire_objects_one_per_line(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path / "out.jsonl")
    record = Incoming(failure("1_a", 5), 5)
    await sink.deliver([LogEntry(9, "p", "event", 5, encode_entry(record, "p", 9))])
    assert (tmp_path / "out.jsonl").read_bytes() == (
        b'{"type":"merge_failure","story_id":"1_a","reason":"conflict","timestamp_ms":9,'
        b'"project":"p","project_timestamp_ms":5}\n'
    )


async def test_jsonl_sink_appends_small_and_large_batches_alike(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path / "deep" / "out.jsonl")  # parent directories created
    entries = [
        LogEntry(seq, "p", "event", 5, encode_entry(Incoming(failure(f"{seq}_a", 5), 5), "p", seq))
        for seq in range(1, 2001)
    ]
    assert len(b"".join(e.body for e in entries[1:])) > INLINE_WRITE_BYTES  # a worker thread's
    await sink.deliver(entries[:1])
    await sink.deliver(entries[1:])
    lines = (tmp_path / "deep" / "out.jsonl").read_bytes().splitlines()
    assert lines == [e.body for e in entries]
    assert await JsonlSink(tmp_path / "deep" / "out.jsonl").resume(committed=0) == 2000


async def test_jsonl_sink_resumes_after_lines_written_before_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(b'{"timestamp_ms":10}\n{"timestamp_ms":12}\n')
    assert await JsonlSink(path).resume(committed=10) == 12


async def test_jsonl_sink_cuts_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(b'{"timestamp_ms":10}\n{"timesta')
    assert await JsonlSink(path).resume(committed=3) == 10
    assert path.read_bytes() == b'{"timestamp_ms":10}\n'
