"""The installed ``events-trio`` command, run in a subprocess."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from events_trio.hosting.timeouts import DEFAULT_GRACEFUL_TIMEOUT_S
from events_trio.server.config import DEFAULT_DRAIN_S
from tests.support import EVENTS_TRIO, CliProcess


def test_serve_starts_logs_its_url_and_answers(tmp_path: Path) -> None:
    with CliProcess([EVENTS_TRIO, "serve", "--port", "0"], cwd=tmp_path) as server:
        url = server.url()
        response = httpx.get(f"{url}/api/events", params={"since": "0"}, timeout=10)
        assert (response.status_code, response.content) == (200, b"[]")
        assert server.stop() == 0


def test_python_dash_m_serves_too(tmp_path: Path) -> None:
    args = [sys.executable, "-m", "events_trio", "serve", "--port", "0"]
    with CliProcess(args, cwd=tmp_path) as server:
        assert httpx.get(f"{server.url()}/healthz", timeout=10).json()["status"] == "ok"
        assert server.stop(signal.SIGINT) == 0


def test_sigterm_with_open_long_poll_exits_zero_without_waiting_for_the_poll(
    tmp_path: Path,
) -> None:
    args = [EVENTS_TRIO, "serve", "--port", "0", "--log-level", "debug"]
    with CliProcess(args, cwd=tmp_path) as server:
        url = server.url()
        answers: list[httpx.Response] = []
        poll = threading.Thread(
            target=lambda: answers.append(
                httpx.get(f"{url}/api/events", params={"since": "0", "wait": "30"}, timeout=40)
            )
        )
        poll.start()
        server.wait_for(r"long-poll parked after 0 for up to 30 s")
        start = time.monotonic()
        assert server.stop(signal.SIGTERM) == 0
        # Drain and grace (1.25 s) plus teardown on a busy machine: far below the 30 s wait.
        assert time.monotonic() - start < DEFAULT_DRAIN_S + DEFAULT_GRACEFUL_TIMEOUT_S + 5.0 < 30
        poll.join(5)
        assert len(answers) == 1
        assert (answers[0].status_code, answers[0].content) == (200, b"[]")


def test_port_in_use_is_a_one_line_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [EVENTS_TRIO, "serve", "--port", str(port), "--log-level", "error"],
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    assert result.returncode != 0
    assert result.stderr.strip() == (
        f"events-trio: error: port {port} on 127.0.0.1 is already in use"
    )


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--capacity", "0", "capacity must be at least 1, got 0"),
        ("--port", "70000", "port must be 0..65535, got 70000"),
    ],
)
def test_bad_settings_are_one_line_errors(flag: str, value: str, message: str) -> None:
    result = subprocess.run(
        [EVENTS_TRIO, "serve", flag, value],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert result.returncode == 2 or result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].endswith(message)


def test_help_explains_serve() -> None:
    out = subprocess.run(
        [EVENTS_TRIO, "serve", "--help"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    for flag in ("--host", "--port", "--capacity", "--log-level"):
        assert flag in out
    assert "(default: 7070)" in out
    assert "/api/events" in out


def test_version() -> None:
    out = subprocess.run(
        [EVENTS_TRIO, "--version"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    assert out.startswith("events-trio ")
