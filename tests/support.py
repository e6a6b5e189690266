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
import watchfiles


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
        # Readers notify this on every line and at end of output: waiting for
        # a log line is a wait on a condition, not a polling loop.
        self._arrived = threading.Condition()
        self._open_streams = 2
        self._readers = [
            threading.Thread(target=self._collect, args=(stream, into), daemon=True)
            for stream, into in ((self.proc.stderr, self.lines), (self.proc.stdout, self.out))
        ]
        for reader in self._readers:
            reader.start()

    def _collect(self, stream: IO[str] | None, into: list[str]) -> None:
        assert stream is not None
        for line in stream:
            with self._arrived:
                into.append(line.rstrip("\n"))
                self._arrived.notify_all()
        with self._arrived:
            self._open_streams -= 1
            self._arrived.notify_all()

    def wait_for(
        self, pattern: str, timeout_s: float = 20.0, *, stdout: bool = False
    ) -> re.Match[str]:
        """Wait (real time, generous bound) for a log line matching ``pattern``.

        Fails at once when the process has closed its output without one.
        """
        regex = re.compile(pattern)
        source = self.out if stdout else self.lines
        found: list[re.Match[str]] = []

        def matched_or_ended() -> bool:
            found.extend(m for line in source if (m := regex.search(line)))
            return bool(found) or self._open_streams == 0

        with self._arrived:
            self._arrived.wait_for(matched_or_ended, timeout_s)
        if not found:
            raise AssertionError(f"no line matching {pattern!r}; got: {self.lines + self.out}")
        return found[0]

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


def complete_lines(path: Path) -> list[bytes]:
    """The lines of a file another process appends to, without a last line still being written.

    A reader can see a write half done; whoever tails a JSON-lines sink must
    wait for the newline, as the sink itself does when it resumes.
    """
    if not path.exists():
        return []
    data = path.read_bytes()
    return data[: data.rfind(b"\n") + 1].splitlines()


def wait_for_file(path: Path, condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    """Wait until ``condition`` holds for ``path``, a file another process writes.

    Woken by the file's changes (watchfiles, inotify); re-checked at least
    every second in case a write landed before the watch began. Fails after
    a generous ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    if condition():
        return
    only_this = str(path.resolve())
    for _ in watchfiles.watch(
        path.parent,
        watch_filter=lambda _change, changed: changed == only_this,
        debounce=50,
        step=5,
        rust_timeout=1000,
        yield_on_timeout=True,
    ):
        if condition():
            return
        assert time.monotonic() < deadline, f"{path}: condition not met in time"


def free_port() -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
