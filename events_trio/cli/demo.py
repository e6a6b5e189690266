"""``events-trio demo``: three project servers, a gateway and a simulator, in one command.

Each project server watches a pipeline directory of its own under a
temporary directory; the simulator moves work items through the stages by
real file moves (so the watcher reports them like any other move) and now
and then reports a merge failure or a blocked story through the hub. The
gateway polls every server, prints the console sink's lines and serves its
live page. Ctrl-C or SIGTERM stops everything and removes the directory.
"""

from __future__ import annotations

import argparse
import logging
import random
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Final, TextIO

import trio

from ..core.events import MergeFailure, StoryBlocked
from ..gateway import GatewayConfig, ProjectConfig, run_gateway
from ..gateway.service import RunningGateway
from ..hosting.listening import ShutdownTrigger
from ..hosting.logjson import add_log_format_argument
from ..hosting.logs import LOG_LEVELS
from ..hosting.signals import signal_trigger
from ..server.config import ServerConfig
from ..server.run import RunningServer, run_server
from ..sources.pipeline import DEFAULT_STAGES
from ..sources.watcher import PipelineWatcher

#: Events per second by default: one every 1-2 s.
DEFAULT_RATE: Final = 0.67
DEFAULT_PROJECTS: Final = 3
PROJECT_NAMES: Final = ("billing", "search", "mobile", "checkout", "platform", "docs")
FEATURES: Final = ("login", "export", "dark-mode", "invoices", "search-box", "onboarding")
#: Share of simulator steps that report a merge failure or a blocked story.
TROUBLE_SHARE: Final = 0.15
#: Work items kept in flight per project.
ITEMS_IN_FLIGHT: Final = 4
GRACEFUL_S: Final = 0.5

log = logging.getLogger("events_trio.demo")


@dataclass(frozen=True, slots=True)
class DemoSettings:
    """What ``events-trio demo`` runs.

    Attributes:
        projects: How many project servers.
        rate: Simulated events per second (on average).
        host: Interface of the gateway (its page and API).
        port: Port of the gateway; 0 picks a free one.
    """

    projects: int = DEFAULT_PROJECTS
    rate: float = DEFAULT_RATE
    host: str = "127.0.0.1"
    port: int = 0


@dataclass(slots=True)
class SimProject:
    """One simulated project: its pipeline directory, hub and items (id -> stage index)."""

    name: str
    root: Path
    server: RunningServer
    items: dict[str, int] = field(default_factory=dict)


class Simulator:
    """Moves items through the stages by renaming files; reports trouble now and then.

    Args:
        projects: The projects to drive.
        rate: Events per second on average.
        rng: Random source (tests pin it).
    """

    def __init__(self, projects: list[SimProject], rate: float, rng: random.Random) -> None:
        self.projects = projects
        self.rate = rate
        self.rng = rng
        self._next_id = 1

    async def run(self) -> None:
        """Step forever, one event every ``1 / rate`` seconds on average."""
        while True:
            await self.step()
            await trio.sleep(self.rng.uniform(0.67, 1.33) / self.rate)

    async def step(self) -> None:
        """One simulated event in a random project."""
        project = self.rng.choice(self.projects)
        while len(project.items) < ITEMS_IN_FLIGHT:
            await self._create(project)
        item = self.rng.choice(sorted(project.items))
        if self.rng.random() < TROUBLE_SHARE:
            kind = self.rng.choice((MergeFailure, StoryBlocked))
            reason = "merge conflict" if kind is MergeFailure else "retry limit exceeded"
            project.server.hub.publish(kind(item, reason))
            return
        await self._advance(project, item)

    async def _create(self, project: SimProject) -> None:
        item = f"{self._next_id}_story_{self.rng.choice(FEATURES)}"
        self._next_id += 1
        await trio.Path(project.root / DEFAULT_STAGES[0] / f"{item}.md").write_text(item + "\n")
        project.items[item] = 0

    async def _advance(self, project: SimProject, item: str) -> None:
        stage = project.items[item]
        source = trio.Path(project.root / DEFAULT_STAGES[stage] / f"{item}.md")
        if stage + 1 == len(DEFAULT_STAGES):
            await source.unlink()  # archived items leave; a new one takes their place
            del project.items[item]
            return
        await source.rename(project.root / DEFAULT_STAGES[stage + 1] / f"{item}.md")
        project.items[item] = stage + 1


def project_name(index: int) -> str:
    """``billing``, ``search``, ``mobile``, ... then ``project-7``."""
    return PROJECT_NAMES[index] if index < len(PROJECT_NAMES) else f"project-{index + 1}"


