"""Chaos run: random faults over minutes, then the checker over the whole history.

``python -m benchmarks.chaos --minutes N --store sqlite|postgresql [--seed S]``
(``nox -s chaos -- ...``). Black-box: everything runs as the operator runs
it, as subprocesses talking HTTP on loopback.

* ``--servers`` project servers (``events-trio serve``, each watching its
  own pipeline directory, ingest enabled, a small buffer so a long outage
  overflows it and the gateway must announce the gap);
* one gateway (``events-trio gateway``, SQLite in its state directory) or,
  with ``--store postgresql``, a cluster of three on one throwaway
  PostgreSQL (:mod:`benchmarks.chaos_pg`: same ``--store``, same projects,
  same sinks, a 3-second lease TTL), each reaching each server through a
  :class:`~benchmarks.chaos_proxy.FaultProxy`, with a JSON-lines sink and a
  webhook sink to :class:`~benchmarks.chaos_receiver.WebhookReceiver`. In
  a cluster every gateway is configured with the SAME sink file and URL:
  a sink is identified by its spec and leased to one gateway at a time, so
  a survivor continues the same file from the committed offset;
* a publisher: ``--rate`` ingest POSTs a second per project, and a real file
  move in each pipeline every second; every acknowledged event is logged
  with its time (``acks.jsonl``);
* a fault injector drawing from ``random.Random(seed)`` (the seed is
  printed; ``--seed`` replays the same fault schedule): kill -9 and restart
  a gateway; SIGSTOP it and SIGCONT it (in a cluster: past the lease TTL);
  kill -9 a project server and restart it on its port; cut or delay the
  connections between the gateways and one server; in a cluster also
  restart PostgreSQL (``fast`` or ``immediate``). Every fault is logged
  (``procs.jsonl``).

Filling the state disk is not injected: it needs a mount of its own (root,
and a mess if the run dies); ``tests/gateway/test_disk_full.py`` covers it.

At the end the publisher stops, the system settles (every sink quiet), the
processes get SIGTERM, and :mod:`benchmarks.checker` judges the run. Exit
status 0 only when it passes: no silent loss, no order violation, no more
repeats than the faults that may repeat a batch allow (a gateway's kill -9;
in a cluster also a pause past the TTL and a PostgreSQL restart).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

import httpx
import msgspec
import trio

from .chaos_pg import GATEWAYS, Cluster
from .chaos_proxy import FaultProxy
from .chaos_receiver import WebhookReceiver
from .checker import check_run, jsonl_key, table

EVENTS_TRIO: Final = str(Path(sys.executable).parent / "events-trio")
TOKEN: Final = "chaos-ingest-token"
#: Events each project server keeps: small, so a long outage overflows it.
SERVER_CAPACITY: Final = 50
#: In a cluster a takeover waits out the lease TTL first: room for that.
CLUSTER_SERVER_CAPACITY: Final = 100
#: Seconds between file moves in each pipeline.
MOVE_INTERVAL_S: Final = 1.0
#: Items moving through one pipeline at a time.
ACTIVE_ITEMS: Final = 3
#: Seconds between faults (uniform).
FAULT_GAP_S: Final = (2.0, 6.0)
#: The gateway's sink batch: what a crash or a takeover may deliver again.
SINK_BATCH: Final = 100
#: A process must answer /healthz within this many seconds of starting.
START_TIMEOUT_S: Final = 30.0
#: The end: sinks quiet this long (plus the lease TTL in a cluster, where a
#: sink may wait out a takeover) means settled; give up after the maximum.
QUIET_S: Final = 3.0
SETTLE_MAX_S: Final = 120.0
STORES: Final = ("sqlite", "postgresql")


def wall_ms() -> float:
    return time.time() * 1000


class History:
    """``acks.jsonl`` and ``procs.jsonl``, each line flushed as written."""

    def __init__(self, run: Path) -> None:
        self._acks = (run / "acks.jsonl").open("ab")
        self._procs = (run / "procs.jsonl").open("ab")

    def ack(self, project: str, key: str, kind: str, gen: int) -> None:
        line = {"project": project, "key": key, "kind": kind, "ack_ms": wall_ms(), "gen": gen}
        self._write(self._acks, line)

    def proc(self, proc: str, what: str, gen: int = 0) -> None:
        self._write(self._procs, {"t_ms": wall_ms(), "proc": proc, "what": what, "gen": gen})

    @staticmethod
    def _write(out: IO[bytes], line: dict[str, object]) -> None:
        out.write(msgspec.json.encode(line) + b"\n")
        out.flush()

    def close(self) -> None:
        self._acks.close()
        self._procs.close()


@dataclass(slots=True)
class Child:
    """One ``events-trio`` subprocess on a fixed port, restartable."""

    name: str
    args: list[str]
    port: int
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    gen: int = 0
    up: bool = False
    proc: trio.Process | None = None

    async def start(self, http: httpx.AsyncClient) -> None:
        """Start and wait for ``/healthz`` (retrying while the port is still taken)."""
        deadline = trio.current_time() + START_TIMEOUT_S
        while trio.current_time() < deadline:
            with self.log.open("ab") as out:
                self.proc = await trio.lowlevel.open_process(
                    self.args, stdout=out, stderr=out, env={**os.environ, **self.env}
                )
            if await self._healthy(http, deadline):
                self.up = True
                return
            await trio.sleep(0.2)
        raise SystemExit(f"chaos: {self.name} did not start; see {self.log}")

    async def _healthy(self, http: httpx.AsyncClient, deadline: float) -> bool:
        assert self.proc is not None
        while trio.current_time() < deadline and self.proc.poll() is None:
            try:
                response = await http.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1)
                if response.status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            await trio.sleep(0.05)
        return False

    async def kill(self) -> None:
        """kill -9, and reap."""
        self.up = False
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def stop(self) -> int:
        """SIGTERM; the exit code (SIGKILL after a minute)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)
        self.proc.send_signal(signal.SIGTERM)
        with trio.move_on_after(60):
            return await self.proc.wait()
        self.proc.kill()
        return await self.proc.wait()


