"""``--log-format json``: one JSON object per line, no secrets (subprocesses)."""

from __future__ import annotations

import signal
from pathlib import Path

import msgspec

from tests.support import EVENTS_TRIO, CliProcess, free_port

SECRET = "s3cret-never-logged"


def json_lines(lines: list[str]) -> list[dict[str, str]]:
    return [msgspec.json.decode(line) for line in lines]


def test_serve_logs_one_json_object_per_line(tmp_path: Path) -> None:
    args = [EVENTS_TRIO, "serve", "--port", "0", "--no-watch", "--log-format", "json"]
    with CliProcess(args, cwd=tmp_path, env={"EVENTS_TRIO_INGEST_TOKEN": SECRET}) as server:
        server.url()
        assert server.stop(signal.SIGTERM) == 0
    records = json_lines(server.lines)
    assert {tuple(record) for record in records} == {("ts", "level", "logger", "message")}
    assert any(r["message"].startswith("events-trio serving on http://") for r in records)
    assert all(SECRET not in line for line in server.lines)


def test_gateway_logs_json_without_project_tokens(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[[project]]\nname = "gone"\nurl = "http://127.0.0.1:{free_port()}"\ntoken = "{SECRET}"\n'
    )
    args = [EVENTS_TRIO, "gateway", "--config", str(config), "--port", "0", "--log-format", "json"]
    args += ["--state-dir", str(tmp_path / "state")]
    with CliProcess(args, cwd=tmp_path) as gateway:
        gateway.url()
        gateway.wait_for(r'"message":"\[gone\] unreachable')
        assert gateway.stop(signal.SIGTERM) == 0
    records = json_lines(gateway.lines)
    assert {r["level"] for r in records} <= {"debug", "info", "warning", "error"}
    assert all(SECRET not in line for line in gateway.lines + gateway.out)