async def run_demo(
    settings: DemoSettings,
    *,
    shutdown_trigger: ShutdownTrigger,
    out: TextIO | None = None,
    rng: random.Random | None = None,
    task_status: trio.TaskStatus[RunningGateway] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the demo until ``shutdown_trigger`` returns; the temporary directory goes too.

    Args:
        settings: Projects, rate, gateway address.
        shutdown_trigger: Returns when the demo should stop.
        out: Where the page URL is printed (stdout by default).
        rng: Random source of the simulator.
        task_status: Receives the running gateway.
    """
    out = out if out is not None else sys.stdout
    async with _temporary_dir() as root, trio.open_nursery() as nursery:
        projects = [
            await _start_project(nursery, project_name(i), root) for i in range(settings.projects)
        ]
        gateway: RunningGateway = await nursery.start(
            partial(run_gateway, _gateway_config(settings, projects, root))
        )
        print(f"events-trio demo: open {gateway.url}/ (Ctrl-C stops)", file=out, flush=True)
        simulator = Simulator(projects, settings.rate, rng or random.Random())
        simulation = trio.CancelScope()
        nursery.start_soon(_run_in, simulation, simulator.run)
        task_status.started(gateway)
        await shutdown_trigger()
        simulation.cancel()
        gateway.shutdown()
        for project in projects:
            project.server.shutdown()


async def _start_project(nursery: trio.Nursery, name: str, root: Path) -> SimProject:
    pipeline = root / name
    config = ServerConfig(port=0, graceful_timeout_s=GRACEFUL_S)
    server: RunningServer = await nursery.start(
        partial(run_server, config, sources=[PipelineWatcher(pipeline)])
    )
    return SimProject(name, pipeline, server)


def _gateway_config(
    settings: DemoSettings, projects: list[SimProject], root: Path
) -> GatewayConfig:
    return GatewayConfig(
        projects=tuple(ProjectConfig(p.name, p.server.url) for p in projects),
        host=settings.host,
        port=settings.port,
        state_dir=root / "gateway-state",
        replay=True,  # show the first moves too, even those before the first poll
        graceful_timeout_s=GRACEFUL_S,
    )


async def _run_in(scope: trio.CancelScope, fn: Callable[[], Awaitable[None]]) -> None:
    with scope:
        await fn()


@asynccontextmanager
async def _temporary_dir() -> AsyncIterator[Path]:
    """A fresh temporary directory, removed on exit (also when cancelled)."""
    made = await trio.to_thread.run_sync(partial(tempfile.mkdtemp, prefix="events-trio-demo-"))
    try:
        yield Path(made)
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(partial(shutil.rmtree, made, ignore_errors=True))


# --- command line ------------------------------------------------------------


def add_demo_command(commands: Any) -> None:
    """Add the ``demo`` subcommand to ``commands`` (an argparse subparsers object)."""
    demo: argparse.ArgumentParser = commands.add_parser(
        "demo",
        help="run project servers, a gateway and a simulator, and show the live page",
        description=(
            "Start project servers on temporary pipeline directories, a gateway polling "
            "them, and a simulator moving work items through the stages. Prints the "
            "gateway page's URL and the console sink's lines. Ctrl-C stops everything "
            "and removes the temporary directories."
        ),
    )
    demo.add_argument(
        "--projects",
        type=_positive_int,
        default=DEFAULT_PROJECTS,
        metavar="N",
        help="number of project servers (default: %(default)s)",
    )
    demo.add_argument(
        "--rate",
        type=_positive_float,
        default=DEFAULT_RATE,
        metavar="EVENTS_PER_S",
        help="simulated events per second (default: %(default)s, one every 1-2 s)",
    )
    demo.add_argument(
        "--host", default="127.0.0.1", help="gateway interface (default: %(default)s)"
    )
    demo.add_argument(
        "--port",
        type=int,
        default=0,
        help="gateway port, 0 for any free one (default: %(default)s)",
    )
    demo.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default="warning",
        help="log verbosity (default: %(default)s)",
    )
    add_log_format_argument(demo)
    demo.set_defaults(handler=_demo)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _demo(args: argparse.Namespace) -> int:
    settings = DemoSettings(args.projects, args.rate, args.host, args.port)
    trio.run(_demo_main, settings)
    return 0


async def _demo_main(settings: DemoSettings) -> None:
    with signal_trigger(log) as trigger:
        await run_demo(settings, shutdown_trigger=trigger)
