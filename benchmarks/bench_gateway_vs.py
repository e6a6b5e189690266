"""The gateway side by side with v0.1.0 (commit 27ad2d3162be), in one run.

``python -m benchmarks bench_gateway_vs``. The baseline is installed into
its own virtualenv from ``git archive`` of that commit (cached under
``benchmarks/results/``). Both gateways run as the real ``events-trio
gateway`` command, one after the other (alternating where a phase has
rounds), against the same simulated projects (``benchmarks.sim_servers``:
the real server app per project, ``/api/events/stream`` included; a fresh
process of the same fleet for each gateway run, so nothing one gateway
left parked on the servers loads the other's run). The
gateway is pinned to CPU 0, the load (simulated servers, this process) to
CPU 1. Every figure is taken once a gateway has run 12 s (``WARM_S``):
start-up, and this tree's one heap settling 10 s in, are one-off costs.

Phases (each a few seconds to tens of seconds):

A. 100 projects, 200 ev/s round robin, console sink, 3 rounds each: CPU per delivered
   event, requests per delivered event, publish -> line p50/p99. Every
   line is checked: each event arrives exactly once, on its project.
B. 1,000 projects: idle CPU and requests/s over one long-poll wait (28 s),
   RSS; then 1,000 ev/s for 5 s: publish -> console line p50/p99.
C. 100 projects, JSON-lines sink, rising rates: the highest rate whose
   events all arrive with p99 under 100 ms.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import msgspec

from events_trio.gateway.config import DEFAULT_LONG_POLL_WAIT_S

from .procs import CpuMeter, Gateway, JsonlTail, SimServers, cpu_s, percentile, rss_mb

BASELINE_COMMIT: Final = "27ad2d3162bed98885b8a5213068b3d6e2765582"
ROOT: Final = Path(__file__).resolve().parent.parent
#: Outside the repository, so linters and test discovery never see its copy.
CACHE: Final = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    / "events-trio-bench"
    / f"baseline-{BASELINE_COMMIT[:12]}"
)
GATEWAY_CPUS: Final = {0}
LOAD_CPUS: Final = {1}

SMALL_FLEET: Final = 100
SMALL_RATE: Final = 200.0
ROUND_S: Final = 5.0
ROUNDS: Final = 3
#: Measured from this long after a gateway starts: start-up work is one-off, not
#: per event (this tree settles its heap 5-10 s after its projects stop changing).
WARM_S: Final = 12.0
LARGE_FLEET: Final = 1000
LARGE_RATE: Final = 1000.0
IDLE_S: Final = DEFAULT_LONG_POLL_WAIT_S
SUSTAIN_P99_MS: Final = 100.0
#: Rising rates tried (stopping at the first one missed); the baseline's top
#: is near one core at ~1 ms per event.
SUSTAIN_RATES: Final = {
    "v0.1.0": (250.0, 500.0, 1000.0),
    "this": (1000.0, 2000.0, 3000.0, 5000.0, 8000.0),
}
SUSTAIN_S: Final = 4.0
DRAIN_S: Final = 20.0

CONSOLE: Final = re.compile(r"^\[p(\d+)\] merge failed: (\d+)_story_(\d+) — bench$")


@dataclass(frozen=True, slots=True)
class Contender:
    """One gateway under test: its command and the mode it reaches our servers in."""

    name: str
    exe: Path
    mode: str


@dataclass(slots=True)
class Delivery:
    """One publishing round's figures."""

    published: int
    latencies_ms: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    requests: int = 0
    wrong: str | None = None

    @property
    def complete(self) -> bool:
        return self.wrong is None and len(self.latencies_ms) == self.published


# -- the baseline ---------------------------------------------------------------


def install_baseline() -> Path:
    """``events-trio`` of v0.1.0 in its own virtualenv (installed once, then cached)."""
    exe = CACHE / "venv" / "bin" / "events-trio"
    if exe.exists():
        return exe
    shutil.rmtree(CACHE, ignore_errors=True)
    source = CACHE / "src"
    source.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", BASELINE_COMMIT], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    venv = CACHE / "venv"
    uv = shutil.which("uv") or ("/tmp/tools/bin/uv" if Path("/tmp/tools/bin/uv").exists() else None)
    if uv:
        subprocess.run([uv, "venv", "-q", "-p", sys.executable, str(venv)], check=True)
        pip = [uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python")]
    else:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "pip"), "install", "-q"]
    subprocess.run([*pip, str(source)], check=True)
    return exe


