"""The package's import rules (``[tool.importlinter]`` in pyproject.toml) hold.

The layers run cli > server | gateway > hosting > sources > wire > core
(docs/architecture.md); a back-edge, or a web framework in the core or the
wire contract, fails here as it fails ``nox -s lint``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support import EXE_DIR

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_are_kept() -> None:
    result = subprocess.run(
        [str(EXE_DIR / "lint-imports"), "--no-cache"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