def free_port() -> int:
    """A port free on loopback now (the child binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(slots=True)
class Project:
    """A project server, its pipeline, its proxy and its publishing state."""

    name: str
    server: Child
    pipeline: Path
    proxy: FaultProxy
    stories: int = 0
    items: int = 0
    moving: list[tuple[str, int]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"


@dataclass(slots=True)
class Chaos:
    """One run: its processes, its history, its random fault schedule."""

    run: Path
    seed: int
    minutes: float
    rate: float
    projects: list[Project]
    gateways: list[Child]
    history: History
    receiver: WebhookReceiver
    cluster: Cluster | None = None
    rng: random.Random = field(init=False)
    end: float = 0.0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    # --- publishing ---------------------------------------------------------------------

    async def ingest(self, http: httpx.AsyncClient, project: Project) -> None:
        """POST one merge failure per ``1/rate`` seconds while the server is up."""
        headers = {"Authorization": f"Bearer {TOKEN}"}
        tick = trio.current_time()
        while tick < self.end:
            tick += 1 / self.rate
            if project.server.up:
                await self._post(http, project, headers)
            await trio.sleep_until(tick)

    async def _post(
        self, http: httpx.AsyncClient, project: Project, headers: dict[str, str]
    ) -> None:
        gen, story = project.server.gen, f"{project.stories}_story_{project.name}"
        project.stories += 1
        body = {"type": "merge_failure", "story_id": story, "reason": "chaos"}
        try:
            response = await http.post(f"{project.url}/api/events", json=body, headers=headers)
        except httpx.HTTPError:
            return  # not acknowledged: whether it was stored does not matter
        if response.status_code == 202:
            self.history.ack(project.name, story, "ingest", gen)

    async def move(self, project: Project, stages: list[str]) -> None:
        """Every second, create a work item or move one a stage on (a real rename)."""
        tick = trio.current_time()
        while tick < self.end:
            tick += MOVE_INTERVAL_S
            if project.server.up:
                self._step(project, stages)
            await trio.sleep_until(tick)

    def _step(self, project: Project, stages: list[str]) -> None:
        if len(project.moving) < ACTIVE_ITEMS:
            item = f"{project.items}_item_{project.name}"
            project.items += 1
            (project.pipeline / stages[0] / f"{item}.md").write_text("chaos\n")
            project.moving.append((item, 0))
            return
        item, stage = project.moving.pop(0)
        src = project.pipeline / stages[stage] / f"{item}.md"
        src.rename(project.pipeline / stages[stage + 1] / f"{item}.md")
        self.history.ack(project.name, f"{item}:{stages[stage + 1]}", "move", project.server.gen)
        if stage + 2 < len(stages):
            project.moving.append((item, stage + 1))

    # --- faults -------------------------------------------------------------------------

    async def inject(self, http: httpx.AsyncClient) -> None:
        """Faults one after another, at random gaps, until the end."""
        faults: list[Callable[[httpx.AsyncClient], Awaitable[None]]] = [
            self.kill_gateway,
            self.stop_gateway,
            self.kill_server,
            self.cut_link,
            self.delay_link,
        ]
        if self.cluster is not None:
            faults.append(self.restart_postgres)
        while True:
            await trio.sleep(self.rng.uniform(*FAULT_GAP_S))
            if trio.current_time() >= self.end:
                return
            await self.rng.choice(faults)(http)

    def pick_gateway(self) -> Child:
        # One gateway draws nothing: a seed keeps its single-gateway schedule.
        return self.gateways[0] if len(self.gateways) == 1 else self.rng.choice(self.gateways)

    async def kill_gateway(self, http: httpx.AsyncClient) -> None:
        gateway = self.pick_gateway()
        self.history.proc(gateway.name, "kill", gateway.gen)
        await gateway.kill()
        await trio.sleep(self.rng.uniform(0.2, 2.0))
        gateway.gen += 1
        await gateway.start(http)
        self.history.proc(gateway.name, "start", gateway.gen)

    async def stop_gateway(self, http: httpx.AsyncClient) -> None:
        gateway = self.pick_gateway()
        self.history.proc(gateway.name, "stop", gateway.gen)
        gateway.signal(signal.SIGSTOP)
        if self.cluster is None:
            await trio.sleep(self.rng.uniform(1.0, 8.0))
        else:
            await trio.sleep(self.cluster.stop_seconds(self.rng))
        gateway.signal(signal.SIGCONT)
        self.history.proc(gateway.name, "cont", gateway.gen)

    async def restart_postgres(self, http: httpx.AsyncClient) -> None:
        assert self.cluster is not None
        await self.cluster.restart(self.rng, self.history.proc)

    async def kill_server(self, http: httpx.AsyncClient) -> None:
        project = self.rng.choice(self.projects)
        server = project.server
        self.history.proc(f"server:{project.name}", "kill", server.gen)
        await server.kill()
        await trio.sleep(self.rng.uniform(0.2, 2.0))
        server.gen += 1
        await server.start(http)
        self.history.proc(f"server:{project.name}", "start", server.gen)

    async def cut_link(self, http: httpx.AsyncClient) -> None:
        project = self.rng.choice(self.projects)
        seconds = self.rng.uniform(1.0, 6.0)
        self.history.proc(f"proxy:{project.name}", "cut")
        project.proxy.cut(seconds)
        await trio.sleep(seconds)
        self.history.proc(f"proxy:{project.name}", "heal")

    async def delay_link(self, http: httpx.AsyncClient) -> None:
        project = self.rng.choice(self.projects)
        seconds, delay_s = self.rng.uniform(2.0, 8.0), self.rng.uniform(0.05, 1.0)
        self.history.proc(f"proxy:{project.name}", "delay")
        project.proxy.delay(delay_s, seconds)
        await trio.sleep(seconds)
        self.history.proc(f"proxy:{project.name}", "heal")


# --- the JSON-lines sink's arrival times ---------------------------------------------------


async def tail_sink(path: Path, arrivals: Path, stop: trio.Event) -> None:
    """Note when each key first appears in the sink file (for latency)."""
    offset, seen = 0, set[str]()
    with arrivals.open("ab") as out:
        while not stop.is_set():
            offset, lines = _read_new(path, offset)
            now = wall_ms()
            for line in lines:
                key = _key(line)
                if key is not None and key not in seen:
                    seen.add(key)
                    out.write(msgspec.json.encode({"key": key, "t_ms": now}) + b"\n")
            out.flush()
            with trio.move_on_after(0.02):
                await stop.wait()


def _read_new(path: Path, offset: int) -> tuple[int, list[bytes]]:
    """Complete lines after ``offset``, and the offset after them."""
    try:
        with path.open("rb") as sink:
            size = sink.seek(0, os.SEEK_END)
            sink.seek(min(offset, size))  # the gateway may cut a torn last line
            data = sink.read()
    except FileNotFoundError:
        return offset, []
    complete = data[: data.rfind(b"\n") + 1]
    return min(offset, size) + len(complete), complete.splitlines()


def _key(line: bytes) -> str | None:
    try:
        return jsonl_key(msgspec.json.decode(line))
    except msgspec.DecodeError:
        return None


# --- set-up, run, settle, judge -------------------------------------------------------------


def gateway_config(
    run: Path, port: int, projects: list[Project], webhook_port: int, tag: str = ""
) -> Path:
    """A gateway's TOML: its own port and state directory, the run's projects and sinks."""
    lines = [
        "[gateway]",
        'host = "127.0.0.1"',
        f"port = {port}",
        f'state_dir = "{run / ("state" + tag)}"',
    ]
    for project in projects:
        url = f"http://127.0.0.1:{project.proxy.listen_port}"
        lines += ["[[project]]", f'name = "{project.name}"', f'url = "{url}"']
    lines += ["[[sink]]", 'kind = "jsonl"', f'path = "{run / "sink.jsonl"}"']
    lines += ["[[sink]]", 'kind = "webhook"', f'url = "http://127.0.0.1:{webhook_port}/hook"']
    lines += ["group_window_s = 0.2", "min_interval_s = 0.2"]
    path = run / f"gateway{tag}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def make_gateways(
    run: Path, projects: list[Project], webhook_port: int, cluster: Cluster | None
) -> list[Child]:
    """One SQLite gateway, or :data:`~benchmarks.chaos_pg.GATEWAYS` on the cluster's store."""
    if cluster is None:
        port = free_port()
        config = gateway_config(run, port, projects, webhook_port)
        args = [EVENTS_TRIO, "gateway", "--config", str(config)]
        return [Child("gateway", args, port, run / "gateway.log")]
    gateways = []
    for index in range(GATEWAYS):
        port, tag = free_port(), f"-g{index}"
        config = gateway_config(run, port, projects, webhook_port, tag)
        args = [EVENTS_TRIO, "gateway", "--config", str(config), *cluster.gateway_args()]
        gateways.append(Child(f"gateway:g{index}", args, port, run / f"gateway{tag}.log"))
    return gateways


