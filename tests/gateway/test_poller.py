"""Poller behaviour under MockClock against an in-process project server."""

from __future__ import annotations

import httpx
import trio
import trio.testing

from events_trio.core.events import encode
from events_trio.gateway.tracker import Position

from .helpers import BASE_MS, FakeProject, InlineLog, failure, make_poller


def request_times(fake: FakeProject, start: float) -> list[float]:
    return [round(t - start, 2) for t, _ in fake.requests]


def notice_kinds(log: InlineLog) -> list[str]:
    return [e.payload().notice for e in log.entries() if e.kind == "notice"]  # type: ignore[union-attr]


async def test_first_poll_goes_out_at_start_up(
    autojump_clock: trio.testing.MockClock,
    fake: FakeProject,
    log: InlineLog,
    http: httpx.AsyncClient,
    nursery: trio.Nursery,
) -> None:
    start = trio.current_time()
    nursery.start_soon(make_poller(log, http).run)
    await trio.sleep(0.5)
    assert request_times(fake, start)[0] == 0.0


async def test_new_project_starts_from_its_newest_event(
    autojump_clock: trio.testing.MockClock,
    fake: FakeProject,
    log: InlineLog,
    http: httpx.AsyncClient,
    nursery: trio.Nursery,
) -> None:
    fake.publish(failure("1_story_old", BASE_MS + 1))
    nursery.start_soon(make_poller(log, http).run)
    await trio.sleep(1)
    fake.publish(failure("2_story_new", BASE_MS + 2))
    await trio.sleep(1)
    assert log.texts() == ["2_story_new"]


async def test_replay_delivers_the_whole_buffer_of_a_new_project(
    autojump_clock: trio.testing.MockClock,
    fake: FakeProject,
    log: InlineLog,
    http: httpx.AsyncClient,
    nursery: trio.Nursery,
) -> None:
    fake.publish(failure("1_story_old", BASE_MS + 1))
    nursery.start_soon(make_poller(log, http, replay=True).run)
    await trio.sleep(1)
    assert log.texts() == ["1_story_old"]


async def test_long_polling_server_is_asked_again_as_soon_as_it_answers(
    autojump_clock: trio.testing.MockClock,
    fake: FakeProject,
    log: InlineLog,
    http: httpx.AsyncClient,
    nursery: trio.Nursery,
) -> None:
    start = trio.current_time()
    nursery.start_soon(make_poller(log, http).run)
    await trio.sleep(5)
    fake.publish(failure("1_story_a", BASE_MS + 1))
    await trio.sleep(5)
    fake.publish(failure("2_story_b", BASE_MS + 2))
    await trio.sleep(1)
    assert request_times(fake, start) == [0.0, 0.0, 5.0, 10.0]
    assert log.texts() == ["1_story_a", "2_story_b"]


async def test_server_that_ignores_wait_is_polled_every_interval(
    autojump_clock: trio.testing.MockClock, log: InlineLog, nursery: trio.Nursery
) -> None:
    fake = FakeProject(rust=True)
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        start = trio.current_time()
        nursery.start_soon(make_poller(log, http).run)
        await trio.sleep(3)
        fake.publish(failure("1_story_a", BASE_MS + 1))
        await trio.sleep(3.5)
        assert request_times(fake, start) == [0.0, 0.0, 2.0, 4.0, 6.0]
        assert log.texts() == ["1_story_a"]


async def test_failures_back_off_exponentially_up_to_the_cap(
    autojump_clock: trio.testing.MockClock, log: InlineLog, nursery: trio.Nursery
) -> None:
    fake = FakeProject(fail_with=503)
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        start = trio.current_time()
        nursery.start_soon(make_poller(log, http).run)
        await trio.sleep(31.5)
        assert request_times(fake, start) == [0.0, 1.0, 3.0, 7.0, 15.0, 23.0, 31.0]


async def test_outage_gives_one_unreachable_and_one_recovered_notice(
    autojump_clock: trio.testing.MockClock,
    fake: FakeProject,
    log: InlineLog,
    http: httpx.AsyncClient,
    nursery: trio.Nursery,
) -> None:
    nursery.start_soon(make_poller(log, http).run)
    await trio.sleep(1)
    fake.fail_with = httpx.ConnectError("connection refused")
    fake.publish(failure("1_story_a", BASE_MS + 1))
    await trio.sleep(30)
    fake.fail_with = None
    await trio.sleep(10)
    fake.publish(failure("2_story_b", BASE_MS + 2))
    await trio.sleep(1)
    assert notice_kinds(log) == ["unreachable", "recovered"]
    assert log.texts()[1] == "project billing unreachable: ConnectError: connection refused"
    assert [t for t in log.texts() if "story" in t] == ["1_story_a", "2_story_b"]


