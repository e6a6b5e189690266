"""Hostile and malformed input over a real Hypercorn: never a 500, never a crash.

After every case the server still answers and its buffer holds exactly what
it held before plus what was valid.
"""

from __future__ import annotations

import ctypes
import itertools
import logging
from collections.abc import Callable
from pathlib import Path

import httpx
import msgspec
import pytest
import trio
import trio.testing

from events_trio.core.events import MergeFailure, StoredEvent
from events_trio.server.run import RunningServer
from tests.support import EVENTS_TRIO, CliProcess, until
from tests.test_watcher import make_pipeline, move, next_event, transition, watch

SEEDED = [MergeFailure("1_seed", "before"), MergeFailure("2_seed", "before")]
SINCE = (
    "since must be an unsigned integer of milliseconds: ASCII digits only, 0..18446744073709551615"
)
WAIT = "wait must be a non-negative decimal number of seconds (capped at 30)"


async def seed(server: RunningServer) -> list[StoredEvent]:
    for event in SEEDED:
        server.hub.publish(event)
    await until(lambda: len(server.hub.buffer) == len(SEEDED))
    return server.hub.buffer.events_since(0)


async def still_serving(server: RunningServer, before: list[StoredEvent]) -> None:
    """The server answers a fresh client, and its buffer is unchanged."""
    await trio.testing.wait_all_tasks_blocked()
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as fresh:
        response = await fresh.get("/api/events", params={"since": "0"})
    assert response.status_code == 200
    assert server.hub.buffer.events_since(0) == before


async def exchange(server: RunningServer, request: bytes) -> bytes:
    """Send raw bytes; everything the server answers until it closes (or 10 s)."""
    stream = await trio.open_tcp_stream(server.host, server.port)
    received = b""
    async with stream:
        await stream.send_all(request)
        with trio.move_on_after(10):
            while chunk := await stream.receive_some(65536):
                received += chunk
    return received


def get(target: bytes, *headers: bytes) -> bytes:
    lines = [b"GET " + target + b" HTTP/1.1", b"Host: localhost", *headers, b"Connection: close"]
    return b"\r\n".join(lines) + b"\r\n\r\n"


# --- query parameters ---------------------------------------------------------------

BAD_QUERIES = {
    "since_empty": ("since=", "since"),
    "since_text": ("since=abc", "since"),
    "since_negative": ("since=-1", "since"),
    "since_plus": ("since=%2B1", "since"),
    "since_space": ("since=%201", "since"),
    "since_fraction": ("since=1.5", "since"),
    "since_exponent": ("since=1e3", "since"),
    "since_hex": ("since=0x10", "since"),
    "since_2_pow_64": ("since=18446744073709551616", "since"),
    "since_10000_digits": ("since=" + "9" * 10_000, "since"),
    "since_4301_leading_zeros_then_junk": ("since=" + "0" * 4301 + "x", "since"),
    "since_repeated": ("since=1&since=2", "since"),
    "since_percent_junk": ("since=%ZZ%", "since"),
    "since_invalid_utf8": ("since=%FF%FE", "since"),
    "since_percent_nul": ("since=%00", "since"),
    "since_digit_then_nul": ("since=1%00", "since"),
    "since_arabic_indic_digit": ("since=%D9%A4", "since"),
    "since_fullwidth_digit": ("since=%EF%BC%91", "since"),
    "since_superscript_two": ("since=%C2%B2", "since"),
    "wait_empty": ("wait=", "wait"),
    "wait_text": ("wait=soon", "wait"),
    "wait_negative": ("wait=-1", "wait"),
    "wait_exponent": ("wait=1e3", "wait"),
    "wait_nan": ("wait=nan", "wait"),
    "wait_inf": ("wait=inf", "wait"),
    "wait_comma": ("wait=1,5", "wait"),
    "wait_repeated": ("wait=1&wait=2", "wait"),
    "wait_percent_nul": ("wait=%00", "wait"),
    "wait_arabic_indic_digit": ("wait=%D9%A4", "wait"),
}


