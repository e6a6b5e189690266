"""``events-trio gateway --store``: its flags, variables and TOML key, bad values, secrets."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from events_trio.gateway.store_url import redact
from tests.postgres import PgServer
from tests.support import EVENTS_TRIO, CliProcess

DEADLINE_S = 60


def run(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EVENTS_TRIO, "gateway", "--project", "p=http://127.0.0.1:9", *args],
        cwd=tmp_path,
        check=False,
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--store", "mysql://db/x"],
            (
                "events-trio: error: --store mysql://db/x: must be a postgresql://USER@HOST:PORT/"
                "DBNAME URL (without --store the gateway uses SQLite in --state-dir)"
            ),
        ),
        (
            ["--store", "postgresql://u:hunter2@db:99999/x"],
            (
                "events-trio: error: --store postgresql://u:***@db:99999/x: not a URL with a port "
                "0..65535 (postgresql://USER@HOST:PORT/DBNAME)"
            ),
        ),
        (
            ["--store", "postgresql://db"],
            "events-trio: error: --store postgresql://db: the URL needs a host and a database name",
        ),
        (
            ["--store", "postgresql://db/x", "--lease-ttl", "0.5"],
            "events-trio: error: lease TTL must be 1..3600 seconds, got 0.5",
        ),
    ],
)
def test_a_bad_store_or_lease_ttl_is_a_one_line_error(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = run(tmp_path, *args)
    assert (result.returncode, result.stderr.splitlines()) == (1, [message])


def test_the_store_comes_from_the_environment_too(tmp_path: Path) -> None:
    result = run(tmp_path, env={"EVENTS_TRIO_GATEWAY_STORE": "redis://x"})
    assert result.returncode == 1
    assert result.stderr.startswith(
        "events-trio: error: --store redis://x: must be a postgresql://"
    )


def test_the_store_comes_from_the_toml_file_too(tmp_path: Path) -> None:
    (tmp_path / "gateway.toml").write_text('[gateway]\nstore = "sqlite:///x"\n')
    result = run(tmp_path, "--config", "gateway.toml")
    assert (result.returncode, result.stderr.splitlines()) == (
        1,
        [
            (
                "events-trio: error: gateway.toml:1: [gateway]: --store sqlite:///x: must be a "
                "postgresql://USER@HOST:PORT/DBNAME URL (without --store the gateway uses SQLite in "
                "--state-dir)"
            )
        ],
    )


def test_a_password_in_the_store_url_is_never_logged_nor_served(
    tmp_path: Path, pg_server: PgServer, pg_url: str
) -> None:
    # The suite's server trusts loopback: any password is accepted, and must stay secret.
    with_password = pg_url.replace("postgres@", "postgres:hunter2@")
    args = ["gateway", "--project", "p=http://127.0.0.1:9", "--port", "0", "--state-dir", "s"]
    with CliProcess(
        [EVENTS_TRIO, *args], cwd=tmp_path, env={"EVENTS_TRIO_GATEWAY_STORE": with_password}
    ) as gateway:
        url = gateway.url()
        health = httpx.get(f"{url}/healthz", timeout=10)
        projects = httpx.get(f"{url}/api/projects", timeout=10)
        assert gateway.stop() == 0
    assert health.json()["store"] == "ok"
    assert "gateway_id" in health.json()
    for text in [*gateway.lines, health.text, projects.text]:
        assert "hunter2" not in text
    assert any("postgresql://postgres:***@127.0.0.1" in line for line in gateway.lines)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:pw@h:5/d", "postgresql://u:***@h:5/d"),
        (
            "postgresql://h/d?sslmode=require&password=pw",
            "postgresql://h/d?sslmode=require&password=***",
        ),
        ("postgresql://u@h/d", "postgresql://u@h/d"),
    ],
)
def test_a_store_url_is_shown_without_its_password(url: str, shown: str) -> None:
    assert redact(url) == shown