async def test_one_failed_poll_sends_no_notice(
    autojump_clock: trio.testing.MockClock,
    fake: FakeProject,
    log: InlineLog,
    http: httpx.AsyncClient,
    nursery: trio.Nursery,
) -> None:
    poller = make_poller(log, http)
    nursery.start_soon(poller.run)
    await trio.sleep(1)
    fake.fail_with = 500
    fake.publish(failure("1_story_a", BASE_MS + 1))
    await trio.sleep(0.5)
    fake.fail_with = None
    await trio.sleep(2)
    assert notice_kinds(log) == []
    assert poller.status.state == "up"


async def test_project_is_down_in_status_while_unreachable(
    autojump_clock: trio.testing.MockClock, log: InlineLog, nursery: trio.Nursery
) -> None:
    fake = FakeProject(fail_with=502)
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        poller = make_poller(log, http)
        nursery.start_soon(poller.run)
        await trio.sleep(5)
        assert (poller.status.state, poller.status.last_error) == (
            "down",
            "HTTP 502 from /api/events",
        )


async def test_request_without_answer_times_out(
    autojump_clock: trio.testing.MockClock,
    fake: FakeProject,
    log: InlineLog,
    http: httpx.AsyncClient,
    nursery: trio.Nursery,
) -> None:
    fake.hang = True
    poller = make_poller(log, http, position=Position(fake.instance, BASE_MS))
    start = trio.current_time()
    nursery.start_soon(poller.run)
    await trio.sleep(40)
    assert request_times(fake, start) == [0.0, 36.0]
    assert poller.status.last_error == "no answer within 35 s"


async def test_unknown_event_types_are_skipped_and_counted(
    autojump_clock: trio.testing.MockClock,
    fake: FakeProject,
    log: InlineLog,
    http: httpx.AsyncClient,
    nursery: trio.Nursery,
) -> None:
    poller = make_poller(log, http, position=Position(fake.instance, BASE_MS))
    nursery.start_soon(poller.run)
    await trio.sleep(1)
    fake.extra_raw = [b'{"type":"story_archived","story_id":"9_story_z","timestamp_ms":1}']
    fake.publish(failure("1_story_a", BASE_MS + 1))
    await trio.sleep(1)
    assert log.texts() == ["1_story_a"]
    assert poller.status.skipped_unknown == 1


async def test_event_at_or_below_the_cursor_is_never_delivered(
    autojump_clock: trio.testing.MockClock,
    fake: FakeProject,
    log: InlineLog,
    http: httpx.AsyncClient,
    nursery: trio.Nursery,
) -> None:
    poller = make_poller(log, http, position=Position(fake.instance, BASE_MS + 100))
    nursery.start_soon(poller.run)
    await trio.sleep(1)
    fake.extra_raw = [
        encode(failure("1_story_old", BASE_MS + 50)),
        encode(failure("2_story_same", BASE_MS + 100)),
    ]
    fake.publish(failure("3_story_new", BASE_MS + 200))
    await trio.sleep(1)
    assert log.texts() == ["3_story_new"]
    assert poller.status.cursor == BASE_MS + 200


async def test_restarted_server_new_events_are_not_hidden_behind_old_cursor(
    autojump_clock: trio.testing.MockClock,
    fake: FakeProject,
    log: InlineLog,
    http: httpx.AsyncClient,
    nursery: trio.Nursery,
) -> None:
    fake.publish(failure("1_story_before", BASE_MS + 500))
    poller = make_poller(log, http, position=Position(fake.instance, BASE_MS + 500))
    nursery.start_soon(poller.run)
    await trio.sleep(1)
    fake.restart([failure("2_story_after", BASE_MS + 10)])
    await trio.sleep(1)
    assert log.texts() == ["project billing restarted; reading its new events", "2_story_after"]


async def test_missed_header_becomes_a_notice_with_the_exact_count(
    autojump_clock: trio.testing.MockClock,
    fake: FakeProject,
    log: InlineLog,
    http: httpx.AsyncClient,
    nursery: trio.Nursery,
) -> None:
    nursery.start_soon(make_poller(log, http, position=Position(fake.instance, BASE_MS)).run)
    await trio.sleep(1)
    fake.missed = 7
    fake.publish(failure("8_story_a", BASE_MS + 8))
    await trio.sleep(1)
    assert log.texts() == ["7 events missed from billing", "8_story_a"]


async def test_cursor_is_persisted_with_the_events(
    autojump_clock: trio.testing.MockClock,
    fake: FakeProject,
    log: InlineLog,
    http: httpx.AsyncClient,
    nursery: trio.Nursery,
) -> None:
    nursery.start_soon(make_poller(log, http).run)
    await trio.sleep(1)
    fake.publish(failure("1_story_a", BASE_MS + 1))
    await trio.testing.wait_all_tasks_blocked()
    await trio.sleep(1)
    assert await log.positions() == {"billing": Position(fake.instance, BASE_MS + 1)}