def make_projects(run: Path, count: int, capacity: int = SERVER_CAPACITY) -> list[Project]:
    projects = []
    for index in range(count):
        name, port = f"p{index}", free_port()
        pipeline = run / f"pipeline-{name}"
        args = [EVENTS_TRIO, "serve", "--host", "127.0.0.1", "--port", str(port)]
        args += ["--pipeline", str(pipeline), "--capacity", str(capacity)]
        server = Child(name, args, port, run / f"server-{name}.log")
        server.env["EVENTS_TRIO_INGEST_TOKEN"] = TOKEN
        projects.append(Project(name, server, pipeline, FaultProxy(port)))
    return projects


async def ready_projects(http: httpx.AsyncClient, gateways: list[Child]) -> set[str]:
    """Projects some live gateway owns and reports up.

    A gateway's ``/api/projects`` lists every project of the cluster with its
    ``owner`` (``/healthz`` gives each gateway's ``gateway_id``); a project
    counts once the gateway that owns it says it is up. One gateway on
    SQLite has no ``owner`` field: it owns everything it lists.
    """
    ready: set[str] = set()
    for gateway in gateways:
        if not gateway.up:
            continue
        base = f"http://127.0.0.1:{gateway.port}"
        try:
            me = (await http.get(f"{base}/healthz")).json().get("gateway_id")
            projects = (await http.get(f"{base}/api/projects")).json()
        except (httpx.HTTPError, ValueError):
            continue
        for project in projects:
            if project.get("state") == "up" and project.get("owner", me) == me:
                ready.add(str(project["name"]))
    return ready


