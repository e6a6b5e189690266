"""Cluster mode: this gateway's share of the projects and sinks of every gateway on one PostgreSQL.

Operations: :meth:`ClusterSupervisor.run` (a round every TTL/3),
:meth:`ClusterSupervisor.leave` (a clean stop releases every lease at once),
:class:`ClusterView` (``/api/projects`` and ``/healthz`` for the whole
cluster), :class:`ClusterProjects` (the admin API on the shared registry).

Goals (issue: scale out): each project is polled, and each sink delivered,
by exactly one live gateway; a dead gateway's share is taken over after the
lease TTL, from the stored cursors and offsets; a gateway that lost a lease
stops that work (the log's fence refuses its writes anyway); shares stay
fair as gateways come and go; PostgreSQL being away pauses work without a
crash.

Plan, one round (every TTL/3, at most a second apart): in one transaction, heartbeat, renew what this gateway
holds and read the cluster (live gateways, the shared registry, live
owners). Leases not renewed are lost: drop them from the log's ``held``
(appends refuse at once), stop their pollers and sinks, one line each.
Then :func:`~.ownership.plan_round` for projects and for sinks: release
the excess (stopped first, then released), acquire free ones (``held`` set
first, then started: a poller reads its cursor after the lease is won).
Finally publish the live status of this gateway's projects, for every
gateway's ``/api/projects``. When rounds fail for longer than the TTL,
everything is given up: another gateway may own it by then.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Final

import trio

from ..core.errors import ConfigError
from .config import DEFAULT_LEASE_TTL_S, ProjectConfig
from .errors import StoreError
from .ownership import plan_round
from .pg import lease
from .pg.lease import ClusterState
from .pg.log import PgLog
from .pg.schema import project_resource, sink_resource
from .registry import ProjectExists, ProjectRegistry
from .sinkset import SinkSet
from .status import ProjectStatus
from .tracker import Position

log = logging.getLogger("events_trio.gateway.cluster")

#: Rounds per TTL at least (a lease is renewed this many times before it would expire).
ROUNDS_PER_TTL: Final = 3
#: Share of the TTL a renewed lease is trusted locally (the rest covers clock drift).
LEASE_TRUST: Final = 0.8
#: Longest pause between rounds: how soon released or new work is picked up.
MAX_ROUND_INTERVAL_S: Final = 1.0
#: Every this many rounds, statuses whose counters alone moved are published too.
STATUS_REFRESH_ROUNDS: Final = 5
_PROJECT: Final = "project:"
_SINK: Final = "sink:"


def _headline(status: ProjectStatus) -> tuple[object, ...]:
    """What of a status is published at once when it changes."""
    return (status.state, status.mode, status.last_error, status.url)


def project_spec(project: ProjectConfig) -> dict[str, Any]:
    """A project as the shared registry stores it."""
    spec: dict[str, Any] = {"url": project.url}
    if project.token is not None:
        spec["token"] = project.token
    if project.poll_interval_s is not None:
        spec["poll_interval_s"] = project.poll_interval_s
    return spec


def project_from_spec(name: str, spec: dict[str, Any]) -> ProjectConfig:
    """The :class:`ProjectConfig` a shared-registry row describes."""
    return ProjectConfig(name, spec["url"], spec.get("token"), spec.get("poll_interval_s"))


@dataclass(slots=True)
class ClusterSupervisor:
    """Owns this gateway's share of the cluster's work.

    Args:
        log_store: The cluster's log (its ``held`` is kept current here).
        registry: The pollers this gateway runs (only projects it owns).
        sinkset: The configured sinks, gated (delivering only while leased).
        projects: The projects of this gateway's configuration (upserted at start).
        ttl_s: Lease TTL.
        url: Where this gateway serves (shown to the other gateways).
    """

    log_store: PgLog
    registry: ProjectRegistry
    sinkset: SinkSet
    projects: Sequence[ProjectConfig]
    ttl_s: float = DEFAULT_LEASE_TTL_S
    url: str = ""
    #: The last round's view (version -1 until the registry was first read).
    state: ClusterState = field(default_factory=lambda: ClusterState([], registry_version=-1))
    #: The shared registry (name -> spec) at ``state.registry_version``.
    specs: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: What was last published of each project polled here (copies; only changes are sent).
    _published: dict[str, ProjectStatus] = field(default_factory=dict)
    _rounds: int = 0
    _last_ok: float = 0.0
    _failing: bool = False

    @property
    def gateway_id(self) -> str:
        """This gateway's id (its lease owner name)."""
        return self.log_store.gateway_id

    @property
    def store_ok(self) -> bool:
        """Whether the last round reached PostgreSQL."""
        return not self._failing

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Upsert the configured projects, then a round every TTL/3 (at most 1 s) until cancelled."""
        self._last_ok = trio.current_time()
        specs = {p.name: project_spec(p) for p in self.projects}
        while True:
            try:
                await self.log_store.runner.run(partial(lease.upsert_projects, specs=specs))
                break
            except StoreError as error:
                self._note_failure(error)
                await trio.sleep(self.interval_s)
        task_status.started()
        while True:
            await self.round()
            await trio.sleep(self.interval_s)

    @property
    def interval_s(self) -> float:
        """Pause between rounds."""
        return min(self.ttl_s / ROUNDS_PER_TTL, MAX_ROUND_INTERVAL_S)

    async def round(self) -> None:
        """One round: heartbeat, renew, rebalance, publish statuses."""
        held = dict(self.log_store.held)
        began = trio.current_time()
        try:
            renewed, state = await self.log_store.runner.run(partial(self._read_round, held))
        except StoreError as error:
            self._note_failure(error)
            if trio.current_time() - self._last_ok > self.ttl_s * LEASE_TRUST:
                self._give_up_all("cannot renew leases for longer than the TTL")
            return
        if self._failing:
            log.warning("cluster: PostgreSQL reachable again")
        self._failing = False
        self._last_ok = began
        # The database set every renewed lease to expire at its now() + TTL, after `began`.
        self.log_store.leases_trusted_until = began + self.ttl_s * LEASE_TRUST
        self.state = state
        registry_changed = state.specs is not None
        if state.specs is not None:
            self.specs = state.specs
        for resource in sorted(set(held) - set(renewed)):
            self._stop(resource, "lease lost: another gateway owns it now")
        try:
            await self._rebalance(state, registry_changed=registry_changed)
            await self._publish_statuses()
        except StoreError as error:
            self._note_failure(error)

    def _read_round(self, held: dict[str, int], conn: Any) -> tuple[dict[str, int], ClusterState]:
        lease.heartbeat(conn, self.gateway_id, self.ttl_s, self.url)
        renewed = lease.renew(conn, self.gateway_id, held, self.ttl_s)
        return renewed, lease.cluster_state(conn, self.state.registry_version)

    async def _publish_statuses(self) -> None:
        """Send the statuses that changed since they were last sent.

        A change of state, mode or error goes out this round; one of the
        counters alone (cursor, polls, ...: every event moves them) waits for
        every :data:`STATUS_REFRESH_ROUNDS`-th round.
        """
        self._rounds += 1
        refresh = self._rounds % STATUS_REFRESH_ROUNDS == 0
        statuses = {s.name: s for s in self.registry.statuses}
        changed: dict[str, dict[str, Any]] = {}
        for name, status in statuses.items():
            sent = self._published.get(name)
            if sent is None or _headline(status) != _headline(sent) or (refresh and status != sent):
                changed[name] = status.to_json()
        if changed:
            await self.log_store.runner.run(partial(lease.publish_statuses, statuses=changed))
        self._published = {
            n: replace(s) if n in changed else self._published[n] for n, s in statuses.items()
        }

    async def _rebalance(self, state: ClusterState, *, registry_changed: bool) -> None:
        live = max(len(state.gateways), 1)
        projects = {project_resource(name): spec for name, spec in self.specs.items()}
        sinks = {sink_resource(name) for name in self.sinkset.names}
        owned = {_PROJECT: set(projects) - state.free, _SINK: set(state.sink_owners)}
        for prefix, resources in ((_PROJECT, set(projects)), (_SINK, sinks)):
            mine = [r for r in self.log_store.held if r.startswith(prefix)]
            plan = plan_round(self.gateway_id, resources, mine, owned[prefix], live)
            for resource in plan.release:
                self._stop(resource, "released to rebalance the cluster", level=logging.INFO)
            if plan.release:
                await self.log_store.runner.run(
                    partial(lease.release, me=self.gateway_id, resources=plan.release)
                )
            if plan.acquire:
                won = await self.log_store.runner.run(
                    partial(
                        lease.acquire, me=self.gateway_id, wanted=plan.acquire, ttl_s=self.ttl_s
                    )
                )
                for resource, epoch in won.items():
                    self.log_store.held[resource] = epoch  # before any cursor is read
                # Read after the leases are won: the cursors the previous owners left.
                positions = await self.log_store.positions() if prefix == _PROJECT and won else {}
                for resource, epoch in sorted(won.items()):
                    await self._start(resource, epoch, projects, positions)
        if registry_changed:
            await self._follow_spec_changes(projects)
        for resource in [r for r in self.log_store.held if r.startswith(_SINK)]:
            await self.sinkset.activate(resource.split(":", 1)[1])  # one that paused itself

    async def _start(
        self,
        resource: str,
        epoch: int,
        projects: dict[str, dict[str, Any]],
        positions: dict[str, Position],
    ) -> None:
        name = resource.split(":", 1)[1]
        if resource.startswith(_SINK):
            await self.sinkset.activate(name)
            log.info("cluster: delivering sink %s here (epoch %d)", name, epoch)
            return
        try:
            project = project_from_spec(name, projects[resource])
            await self.registry.add(project, quiet=True, positions=positions)
        except ConfigError as error:  # a bad row in the shared registry
            log.error("cluster: cannot poll project %s: %s", name, error)
            return
        log.info("cluster: polling project %s here (epoch %d)", name, epoch)

    def _stop(self, resource: str, why: str, *, level: int = logging.WARNING) -> None:
        self.log_store.held.pop(resource, None)  # its appends are refused from now on
        name = resource.split(":", 1)[1]
        if resource.startswith(_SINK):
            self.sinkset.deactivate(name)
            log.log(level, "cluster: sink %s %s", name, why)
        else:
            self.registry.remove(name, quiet=True)
            log.log(level, "cluster: project %s %s", name, why)

    async def _follow_spec_changes(self, projects: dict[str, dict[str, Any]]) -> None:
        # A project updated in the shared registry (new URL or token) is restarted with it.
        for resource in [r for r in self.log_store.held if r.startswith(_PROJECT)]:
            spec = projects.get(resource)
            name = resource.split(":", 1)[1]
            current = self.registry.get(name)
            if spec is None or current is None:
                continue
            wanted = project_from_spec(name, spec)
            if wanted != current:
                self.registry.remove(name, quiet=True)
                await self.registry.add(wanted, quiet=True)
                log.info("cluster: project %s changed in the shared registry", name)

    def _give_up_all(self, why: str) -> None:
        for resource in sorted(self.log_store.held):
            self._stop(resource, why)

    def _note_failure(self, error: StoreError) -> None:
        if not self._failing:
            log.error("cluster: %s", error)
        self._failing = True

    async def leave(self) -> None:
        """A clean stop: release every lease at once (survivors take over without the TTL).

        The sinks' last offsets are written first, while their leases still hold.
        """
        try:
            with trio.move_on_after(5):
                await self.log_store.group.flush()
                self.log_store.held.clear()
                await self.log_store.runner.run(partial(lease.leave, me=self.gateway_id))
                log.info("cluster: leases released")
        except StoreError as error:
            log.error("cluster: cannot release leases (they expire after the TTL): %s", error)


class ClusterView:
    """``/api/projects`` and ``/healthz`` for the whole cluster (from the last round).

    Args:
        supervisor: This gateway's supervisor.
        statuses: Live status of the projects polled here.
    """

    def __init__(self, supervisor: ClusterSupervisor, statuses: Sequence[ProjectStatus]) -> None:
        self.supervisor = supervisor
        self.statuses = statuses
        self.gateway_id = supervisor.gateway_id
        self._listing: list[lease.ClusterProject] = []

    async def projects(self) -> list[dict[str, Any]]:
        """Every project of the cluster: live status here, published status elsewhere.

        Read from PostgreSQL on each call (owners as of now); while it is
        unreachable, the last listing read.
        """
        try:
            self._listing = await self.supervisor.log_store.runner.run(lease.project_listing)
        except StoreError:
            pass  # /healthz says the store is unavailable
        local = {s.name: s for s in self.statuses}
        listed: list[dict[str, Any]] = []
        for project in self._listing:
            status = local.get(project.name)
            if status is not None:
                listed.append({**status.to_json(), "owner": self.gateway_id})
                continue
            shown = ProjectStatus(project.name, project.url).to_json()
            if project.owner is not None and project.status:
                shown.update({k: v for k, v in project.status.items() if k in shown})
            listed.append({**shown, "owner": project.owner})
        return listed

    def health(self) -> tuple[bool, dict[str, Any]]:
        """The gateway's id, the live gateways, and whether PostgreSQL answers."""
        ok = self.supervisor.store_ok
        return ok, {
            "gateway_id": self.gateway_id,
            "gateways": list(self.supervisor.state.gateways),
            "store": "ok" if ok else "unavailable",
        }


