"""The chaos checker on synthetic histories: what counts as delivered, announced, silent."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from benchmarks.checker import (
    CLUSTER_REPEAT_CAUSES,
    Ack,
    Delivery,
    ProcEvent,
    Report,
    SinkOutput,
    SinkReport,
    check,
    check_run,
    read_jsonl_sink,
    table,
    webhook_delivery,
)


def acks(*keys: str, project: str = "p0", gen: int = 0, start_ms: float = 0.0) -> list[Ack]:
    """Ingest acks 10 s apart (far outside the checker's window slack)."""
    return [Ack(project, key, "ingest", start_ms + 10_000.0 * n, gen) for n, key in enumerate(keys)]


def got(*keys: str, project: str = "p0") -> list[Delivery]:
    return [Delivery(project, key=key) for key in keys]


def notice(kind: str, missed: int | None = None, project: str = "p0") -> Delivery:
    return Delivery(project, notice=kind, missed=missed)


def judge(
    history: list[Ack], deliveries: list[Delivery], procs: list[ProcEvent] | None = None
) -> tuple[Report, SinkReport]:
    report = check(history, procs or [], [SinkOutput("jsonl", deliveries)])
    return report, report.sinks[0]


def test_everything_delivered_once_in_order_passes() -> None:
    report, sink = judge(acks("a", "b", "c"), got("a", "b", "c"))
    assert (sink.acknowledged, sink.delivered, sink.announced, sink.silent) == (3, 3, 0, [])
    assert (sink.duplicates, sink.order_violations, report.ok) == (0, {"p0": 0}, True)


def test_an_unannounced_loss_is_silent_and_fails_the_run() -> None:
    report, sink = judge(acks("a", "b", "c"), got("a", "c"))
    assert (sink.delivered, sink.silent, report.ok) == (2, ["b"], False)


def test_a_restart_notice_covers_the_tail_of_the_dead_servers_run() -> None:
    history = acks("a", "b", "c") + acks("d", gen=1, start_ms=40_000.0)
    report, sink = judge(history, [*got("a"), notice("restarted"), *got("d")])
    assert (sink.announced, sink.silent, report.ok) == (2, [], True)


def test_a_restart_notice_does_not_cover_a_loss_inside_the_run() -> None:
    history = acks("a", "b", "c") + acks("d", gen=1, start_ms=40_000.0)
    _, sink = judge(history, [*got("a", "c"), notice("restarted"), *got("d")])
    assert sink.silent == ["b"]  # "c" came through, so the gateway had fetched past "b"


def test_a_restart_notice_before_the_runs_last_delivery_covers_nothing() -> None:
    history = acks("a", "b")
    _, sink = judge(history, [notice("restarted"), *got("a")])
    assert sink.silent == ["b"]


def test_a_missed_notice_in_the_gap_covers_up_to_its_count() -> None:
    history = acks("a", "b", "c", "d")
    _, exact = judge(history, [*got("a"), notice("missed", 2), *got("d")])
    _, short = judge(history, [*got("a"), notice("missed", 1), *got("d")])
    assert (exact.announced, exact.silent) == (2, [])
    assert (short.announced, short.silent) == (1, ["c"])


def test_a_missed_notice_of_unknown_count_covers_the_whole_gap() -> None:
    _, sink = judge(acks("a", "b", "c", "d"), [*got("a"), notice("missed"), *got("d")])
    assert (sink.announced, sink.silent) == (2, [])


def test_a_missed_notice_outside_the_gap_covers_nothing() -> None:
    _, sink = judge(acks("a", "b", "c"), [notice("missed", 5), *got("a", "c")])
    assert sink.silent == ["b"]


def test_another_projects_notice_covers_nothing() -> None:
    _, sink = judge(acks("a", "b", "c"), [*got("a"), notice("missed", 5, project="p1"), *got("c")])
    assert sink.silent == ["b"]


def test_events_out_of_acknowledgement_order_are_violations_per_project() -> None:
    history = acks("a", "b", "c") + acks("x", "y", project="p1")
    report, sink = judge(history, [*got("b", "a", "c"), *got("x", "y", project="p1")])
    assert (sink.order_violations, report.ok) == ({"p0": 1, "p1": 0}, False)


def test_repeats_are_allowed_up_to_the_crash_allowance() -> None:
    history = acks("a", "b")
    crash = [ProcEvent(5_000.0, "gateway", "kill")]
    deliveries = got("a", "b", "a", "b")
    within = check(history, crash, [SinkOutput("webhook", deliveries, dups_per_cause=2)])
    beyond = check(history, crash, [SinkOutput("webhook", deliveries, dups_per_cause=1)])
    none = check(history, [], [SinkOutput("webhook", deliveries, dups_per_cause=2)])
    assert (within.sinks[0].duplicates, within.crashes, within.ok) == (2, 1, True)
    assert (beyond.ok, none.ok) == (False, False)


def cluster_sink(deliveries: list[Delivery], batch: int = 2) -> SinkOutput:
    return SinkOutput(
        "webhook", deliveries, dups_per_cause=batch, repeat_causes=CLUSTER_REPEAT_CAUSES
    )


@pytest.mark.parametrize(
    "fault",
    [
        ProcEvent(5_000.0, "gateway:g1", "kill", 0),
        ProcEvent(5_000.0, "gateway:g2", "stop", 0),
        ProcEvent(5_000.0, "postgres", "restart-fast"),
        ProcEvent(5_000.0, "postgres", "restart-immediate"),
    ],
)
def test_in_a_cluster_each_takeover_cause_allows_one_batch_of_repeats(fault: ProcEvent) -> None:
    history = acks("a", "b", "c")
    repeated = got("a", "b", "a", "b", "c")  # the paused/dead owner's batch, then the survivor's
    assert check(history, [fault], [cluster_sink(repeated)]).ok
    assert not check(history, [fault], [cluster_sink(repeated, batch=1)]).ok
    assert not check(history, [], [cluster_sink(repeated)]).ok


def test_a_pause_or_a_store_restart_allows_no_repeats_to_a_single_gateway() -> None:
    history = acks("a", "b")
    faults = [ProcEvent(1.0, "gateway", "stop"), ProcEvent(2.0, "postgres", "restart-fast")]
    report = check(
        history, faults, [SinkOutput("webhook", got("a", "b", "a", "b"), dups_per_cause=2)]
    )
    assert (report.sinks[0].allowed_duplicates, report.ok) == (0, False)


def test_repeats_in_a_cluster_never_excuse_a_silent_loss_or_a_reordering() -> None:
    history = acks("a", "b", "c", "d")
    stop = [ProcEvent(5_000.0, "gateway:g0", "stop")]
    lossy = check(history, stop, [cluster_sink(got("a", "b", "a", "b", "d"))])
    reordered = check(history, stop, [cluster_sink(got("a", "c", "b", "a", "c", "d"))])
    late_repeat = check(history, stop, [cluster_sink(got("a", "b", "c", "a", "b", "d"))])
    assert (lossy.sinks[0].silent, lossy.ok) == (["c"], False)
    assert (reordered.sinks[0].order_violations, reordered.ok) == ({"p0": 1}, False)
    # A repeat after later events is a duplicate, not an order violation: each
    # event's first delivery is what the order is judged on.
    assert (late_repeat.sinks[0].order_violations, late_repeat.ok) == ({"p0": 0}, True)


def test_the_table_counts_the_faults_that_may_repeat_a_batch() -> None:
    faults = [
        ProcEvent(1.0, "gateway:g0", "kill", 0),
        ProcEvent(2.0, "gateway:g1", "stop", 0),
        ProcEvent(3.0, "postgres", "restart-immediate"),
        ProcEvent(4.0, "server:p0", "kill", 0),
    ]
    report = check([], faults, [cluster_sink([])])
    assert (report.crashes, report.repeat_causes) == (1, 3)
    assert "(gateway crashes 1; faults that may repeat a batch 3)" in table(report)


def test_a_move_counts_only_if_its_server_lived_past_the_settle_time() -> None:
    history = [
        Ack("p0", "1_item:2_current", "move", 1_000.0, 0),
        Ack("p0", "2_item:2_current", "move", 9_000.0, 0),
    ]
    kill = [ProcEvent(10_000.0, "server:p0", "kill", 0)]
    report, sink = judge(history, got("1_item:2_current"), kill)
    assert (report.unconfirmed_moves, sink.acknowledged, sink.silent) == (1, 1, [])


def test_a_sink_is_judged_only_on_the_kinds_it_can_show() -> None:
    history = [Ack("p0", "a", "ingest", 0.0, 0), Ack("p0", "1_item:3_qa", "move", 0.0, 0)]
    report = check(history, [], [SinkOutput("webhook", got("a"), kinds=frozenset({"ingest"}))])
    assert (report.sinks[0].acknowledged, report.ok) == (1, True)


def test_latency_percentiles_run_from_acknowledgement_to_arrival() -> None:
    history = [Ack("p0", f"{n}_s", "ingest", 1_000.0 * n, 0) for n in range(100)]
    deliveries = [Delivery("p0", key=f"{n}_s", at_ms=1_000.0 * n + n + 1) for n in range(100)]
    _, sink = judge(history, deliveries)
    assert (sink.latency_p50_ms, sink.latency_p99_ms) == (50.0, 99.0)


def test_faults_are_counted_by_kind() -> None:
    procs = [
        ProcEvent(1.0, "gateway", "start"),
        ProcEvent(2.0, "gateway", "kill"),
        ProcEvent(3.0, "server:p0", "kill", 0),
        ProcEvent(4.0, "server:p1", "kill", 0),
        ProcEvent(5.0, "proxy:p1", "cut"),
    ]
    report = check([], procs, [])
    assert report.faults == {"gateway kill": 1, "proxy cut": 1, "server kill": 2}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("p0: merge failed: 7_story_p0 — chaos", Delivery("p0", key="7_story_p0", at_ms=5.0)),
        ("p1: 7 events missed from p1", Delivery("p1", notice="missed", missed=7)),
        ("p1: 1 event missed from p1", Delivery("p1", notice="missed", missed=1)),
        ("p1: some events may have been missed from p1", Delivery("p1", notice="missed")),
        (
            "p2: project p2 restarted; reading its new events",
            Delivery("p2", notice="restarted"),
        ),
        ("p0: 3 stories moved to QA (a, b, c)", None),
        ("p0: project p0 unreachable: connection refused", None),
    ],
)
def test_webhook_lines_are_read_as_events_and_loss_notices(
    text: str, expected: Delivery | None
) -> None:
    assert webhook_delivery(text, 5.0) == expected


