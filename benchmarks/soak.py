"""Soak: server and gateway under mixed load for a long time; RSS must stay flat.

``python -m benchmarks.soak [--minutes 30] [--rate 20]`` (``nox -s soak``;
not a test, not in CI). Starts ``events-trio serve`` (watching a pipeline
directory, ingest enabled) and ``events-trio gateway`` (JSON-lines sink) as
subprocesses, then for ``--minutes``:

* ingests ``--rate`` events a second through ``POST /api/events``,
* moves a work item between pipeline stages every second (watcher events),
* polls the server's and the gateway's ``GET /api/events`` every second,

sampling both processes' RSS (``/proc/PID/status``) and open file
descriptors (``/proc/PID/fd``) at the start, every minute and at the end. Finally it stops both with SIGTERM and prints start
and end RSS, the growth, the exit codes, how many ERROR/Traceback lines each
logged, and whether the sink holds every ingested event exactly once.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Final

import httpx
import msgspec

EVENTS_TRIO: Final = str(Path(sys.executable).parent / "events-trio")
TOKEN: Final = "soak-token"
_URL: Final = re.compile(r"serving on (http://\S+)")
_ERROR: Final = re.compile(r" ERROR |Traceback")
STAGES: Final = ("1_backlog", "2_current", "3_qa", "4_merge", "5_done")


class Child:
    """A subprocess whose stderr lines are collected."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._collect, args=(self.proc.stderr,), daemon=True)
        self._reader.start()

    def _collect(self, stream: IO[str] | None) -> None:
        assert stream is not None
        self.lines.extend(line.rstrip("\n") for line in stream)

    def url(self, timeout_s: float = 30.0) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if match := _URL.search(line):
                    return match.group(1)
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise SystemExit(f"no 'serving on' line from {self.proc.args!r}: {self.lines}")

    def rss_kib(self) -> int:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        return int(match.group(1)) if match else 0

    def fds(self) -> int:
        """Open file descriptors (``/proc/PID/fd``)."""
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def errors(self) -> list[str]:
        return [line for line in self.lines if _ERROR.search(line)]

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(30)
        self._reader.join(10)
        return code


#: Seconds since start; server and gateway RSS (KiB); server and gateway open fds.
Sample = tuple[float, int, int, int, int]


def sample(t: float, server: Child, gateway: Child) -> Sample:
    return (t, server.rss_kib(), gateway.rss_kib(), server.fds(), gateway.fds())


def move_item(pipeline: Path, tick: int) -> None:
    """Create or move work items so the watcher sees stage transitions."""
    item = f"{tick % 20}_story_soak.md"
    for index, stage in enumerate(STAGES):
        path = pipeline / stage / item
        if path.exists():
            path.rename(pipeline / STAGES[(index + 1) % len(STAGES)] / item)
            return
    (pipeline / STAGES[0] / item).write_text("soak\n")


def delivered(sink: Path) -> list[str]:
    if not sink.exists():
        return []
    stories = []
    for line in sink.read_bytes().splitlines():
        event = msgspec.json.decode(line)
        if event.get("type") == "merge_failure":
            stories.append(event["story_id"])
    return stories


def soak(minutes: float, rate: float) -> int:
    work = Path(tempfile.mkdtemp(prefix="events-trio-soak-"))
    pipeline, sink = work / "pipeline", work / "sink.jsonl"
    server = Child(
        [EVENTS_TRIO, "serve", "--port", "0", "--pipeline", str(pipeline)],
        env={"EVENTS_TRIO_INGEST_TOKEN": TOKEN},
    )
    server_url = server.url()
    gateway = Child(
        [
            *(EVENTS_TRIO, "gateway", "--port", "0", "--state-dir", str(work / "state")),
            *("--project", f"soak={server_url}", "--sink", f"jsonl:{sink}"),
        ]
    )
    gateway_url = gateway.url()
    time.sleep(2)  # the gateway's first poll sets its cursor to "now"
    samples: list[Sample] = [sample(0.0, server, gateway)]
    print(f"soak: {minutes:g} min, {rate:g} events/s, work dir {work}", flush=True)
    ingested: list[str] = []
    polls = poll_failures = 0
    headers = {"Authorization": f"Bearer {TOKEN}"}
    start = time.monotonic()
    end = start + minutes * 60
    next_sample = start + 60
    tick = 0
    with httpx.Client(timeout=10) as http:
        while (now := time.monotonic()) < end:
            for _ in range(max(1, round(rate))):
                story = f"{len(ingested)}_story_ingest"
                body = {"type": "merge_failure", "story_id": story, "reason": "soak"}
                if http.post(f"{server_url}/api/events", json=body, headers=headers).is_success:
                    ingested.append(story)
            move_item(pipeline, tick)
            for url in (server_url, gateway_url):
                polls += 1
                poll_failures += not http.get(f"{url}/api/events", params={"since": 0}).is_success
            if now >= next_sample:
                samples.append(sample(now - start, server, gateway))
                t, s_rss, g_rss, s_fds, g_fds = samples[-1]
                print(
                    f"  {t / 60:5.1f} min  server {s_rss} KiB, {s_fds} fds  "
                    f"gateway {g_rss} KiB, {g_fds} fds",
                    flush=True,
                )
                next_sample += 60
            tick += 1
            time.sleep(max(0.0, start + tick - time.monotonic()))
    time.sleep(3)  # let the gateway deliver the last events
    samples.append(sample(time.monotonic() - start, server, gateway))
    got = delivered(sink)
    codes = (server.stop(), gateway.stop())
    report(samples, ingested, got, polls, poll_failures, codes, server, gateway)
    ok = got == ingested and codes == (0, 0) and not server.errors() and not gateway.errors()
    return 0 if ok else 1


def report(
    samples: list[Sample],
    ingested: list[str],
    got: list[str],
    polls: int,
    poll_failures: int,
    codes: tuple[int, int],
    server: Child,
    gateway: Child,
) -> None:
    (_, s0, g0, sf0, gf0), (_, s1, g1, sf1, gf1) = samples[0], samples[-1]
    print(f"server  RSS start {s0} KiB, end {s1} KiB ({s1 - s0:+d} KiB)")
    print(f"gateway RSS start {g0} KiB, end {g1} KiB ({g1 - g0:+d} KiB)")
    print(f"open fds: server {sf0} -> {sf1}, gateway {gf0} -> {gf1}")
    print(f"ingested {len(ingested)}, delivered {len(got)}, exactly once: {got == ingested}")
    print(f"polls {polls}, failed {poll_failures}")
    print(f"error lines: server {len(server.errors())}, gateway {len(gateway.errors())}")
    for line in (server.errors() + gateway.errors())[:10]:
        print("  ", line)
    print(f"exit codes: server {codes[0]}, gateway {codes[1]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=30.0, help="duration (default: 30)")
    parser.add_argument("--rate", type=float, default=20.0, help="ingested events/s (default: 20)")
    args = parser.parse_args()
    raise SystemExit(soak(args.minutes, args.rate))


if __name__ == "__main__":
    main()
