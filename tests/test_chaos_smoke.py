"""CI's chaos smoke: one minute of random faults (SQLite store), judged by the checker.

Runs ``python -m benchmarks.chaos`` as a subprocess, as ``nox -s chaos``
does: three project servers, a gateway with a JSON-lines and a webhook
sink, ingest and file moves, and a fixed seed whose schedule kills the
gateway and a project server twice each, stops the gateway, and cuts and
delays its links. Fails on any silent loss, order violation or excess
repeat (``benchmarks/checker.py``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Final

from benchmarks.chaos import SINK_BATCH
from benchmarks.checker import check_run

#: Its first minute: gateway kill x2, server kill x2, gateway SIGSTOP, link delay and cut.
SEED: Final = 6
ROOT: Final = Path(__file__).resolve().parent.parent
#: One minute of faults plus start-up and settling, on a busy 2-core machine.
RUN_TIMEOUT_S: Final = 600


def chaos(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "benchmarks.chaos", *args]
    return subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False
    )


def test_a_minute_of_chaos_loses_nothing_silently_repeats_little_and_keeps_order(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    result = chaos("--minutes", "1", "--store", "sqlite", "--seed", str(SEED), "--out", str(run))
    assert result.returncode == 0, result.stdout + result.stderr
    report = check_run(run, batch=SINK_BATCH)
    assert report.ok
    assert [len(sink.silent) for sink in report.sinks] == [0, 0]
    assert all(sink.acknowledged > 1000 for sink in report.sinks)  # real traffic was judged
    assert report.crashes >= 1
    assert {"gateway kill", "server kill"} <= set(report.faults)
    assert f"seed {SEED}" in result.stdout
    assert result.stdout.rstrip().splitlines()[-2] == "verdict: PASS"