class ClusterProjects(ProjectRegistry):
    """The admin API's registry in cluster mode: changes go to the shared registry.

    Adding or removing a project writes ``et_projects``; the gateways' next
    rounds start or stop its poller wherever it is owned.
    """

    def __init__(self, supervisor: ClusterSupervisor) -> None:
        local = supervisor.registry
        super().__init__(local.config, local.client, local.log_store, local.pollers, local.statuses)
        self._by_name = local._by_name  # the same pollers, so the same index
        self.supervisor = supervisor

    def _known(self, name: str) -> bool:
        return name in self.supervisor.specs

    async def add(
        self,
        project: ProjectConfig,
        *,
        by_api: bool = False,
        quiet: bool = False,
        positions: Mapping[str, Position] | None = None,
    ) -> ProjectStatus:
        """Register ``project`` in the shared registry (a gateway starts it within a round)."""
        if self._known(project.name) or self.supervisor.registry.get(project.name):
            raise ProjectExists(f"project {project.name!r} is registered already")
        runner = self.supervisor.log_store.runner
        try:
            await runner.run(
                partial(lease.upsert_projects, specs={project.name: project_spec(project)})
            )
        except StoreError as error:
            raise ConfigError(str(error)) from None
        log.info("project %s added to the cluster (%s)", project.name, project.url)
        return ProjectStatus(project.name, project.url)

    async def apply(self, projects: Sequence[ProjectConfig]) -> tuple[int, int]:
        """A reload: upsert the file's projects into the shared registry (none are removed).

        Removing a project from a cluster is explicit (``DELETE /api/projects/NAME``):
        the other gateways' files may still list it.
        """
        specs = {p.name: project_spec(p) for p in projects}
        added = sum(not self._known(name) for name in specs)
        try:
            await self.supervisor.log_store.runner.run(partial(lease.upsert_projects, specs=specs))
        except StoreError as error:
            raise ConfigError(str(error)) from None
        return added, 0

    async def delete(self, name: str) -> bool:
        """Remove ``name`` from the shared registry (its owner stops it within a round)."""
        try:
            found = await self.supervisor.log_store.runner.run(
                partial(lease.delete_project, name=name)
            )
        except StoreError as error:
            raise ConfigError(str(error)) from None
        if found:
            log.info("project %s removed from the cluster (its entries stay in the log)", name)
        return found