def contenders() -> list[Contender]:
    """v0.1.0 (long-polls our servers) and this tree (streams them)."""
    this = Path(sys.executable).parent / "events-trio"
    return [Contender("v0.1.0", install_baseline(), "long-poll"), Contender("this", this, "stream")]


# -- checking and measuring deliveries ---------------------------------------------


def console_fields(line: str) -> tuple[int, int, int] | None:
    match = CONSOLE.match(line)
    return None if match is None else (int(match[1]), int(match[2]), int(match[3]))


def jsonl_fields(line: str) -> tuple[int, int, int] | None:
    entry = msgspec.json.decode(line)
    if entry.get("type") == "gateway_notice":
        return None
    n, _, published_ns = entry["story_id"].split("_")
    return int(entry["project"][1:]), int(n), int(published_ns)


def check(
    lines: list[tuple[int, str]],
    parse: Callable[[str], tuple[int, int, int] | None],
    fleet: int,
    got: Delivery,
) -> None:
    """Latency of each line; any wrong, repeated or foreign line is recorded in ``got``."""
    seen: set[int] = set()
    for received_ns, line in lines:
        fields = parse(line)
        if fields is None:
            continue
        project, n, published_ns = fields
        if project != n % fleet or n in seen or n >= got.published:
            got.wrong = f"wrong or repeated line: {line[:120]!r}"
            return
        seen.add(n)
        got.latencies_ms.append((received_ns - published_ns) / 1e6)


def deliver(
    servers: SimServers,
    gateway: Gateway,
    rate: float,
    seconds: float,
    *,
    jsonl: JsonlTail | None = None,
) -> Delivery:
    """Publish ``rate * seconds`` events; read, check and time every line."""
    servers.requests()  # reset the counter
    started_cpu = cpu_s(gateway.proc.pid)
    published = int(servers.command("publish", rate, seconds)["published"])
    got = Delivery(published)
    source = jsonl or gateway
    lines = source.collect(published, timeout_s=DRAIN_S)
    got.cpu_s = cpu_s(gateway.proc.pid) - started_cpu
    got.requests = servers.requests()
    lines += source.collect(1, timeout_s=0.2)  # nothing may follow (duplicates)
    parse = jsonl_fields if jsonl else console_fields
    check(lines, parse, len(servers.urls), got)
    return got


def idle(servers: SimServers, gateway: Gateway, seconds: float) -> dict[str, float]:
    """CPU % and requests/s of an idle fleet over ``seconds``; RSS after it."""
    servers.requests()
    meter = CpuMeter(gateway.proc.pid)
    time.sleep(seconds)
    return {
        "cpu_pct": meter.percent(),
        "requests_per_s": servers.requests() / seconds,
        "rss_mb": rss_mb(gateway.proc.pid),
    }


# -- phases ------------------------------------------------------------------------


def projects_of(servers: SimServers) -> list[tuple[str, str]]:
    return [(f"p{i}", url) for i, url in enumerate(servers.urls)]


# Each gateway gets a fresh process of the same simulated fleet: a stopped
# gateway leaves its long-polls parked on the servers until their wait ends
# (up to 28 s), and waking them would load the next gateway's run.


def phase_small(workdir: Path, who: list[Contender]) -> dict[str, list[Delivery]]:
    results: dict[str, list[Delivery]] = {c.name: [] for c in who}
    for round_no in range(ROUNDS):
        for c in who:
            tag = f"a-{c.name}-{round_no}"
            with (
                SimServers(SMALL_FLEET, LOAD_CPUS) as servers,
                Gateway(projects_of(servers), workdir, tag, exe=c.exe, cpus=GATEWAY_CPUS) as gw,
            ):
                gw.wait_up(c.mode)
                gw.settle(WARM_S)
                results[c.name].append(deliver(servers, gw, SMALL_RATE, ROUND_S))
    return results


