"""Latency of the pipeline watcher: file move -> stage_transition in the buffer.

Runs an :class:`~events_trio.server.hub.EventHub` with a
:class:`~events_trio.sources.watcher.PipelineWatcher` on a temporary pipeline, moves
one file at a time between two stages and times each move from just before
``os.rename`` to the moment the buffer stores the event (a buffer listener
takes the timestamp, so no polling adds to the figure).

Usage: ``python benchmarks/bench_watcher.py [--moves N]`` (target: p50 < 200 ms).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Final

import trio

from events_trio.server.hub import EventHub
from events_trio.sources.watcher import DEFAULT_STAGES, PipelineWatcher

DEFAULT_MOVES: Final = 200
TARGET_P50_MS: Final = 200.0
MOVE_TIMEOUT_S: Final = 10.0


def percentile(sorted_ms: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    index = min(len(sorted_ms) - 1, max(0, round(fraction * len(sorted_ms)) - 1))
    return sorted_ms[index]


async def measure(root: Path, moves: int) -> list[float]:
    """Move one item back and forth ``moves`` times; latency of each in ms."""
    for stage in DEFAULT_STAGES:
        (root / stage).mkdir(parents=True)
    (root / "2_current" / "1_bench.md").write_text("bench")
    hub = EventHub(capacity=moves + 10)
    stored_at: list[float] = []
    arrived = trio.Event()

    def on_push() -> None:
        stored_at.append(time.perf_counter())
        arrived.set()

    hub.buffer.add_listener(on_push)
    latencies = []
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run, [PipelineWatcher(root)])
        stages = ("2_current", "3_qa")
        for n in range(moves):
            src, dst = stages[n % 2], stages[(n + 1) % 2]
            arrived = trio.Event()
            started = time.perf_counter()
            os.rename(root / src / "1_bench.md", root / dst / "1_bench.md")
            with trio.fail_after(MOVE_TIMEOUT_S):
                await arrived.wait()
            latencies.append((stored_at[-1] - started) * 1000)
        hub.stop()
    return latencies


def report(latencies: list[float]) -> str:
    """A small table of the figures."""
    ordered = sorted(latencies)
    p50 = percentile(ordered, 0.50)
    rows = [
        ("moves", f"{len(ordered)}"),
        ("p50", f"{p50:.1f} ms"),
        ("p90", f"{percentile(ordered, 0.90):.1f} ms"),
        ("p99", f"{percentile(ordered, 0.99):.1f} ms"),
        ("max", f"{ordered[-1]:.1f} ms"),
        ("mean", f"{statistics.fmean(ordered):.1f} ms"),
        ("target", f"p50 < {TARGET_P50_MS:g} ms: {'met' if p50 < TARGET_P50_MS else 'MISSED'}"),
    ]
    lines = ["file move -> event in buffer", "-" * 36]
    lines += [f"{name:<8}{value:>28}" for name, value in rows]
    return "\n".join(lines)


def run(moves: int = DEFAULT_MOVES) -> list[dict[str, object]]:
    """Rows for ``python -m benchmarks``."""
    with tempfile.TemporaryDirectory(prefix="bench-watcher-") as tmp:
        latencies = trio.run(measure, Path(tmp) / "pipeline", moves)
    ordered = sorted(latencies)
    p50 = percentile(ordered, 0.50)
    return [
        {
            "benchmark": f"file move -> event in buffer ({moves} moves)",
            "figure": f"p50 {p50:.1f} ms, p99 {percentile(ordered, 0.99):.1f} ms",
            "target": f"p50 < {TARGET_P50_MS:g} ms",
            "met": p50 < TARGET_P50_MS,
        }
    ]


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--moves", type=int, default=DEFAULT_MOVES, help="moves to time")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-watcher-") as tmp:
        latencies = trio.run(measure, Path(tmp) / "pipeline", args.moves)
    print(report(latencies))


if __name__ == "__main__":
    main()
