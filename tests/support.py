"""Helpers shared by the tests."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Final, Self

import trio


class FakeClockMs:
    """A settable millisecond wall clock for deterministic stamps."""

    def __init__(self, now: int = 1_764_201_600_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


async def until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Poll ``condition`` in real time, for tests that involve real sockets or files.

    Never a fixed sleep: it returns as soon as the condition holds and fails
    after a generous ``timeout_s``.
    """
    with trio.fail_after(timeout_s):
        # Real sockets and files give no Trio event to wait on: poll.
        while not condition():  # noqa: ASYNC110
            await trio.sleep(0.005)


EXE_DIR: Final = Path(sys.executable).parent
#: The installed console script (the same venv as the tests).
EVENTS_TRIO: Final = str(EXE_DIR / "events-trio")
_URL: Final = re.compile(r"serving on (http://\S+)")


class CliProcess:
    """An ``events-trio`` subprocess whose stderr is collected line by line."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        preexec_fn: Callable[[], object] | None = None,
    ) -> None:
        self.proc = subprocess.Popen(
            args,
            # Callers pass only async-signal-safe work (one prctl call, resolved before fork).
            preexec_fn=preexec_fn,  # noqa: PLW1509
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.lines: list[str] = []
        self.out: list[str] = []
        self._readers = [
            threading.Thread(target=self._collect, args=(stream, into), daemon=True)
            for stream, into in ((self.proc.stderr, self.lines), (self.proc.stdout, self.out))
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _collect(stream: IO[str] | None, into: list[str]) -> None:
        assert stream is not None
        into.extend(line.rstrip("\n") for line in stream)

    def wait_for(
        self, pattern: str, timeout_s: float = 20.0, *, stdout: bool = False
    ) -> re.Match[str]:
        """Wait (real time, generous bound) for a log line matching ``pattern``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout_s
        source = self.out if stdout else self.lines
        while time.monotonic() < deadline:
            for line in list(source):
                if match := regex.search(line):
                    return match
            if self.proc.poll() is not None and not any(regex.search(x) for x in source):
                time.sleep(0.05)  # let the reader thread finish the last lines
                break
            time.sleep(0.01)
        for line in list(source):
            if match := regex.search(line):
                return match
        raise AssertionError(f"no line matching {pattern!r}; got: {self.lines + self.out}")

    def url(self) -> str:
        """The URL the process logs as ``serving on http://...``."""
        return self.wait_for(_URL.pattern).group(1)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> int:
        """Send ``sig`` and return the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout_s)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for reader in self._readers:
            reader.join(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def free_port() -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
