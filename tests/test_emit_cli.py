"""``events-trio emit`` in a subprocess against ``events-trio serve`` in another."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import EVENTS_TRIO, CliProcess, free_port

TOKEN = "emit-test-token"
TOKEN_ENV = "EVENTS_TRIO_INGEST_TOKEN"


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without an inherited ingest token."""
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    return {**env, **extra}


def emit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EVENTS_TRIO, "emit", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env or clean_env(),
        check=False,
    )


def served_events(url: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = httpx.get(f"{url}/api/events", timeout=10).json()
    return events


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ``serve`` process with ingest enabled by ``--ingest-token``."""
    cwd = tmp_path_factory.mktemp("serve")
    args = [EVENTS_TRIO, "serve", "--port", "0", "--no-watch", "--ingest-token", TOKEN]
    with CliProcess(args, cwd=cwd, env=clean_env()) as server:
        yield server.url()
        assert server.stop() == 0


def test_emitted_merge_failure_is_served(url: str) -> None:
    done = emit(
        "--url", url, "--token", TOKEN, "merge-failure", "42_story_x", "--reason", "conflict"
    )
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        "accepted: merge failure 42_story_x: conflict\n",
        "",
    )
    assert {"type": "merge_failure", "story_id": "42_story_x", "reason": "conflict"}.items() <= (
        served_events(url)[-1].items()
    )


def test_emit_takes_the_token_from_the_environment(url: str) -> None:
    done = emit(
        "--url",
        url,
        "story-blocked",
        "43_story_y",
        "--reason",
        "retries",
        env=clean_env(**{TOKEN_ENV: TOKEN}),
    )
    assert done.returncode == 0
    assert served_events(url)[-1]["type"] == "story_blocked"


def test_emitted_transition_is_served_as_stage_transition(url: str) -> None:
    done = emit(
        "--url",
        url,
        "--token",
        TOKEN,
        "transition",
        "44_story_z",
        "--from",
        "3_qa",
        "--to",
        "4_merge",
    )
    assert (done.returncode, done.stdout) == (
        0,
        "accepted: transition 44_story_z 3_qa -> 4_merge\n",
    )
    last = served_events(url)[-1]
    assert (last["type"], last["story_id"], last["from_stage"], last["to_stage"]) == (
        "stage_transition",
        "44_story_z",
        "3_qa",
        "4_merge",
    )


def test_emit_with_wrong_token_prints_the_server_message_and_fails(url: str) -> None:
    done = emit("--url", url, "--token", "nope", "merge-failure", "42_story_x", "--reason", "r")
    assert (done.returncode, done.stdout, done.stderr) == (
        1,
        "",
        "events-trio: error: 401: missing or invalid bearer token\n",
    )


def test_emit_to_a_server_without_ingest_prints_403(tmp_path: Path) -> None:
    args = [EVENTS_TRIO, "serve", "--port", "0", "--no-watch"]
    with CliProcess(args, cwd=tmp_path, env=clean_env()) as server:
        done = emit(
            "--url", server.url(), "--token", TOKEN, "story-blocked", "1_x", "--reason", "r"
        )
        assert server.stop() == 0
    assert (done.returncode, done.stderr) == (
        1,
        "events-trio: error: 403: ingest disabled: no ingest token configured\n",
    )


def test_emit_to_an_unreachable_server_prints_one_line() -> None:
    target = f"http://127.0.0.1:{free_port()}"
    done = emit("--url", target, "--token", TOKEN, "merge-failure", "42_x", "--reason", "r")
    assert (done.returncode, done.stdout, done.stderr) == (
        3,
        "",
        f"events-trio: error: cannot reach {target}/api/events: connection refused\n",
    )
