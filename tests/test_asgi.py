"""The Hypercorn door: the real ``hypercorn`` command serving ``events_trio.asgi:app``.

Each test runs ``hypercorn --worker-class trio`` in a subprocess, configured
through ``EVENTS_TRIO_*`` variables, and checks the behaviour ``events-trio
serve`` has (tests/test_cli.py, tests/test_watcher.py).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any, Final

import httpx
import pytest

from events_trio.sources.pipeline import DEFAULT_STAGES
from tests.support import EXE_DIR, CliProcess, free_port

HYPERCORN: Final = str(EXE_DIR / "hypercorn")
TOKEN: Final = "asgi-ingest-token"
#: Real-time bound for anything the server does on its own (watcher, subscriber).
EVENT_TIMEOUT_S: Final = 10.0
RUNNING: Final = r"Running on (http://\S+)"
REFUSAL: Final = "refusing to start a second worker"
HUB_STOPPED: Final = "watcher channel closed; stopping event subscriber"


#: Runs the rest of the command line as the leader of a new process group, so
#: that a test can always reap Hypercorn's workers (see :func:`hypercorn`).
_IN_NEW_GROUP: Final = (
    sys.executable,
    "-c",
    "import os, sys; os.setsid(); os.execv(sys.argv[1], sys.argv[1:])",
)


@contextmanager
def hypercorn(tmp_path: Path, *extra: str, port: int | None = None) -> Iterator[CliProcess]:
    """``hypercorn ... events_trio.asgi:app`` in ``tmp_path`` watching ``tmp_path/pipeline``.

    On the way out Hypercorn gets SIGTERM, then anything left in its process
    group SIGKILL: killing only the parent would orphan its worker, which
    keeps serving and holds the stderr pipe the log reader is blocked on.
    """
    args = [
        HYPERCORN,
        "--worker-class",
        "trio",
        "--bind",
        f"127.0.0.1:{port or free_port()}",
        *extra,
    ]
    env = {
        "EVENTS_TRIO_PIPELINE": str(tmp_path / "pipeline"),
        "EVENTS_TRIO_INGEST_TOKEN": TOKEN,
        "EVENTS_TRIO_CAPACITY": "3",
    }
    with CliProcess([*_IN_NEW_GROUP, *args, "events_trio.asgi:app"], cwd=tmp_path, env=env) as p:
        try:
            yield p
        finally:
            try:
                p.stop()
            finally:
                with suppress(ProcessLookupError):
                    os.killpg(p.proc.pid, signal.SIGKILL)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[CliProcess, str]]:
    """A running Hypercorn with one work item, ``42_story_x`` in ``2_current``, and its URL."""
    for stage in DEFAULT_STAGES:
        (tmp_path / "pipeline" / stage).mkdir(parents=True)
    (tmp_path / "pipeline" / "2_current" / "42_story_x.md").write_text("x")
    with hypercorn(tmp_path) as process:
        # Hypercorn logs this once the lifespan (hub and watcher) has started.
        yield process, process.wait_for(RUNNING).group(1)


def events_until(url: str, done: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
    """The buffer (``GET /api/events?since=0``) once ``done(events)`` holds.

    Between reads the server's long-poll does the waiting: it answers as soon
    as anything newer than what we saw is stored.
    """
    deadline = time.monotonic() + EVENT_TIMEOUT_S
    while True:
        response = httpx.get(f"{url}/api/events", params={"since": "0"}, timeout=10)
        events: list[dict[str, Any]] = response.json()
        if done(events):
            return events
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"not there within {EVENT_TIMEOUT_S} s: {events}"
        newer = {"since": response.headers["X-Events-Latest-Ms"], "wait": f"{remaining:.3f}"}
        httpx.get(f"{url}/api/events", params=newer, timeout=remaining + 5)


def ingest(url: str, events: list[dict[str, str]]) -> httpx.Response:
    """``POST /api/events`` with the ingest token."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    return httpx.post(f"{url}/api/events", json=events, headers=headers, timeout=10)


# --- the same behaviour as events-trio serve -----------------------------------


def test_api_events_answers_with_the_buffer_and_its_headers(
    server: tuple[CliProcess, str],
) -> None:
    _, url = server
    response = httpx.get(f"{url}/api/events", params={"since": "0"}, timeout=10)
    assert (response.status_code, response.content) == (200, b"[]")
    assert response.headers["Content-Type"] == "application/json"
    assert "X-Events-Missed" not in response.headers  # absent: nothing missed
    assert response.headers["X-Events-Wait-Max"] == "30"
    assert response.headers["X-Events-Instance"]


def test_buffer_keeps_the_newest_capacity_events(server: tuple[CliProcess, str]) -> None:
    _, url = server
    stories = ["1_a", "2_b", "3_c", "4_d"]
    failures = [{"type": "merge_failure", "story_id": s, "reason": "conflict"} for s in stories]
    assert ingest(url, failures).status_code == 202
    events = events_until(url, lambda got: bool(got) and got[-1]["story_id"] == "4_d")
    assert [e["story_id"] for e in events] == stories[1:]  # EVENTS_TRIO_CAPACITY=3


