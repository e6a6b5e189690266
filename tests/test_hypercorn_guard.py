"""The Hypercorn patch refuses to install, loudly, when Hypercorn changed under it.

``hypercorn_fix.ContainedTCPServer`` overrides private methods of Hypercorn's
``TCPServer``. If a release renamed one, the override would silently stop
applying (no crash containment, no header deadline): these tests make such
an upgrade fail CI, and the server refuse to start instead of running
unprotected.
"""

from __future__ import annotations

import subprocess
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from hypercorn.trio import run as hypercorn_run
from hypercorn.trio.tcp_server import TCPServer

from events_trio.core.errors import StartupError
from events_trio.hosting.hypercorn_fix import ContainedTCPServer, check_hypercorn, install
from tests.support import EVENTS_TRIO

OVERRIDDEN = ["run", "protocol_send", "_read_data", "_initiate_server_close"]


def test_the_installed_hypercorn_has_every_name_the_patch_relies_on() -> None:
    assert check_hypercorn() == []


def test_install_swaps_the_worker_class() -> None:
    install()
    assert hypercorn_run.TCPServer is ContainedTCPServer  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", OVERRIDDEN)
def test_a_renamed_method_is_reported_by_name(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.delattr(TCPServer, name)
    assert f"TCPServer.{name} is missing" in check_hypercorn()


def test_a_changed_signature_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    async def read_data(self: Any, max_bytes: int) -> None: ...

    monkeypatch.setattr(TCPServer, "_read_data", read_data)
    assert check_hypercorn() == [
        "TCPServer._read_data('self', 'max_bytes') is not TCPServer._read_data('self',)"
    ]


def test_a_method_that_stopped_intercepting_raw_data_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def protocol_send(self: Any, event: Any) -> None:
        async with self.send_lock:
            await self.stream.send_all(event.data)

    monkeypatch.setattr(TCPServer, "protocol_send", protocol_send)
    assert check_hypercorn() == ["TCPServer.protocol_send no longer uses RawData, Updated"]


def test_a_renamed_module_global_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(hypercorn_run, "TCPServer")
    assert "hypercorn.trio.run.TCPServer is missing" in check_hypercorn()


def test_install_refuses_and_leaves_hypercorn_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hypercorn_run, "TCPServer", TCPServer)
    monkeypatch.delattr(TCPServer, "_read_data")
    with pytest.raises(
        StartupError,
        match=r"^hypercorn \S+ is not supported \(the connection patch needs "
        r"hypercorn>=0\.18,<0\.19\): TCPServer\._read_data is missing$",
    ):
        install()
    assert hypercorn_run.TCPServer is TCPServer  # type: ignore[attr-defined]


def test_serve_refuses_to_start_unprotected(tmp_path: Path) -> None:
    # A site hook that removes one overridden method, as a Hypercorn release might.
    (tmp_path / "sitecustomize.py").write_text(
        "import hypercorn.trio.tcp_server as t\ndel t.TCPServer._read_data\n"
    )
    result = subprocess.run(
        [EVENTS_TRIO, "serve", "--port", "0", "--no-watch"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    expected = (
        f"events-trio: error: hypercorn {version('hypercorn')} is not supported (the connection "
        "patch needs hypercorn>=0.18,<0.19): TCPServer._read_data is missing"
    )
    assert result.stderr.splitlines() == [expected]
