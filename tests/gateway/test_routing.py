"""Routing: per-sink project globs and entry types, from TOML to delivery."""

from __future__ import annotations

import subprocess
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio
import trio.testing

from events_trio.core.errors import ConfigError
from events_trio.core.events import (
    MergeFailure,
    StageTransition,
    StoredEvent,
    StoredStoryBlocked,
    WorkItem,
)
from events_trio.gateway import GatewayConfig, RunningGateway, load_config, run_gateway
from events_trio.gateway.config import PollSettings
from events_trio.gateway.records import Incoming, LogEntry, Notice, encode_entry
from events_trio.gateway.routing import ENTRY_TYPES, Route, entry_type, parse_route
from events_trio.gateway.sinks import SinkRunner
from events_trio.gateway.tracker import Position
from tests.gateway.helpers import project_server
from tests.support import EVENTS_TRIO, complete_lines

from .helpers import BASE_MS, InlineLog, failure, until
from .test_sinks import RecordingSink


def entry(payload: Any, project: str = "billing") -> LogEntry:
    record = Incoming(payload, 7)
    return LogEntry(1, project, record.kind, 7, encode_entry(record, project, 1))


MOVE = StageTransition("1_a", "2_current", "3_qa", 7)
FAILED = failure("2_b", 7)
BLOCKED = StoredStoryBlocked("3_c", "retry limit exceeded", 7)
NOTICE = Notice("missed", "3 events missed from billing", 3)


@pytest.mark.parametrize(
    ("payload", "name"),
    [
        (MOVE, "stage_transition"),
        (FAILED, "merge_failure"),
        (BLOCKED, "story_blocked"),
        (NOTICE, "notice"),
    ],
)
def test_entry_type_of_every_kind_of_entry(payload: Any, name: str) -> None:
    assert entry_type(entry(payload)) == name


def test_a_route_without_keys_takes_everything() -> None:
    route = parse_route({})
    assert all(route.accepts(entry(p, n)) for p in (MOVE, NOTICE) for n in ("billing", "x"))


def test_project_globs_are_shell_style_and_case_sensitive() -> None:
    route = parse_route({"projects": ["billing", "search-*"]})
    names = ["billing", "search-eu", "search-", "Billing", "searching", "billing-2"]
    assert [route.accepts(entry(MOVE, name)) for name in names] == [
        True,
        True,
        True,
        False,
        False,
        False,
    ]


def test_an_entry_must_match_both_projects_and_types() -> None:
    route = parse_route({"projects": ["billing"], "types": ["merge_failure", "notice"]})
    cases = [(FAILED, "billing"), (NOTICE, "billing"), (MOVE, "billing"), (FAILED, "search")]
    assert [route.accepts(entry(p, n)) for p, n in cases] == [True, True, False, False]


def write(tmp_path: Path, sink: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(
        '[[project]]\nname = "billing"\nurl = "http://127.0.0.1:7070"\n\n'
        f'[[sink]]\nkind = "jsonl"\npath = "out.jsonl"\n{sink}\n'
    )
    return path


def test_toml_routes_reach_the_sink_spec(tmp_path: Path) -> None:
    path = write(tmp_path, 'projects = ["search-*"]\ntypes = ["story_blocked"]')
    assert load_config(path).sinks[0].route == Route(("search-*",), frozenset({"story_blocked"}))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            'types = ["merge_failed"]',
            "sink.types: unknown type 'merge_failed'; expected " + ", ".join(ENTRY_TYPES),
        ),
        (
            'types = "merge_failure"',
            'sink.types must be a list of strings, e.g. types = ["merge_failure"]',
        ),
        (
            "projects = [1, 2]",
            'sink.projects must be a list of strings, e.g. projects = ["billing", "search-*"]',
        ),
        ("projects = []", "sink.projects must not be empty (leave it out to match all)"),
    ],
)
def test_bad_routes_name_file_line_and_field(tmp_path: Path, line: str, message: str) -> None:
    path = write(tmp_path, f"# routing\ngroup_window_s = 1\n{line}")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}:10: {message}"


