"""File move -> gateway sink line, through a real project server and a real gateway.

``events-trio serve`` watches a temporary pipeline directory; ``events-trio
gateway`` long-polls it with a console sink piped to us. One work item is
moved back and forth between ``2_current`` and ``3_qa``, one move at a
time, timed from just before ``os.rename`` to the moment its console line
is read. Every line is checked (project, story id and both stages, in the
direction of that move); nothing else may appear.

Run alone: ``python -m benchmarks bench_move``.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Final

from events_trio.sources.watcher import DEFAULT_STAGES

from .procs import Gateway, percentile

MOVES: Final = 100
TARGET_P50_MS: Final = 150.0
MOVE_TIMEOUT_S: Final = 10.0
STORY: Final = "1_story_bench"
EXPECTED: Final = {
    "3_qa": f"[mv] {STORY}  Current -> QA",
    "2_current": f"[mv] {STORY}  QA -> Current",
}
_SERVING: Final = re.compile(r"serving on (http://\S+)")


def start_server(pipeline: Path) -> tuple[subprocess.Popen[str], str]:
    """``events-trio serve`` on a free port watching ``pipeline``; (process, URL)."""
    exe = Path(sys.executable).parent / "events-trio"
    server = subprocess.Popen(
        [str(exe), "serve", "--port", "0", "--pipeline", str(pipeline), "--log-level", "info"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert server.stderr is not None
    for line in server.stderr:
        if match := _SERVING.search(line):
            # Keep draining its log so the server never blocks on a full pipe.
            _drain(server)
            return server, match.group(1)
    raise RuntimeError(f"project server exited with {server.wait()}")


def _drain(process: subprocess.Popen[str]) -> None:
    """Read and drop ``process``'s stderr in a background thread."""
    assert process.stderr is not None
    stream = process.stderr
    threading.Thread(target=lambda: [None for _ in stream], daemon=True).start()


def measure(root: Path) -> list[float]:
    """Latency (ms) of each move, from ``os.rename`` to its sink line."""
    pipeline = root / "pipeline"
    for stage in DEFAULT_STAGES:
        (pipeline / stage).mkdir(parents=True)
    (pipeline / "2_current" / f"{STORY}.md").write_text("bench\n")
    server, url = start_server(pipeline)
    try:
        with Gateway([("mv", url)], root, "move") as gateway:
            gateway.wait_up("long-poll")
            return [_move(pipeline, gateway, n) for n in range(MOVES)]
    finally:
        server.terminate()
        server.wait(30)


def _move(pipeline: Path, gateway: Gateway, n: int) -> float:
    src, dst = ("2_current", "3_qa") if n % 2 == 0 else ("3_qa", "2_current")
    started = time.time_ns()
    os.rename(pipeline / src / f"{STORY}.md", pipeline / dst / f"{STORY}.md")
    try:
        received, line = gateway.lines.get(timeout=MOVE_TIMEOUT_S)
    except queue.Empty:
        raise RuntimeError(f"move {n} ({src} -> {dst}) never reached the sink") from None
    if line != EXPECTED[dst]:
        raise RuntimeError(f"move {n} ({src} -> {dst}): unexpected sink line {line!r}")
    return (received - started) / 1e6


def run() -> list[dict[str, Any]]:
    """Rows for ``python -m benchmarks``."""
    with tempfile.TemporaryDirectory(prefix="bench-move-") as tmp:
        latencies = measure(Path(tmp))
    p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
    return [
        {
            "benchmark": f"file move -> console sink via server + gateway ({MOVES} moves)",
            "figure": f"p50 {p50:.1f} ms, p99 {p99:.1f} ms",
            "target": f"p50 <= {TARGET_P50_MS:g} ms",
            "met": p50 <= TARGET_P50_MS,
            "p50_ms": p50,
            "p99_ms": p99,
        }
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
