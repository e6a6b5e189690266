"""Gateway at scale: 1,000 registered projects, 200 events/s in total, then idle.

The 1,000 project servers are simulated by ``benchmarks.sim_servers``: one
Hypercorn with 1,000 binds, each port routed to its own EventHub behind the
complete project-server stack. The gateway is the real ``events-trio
gateway`` process (console sink piped to us) long-polling all of them.

* Load: 200 events/s round robin (0.2 per project per second) for
  ``LOAD_S``; publish -> console line p50/p99 over every event (each line
  checked, every event exactly once), gateway CPU % and RSS.
* Idle: no events for one long-poll wait (28 s, so each poller re-polls
  once whatever its phase); gateway CPU % and server requests/s.

Run alone: ``python -m benchmarks bench_scale``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Final

from events_trio.gateway.config import DEFAULT_LONG_POLL_WAIT_S

from .bench_gateway import deliver_round
from .procs import CpuMeter, Gateway, SimServers, percentile, rss_mb

PROJECTS: Final = 1_000
RATE_PER_S: Final = 200.0
LOAD_S: Final = 10.0
IDLE_WINDOW_S: Final = DEFAULT_LONG_POLL_WAIT_S
TARGET_P99_MS: Final = 250.0
TARGET_IDLE_CPU_PCT: Final = 5.0
TARGET_RSS_MB: Final = 200.0


def measure(workdir: Path) -> dict[str, Any]:
    """Start-up, load and idle figures of one gateway over ``PROJECTS`` projects."""
    with SimServers(PROJECTS) as servers:
        projects = [(f"p{i}", url) for i, url in enumerate(servers.urls)]
        started = time.monotonic()
        with Gateway(projects, workdir, "scale") as gateway:
            gateway.wait_up("long-poll")
            up_s = time.monotonic() - started
            time.sleep(2.0)  # the start-up burst is not the steady state
            load = deliver_round(servers, gateway, RATE_PER_S, LOAD_S, drain_s=30.0)
            rss_load = rss_mb(gateway.proc.pid)
            time.sleep(1.0)
            servers.requests()
            meter = CpuMeter(gateway.proc.pid)
            time.sleep(IDLE_WINDOW_S)
            idle_cpu = meter.percent()
            idle_requests = servers.requests()
            return {
                "up_s": up_s,
                "latencies": load["latencies"],
                "load_cpu_pct": load["cpu_pct"],
                "load_requests": load["requests"],
                "rss_mb": rss_load,
                "peak_rss_mb": rss_mb(gateway.proc.pid, "VmHWM"),
                "idle_cpu_pct": idle_cpu,
                "idle_requests_per_s": idle_requests / IDLE_WINDOW_S,
            }


def run() -> list[dict[str, Any]]:
    """Rows for ``python -m benchmarks``."""
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        m = measure(Path(tmp))
    latencies = m.pop("latencies")
    p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
    where = f"{PROJECTS:,} projects"
    return [
        {
            "benchmark": f"gateway, {where}, {RATE_PER_S:g} ev/s: publish -> console "
            f"({len(latencies)} events)",
            "figure": f"p50 {p50:.1f} ms, p99 {p99:.1f} ms",
            "target": f"p99 <= {TARGET_P99_MS:g} ms",
            "met": p99 <= TARGET_P99_MS,
            "p50_ms": p50,
            "p99_ms": p99,
        },
        {
            "benchmark": f"gateway, {where}, {RATE_PER_S:g} ev/s: CPU, requests",
            "figure": f"{m['load_cpu_pct']:.0f}% of a core, "
            f"{m['load_requests'] / len(latencies):.2f} requests per event",
            "target": None,
            "met": None,
        },
        {
            "benchmark": f"gateway RSS, {where} (after load; peak)",
            "figure": f"{m['rss_mb']:.0f} MB; peak {m['peak_rss_mb']:.0f} MB",
            "target": f"<= {TARGET_RSS_MB:g} MB",
            "met": max(m["rss_mb"], m["peak_rss_mb"]) <= TARGET_RSS_MB,
        },
        {
            "benchmark": f"gateway idle, {where}: CPU",
            "figure": f"{m['idle_cpu_pct']:.1f}% of a core",
            "target": f"<= {TARGET_IDLE_CPU_PCT:g}%",
            "met": m["idle_cpu_pct"] <= TARGET_IDLE_CPU_PCT,
        },
        {
            "benchmark": f"gateway idle, {where}: requests",
            "figure": f"{m['idle_requests_per_s']:.1f} requests/s "
            f"(all projects up after {m['up_s']:.1f} s)",
            "target": None,
            "met": None,
            **m,
        },
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