async def wait_all_up(chaos: Chaos, http: httpx.AsyncClient, timeout_s: float) -> bool:
    """Whether every project is owned by a live gateway and up within ``timeout_s``."""
    names = {project.name for project in chaos.projects}
    with trio.move_on_after(timeout_s):
        while True:
            if names <= await ready_projects(http, chaos.gateways):
                return True
            await trio.sleep(0.1)
    return False


async def settle(chaos: Chaos, http: httpx.AsyncClient) -> None:
    """Wait until every project is up and both sinks have been quiet for :data:`QUIET_S`."""
    sink = chaos.run / "sink.jsonl"
    deadline = trio.current_time() + SETTLE_MAX_S
    await wait_all_up(chaos, http, SETTLE_MAX_S)
    quiet_s = QUIET_S + (0.0 if chaos.cluster is None else chaos.cluster.ttl_s)
    last = (-1, -1)
    quiet_since = trio.current_time()
    while trio.current_time() < deadline:
        now = (sink.stat().st_size if sink.exists() else 0, chaos.receiver.posts)
        if now != last:
            last, quiet_since = now, trio.current_time()
        elif trio.current_time() - quiet_since >= quiet_s:
            return
        await trio.sleep(0.2)


async def run_chaos(args: argparse.Namespace, run: Path) -> int:
    cluster = await Cluster.start() if args.store == "postgresql" else None
    try:
        return await _run_chaos(args, run, cluster)
    finally:
        if cluster is not None:
            with trio.CancelScope(shield=True):
                await cluster.close(run)


