"""End to end: publish on a project server -> line on the gateway's console sink.

Long-poll against interval polling at 2 s (what the Rust gateway does), in
alternating rounds (long-poll, interval, long-poll, interval) against the
same simulated servers (``benchmarks.sim_servers``: 100 projects, one
process). Each round starts a fresh ``events-trio gateway`` (its own
process, console sink piped to us), waits until every project is up in the
round's mode, publishes 200 events/s round robin for a few seconds and
reads the sink's lines as they are written. Every line is checked: it must
name the project the event was published on, and every published event
must arrive exactly once.

Figures:

* publish -> console line p50/p99, per mode, over all its rounds;
* requests per delivered event (server requests from the first publish to
  the last line, over events delivered);
* requests per idle project-hour: after the last round of each mode, no
  events for a fixed window, server requests counted. The long-poll window
  is one full ``wait`` (28 s): pollers re-poll once per wait, and a window
  of exactly one period counts each poller once whatever its phase;
* gateway CPU % (100 = one core) while delivering.

Run alone: ``python -m benchmarks bench_gateway``.
"""

from __future__ import annotations

import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Final

from events_trio.gateway.config import DEFAULT_LONG_POLL_WAIT_S, DEFAULT_POLL_INTERVAL_S

from .procs import CpuMeter, Gateway, SimServers, percentile

PROJECTS: Final = 100
RATE_PER_S: Final = 200.0
ROUND_S: Final = 3.0
MODES: Final = ("long-poll", "interval")
ROUNDS_PER_MODE: Final = 2
#: Idle windows: one long-poll wait; several interval periods.
IDLE_WINDOW_S: Final = {"long-poll": DEFAULT_LONG_POLL_WAIT_S, "interval": 10.0}
TARGET_P50_MS: Final = 20.0
TARGET_P99_MS: Final = 100.0
TARGET_RATIO: Final = 10.0
LINE: Final = re.compile(r"^\[p(\d+)\] merge failed: (\d+)_story_(\d+) — bench$")


def latencies_of(lines: list[tuple[int, str]], published: int, projects: int) -> list[float]:
    """Publish -> line latency (ms) of each line, after checking every line.

    Raises:
        RuntimeError: a line is malformed, names the wrong project, or an
            event is missing or delivered twice.
    """
    latencies: list[float] = []
    seen: set[int] = set()
    for received_ns, line in lines:
        match = LINE.match(line)
        if match is None:
            raise RuntimeError(f"unexpected sink line: {line!r}")
        project, n, published_ns = map(int, match.groups())
        if project != n % projects or n in seen:
            raise RuntimeError(f"wrong or repeated line: {line!r}")
        seen.add(n)
        latencies.append((received_ns - published_ns) / 1e6)
    if seen != set(range(published)):
        raise RuntimeError(f"{published - len(seen)} of {published} events not delivered")
    return latencies


def deliver_round(
    servers: SimServers, gateway: Gateway, rate: float, seconds: float, drain_s: float
) -> dict[str, Any]:
    """Publish, read every line, count requests and gateway CPU."""
    servers.requests()  # reset the counter
    meter = CpuMeter(gateway.proc.pid)
    published = int(servers.command("publish", rate, seconds)["published"])
    lines = gateway.collect(published, timeout_s=drain_s)
    cpu = meter.percent()
    requests = servers.requests()
    extra = gateway.collect(1, timeout_s=0.2)  # nothing may follow (duplicates)
    latencies = latencies_of(lines + extra, published, len(servers.urls))
    return {"latencies": latencies, "requests": requests, "cpu_pct": cpu}


def idle_requests(servers: SimServers, window_s: float) -> int:
    """Requests the servers get in ``window_s`` without any event."""
    time.sleep(1.0)  # let the last round's responses settle
    servers.requests()
    time.sleep(window_s)
    return servers.requests()


