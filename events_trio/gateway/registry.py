"""The running set of projects: one poller each, added and removed at run time.

Start-up hands the registry the pollers built from the configuration; the
admin API (``admin.py``) and SIGHUP (``reload.py``) add and remove projects
while the gateway runs. Each poller runs in its own cancel scope inside the
registry's nursery, so removing one stops it at once (an append in flight
completes first: it is one transaction) and touches no other. The lists of
pollers and statuses are shared with the HTTP API and the metrics and are
changed in place, from the Trio thread only.

A removed project keeps its entries in the log and its stored cursor: added
again, it continues from that cursor, as after a restart; a project the
gateway has never seen starts from "now" (or its whole buffer with
``--replay``).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Final

import httpx
import trio

from ..core.errors import ConfigError
from .config import GatewayConfig, ProjectConfig
from .eventlog import EventLog
from .poller import Poller, PollerSettings
from .status import ProjectStatus

log = logging.getLogger("events_trio.gateway.registry")

#: Most projects one gateway polls (the connection pool is sized at start).
MAX_PROJECTS: Final = 10_000


class ProjectExists(ConfigError):
    """A project of that name is registered already."""


class ProjectRegistry:
    """Pollers by project name, each in its own cancel scope.

    Args:
        config: Gateway settings (poll timings for new projects).
        client: HTTP client shared by every poller.
        log_store: The merged log.
        pollers: The pollers built at start-up (changed in place).
        statuses: Their statuses, as the HTTP API lists them (changed in place).
        rand: Jitter source in [0, 1).
    """

    def __init__(
        self,
        config: GatewayConfig,
        client: httpx.AsyncClient,
        log_store: EventLog,
        pollers: list[Poller],
        statuses: list[ProjectStatus],
        *,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.client = client
        self.log_store = log_store
        self.pollers = pollers
        self.statuses = statuses
        self._rand = rand
        self._scopes: dict[str, trio.CancelScope] = {}
        #: Projects added through the admin API (a SIGHUP reload leaves them alone).
        self.from_api: set[str] = set()
        self._nursery: trio.Nursery | None = None

    @property
    def names(self) -> list[str]:
        """Registered project names, in registry order."""
        return [poller.project.name for poller in self.pollers]

    def get(self, name: str) -> ProjectConfig | None:
        """The registered project ``name``, if any."""
        return next((p.project for p in self.pollers if p.project.name == name), None)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run every poller until cancelled; report started once they all run."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for poller in self.pollers:
                self._start(poller)
            task_status.started()
            await trio.sleep_forever()

    async def add(self, project: ProjectConfig, *, by_api: bool = False) -> ProjectStatus:
        """Register ``project`` and start polling it at once.

        Args:
            project: The project.
            by_api: Added through the admin API (not from the file).

        Raises:
            ProjectExists: the name is taken.
            ConfigError: the registry is full, or not running.
        """
        if self.get(project.name) is not None:
            raise ProjectExists(f"project {project.name!r} is registered already")
        if len(self.pollers) >= MAX_PROJECTS:
            raise ConfigError(f"at most {MAX_PROJECTS} projects")
        position = (await self.log_store.positions()).get(project.name)
        poller = Poller(
            project,
            self.client,
            self.log_store,
            PollerSettings.for_project(self.config, project),
            position=position,
            rand=self._rand,
        )
        self.pollers.append(poller)
        self.statuses.append(poller.status)
        self._start(poller)
        if by_api:
            self.from_api.add(project.name)
        log.info("project %s added (%s)", project.name, project.url)
        return poller.status

    def remove(self, name: str) -> bool:
        """Stop polling ``name`` and unregister it; False if it was not registered."""
        index = next((i for i, p in enumerate(self.pollers) if p.project.name == name), None)
        if index is None:
            return False
        poller = self.pollers.pop(index)
        self.statuses[:] = [s for s in self.statuses if s is not poller.status]
        self._scopes.pop(name).cancel()
        self.from_api.discard(name)
        log.info("project %s removed (its entries stay in the log)", name)
        return True

    def _start(self, poller: Poller) -> None:
        if self._nursery is None:
            raise ConfigError("the gateway is not running")
        scope = trio.CancelScope()
        self._scopes[poller.project.name] = scope

        async def run() -> None:
            with scope:
                await poller.run()

        self._nursery.start_soon(run)
