"""Real project servers and a real gateway on port 0, run by Trio in a thread.

For tests that drive them from synchronous code — a browser through
Playwright's sync API, schemathesis — while Trio serves. Every call into
the Trio thread goes through ``trio.from_thread`` with the run's token.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Self, TypeVar

import trio

from events_trio.core.events import WatcherEvent
from events_trio.gateway import GatewayConfig, PollSettings, ProjectConfig, run_gateway
from events_trio.gateway.service import RunningGateway
from events_trio.server.config import ServerConfig
from events_trio.server.run import RunningServer, run_server

T = TypeVar("T")

FAST_POLL = PollSettings(interval_s=0.2, backoff_initial_s=0.05, backoff_max_s=0.3)
START_TIMEOUT_S = 30.0


@dataclass
class Running:
    """A component started in the stack's nursery, with the event set when it ended."""

    value: Any
    done: trio.Event


class LiveStack:
    """Project servers named ``projects`` and a gateway polling them.

    Args:
        state_dir: The gateway's state directory (kept across restarts).
        projects: Project names.
        server_config: Settings of every project server (port 0).
        gateway_changes: Settings of the gateway beyond the defaults here
            (``read_token=...``).
    """

    def __init__(
        self,
        state_dir: Path,
        projects: tuple[str, ...] = ("a", "b"),
        server_config: ServerConfig | None = None,
        gateway_changes: dict[str, Any] | None = None,
    ) -> None:
        self.gateway_changes = gateway_changes or {}
        self.state_dir = state_dir
        self.names = projects
        self.server_config = server_config or ServerConfig(port=0, graceful_timeout_s=0.2)
        self.servers: dict[str, Running] = {}
        self.gateway: Running | None = None
        self.gateway_port = 0
        self._token: trio.lowlevel.TrioToken | None = None
        self._nursery: trio.Nursery | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._thread_main, daemon=True)

    # -- from the test's thread --------------------------------------------

    def __enter__(self) -> Self:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise TimeoutError("the live stack did not start")
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None and self._thread.is_alive():
            trio.from_thread.run_sync(self._cancel, trio_token=self._token)
        self._thread.join(START_TIMEOUT_S)

    @property
    def gateway_url(self) -> str:
        """Base URL of the gateway."""
        assert self.gateway is not None
        running: RunningGateway = self.gateway.value
        return running.url

    def server(self, name: str) -> RunningServer:
        """The running project server ``name``."""
        server: RunningServer = self.servers[name].value
        return server

    def publish(self, name: str, event: WatcherEvent) -> None:
        """Publish ``event`` on project ``name``'s hub."""
        self._sync(self.server(name).hub.publish, event)

    def stop_project(self, name: str) -> None:
        """Shut project ``name`` down and wait until it has stopped."""
        self._run(self._stop_component, self.servers[name])

    def restart_gateway(self) -> None:
        """Stop the gateway and start a new one on the same port and state dir."""
        assert self.gateway is not None
        self._run(self._stop_component, self.gateway)
        self._run(self._start_gateway)

    def _sync(self, fn: Callable[..., T], *args: Any) -> T:
        return trio.from_thread.run_sync(fn, *args, trio_token=self._token)

    def _run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        return trio.from_thread.run(fn, *args, trio_token=self._token)

    # -- in the Trio thread -------------------------------------------------

    def _thread_main(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as error:  # noqa: BLE001 (re-raised in the test's thread)
            self._error = error
            self._ready.set()

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for name in self.names:
                self.servers[name] = await self._start(partial(run_server, self.server_config))
            await self._start_gateway()
            self._ready.set()

    def _cancel(self) -> None:
        assert self._nursery is not None
        self._nursery.cancel_scope.cancel()

    async def _start_gateway(self) -> None:
        projects = tuple(ProjectConfig(n, self.server(n).url) for n in self.names)
        config = GatewayConfig(
            projects=projects,
            port=self.gateway_port,
            state_dir=self.state_dir,
            poll=FAST_POLL,
            graceful_timeout_s=0.2,
        ).replace(**self.gateway_changes)
        self.gateway = await self._start(partial(run_gateway, config, sinks=[]))
        self.gateway_port = self.gateway.value.port

    async def _start(self, fn: Callable[..., Awaitable[None]]) -> Running:
        done = trio.Event()

        async def run(*, task_status: trio.TaskStatus[Any]) -> None:
            try:
                await fn(task_status=task_status)
            finally:
                done.set()

        assert self._nursery is not None
        value = await self._nursery.start(run)
        return Running(value, done)

    async def _stop_component(self, component: Running) -> None:
        component.value.shutdown()
        with trio.fail_after(START_TIMEOUT_S):
            await component.done.wait()