async def _run_chaos(args: argparse.Namespace, run: Path, cluster: Cluster | None) -> int:
    history = History(run)
    receiver = WebhookReceiver(run / "webhook.jsonl")
    capacity = SERVER_CAPACITY if cluster is None else CLUSTER_SERVER_CAPACITY
    projects = make_projects(run, args.servers, capacity)
    async with httpx.AsyncClient(timeout=5, trust_env=False) as http, trio.open_nursery() as n:
        webhook_port = await n.start(receiver.run)
        for project in projects:
            await n.start(project.proxy.run)
            await project.server.start(http)
            history.proc(f"server:{project.name}", "start")
        gateways = make_gateways(run, projects, webhook_port, cluster)
        for gateway in gateways:
            await gateway.start(http)
            history.proc(gateway.name, "start")
        chaos = Chaos(
            run, args.seed, args.minutes, args.rate, projects, gateways, history, receiver, cluster
        )
        if not await wait_all_up(chaos, http, START_TIMEOUT_S):
            raise SystemExit("chaos: the gateways never saw every project up")
        stop_tail = trio.Event()
        n.start_soon(tail_sink, run / "sink.jsonl", run / "arrivals.jsonl", stop_tail)
        stages = sorted(p.name for p in projects[0].pipeline.iterdir() if p.is_dir())
        chaos.end = trio.current_time() + args.minutes * 60
        async with trio.open_nursery() as load:
            for project in projects:
                load.start_soon(chaos.ingest, http, project)
                load.start_soon(chaos.move, project, stages)
            load.start_soon(chaos.inject, http)
        await settle(chaos, http)
        codes = {gateway.name: await gateway.stop() for gateway in gateways}
        for project in projects:
            codes[project.name] = await project.server.stop()
            history.proc(f"server:{project.name}", "exit", project.server.gen)
        for gateway in gateways:
            history.proc(gateway.name, "exit", gateway.gen)
        stop_tail.set()
        await trio.sleep(0.1)
        n.cancel_scope.cancel()
    history.close()
    return verdict(run, args.seed, codes, cluster=cluster is not None)


def verdict(run: Path, seed: int, codes: dict[str, int], *, cluster: bool = False) -> int:
    report = check_run(run, batch=SINK_BATCH, cluster=cluster)
    errors = sum(
        line.count(b"Traceback") for log in run.glob("*.log") for line in [log.read_bytes()]
    )
    text = table(report, seed)
    text += f"\nexit codes after SIGTERM: {codes}; tracebacks in logs: {errors}"
    (run / "report.txt").write_text(text + "\n")
    print(text, flush=True)
    clean = all(code == 0 for code in codes.values()) and errors == 0
    return 0 if report.ok and clean else 1


def cluster_mode_available() -> bool:
    """Whether this build's ``events-trio gateway`` takes ``--store`` and ``--lease-ttl``."""
    usage = subprocess.run(
        [EVENTS_TRIO, "gateway", "--help"], capture_output=True, text=True, check=False
    ).stdout
    return "--store" in usage and "--lease-ttl" in usage


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=10.0, help="fault time (default: 10)")
    parser.add_argument("--store", choices=STORES, default="sqlite", help="gateway store")
    parser.add_argument("--seed", type=int, default=None, help="fault schedule (default: random)")
    parser.add_argument("--servers", type=int, default=3, help="project servers (default: 3)")
    parser.add_argument("--rate", type=float, default=10.0, help="POSTs/s per project")
    parser.add_argument("--out", type=Path, default=None, help="run directory (default: temp)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.store == "postgresql" and not cluster_mode_available():
        raise SystemExit(
            "chaos: --store postgresql needs the gateway's cluster mode "
            "(events-trio gateway --store), which this build lacks"
        )
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(2**32)
    run = args.out or Path(tempfile.mkdtemp(prefix="events-trio-chaos-"))
    run.mkdir(parents=True, exist_ok=True)
    print(
        f"chaos: seed {args.seed}, {args.minutes:g} min, {args.servers} servers, "
        f"store {args.store}, run dir {run}",
        flush=True,
    )
    raise SystemExit(trio.run(run_chaos, args, run))


if __name__ == "__main__":
    main()