def test_jsonl_sink_lines_are_read_and_a_torn_last_line_is_not_a_delivery(
    tmp_path: Path,
) -> None:
    lines = [
        {"type": "merge_failure", "story_id": "1_s", "reason": "r", "project": "p0"},
        {"type": "stage_transition", "story_id": "2_i", "from_stage": "1_backlog"}
        | {"to_stage": "2_current", "project": "p0"},
        {"type": "gateway_notice", "notice": "missed", "message": "2 events missed from p0"}
        | {"missed": 2, "project": "p0"},
    ]
    sink = tmp_path / "sink.jsonl"
    sink.write_bytes(b"".join(msgspec.json.encode(line) + b"\n" for line in lines) + b'{"ty')
    assert read_jsonl_sink(sink, {"1_s": 9.0}) == [
        Delivery("p0", key="1_s", at_ms=9.0),
        Delivery("p0", key="2_i:2_current"),
        Delivery("p0", notice="missed", missed=2),
    ]


def test_a_run_directory_is_judged_and_tabled(tmp_path: Path) -> None:
    def write(name: str, rows: list[dict[str, object]]) -> None:
        (tmp_path / name).write_bytes(b"".join(msgspec.json.encode(r) + b"\n" for r in rows))

    write("acks.jsonl", [{"project": "p0", "key": "1_s", "kind": "ingest", "ack_ms": 1, "gen": 0}])
    write("procs.jsonl", [{"t_ms": 0, "proc": "gateway", "what": "start", "gen": 0}])
    write("sink.jsonl", [{"type": "merge_failure", "story_id": "1_s", "project": "p0"}])
    write("arrivals.jsonl", [{"key": "1_s", "t_ms": 21}])
    write("webhook.jsonl", [])
    report = check_run(tmp_path, batch=100)
    assert [(s.name, s.delivered, len(s.silent)) for s in report.sinks] == [
        ("jsonl", 1, 0),
        ("webhook", 0, 1),
    ]
    text = table(report, seed=7)
    assert text.startswith("seed 7\n")
    assert "silent losses in webhook: 1_s" in text
    assert text.endswith("verdict: FAIL")


def test_a_cluster_run_allows_the_json_lines_sink_a_batch_per_takeover(tmp_path: Path) -> None:
    def write(name: str, rows: list[dict[str, object]]) -> None:
        (tmp_path / name).write_bytes(b"".join(msgspec.json.encode(r) + b"\n" for r in rows))

    write("acks.jsonl", [{"project": "p0", "key": "1_s", "kind": "ingest", "ack_ms": 1, "gen": 0}])
    write("procs.jsonl", [{"t_ms": 5, "proc": "gateway:g0", "what": "stop", "gen": 0}])
    line: dict[str, object] = {"type": "merge_failure", "story_id": "1_s", "project": "p0"}
    write("sink.jsonl", [line, line])
    write("webhook.jsonl", [{"t_ms": 3, "text": "p0: merge failed: 1_s — chaos"}])
    single = check_run(tmp_path, batch=100)
    cluster = check_run(tmp_path, batch=100, cluster=True)
    assert [(s.duplicates, s.allowed_duplicates) for s in single.sinks] == [(1, 0), (0, 0)]
    assert [(s.duplicates, s.allowed_duplicates) for s in cluster.sinks] == [(1, 100), (0, 100)]
    assert (single.ok, cluster.ok) == (False, True)