def test_bad_since_is_a_400_json_error(server: tuple[CliProcess, str]) -> None:
    _, url = server
    response = httpx.get(f"{url}/api/events", params={"since": "abc"}, timeout=10)
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert (body["error"], body["parameter"]) == ("invalid_parameter", "since")


def test_ingested_event_is_stored_and_served(server: tuple[CliProcess, str]) -> None:
    _, url = server
    posted = ingest(
        url, [{"type": "merge_failure", "story_id": "42_story_x", "reason": "merge conflict"}]
    )
    assert (posted.status_code, posted.json()) == (202, {"accepted": 1})
    assert [(e["type"], e["story_id"], e["reason"]) for e in events_until(url, bool)] == [
        ("merge_failure", "42_story_x", "merge conflict")
    ]


def test_moved_file_is_served_as_a_stage_transition(
    server: tuple[CliProcess, str], tmp_path: Path
) -> None:
    _, url = server
    stages = tmp_path / "pipeline"
    os.rename(stages / "2_current" / "42_story_x.md", stages / "3_qa" / "42_story_x.md")
    assert [
        (e["type"], e["story_id"], e["from_stage"], e["to_stage"]) for e in events_until(url, bool)
    ] == [("stage_transition", "42_story_x", "2_current", "3_qa")]


def test_sigterm_stops_the_hub_and_exits_zero(server: tuple[CliProcess, str]) -> None:
    process, _ = server
    assert process.stop() == 0
    process.wait_for(HUB_STOPPED)


def test_missing_pipeline_is_created_with_default_stages(tmp_path: Path) -> None:
    with hypercorn(tmp_path) as process:
        process.wait_for(RUNNING)
        stages = sorted(p.name for p in (tmp_path / "pipeline").iterdir())
        assert process.stop() == 0
    assert stages == list(DEFAULT_STAGES)


# --- one process owns one buffer -------------------------------------------------


def test_second_worker_refuses_and_hypercorn_exits(tmp_path: Path) -> None:
    port = free_port()
    with hypercorn(tmp_path, "--workers", "2", port=port) as process:
        process.wait_for(REFUSAL)
        # Raises if Hypercorn keeps running. Not its exit code: Hypercorn 0.18
        # reports 0 after a worker failed (run.py overwrites the failed
        # worker's code with those of the workers it then terminates).
        process.proc.wait(20)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/api/events", timeout=10)


def _claim(lock_dir: Path, results: Queue[bool], release: Event) -> None:
    # Runs in a spawned child, as a Hypercorn worker does.
    from events_trio.server.door import claim_single_worker

    results.put(claim_single_worker(lock_dir))
    release.wait(30)


def test_worker_claim_excludes_a_sibling_until_the_holder_exits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [name for name in os.environ if name.startswith("EVENTS_TRIO_")]:
        monkeypatch.delenv(name)  # each child builds the app from the environment
    context = multiprocessing.get_context("spawn")
    results: Queue[bool] = context.Queue()
    hold, go = context.Event(), context.Event()
    go.set()
    children: list[BaseProcess] = []

    def claim(release: Event) -> bool:
        """A new child of this process claims; it exits once ``release`` is set."""
        child = context.Process(target=_claim, args=(tmp_path, results, release))
        children.append(child)
        child.start()
        return results.get(timeout=30)

    try:
        first = claim(hold)
        second = claim(go)
        hold.set()
        children[0].join(30)
        third = claim(go)
    finally:
        hold.set()
        for child in children:
            child.join(30)
    assert (first, second, third) == (True, False, True)


def test_process_started_directly_always_claims(tmp_path: Path) -> None:
    code = (
        "from pathlib import Path; from events_trio.server.door import claim_single_worker as c; "
        f"print(c(Path({str(tmp_path)!r})), c(Path({str(tmp_path)!r})))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTS_TRIO_")}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert result.stdout == "True True\n"


#: Imports the door, then prints what an import must not have changed.
_IMPORT_PROBE: Final = """
import logging, os, sys
import hypercorn.trio.run as run
before = run.TCPServer
import events_trio.asgi
root = logging.getLogger()
print(run.TCPServer is before, root.handlers == [], root.level == logging.WARNING,
      logging.getLogger("events_trio").handlers == [], sorted(os.listdir(".")))
"""


def test_importing_the_door_touches_nothing(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("EVENTS_TRIO_")},
        # Were these read at import, the door would create the directory.
        "EVENTS_TRIO_PIPELINE": str(tmp_path / "pipeline"),
        "EVENTS_TRIO_LOG_LEVEL": "debug",
    }
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env=env,
        cwd=tmp_path,
    )
    assert result.stdout == "True True True True []\n"
    assert result.stderr == ""
