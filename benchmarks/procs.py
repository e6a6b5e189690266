"""Child processes for the gateway benchmarks: simulated servers and a gateway.

:class:`SimServers` drives ``benchmarks.sim_servers`` over its stdin;
:class:`Gateway` runs ``events-trio gateway`` (the real command, its own
process, so its CPU and memory are its own) and collects its sink's
console lines as they are written, stamped with ``time.time_ns()``.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import httpx

_TICKS_PER_S: Final = os.sysconf("SC_CLK_TCK")
_SERVING: Final = re.compile(r"serving on (http://\S+)")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S


def rss_mb(pid: int | str, field: str = "VmRSS") -> float:
    """Resident memory (``VmRSS``, or the peak ``VmHWM``) of a process in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for pid {pid}")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def collect_lines(
    lines: queue.Queue[tuple[int, str]], count: int, timeout_s: float
) -> list[tuple[int, str]]:
    """Up to ``count`` timestamped lines from ``lines``, waiting at most ``timeout_s`` in all."""
    deadline = time.monotonic() + timeout_s
    got: list[tuple[int, str]] = []
    while len(got) < count:
        try:
            got.append(lines.get(timeout=max(0.0, deadline - time.monotonic())))
        except queue.Empty:
            break
    return got


class CpuMeter:
    """CPU share of one process (100 = one core) since the meter was created."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._cpu = cpu_s(pid)
        self._wall = time.monotonic()

    def percent(self) -> float:
        """CPU % since creation."""
        return 100 * (cpu_s(self.pid) - self._cpu) / (time.monotonic() - self._wall)


def pinned(cpus: set[int] | None) -> Any:
    """A ``preexec_fn`` that pins the child (every thread it starts) to ``cpus``."""
    if not cpus:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


class SimServers:
    """``python -m benchmarks.sim_servers COUNT`` as a context manager.

    Args:
        count: Simulated project servers.
        cpus: CPUs the process is pinned to (``None``: not pinned).
    """

    def __init__(self, count: int, cpus: set[int] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.sim_servers", str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=pinned(cpus),  # noqa: PLW1509 -- one sched_setaffinity call
        )
        self.urls: list[str] = self._read()["urls"]
        assert len(self.urls) == count

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"sim_servers exited with {self.proc.wait()}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def command(self, *words: object) -> dict[str, Any]:
        """Send one command and return its answer."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(" ".join(map(str, words)) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def requests(self) -> int:
        """Requests served since the last call."""
        return int(self.command("requests")["requests"])

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.command("stop")
        except (OSError, RuntimeError, ValueError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Gateway:
    """``events-trio gateway`` over ``projects`` with a console sink.

    ``BENCH_GATEWAY_WRAP`` (environment) is put before the command, e.g. a
    profiler that runs the gateway in its own process (``python -m cProfile
    -o FILE``; not one that forks, whose pid would be measured instead).

    Args:
        projects: (name, url) pairs.
        workdir: Where the config file and the state directory go.
        tag: Distinguishes several gateways in one ``workdir``.
        exe: The ``events-trio`` to run (default: this environment's).
        sinks: ``--sink`` values (default: the console, read by :meth:`collect`).
        cpus: CPUs the gateway is pinned to (``None``: not pinned).
        extra: More command-line arguments (``--store URL --lease-ttl S`` for a cluster).
    """

    def __init__(
        self,
        projects: list[tuple[str, str]],
        workdir: Path,
        tag: str,
        *,
        exe: Path | None = None,
        sinks: tuple[str, ...] = ("console",),
        cpus: set[int] | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        config = workdir / f"gateway-{tag}.toml"
        config.write_text("".join(f'[[project]]\nname = "{n}"\nurl = "{u}"\n' for n, u in projects))
        exe = exe or Path(sys.executable).parent / "events-trio"
        sink_args = [arg for sink in sinks for arg in ("--sink", sink)]
        self.proc = subprocess.Popen(
            [
                *shlex.split(os.environ.get("BENCH_GATEWAY_WRAP", "")),
                str(exe),
                "gateway",
                "--config",
                str(config),
                "--port",
                "0",
                "--state-dir",
                str(workdir / f"state-{tag}"),
                *sink_args,
                *extra,
                "--log-level",
                "info",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=pinned(cpus),  # noqa: PLW1509 -- one sched_setaffinity call
        )
        self.count = len(projects)
        #: ``time.monotonic()`` when the process was started.
        self.started = time.monotonic()
        #: (time_ns when read, line without newline), in order.
        self.lines: queue.Queue[tuple[int, str]] = queue.Queue()
        self.log: list[str] = []
        self._url: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        try:
            self.url = self._url.get(timeout=60)
        except queue.Empty:
            self.stop()
            raise RuntimeError("gateway did not start:\n" + "".join(self.log[-20:])) from None

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put((time.time_ns(), line.rstrip("\n")))

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)
            if match := _SERVING.search(line):
                self._url.put(match.group(1))

    def wait_up(self, mode: str, timeout_s: float = 120.0) -> None:
        """Wait until every project is up and read in ``mode`` (``stream``, ``long-poll``, ...)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                projects = httpx.get(f"{self.url}/api/projects", timeout=10).json()
            except httpx.HTTPError:
                projects = []
            ready = [p for p in projects if p["state"] == "up" and p.get("mode") == mode]
            if len(ready) == self.count:
                return
            time.sleep(0.25)
        raise RuntimeError(f"projects not all up in {mode} mode after {timeout_s:g} s")

    def settle(self, seconds: float) -> None:
        """Wait until the process has run ``seconds`` (start-up work done: one-off, not per event)."""
        time.sleep(max(0.0, self.started + seconds - time.monotonic()))

    def collect(self, count: int, timeout_s: float) -> list[tuple[int, str]]:
        """Up to ``count`` console lines, waiting at most ``timeout_s`` in all."""
        return collect_lines(self.lines, count, timeout_s)

    def stop(self) -> None:
        """SIGTERM and wait (kill after 30 s)."""
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class JsonlTail:
    """Reads lines appended to a JSON-lines file as they are written, stamped ``time_ns``.

    A thread polls the file every ``poll_s`` (the stamp is late by up to that).
    """

    def __init__(self, path: Path, poll_s: float = 0.002) -> None:
        self.path = path
        self.poll_s = poll_s
        self.lines: queue.Queue[tuple[int, str]] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        while not self.path.exists() and not self._stop.is_set():
            time.sleep(self.poll_s)
        if self._stop.is_set():
            return
        pending = b""
        with self.path.open("rb") as file:
            while not self._stop.is_set():
                data = file.read()
                if not data:
                    time.sleep(self.poll_s)
                    continue
                now = time.time_ns()
                pending += data
                *complete, pending = pending.split(b"\n")
                for line in complete:
                    self.lines.put((now, line.decode()))

    def collect(self, count: int, timeout_s: float) -> list[tuple[int, str]]:
        """Up to ``count`` lines, waiting at most ``timeout_s`` in all."""
        return collect_lines(self.lines, count, timeout_s)

    def close(self) -> None:
        """Stop following."""
        self._stop.set()
        self._thread.join(5)
