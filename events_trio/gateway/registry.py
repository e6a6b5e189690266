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
from collections.abc import Callable, Mapping, Sequence
from typing import Final

import httpx
import trio

from ..core.errors import ConfigError
from .config import GatewayConfig, ProjectConfig
from .eventlog import EventLog
from .poller import Poller, PollerSettings
from .status import ProjectStatus
from .tracker import Position

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
        #: Pollers by project name (shared, like ``pollers``, by a cluster's registry).
        self._by_name = {poller.project.name: poller for poller in pollers}
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
        poller = self._by_name.get(name)
        return None if poller is None else poller.project

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run every poller until cancelled; report started once they all run."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for poller in self.pollers:
                self._start(poller)
            task_status.started()
            await trio.sleep_forever()

    async def add(
        self,
        project: ProjectConfig,
        *,
        by_api: bool = False,
        quiet: bool = False,
        positions: Mapping[str, Position] | None = None,
    ) -> ProjectStatus:
        """Register ``project`` and start polling it at once.

        Args:
            project: The project.
            by_api: Added through the admin API (not from the file).
            quiet: Log nothing (the caller says why: cluster ownership).
            positions: Stored positions read by the caller (read here if omitted).

        Raises:
            ProjectExists: the name is taken.
            ConfigError: the registry is full, or not running.
        """
        if self.get(project.name) is not None:
            raise ProjectExists(f"project {project.name!r} is registered already")
        if len(self.pollers) >= MAX_PROJECTS:
            raise ConfigError(f"at most {MAX_PROJECTS} projects")
        if positions is None:
            positions = await self.log_store.positions()
        position = positions.get(project.name)
        poller = Poller(
            project,
            self.client,
            self.log_store,
            PollerSettings.for_project(self.config, project),
            position=position,
            rand=self._rand,
        )
        self.pollers.append(poller)
        self._by_name[project.name] = poller
        self.statuses.append(poller.status)
        self._start(poller)
        if by_api:
            self.from_api.add(project.name)
        if not quiet:
            log.info("project %s added (%s)", project.name, project.url)
        return poller.status

    async def apply(self, projects: Sequence[ProjectConfig]) -> tuple[int, int]:
        """A reload: make the file's projects ``projects``; returns (added, removed).

        Projects added through the admin API are left alone; a changed one
        is restarted with its new settings.
        """
        wanted = {project.name: project for project in projects}
        removed = 0
        for name in self.names:
            if name in self.from_api:
                continue
            if self.get(name) != wanted.get(name):
                self.remove(name)
                removed += 1
        added = 0
        for name, project in wanted.items():
            if self.get(name) is None:
                await self.add(project)
                added += 1
        return added, removed

    async def delete(self, name: str) -> bool:
        """The admin API's removal (:meth:`remove`; async for the cluster's shared registry)."""
        await trio.lowlevel.checkpoint()
        return self.remove(name)

    def remove(self, name: str, *, quiet: bool = False) -> bool:
        """Stop polling ``name`` and unregister it; False if it was not registered.

        Args:
            name: The project.
            quiet: Log nothing (the caller says why: cluster rebalancing).
        """
        poller = self._by_name.pop(name, None)
        if poller is None:
            return False
        self.pollers.remove(poller)
        self.statuses[:] = [s for s in self.statuses if s is not poller.status]
        self._scopes.pop(name).cancel()
        self.from_api.discard(name)
        if not quiet:
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
