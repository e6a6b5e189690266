"""Tokens never leak: not in logs (even at debug), error bodies, ``/api/projects``, ``--help``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

from tests.support import EVENTS_TRIO, CliProcess

READ = "rEaD-sEcReT-4711"
INGEST = "iNgEsT-sEcReT-4712"
GATEWAY_READ = "gAtEwAy-sEcReT-4713"
TOKENS = (READ, INGEST, GATEWAY_READ)
DEADLINE_S = 20.0


def exercise(server_url: str, gateway_url: str) -> list[bytes]:
    """Authorized and unauthorized requests to both processes; every body returned."""
    event = b'{"type":"merge_failure","story_id":"42_story_x","reason":"r"}'
    json = {"Content-Type": "application/json"}
    bodies = []
    for token in (None, "wrong", READ, INGEST):
        auth = {} if token is None else {"Authorization": f"Bearer {token}"}
        bodies.append(
            httpx.post(f"{server_url}/api/events", content=event, headers={**json, **auth}).content
        )
        bodies.append(httpx.get(f"{server_url}/api/events?since=x", headers=auth).content)
        bodies.append(httpx.get(f"{server_url}/api/events?since=0", headers=auth).content)
    for token in (None, "wrong", GATEWAY_READ):
        auth = {} if token is None else {"Authorization": f"Bearer {token}"}
        paths = ("/api/events?since=0", "/api/projects", "/healthz", "/nope")
        bodies.extend(httpx.get(f"{gateway_url}{path}", headers=auth).content for path in paths)
    return bodies


def test_tokens_appear_in_no_log_line_and_no_response_body(tmp_path: Path) -> None:
    serve_args = [EVENTS_TRIO, "serve", "--port", "0", "--no-watch", "--log-level", "debug"]
    serve_env = {"EVENTS_TRIO_READ_TOKEN": READ, "EVENTS_TRIO_INGEST_TOKEN": INGEST}
    (tmp_path / "gateway.toml").write_text("")
    with CliProcess(serve_args, cwd=tmp_path, env=serve_env) as server:
        server_url = server.url()
        (tmp_path / "gateway.toml").write_text(
            f'[[project]]\nname = "billing"\nurl = "{server_url}"\ntoken = "{READ}"\n'
        )
        gateway_args = [EVENTS_TRIO, "gateway", "--port", "0", "--log-level", "debug"]
        gateway_args += ["--config", "gateway.toml", "--state-dir", str(tmp_path / "state")]
        env = {"EVENTS_TRIO_GATEWAY_READ_TOKEN": GATEWAY_READ}
        with CliProcess(gateway_args, cwd=tmp_path, env=env) as gateway:
            gateway_url = gateway.url()
            gateway.wait_for(r"\[billing\] reading in stream mode$")
            bodies = exercise(server_url, gateway_url)
            gateway.wait_for(r"42_story_x", stdout=True)  # the event went all the way through
            assert gateway.stop() == 0
        assert server.stop() == 0
    captured = "\n".join(server.lines + server.out + gateway.lines + gateway.out)
    assert "merge failed" in captured  # debug output was really captured
    assert [token for token in TOKENS if token in captured] == []
    assert [body for body in bodies if any(token.encode() in body for token in TOKENS)] == []


def test_help_never_shows_a_token_from_the_environment() -> None:
    env = {
        "EVENTS_TRIO_READ_TOKEN": READ,
        "EVENTS_TRIO_INGEST_TOKEN": INGEST,
        "EVENTS_TRIO_GATEWAY_READ_TOKEN": GATEWAY_READ,
    }
    outputs = [
        subprocess.run(
            [EVENTS_TRIO, command, "--help"],
            capture_output=True,
            text=True,
            env={**env, "PATH": "/usr/bin:/bin"},
            check=True,
        ).stdout
        for command in ("serve", "gateway", "emit")
    ]
    assert all("--read-token" in out or "emit" in out for out in outputs)
    assert [token for token in TOKENS for out in outputs if token in out] == []
