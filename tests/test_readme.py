"""The README tells the truth: its commands and its Python example work."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import httpx

from tests.support import CliProcess

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def test_readme_test_command_is_ci_and_installs_then_runs_pytest() -> None:
    assert code_blocks("sh")[1].strip() == "bash .ci/run"
    ci_lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.strip()]
    assert "apt-get install" in "\n".join(ci_lines)  # chromium for the browser tests
    # Exactly the locked versions (hashes checked), then the package without resolving again.
    assert ci_lines[-4:] == [
        "python3 -m venv .venv",
        ".venv/bin/pip install -q --require-hashes -r requirements.lock",
        ".venv/bin/pip install -q --no-deps --no-build-isolation -e .",
        ".venv/bin/python -m pytest",
    ]


def test_main_command_installs_and_serves() -> None:
    main_command = code_blocks("sh")[0].strip()
    assert main_command == (
        "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/events-trio serve"
    )


def test_python_example_serves_the_published_event(tmp_path: Path) -> None:
    (example,) = code_blocks("python")
    script = tmp_path / "example.py"
    script.write_text(example)
    with CliProcess([sys.executable, str(script)], cwd=tmp_path) as process:
        url = process.wait_for(r"serving on (http://\S+)", stdout=True).group(1)
        events = httpx.get(f"{url}/api/events", params={"since": "0"}, timeout=10).json()
    assert [(e["type"], e["story_id"]) for e in events] == [
        ("merge_failure", "42_story_my_feature")
    ]