@pytest.mark.parametrize("case", BAD_QUERIES)
async def test_bad_query_is_400_json_naming_the_parameter(server: RunningServer, case: str) -> None:
    before = await seed(server)
    query, parameter = BAD_QUERIES[case]
    answer = await exchange(server, get(b"/api/events?" + query.encode()))
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), head
    decoded = msgspec.json.decode(body)
    assert decoded["parameter"] == parameter
    assert decoded["message"].endswith(SINCE if parameter == "since" else WAIT)
    await still_serving(server, before)


async def test_raw_nul_in_the_request_line_is_refused_by_h11_with_an_empty_400(
    server: RunningServer,
) -> None:
    # h11 rejects the request line before any app code runs: no JSON is possible there.
    before = await seed(server)
    answer = await exchange(server, get(b"/api/events?since=\x00"))
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"connection: close" in head.lower()
    assert body == b""
    await still_serving(server, before)


# --- request head limits -------------------------------------------------------------

OVERSIZED_HEADS = {
    "url_20_kb": get(b"/api/events?pad=" + b"a" * 20_000),
    "header_100_kb": get(b"/api/events", b"X-Big: " + b"a" * 100_000),
    "headers_1000": get(b"/api/events", *(b"X-H%d: v" % n for n in range(1000))),
    "headers_101": get(b"/api/events", *(b"X-H%d: v" % n for n in range(100))),
}


@pytest.mark.parametrize("case", OVERSIZED_HEADS)
async def test_oversized_request_head_is_431_and_closes(server: RunningServer, case: str) -> None:
    # Whoever refuses it (h11 while the head is incomplete, our guard once it
    # is complete), the answer is 431 with Connection: close.
    before = await seed(server)
    answer = await exchange(server, OVERSIZED_HEADS[case])
    head = answer.partition(b"\r\n\r\n")[0]
    assert head.startswith(b"HTTP/1.1 431 "), head
    assert b"connection: close" in head.lower()
    await still_serving(server, before)


async def test_request_head_just_within_the_limits_is_served(server: RunningServer) -> None:
    headers = [b"X-H%d: v" % n for n in range(98)]  # + Host and Connection = 100
    answer = await exchange(server, get(b"/api/events?pad=" + b"a" * 8_000, *headers))
    assert answer.startswith(b"HTTP/1.1 200 ")


