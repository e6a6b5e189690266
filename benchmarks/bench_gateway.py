"""Gateway benchmark: 100 project servers, 200 events/s, long-poll vs interval polling.

Three processes, so the gateway's CPU is its own:

* **servers** (this script with ``--servers-child``): 100 project servers
  (hub + Quart app + Hypercorn each, port 0) and a publisher at the given
  total rate, round robin. Each story id carries its publish time in ns.
  In ``interval`` mode an ASGI wrapper makes every server look like the
  Rust original (``wait`` dropped, no ``X-Events-*`` headers), so the
  gateway falls back to interval polling (2 s).
* **gateway**: ``events-trio gateway --sink console`` with stdout piped.
* **driver** (this script): reads console lines as they are written and
  records publish -> line latency; samples the gateway's CPU from /proc.

Run: ``python benchmarks/bench_gateway.py`` (about 90 s).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Final

SERVERS: Final = int(os.environ.get("BENCH_SERVERS", "100"))
RATE_PER_S: Final = float(os.environ.get("BENCH_RATE", "200"))
DURATION_S: Final = float(os.environ.get("BENCH_DURATION_S", "20"))
SETTLE_S: Final = 4.0
_LINE: Final = re.compile(r"^\[p\d+\] merge failed: \d+_story_(\d+) — bench$")
_TICKS_PER_S: Final = os.sysconf("SC_CLK_TCK")


# --- servers child -------------------------------------------------------------


def _rust_like(app: Any, counter: list[int]) -> Any:
    """Drop ``wait`` and the ``X-Events-*`` headers: the server now looks like the Rust one."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            counter[0] += 1
            query = b"&".join(
                p for p in scope["query_string"].split(b"&") if not p.startswith(b"wait=")
            )
            scope = {**scope, "query_string": query}

        async def strip(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    h for h in message["headers"] if not h[0].lower().startswith(b"x-events-")
                ]
                message = {**message, "headers": headers}
            await send(message)

        await app(scope, receive, strip)

    return wrapped


def _counting(app: Any, counter: list[int]) -> Any:
    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            counter[0] += 1
        await app(scope, receive, send)

    return wrapped


async def _servers_child(count: int, mode: str, rate: float, duration_s: float) -> None:
    import trio
    from hypercorn.config import Config
    from hypercorn.trio import serve

    from events_trio import app as app_module
    from events_trio.events import MergeFailure
    from events_trio.guard import guard
    from events_trio.hub import EventHub

    def project_app(hub: EventHub) -> Any:
        # The full ASGI stack run_server serves (fast path for GET /api/events).
        create_asgi = getattr(app_module, "create_asgi", None)
        return create_asgi(hub) if create_asgi else guard(app_module.create_app(hub))

    requests = [0]
    wrap = _rust_like if mode == "interval" else _counting
    hubs: list[EventHub] = []
    urls: list[str] = []
    async with trio.open_nursery() as nursery:
        for _ in range(count):
            hub = EventHub()
            await nursery.start(hub.run)
            config = Config()
            config.bind = ["127.0.0.1:0"]
            config.accesslog = None
            config.graceful_timeout = 0.5
            config.loglevel = "WARNING"
            binds = await nursery.start(serve, wrap(project_app(hub), requests), config)
            hubs.append(hub)
            urls.append(binds[0])
        print(json.dumps(urls), flush=True)
        await trio.to_thread.run_sync(sys.stdin.readline)  # "go"
        requests[0] = 0
        start = trio.current_time()
        total = int(rate * duration_s)
        for n in range(total):
            await trio.sleep_until(start + n / rate)
            hubs[n % count].publish(MergeFailure(f"{n}_story_{time.time_ns()}", "bench"))
        elapsed = trio.current_time() - start
        print(json.dumps({"published": total, "requests_per_s": requests[0] / elapsed}), flush=True)
        await trio.to_thread.run_sync(sys.stdin.readline)  # "stop"
        nursery.cancel_scope.cancel()