def phase_large(workdir: Path, who: list[Contender]) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for c in who:
        with (
            SimServers(LARGE_FLEET, LOAD_CPUS) as servers,
            Gateway(
                projects_of(servers), workdir, f"b-{c.name}", exe=c.exe, cpus=GATEWAY_CPUS
            ) as gw,
        ):
            gw.wait_up(c.mode, timeout_s=300)
            gw.settle(WARM_S)
            figures: dict[str, Any] = idle(servers, gw, IDLE_S)
            figures["delivery"] = deliver(servers, gw, LARGE_RATE, ROUND_S)
            results[c.name] = figures
    return results


def phase_sustain(workdir: Path, who: list[Contender]) -> dict[str, dict[float, Delivery]]:
    results: dict[str, dict[float, Delivery]] = {c.name: {} for c in who}
    for c in who:
        with SimServers(SMALL_FLEET, LOAD_CPUS) as servers:
            for rate in SUSTAIN_RATES[c.name]:
                out = workdir / f"c-{c.name}-{rate:g}.jsonl"
                tail = JsonlTail(out)
                try:
                    with Gateway(
                        projects_of(servers),
                        workdir,
                        f"c-{c.name}-{rate:g}",
                        exe=c.exe,
                        sinks=(f"jsonl:{out}",),
                        cpus=GATEWAY_CPUS,
                    ) as gw:
                        gw.wait_up(c.mode)
                        gw.settle(WARM_S)
                        got = deliver(servers, gw, rate, SUSTAIN_S, jsonl=tail)
                finally:
                    tail.close()
                results[c.name][rate] = got
                if not sustained(got):
                    break
    return results


def sustained(got: Delivery) -> bool:
    return got.complete and percentile(got.latencies_ms, 0.99) < SUSTAIN_P99_MS


# -- the table ---------------------------------------------------------------------


def _merged(rounds: list[Delivery]) -> dict[str, float]:
    latencies = [ms for r in rounds for ms in r.latencies_ms]
    events = len(latencies)
    return {
        "events": events,
        "complete": all(r.complete for r in rounds),
        "cpu_ms_per_event": 1000 * sum(r.cpu_s for r in rounds) / max(1, events),
        "requests_per_event": sum(r.requests for r in rounds) / max(1, events),
        "p50_ms": percentile(latencies, 0.5) if latencies else float("nan"),
        "p99_ms": percentile(latencies, 0.99) if latencies else float("nan"),
    }


def _latency(got: Delivery) -> str:
    if not got.latencies_ms:
        return "nothing delivered"
    text = (
        f"p50 {percentile(got.latencies_ms, 0.5):.0f} ms, "
        f"p99 {percentile(got.latencies_ms, 0.99):.0f} ms"
    )
    if not got.complete:
        text += (
            f" ({len(got.latencies_ms)} of {got.published} delivered; {got.wrong or 'fell behind'})"
        )
    return text


def _best_rate(rates: dict[float, Delivery]) -> float:
    return max([rate for rate, got in rates.items() if sustained(got)], default=0.0)


