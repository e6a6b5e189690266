"""``events-trio gateway`` as a user runs it: subprocesses, signals, exit codes."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import httpx
import msgspec

from tests.support import EVENTS_TRIO, CliProcess, complete_lines, wait_for_file

TOKEN = "t0ken-for-tests"
DEADLINE_S = 20.0


def serve(tmp_path: Path) -> CliProcess:
    args = [EVENTS_TRIO, "serve", "--port", "0", "--no-watch", "--ingest-token", TOKEN]
    return CliProcess(args, cwd=tmp_path)


def gateway(tmp_path: Path, *extra: str) -> CliProcess:
    args = [EVENTS_TRIO, "gateway", "--port", "0", "--state-dir", str(tmp_path / "state"), *extra]
    return CliProcess(args, cwd=tmp_path)


def post(server_url: str, story: str) -> None:
    event = {"type": "merge_failure", "story_id": story, "reason": "conflict"}
    response = httpx.post(
        f"{server_url}/api/events",
        content=msgspec.json.encode(event),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    assert response.status_code < 300, response.text


def test_published_event_shows_as_a_console_line(tmp_path: Path) -> None:
    with serve(tmp_path) as server, gateway(tmp_path, "--project", f"billing={server.url()}") as gw:
        gw.wait_for(r"\[billing\] reading in stream mode$")
        post(server.url(), "42_story_x")
        gw.wait_for(r"^\[billing\] merge failed: 42_story_x — conflict$", stdout=True)


def test_sigterm_stops_the_gateway_with_exit_0(tmp_path: Path) -> None:
    with gateway(tmp_path, "--project", "billing=http://127.0.0.1:9") as gw:
        gw.url()
        assert gw.stop(signal.SIGTERM) == 0


def test_bad_config_is_a_one_line_error_and_exit_1(tmp_path: Path) -> None:
    (tmp_path / "gateway.toml").write_text('[[project]]\nname = "billing"\nurl = "nope"\n')
    result = subprocess.run(
        [EVENTS_TRIO, "gateway", "--config", "gateway.toml"],
        cwd=tmp_path,
        check=False,
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
    )
    assert (result.returncode, result.stderr.splitlines()) == (
        1,
        [
            (
                "events-trio: error: gateway.toml:3: project 'billing': "
                "url must start with http:// or https://"
            )
        ],
    )


def test_gateway_without_projects_is_an_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [EVENTS_TRIO, "gateway"],
        cwd=tmp_path,
        check=False,
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
    )
    assert (result.returncode, result.stderr) == (
        1,
        "events-trio: error: no projects: give --config FILE or --project NAME=URL\n",
    )


def jsonl_stories(path: Path) -> list[str]:
    return [
        msgspec.json.decode(line)["story_id"]
        for line in complete_lines(path)
        if b'"gateway_notice"' not in line
    ]


def test_gateway_killed_with_sigkill_loses_and_repeats_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    expected = [f"{n}_story_k" for n in range(60)]
    with serve(tmp_path) as server:
        flags = ("--project", f"billing={server.url()}", "--sink", f"jsonl:{out}")
        with gateway(tmp_path, *flags) as gw:
            gw.wait_for(r"\[billing\] reading in stream mode$")
            for story in expected[:40]:
                post(server.url(), story)
                if story == "20_story_k":
                    gw.proc.kill()  # SIGKILL mid-stream
        with gateway(tmp_path, *flags) as gw:
            for story in expected[40:]:
                post(server.url(), story)
            wait_for_file(out, lambda: len(jsonl_stories(out)) >= len(expected))
            assert gw.stop() == 0
    assert jsonl_stories(out) == expected
