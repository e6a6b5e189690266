"""The running sinks, each in its own cancel scope, so a reload can add and remove them.

Sinks built from the configuration carry their :class:`SinkSpec`; a reload
(``reload.py``) compares specs: an unchanged sink keeps running (and its
offset), a removed one is cancelled (its offset stays in the state store:
configured again, it continues from there), a new one starts at the log's
end like any new sink. Sinks injected by a caller (no spec) are never
touched. The runners list is shared with the metrics and changed in place.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx
import trio

from .config import SinkSpec
from .eventlog import EventLog
from .sinks import Sink, SinkRunner, build_sink

log = logging.getLogger("events_trio.gateway.sinks")


@dataclass(slots=True)
class _Running:
    runner: SinkRunner
    spec: SinkSpec | None
    scope: trio.CancelScope


class SinkSet:
    """Starts, adds and removes sink runners.

    Args:
        log_store: The merged log.
        client: HTTP client for webhooks.
        runners: The runners built at start-up (changed in place).
        specs: Their specs (``None`` for an injected sink), one per runner.
        public_url: Linked in chat messages.
        rand: Jitter source in [0, 1).
    """

    def __init__(
        self,
        log_store: EventLog,
        client: httpx.AsyncClient,
        runners: list[SinkRunner],
        specs: Sequence[SinkSpec | None],
        *,
        public_url: str | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.log_store = log_store
        self.client = client
        self.runners = runners
        self.public_url = public_url
        self._rand = rand
        self._initial = list(zip(runners, specs, strict=True))
        self._running: list[_Running] = []
        self._nursery: trio.Nursery | None = None

    async def start(self, nursery: trio.Nursery) -> None:
        """Start every runner in ``nursery`` (each reports started once its offset is known)."""
        self._nursery = nursery
        for runner, spec in self._initial:
            await self._start(runner, spec)

    async def apply(self, specs: Sequence[SinkSpec]) -> tuple[int, int]:
        """Make the configured sinks ``specs``; returns (added, removed).

        Raises:
            ConfigError: a new sink cannot be built (nothing changed then).
        """
        wanted = list(specs)
        keep: list[_Running] = []
        for running in self._running:
            if running.spec is None or running.spec in wanted:
                keep.append(running)
                if running.spec is not None:
                    wanted.remove(running.spec)
        gone = [running for running in self._running if running not in keep]
        built = [
            (SinkRunner(self._build(spec), self.log_store, rand=self._rand, route=spec.route), spec)
            for spec in wanted
        ]
        for running in gone:
            running.scope.cancel()
            self.runners.remove(running.runner)
            log.info("sink %s removed", running.runner.sink.name)
        self._running = keep
        for runner, spec in built:
            self.runners.append(runner)
            await self._start(runner, spec)
            log.info("sink %s added", runner.sink.name)
        return len(built), len(gone)

    def _build(self, spec: SinkSpec) -> Sink:
        return build_sink(spec, self.client, public_url=self.public_url)

    async def _start(self, runner: SinkRunner, spec: SinkSpec | None) -> None:
        if self._nursery is None:
            raise RuntimeError("SinkSet.start() was not called")
        scope = trio.CancelScope()
        self._running.append(_Running(runner, spec, scope))

        async def run(*, task_status: trio.TaskStatus[None]) -> None:
            with scope:
                await runner.run(task_status=task_status)

        await self._nursery.start(run)