def rows(
    small: dict[str, dict[str, float]],
    large: dict[str, dict[str, Any]],
    sustain: dict[str, dict[float, Delivery]],
) -> list[dict[str, Any]]:
    """The issue's table: figure, v0.1.0, this tree, target, met."""
    base, this = small["v0.1.0"], small["this"]
    lb, lt = large["v0.1.0"], large["this"]
    best = {name: _best_rate(rates) for name, rates in sustain.items()}
    p99_large = (
        percentile(lt["delivery"].latencies_ms, 0.99) if lt["delivery"].latencies_ms else 1e9
    )
    return [
        _row(
            f"CPU per delivered event, {SMALL_FLEET} projects x {SMALL_RATE:g} ev/s",
            f"{base['cpu_ms_per_event']:.2f} ms",
            f"{this['cpu_ms_per_event']:.2f} ms"
            f" ({this['cpu_ms_per_event'] / base['cpu_ms_per_event']:.2f}x)",
            "<= 0.2x v0.1.0",
            this["cpu_ms_per_event"] <= 0.2 * base["cpu_ms_per_event"] and bool(this["complete"]),
        ),
        _row(
            "requests per delivered event (this: stream mode)",
            f"{base['requests_per_event']:.2f}",
            f"{this['requests_per_event']:.3f}",
            "<= 0.01",
            this["requests_per_event"] <= 0.01,
        ),
        _row(
            f"publish -> console p50/p99, {SMALL_FLEET} projects x {SMALL_RATE:g} ev/s",
            f"p50 {base['p50_ms']:.0f} ms, p99 {base['p99_ms']:.0f} ms",
            f"p50 {this['p50_ms']:.0f} ms, p99 {this['p99_ms']:.0f} ms",
            None,
            None,
        ),
        _row(
            f"publish -> console p50/p99, {LARGE_FLEET} projects x {LARGE_RATE:g} ev/s",
            _latency(lb["delivery"]),
            _latency(lt["delivery"]),
            "p99 <= 50 ms",
            lt["delivery"].complete and p99_large <= 50.0,
        ),
        _row(
            "sustained rate into JSONL (p99 < 100 ms), one gateway core",
            f"{best['v0.1.0']:g} ev/s",
            f"{best['this']:g} ev/s",
            ">= 5,000 ev/s",
            best["this"] >= 5000,
        ),
        _row(
            f"idle, {LARGE_FLEET} projects: CPU, requests/s",
            f"{lb['cpu_pct']:.1f}% of a core, {lb['requests_per_s']:.1f} req/s",
            f"{lt['cpu_pct']:.1f}% of a core, {lt['requests_per_s']:.2f} req/s",
            "<= 1.5% of a core, <= 1 req/s",
            lt["cpu_pct"] <= 1.5 and lt["requests_per_s"] <= 1.0,
        ),
        _row(
            f"gateway RSS, {LARGE_FLEET} projects",
            f"{lb['rss_mb']:.0f} MB",
            f"{lt['rss_mb']:.0f} MB",
            "<= 120 MB",
            lt["rss_mb"] <= 120,
        ),
    ]


def _row(name: str, base: str, this: str, target: str | None, met: bool | None) -> dict[str, Any]:
    return {
        "benchmark": name,
        "figure": f"v0.1.0: {base} | this: {this}",
        "target": target,
        "met": met,
        "v0.1.0": base,
        "this": this,
    }


def side_by_side(table: list[dict[str, Any]]) -> str:
    """The table with both columns, as in the issue (markdown)."""
    lines = [
        f"| figure | v0.1.0 ({BASELINE_COMMIT[:12]}) | this tree | target | met |",
        "|---|---|---|---|---|",
    ]
    for r in table:
        met = {True: "yes", False: "NO", None: "-"}[r["met"]]
        lines.append(
            f"| {r['benchmark']} | {r['v0.1.0']} | {r['this']} | {r['target'] or '-'} | {met} |"
        )
    return "\n".join(lines)


def run() -> list[dict[str, Any]]:
    """Rows for ``python -m benchmarks``; also prints the side-by-side table."""
    if len(os.sched_getaffinity(0)) < 2:
        raise RuntimeError("needs two CPUs: the gateway on one, the load on the other")
    os.sched_setaffinity(0, LOAD_CPUS)  # this process reads the sinks: load side
    who = contenders()
    with tempfile.TemporaryDirectory(prefix="bench-vs-") as tmp:
        workdir = Path(tmp)
        small = {name: _merged(rounds) for name, rounds in phase_small(workdir, who).items()}
        print("  phase A done", small, file=sys.stderr, flush=True)
        large = phase_large(workdir, who)
        print("  phase B done", file=sys.stderr, flush=True)
        sustain = phase_sustain(workdir, who)
    table = rows(small, large, sustain)
    print(side_by_side(table), flush=True)
    extra = {
        "small": small,
        "sustain": {
            n: {f"{r:g}": _latency(g) for r, g in rates.items()} for n, rates in sustain.items()
        },
        "large_cpu_ms_per_event": {
            n: 1000 * f["delivery"].cpu_s / max(1, len(f["delivery"].latencies_ms))
            for n, f in large.items()
        },
    }
    table.append(
        {"benchmark": "raw figures", "figure": str(extra)[:2000], "target": None, "met": None}
    )
    return table


if __name__ == "__main__":
    for row in run():
        print(row)
