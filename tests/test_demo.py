"""``events-trio demo`` in a subprocess: it starts, shows events, stops cleanly."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx

from tests.support import EVENTS_TRIO, CliProcess

URL = r"open (http://\S+/) "
CONSOLE_LINE = r"^\[(billing|search|mobile)\] \S"


def test_demo_serves_the_page_prints_events_and_cleans_up_on_sigterm(tmp_path: Path) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    args = [EVENTS_TRIO, "demo", "--rate", "10"]
    with CliProcess(args, cwd=tmp_path, env={"TMPDIR": str(temp)}) as demo:
        url = demo.wait_for(URL, stdout=True).group(1)
        assert [p.name[:17] for p in temp.iterdir()] == ["events-trio-demo-"]
        demo.wait_for(CONSOLE_LINE, stdout=True)
        page = httpx.get(url, timeout=10)
        assert (page.status_code, page.headers["content-type"]) == (
            200,
            "text/html; charset=utf-8",
        )
        assert demo.stop(signal.SIGTERM) == 0
    assert list(temp.iterdir()) == []


def test_demo_runs_the_asked_number_of_projects(tmp_path: Path) -> None:
    with CliProcess([EVENTS_TRIO, "demo", "--projects", "1"], cwd=tmp_path) as demo:
        url = demo.wait_for(URL, stdout=True).group(1)
        projects = httpx.get(f"{url}api/projects", timeout=10).json()
        assert [p["name"] for p in projects] == ["billing"]
        assert demo.stop(signal.SIGINT) == 0