def measure(workdir: Path) -> dict[str, dict[str, Any]]:
    """All rounds, alternating modes; figures per mode."""
    results: dict[str, dict[str, Any]] = {
        m: {"latencies": [], "requests": 0, "cpu": [], "idle": 0} for m in MODES
    }
    with SimServers(PROJECTS) as servers:
        projects = [(f"p{i}", url) for i, url in enumerate(servers.urls)]
        for round_no in range(ROUNDS_PER_MODE):
            for mode in MODES:
                servers.command("mode", mode)
                with Gateway(projects, workdir, f"{mode}-{round_no}") as gateway:
                    gateway.wait_up(mode)
                    got = deliver_round(
                        servers, gateway, RATE_PER_S, ROUND_S, DEFAULT_POLL_INTERVAL_S + 10
                    )
                    result = results[mode]
                    result["latencies"] += got["latencies"]
                    result["requests"] += got["requests"]
                    result["cpu"].append(got["cpu_pct"])
                    if round_no == ROUNDS_PER_MODE - 1:
                        result["idle"] = idle_requests(servers, IDLE_WINDOW_S[mode])
    return results


def _summary(result: dict[str, Any]) -> dict[str, float]:
    latencies = result["latencies"]
    return {
        "events": len(latencies),
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "requests_per_event": result["requests"] / len(latencies),
        "cpu_pct": statistics.median(result["cpu"]),
    }


def run() -> list[dict[str, Any]]:
    """Rows for ``python -m benchmarks``."""
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        results = measure(Path(tmp))
    lp, iv = _summary(results["long-poll"]), _summary(results["interval"])
    idle = {m: results[m]["idle"] / PROJECTS * 3600 / IDLE_WINDOW_S[m] for m in MODES}
    speedup = iv["p50_ms"] / lp["p50_ms"]
    fewer = idle["interval"] / idle["long-poll"] if idle["long-poll"] else float("inf")
    where = f"{PROJECTS} projects, {RATE_PER_S:g} ev/s"
    return [
        {
            "benchmark": f"publish -> console sink, long-poll ({lp['events']:.0f} events, {where})",
            "figure": f"p50 {lp['p50_ms']:.1f} ms, p99 {lp['p99_ms']:.1f} ms",
            "target": f"p50 <= {TARGET_P50_MS:g} ms, p99 <= {TARGET_P99_MS:g} ms",
            "met": lp["p50_ms"] <= TARGET_P50_MS and lp["p99_ms"] <= TARGET_P99_MS,
            **{f"long_poll_{k}": v for k, v in lp.items()},
        },
        {
            "benchmark": f"publish -> console sink, interval 2 s ({iv['events']:.0f} events)",
            "figure": f"p50 {iv['p50_ms']:.0f} ms, p99 {iv['p99_ms']:.0f} ms",
            "target": None,
            "met": None,
            **{f"interval_{k}": v for k, v in iv.items()},
        },
        {
            "benchmark": "p50 interval / p50 long-poll",
            "figure": f"{speedup:.0f}x lower with long-poll",
            "target": f">= {TARGET_RATIO:g}x",
            "met": speedup >= TARGET_RATIO,
        },
        {
            "benchmark": "requests per delivered event, long-poll vs interval",
            "figure": f"{lp['requests_per_event']:.2f} vs {iv['requests_per_event']:.2f}",
            "target": None,
            "met": None,
        },
        {
            "benchmark": "requests per idle project-hour, long-poll vs interval",
            "figure": f"{idle['long-poll']:.0f} vs {idle['interval']:.0f} = {fewer:.1f}x fewer",
            "target": f">= {TARGET_RATIO:g}x fewer",
            "met": fewer >= TARGET_RATIO,
            "idle_requests": {m: results[m]["idle"] for m in MODES},
        },
        {
            "benchmark": f"gateway CPU while delivering ({where})",
            "figure": f"long-poll {lp['cpu_pct']:.0f}% vs interval {iv['cpu_pct']:.0f}% of a core",
            "target": None,
            "met": None,
        },
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