async def test_open_poll_is_answered_while_oversized_heads_are_refused(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    results: list[httpx.Response] = []

    async def poll() -> None:
        results.append(await client.get("/api/events", params={"since": "0", "wait": "10"}))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(poll)
        await until(lambda: server.hub.longpoll.waiting == 1)
        for request in OVERSIZED_HEADS.values():
            await exchange(server, request)
        server.hub.publish(MergeFailure("3_after", "x"))
    assert [event["story_id"] for event in results[0].json()] == ["3_after"]


# --- ingest ---------------------------------------------------------------------------

JSON_HEADERS = {"Content-Type": "application/json"}
UNSAFE = "must not contain control characters, '/' or '\\', nor be '.' or '..'"


def merge(story_id: str, reason: str = "r") -> bytes:
    return msgspec.json.encode({"type": "merge_failure", "story_id": story_id, "reason": reason})


REFUSED_INGEST = {
    "nested_50000_deep_in_a_field": (
        b'{"type":"merge_failure","story_id":' + b"[" * 50_000,
        422,
        "$: JSON nested too deeply",
    ),
    "nested_objects_in_an_array": (b"[" + b'{"a":' * 10_000, 400, None),
    "not_utf8_in_a_string": (merge("x").replace(b'"r"', b'"\xc3\x28"'), 400, None),
    "latin1_body": (
        '{"type":"merge_failure","story_id":"é","reason":""}'.encode("latin-1"),
        400,
        None,
    ),
    "int_of_5000_digits": (
        b'{"type":"merge_failure","story_id":' + b"1" * 5000 + b',"reason":"r"}',
        422,
        "$.story_id: expected a string, got number",
    ),
    "story_id_with_slash": (merge("42/story"), 422, f"$.story_id: {UNSAFE}"),
    "story_id_dot_dot": (merge(".."), 422, f"$.story_id: {UNSAFE}"),
    "story_id_with_newline": (
        merge("42_x\nfake line"),
        422,
        f"$.story_id: {UNSAFE}",
    ),
    "story_id_with_nul": (merge("42_x\x00"), 422, f"$.story_id: {UNSAFE}"),
    "story_id_with_escape": (merge("42_\x1b[31mred"), 422, f"$.story_id: {UNSAFE}"),
    "story_id_with_backslash": (merge("a\\b"), 422, f"$.story_id: {UNSAFE}"),
    "story_id_of_201_chars": (
        merge("x" * 201),
        422,
        "$.story_id: must be 1 to 200 characters, got 201",
    ),
    "stage_with_control_char_in_a_batch": (
        msgspec.json.encode(
            [
                {"type": "merge_failure", "story_id": "ok", "reason": ""},
                {"type": "work_item", "item_id": "1_a", "stage": "3\x7fqa", "from_stage": "2"},
            ]
        ),
        422,
        f"$[1].stage: {UNSAFE}",
    ),
}


@pytest.mark.parametrize("case", REFUSED_INGEST)
async def test_hostile_ingest_is_refused_and_stores_nothing(
    ingest_server: RunningServer, ingest_client: httpx.AsyncClient, case: str
) -> None:
    before = await seed(ingest_server)
    body, status, message = REFUSED_INGEST[case]
    response = await ingest_client.post("/api/events", content=body, headers=JSON_HEADERS)
    assert response.status_code == status
    if message is not None:
        assert response.json()["message"] == message
    await still_serving(ingest_server, before)


ACCEPTED_INGEST = {
    "reason_of_60000_chars": ("42_story_x", "x" * 60_000),
    "reason_with_newlines_and_quotes": ("42_story_x", 'line 1\nline "2"\t</script>'),
    "unicode_story_id": ("42_störy_✓", "r"),
    "dots_inside_a_story_id": ("v1.2..3", "r"),
}


@pytest.mark.parametrize("case", ACCEPTED_INGEST)
async def test_unusual_but_safe_ingest_is_stored_verbatim(
    ingest_server: RunningServer, ingest_client: httpx.AsyncClient, case: str
) -> None:
    before = await seed(ingest_server)
    story_id, reason = ACCEPTED_INGEST[case]
    response = await ingest_client.post(
        "/api/events", content=merge(story_id, reason), headers=JSON_HEADERS
    )
    assert response.status_code == 202
    await until(lambda: len(ingest_server.hub.buffer) == len(before) + 1)
    stored = ingest_server.hub.buffer.events_since(0)
    assert stored[:-1] == before
    assert (stored[-1].story_id, stored[-1].reason) == (story_id, reason)  # type: ignore[union-attr]
    served = (await ingest_client.get("/api/events")).json()
    assert (served[-1]["story_id"], served[-1]["reason"]) == (story_id, reason)


# --- the pipeline directory ---------------------------------------------------------------


def _symlink_loop(root: Path) -> None:
    (root / "2_current" / "43_y.md").symlink_to(root / "2_current" / "43_y.md")


def _stage_replaced_by_a_file(root: Path) -> None:
    (root / "4_merge").rmdir()
    (root / "4_merge").write_text("not a folder")


HOSTILE_PATHS: dict[str, Callable[[Path], object]] = {
    "name_with_spaces": lambda root: (root / "2_current" / "43 y.md").write_text("x"),
    "unicode_name": lambda root: (root / "2_current" / "43_ÿ✓.md").write_text("x"),
    "name_with_newline": lambda root: (root / "2_current" / "43_y\n44_z.md").write_text("x"),
    "name_of_250_chars": lambda root: (root / "2_current" / ("1_" + "a" * 245 + ".md")).write_text(
        "x"
    ),
    "symlink_loop": _symlink_loop,
    "stage_folder_replaced_by_a_file": _stage_replaced_by_a_file,
}


@pytest.mark.parametrize("case", HOSTILE_PATHS)
async def test_hostile_path_is_ignored_and_the_watcher_carries_on(
    nursery: trio.Nursery, tmp_path: Path, case: str
) -> None:
    root = make_pipeline(tmp_path / "pipeline", {"1_backlog/1_s.md", "1_backlog/2_t.md"})
    events = await watch(nursery, root)
    HOSTILE_PATHS[case](root)
    move(root, "1_s", "1_backlog", "5_done")  # changes are handled in order
    assert transition(await next_event(events)) == ("1_s", "1_backlog", "5_done")
    move(root, "2_t", "1_backlog", "3_qa")
    assert transition(await next_event(events)) == ("2_t", "1_backlog", "3_qa")
    with pytest.raises(trio.WouldBlock):
        events.receive_nowait()


async def test_an_ignored_path_is_logged_once_not_per_change(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="events_trio.watcher")
    root = make_pipeline(tmp_path / "pipeline", {"1_backlog/1_s.md"})
    events = await watch(nursery, root)
    ignored = root / "2_current" / "notes\nfake log line.txt"
    stages = ["1_backlog", "2_current", "3_qa", "4_merge"]
    for src, dst in itertools.pairwise(stages):
        ignored.write_text(dst)
        move(root, "1_s", src, dst)  # a sentinel per round
        assert transition(await next_event(events)) == ("1_s", src, dst)
    about_it = [m for m in caplog.messages if "notes" in m]
    assert about_it == [f"ignoring {str(ignored)!r} (added)"]  # repr: no forged line


def drop_dac_capabilities() -> None:
    """Run as root without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH, so mode 000 really denies.

    The tests run as root, which ignores permissions; dropping the two
    capabilities from the bounding set (before exec) makes the child's root
    obey them like any user.
    """
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if _prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE = 1
CAP_DAC_READ_SEARCH = 2
# Resolved here, in the parent: the child between fork and exec only calls it.
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def test_unreadable_stage_folder_is_warned_once_and_the_rest_is_still_watched(
    tmp_path: Path,
) -> None:
    # awatch (inotify and its polling mode alike) refuses the whole tree when
    # one folder is unreadable; the watcher then rescans every 0.5 s and
    # retries awatch every 5 s, warning once.
    root = make_pipeline(tmp_path / "pipeline", {"1_backlog/1_a.md", "3_qa/2_b.md"})
    (root / "3_qa").chmod(0)
    args = [EVENTS_TRIO, "serve", "--port", "0", "--pipeline", str(root), "--log-level", "debug"]
    try:
        with CliProcess(args, cwd=tmp_path, preexec_fn=drop_dac_capabilities) as server:
            url = server.url()
            move(root, "1_a", "1_backlog", "2_current")
            server.wait_for(r"work item 1_a moved 1_backlog -> 2_current")
            body = httpx.get(f"{url}/api/events", timeout=10).json()
            server.wait_for(r"DEBUG events_trio.watcher: watching .*: 1 work items")  # a retry
            assert server.stop() == 0
    finally:
        (root / "3_qa").chmod(0o755)
    assert [(e["story_id"], e["to_stage"]) for e in body] == [("1_a", "2_current")]
    warnings = [line.split(": ", 1)[1] for line in server.lines if " WARNING " in line]
    assert sorted(set(warnings)) == sorted(warnings)  # each warning once
    assert any(w.startswith("cannot read stage folder ") for w in warnings)