def test_bad_route_stops_the_gateway_with_one_line_and_exit_1(tmp_path: Path) -> None:
    write(tmp_path, 'types = ["bogus"]')
    result = subprocess.run(
        [EVENTS_TRIO, "gateway", "--config", "gateway.toml"],
        cwd=tmp_path,
        check=False,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert (result.returncode, result.stderr.splitlines()) == (
        1,
        [
            "events-trio: error: gateway.toml:8: sink.types: unknown type 'bogus'; "
            "expected " + ", ".join(ENTRY_TYPES)
        ],
    )


async def test_offset_advances_over_filtered_out_entries(
    autojump_clock: trio.testing.MockClock, log: InlineLog, nursery: trio.Nursery
) -> None:
    sink = RecordingSink()
    route = Route(("billing",), None)
    await nursery.start(partial(SinkRunner(sink, log, route=route).run))
    await log.append("search", [Incoming(failure("1_other", BASE_MS), BASE_MS)], Position("", 1))
    await trio.sleep(1)
    assert sink.batches == []
    await log.group.flush()  # offsets ride with the next group commit
    assert await log.sink_offset("recording") == log.watch.latest_seq


async def test_two_sinks_with_different_filters_get_exactly_their_entries(
    autojump_clock: trio.testing.MockClock, log: InlineLog, nursery: trio.Nursery
) -> None:
    chat, billing = RecordingSink(), RecordingSink()
    billing.name = "billing-only"
    chat_route = Route(None, frozenset({"merge_failure", "story_blocked"}))
    await nursery.start(SinkRunner(chat, log, route=chat_route).run)
    await nursery.start(SinkRunner(billing, log, route=Route(("bill*",), None)).run)
    stamps = iter(range(BASE_MS, BASE_MS + 100))
    appended: list[tuple[str, StoredEvent]] = [
        ("billing", StageTransition("1_move", "2_current", "3_qa", next(stamps))),
        ("search", failure("2_fail", next(stamps))),
        ("billing", StoredStoryBlocked("3_block", "stuck", next(stamps))),
        ("search", StageTransition("4_move", "2_current", "3_qa", next(stamps))),
    ]
    for project, payload in appended:
        stamp = payload.timestamp_ms
        await log.append(project, [Incoming(payload, stamp)], Position("", stamp))
    await trio.sleep(1)
    assert (chat.delivered, billing.delivered) == (["2_fail", "3_block"], ["1_move", "3_block"])


def stories(path: Path) -> list[tuple[str, str]]:
    lines = [msgspec.json.decode(line) for line in complete_lines(path)]
    return [(line["project"], line["story_id"]) for line in lines if "story_id" in line]


async def test_routes_from_the_toml_file_filter_a_running_gateway(tmp_path: Path) -> None:
    config_path = tmp_path / "gateway.toml"
    async with project_server() as billing, project_server() as search:
        config_path.write_text(
            f'[[project]]\nname = "billing"\nurl = "{billing.url}"\n'
            f'[[project]]\nname = "search-eu"\nurl = "{search.url}"\n'
            f'[[sink]]\nkind = "jsonl"\npath = "{tmp_path / "search.jsonl"}"\n'
            'projects = ["search-*"]\n'
            f'[[sink]]\nkind = "jsonl"\npath = "{tmp_path / "fail.jsonl"}"\n'
            'types = ["merge_failure"]\n'
        )
        base = GatewayConfig(
            port=0,
            state_dir=tmp_path / "state",
            poll=PollSettings(interval_s=0.2, backoff_initial_s=0.05, backoff_max_s=0.3),
            graceful_timeout_s=0.2,
        )
        config = load_config(config_path, base)
        async with trio.open_nursery() as nursery:
            running: RunningGateway = await nursery.start(run_gateway, config)
            await until(lambda: all(p.status.state == "up" for p in running.pollers))
            billing.hub.publish(MergeFailure("1_bill_fail", "conflict"))
            search.hub.publish(WorkItem("2_search_move", "3_qa", from_stage="2_current"))
            search.hub.publish(MergeFailure("3_search_fail", "conflict"))
            await until(lambda: len(stories(tmp_path / "search.jsonl")) == 2)
            await until(lambda: len(stories(tmp_path / "fail.jsonl")) == 2)
            running.shutdown()
    assert stories(tmp_path / "search.jsonl") == [
        ("search-eu", "2_search_move"),
        ("search-eu", "3_search_fail"),
    ]
    # Two pollers: the order across projects is the order of arrival.
    assert sorted(stories(tmp_path / "fail.jsonl")) == [
        ("billing", "1_bill_fail"),
        ("search-eu", "3_search_fail"),
    ]


def test_the_documented_routing_example_loads(tmp_path: Path) -> None:
    docs = (Path(__file__).parents[2] / "docs" / "gateway.md").read_text()
    section = docs.split("### Routing", 1)[1]
    path = tmp_path / "gateway.toml"
    path.write_text(section.split("```toml", 1)[1].split("```", 1)[0])
    routes = [spec.route for spec in load_config(path).sinks]
    assert routes == [
        Route(("billing", "billing-*"), None),
        Route(None, frozenset({"merge_failure", "story_blocked", "notice"})),
        Route(),
    ]