# --- driver --------------------------------------------------------------------


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _wait_all_up(url: str, timeout_s: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            projects = httpx.get(f"{url}/api/projects").json()
            if projects and all(p["state"] == "up" for p in projects):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("projects did not come up")


def _run_mode(mode: str, workdir: Path) -> dict[str, Any]:
    script = Path(__file__).resolve()
    servers = subprocess.Popen(
        [sys.executable, str(script), "--servers-child", mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert servers.stdin is not None
    assert servers.stdout is not None
    urls = json.loads(servers.stdout.readline())
    config = workdir / f"{mode}.toml"
    config.write_text(
        "".join(f'[[project]]\nname = "p{i}"\nurl = "{u}"\n' for i, u in enumerate(urls))
    )
    exe = Path(sys.executable).parent / "events-trio"
    gateway = subprocess.Popen(
        [
            str(exe),
            "gateway",
            "--config",
            str(config),
            "--port",
            "0",
            "--log-level",
            "info",
            "--state-dir",
            str(workdir / f"state-{mode}"),
            "--sink",
            "console",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    latencies: list[float] = []
    url_holder: list[str] = []
    threading.Thread(target=_read_lines, args=(gateway, latencies), daemon=True).start()
    threading.Thread(target=_read_url, args=(gateway, url_holder), daemon=True).start()
    while not url_holder:
        if gateway.poll() is not None:
            raise RuntimeError(f"gateway exited with {gateway.returncode}")
        time.sleep(0.05)
    _wait_all_up(url_holder[0])
    cpu_start, wall_start = _cpu_s(gateway.pid), time.monotonic()
    servers.stdin.write("go\n")
    servers.stdin.flush()
    summary = json.loads(servers.stdout.readline())
    time.sleep(SETTLE_S)
    cpu = (_cpu_s(gateway.pid) - cpu_start) / (time.monotonic() - wall_start)
    gateway.terminate()
    gateway.wait(30)
    servers.stdin.write("stop\n")
    servers.stdin.flush()
    servers.wait(30)
    return {
        "mode": mode,
        "published": summary["published"],
        "delivered": len(latencies),
        "p50_ms": _percentile(latencies, 0.50),
        "p99_ms": _percentile(latencies, 0.99),
        "mean_ms": statistics.fmean(latencies) if latencies else float("nan"),
        "gateway_cpu_pct": 100 * cpu,
        "server_requests_per_s": summary["requests_per_s"],
    }


def _read_lines(gateway: subprocess.Popen[str], latencies: list[float]) -> None:
    assert gateway.stdout is not None
    for line in gateway.stdout:
        received = time.time_ns()
        match = _LINE.match(line.rstrip("\n"))
        if match:
            latencies.append((received - int(match.group(1))) / 1e6)


def _read_url(gateway: subprocess.Popen[str], holder: list[str]) -> None:
    assert gateway.stderr is not None
    for line in gateway.stderr:
        match = re.search(r"serving on (http://\S+)", line)
        if match:
            holder.append(match.group(1))


def main() -> None:
    """Run both modes and print a table (and the figures as JSON)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--servers-child", choices=("long-poll", "interval"))
    args = parser.parse_args()
    if args.servers_child:
        import trio

        trio.run(_servers_child, SERVERS, args.servers_child, RATE_PER_S, DURATION_S)
        return
    with tempfile.TemporaryDirectory() as tmp:
        results = [_run_mode(mode, Path(tmp)) for mode in ("long-poll", "interval")]
    print(f"{SERVERS} projects, {RATE_PER_S:g} events/s for {DURATION_S:g} s, console sink")
    print(f"{'mode':<10} {'delivered':>11} {'p50 ms':>8} {'p99 ms':>8} {'CPU %':>6} {'req/s':>7}")
    for r in results:
        print(
            f"{r['mode']:<10} {r['delivered']:>5}/{r['published']:<5} {r['p50_ms']:>8.1f} "
            f"{r['p99_ms']:>8.1f} {r['gateway_cpu_pct']:>6.1f} {r['server_requests_per_s']:>7.1f}"
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
