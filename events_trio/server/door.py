"""The Hypercorn door's app: ``hypercorn --worker-class trio 'events_trio.asgi:app'``.

``events_trio/asgi.py`` builds it with :func:`create_asgi_app` on first use
(nothing happens at import). Settings come from ``EVENTS_TRIO_*`` environment variables
(:meth:`~events_trio.server.config.ServerConfig.from_env`). The event hub, and the
pipeline watcher when ``EVENTS_TRIO_PIPELINE`` is set, run in the app's
lifespan (QuartTrio's ``app.nursery``), so they start and stop with the
server, exactly as under ``events-trio serve``. Our loggers (``events_trio``)
print at ``EVENTS_TRIO_LOG_LEVEL`` beside Hypercorn's own lines.

One process owns one buffer. Hypercorn's ``--workers N`` starts N worker
processes from one parent; each would hold a different buffer and a poller
would see a different history on every connection. The second worker of a
parent therefore refuses to start: :func:`single_worker` fails its lifespan
startup before the hub starts, see :func:`claim_single_worker`.

The app is the one ``events-trio serve`` runs (:func:`~events_trio.server.app.create_asgi`);
only settings, logging and the worker check differ.

Access: ``EVENTS_TRIO_READ_TOKEN`` protects the read routes as
``--read-token`` does. Hypercorn binds the socket itself, so the app cannot
see the address and cannot refuse a non-loopback ``--bind`` without a
token the way ``events-trio serve`` does: set the token when you bind
beyond loopback (README, "Security").
"""

from __future__ import annotations

import fcntl
import logging
import multiprocessing
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Final

from ..core.errors import EventsTrioError, StartupError
from ..hosting.hypercorn_fix import install as install_hypercorn_fix
from ..hosting.logs import configure_logging
from ..sources.watcher import PipelineWatcher
from .app import create_asgi
from .config import ServerConfig
from .hub import Source
from .run import new_hub

log = logging.getLogger("events_trio.asgi")

REFUSAL: Final = (
    "events-trio: refusing to start a second worker: one process owns one "
    "event buffer, run Hypercorn with --workers 1"
)

_lock_file: IO[bytes] | None = None


def claim_single_worker(lock_dir: Path | None = None) -> bool:
    """Claim "the worker" of this parent process; ``False`` if a sibling has.

    Only multiprocessing children (Hypercorn workers) take part; a process
    started directly always succeeds. The claim is an exclusive ``flock`` on a
    file named after the parent pid, released when the process exits.
    """
    global _lock_file
    if multiprocessing.parent_process() is None or _lock_file is not None:
        return True
    directory = lock_dir or Path(tempfile.gettempdir())
    handle = (directory / f"events-trio-worker-{os.getppid()}.lock").open("ab")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return False
    _lock_file = handle
    return True


def create_asgi_app(config: ServerConfig | None = None) -> Any:
    """The ASGI app for an external server; it owns its hub's lifespan.

    Configures our loggers and installs the Hypercorn fix: call it in the
    serving process (:class:`LazyApp` does, on first use), never at import.

    Args:
        config: Settings; from ``EVENTS_TRIO_*`` variables when omitted.

    Raises:
        StartupError: the pipeline directory cannot be created; raised while
            the app is built, before it serves (``events-trio serve`` fails
            before binding, for the same reason).
    """
    config = config or ServerConfig.from_env()
    configure_logging(config.log_level, logger="events_trio")
    install_hypercorn_fix()
    asgi_app = create_asgi(
        new_hub(config),
        sources=prepared_sources(config),
        ingest_token=config.ingest_token,
        read_token=config.read_token,
    )
    watching = "no pipeline" if config.pipeline is None else f"pipeline {config.pipeline}"
    log.info("events-trio app ready (capacity %d, %s)", config.capacity, watching)
    return single_worker(asgi_app)


def prepared_sources(config: ServerConfig) -> list[Source]:
    """The pipeline watcher, its directory ready, when ``config.pipeline`` is set."""
    if config.pipeline is None:
        return []
    watcher = PipelineWatcher(config.pipeline)
    watcher.prepare()
    return [watcher]


class LazyApp:
    """An ASGI app built by ``build()`` on its first call (Hypercorn's lifespan).

    So importing ``events_trio.asgi`` reads no variable, touches no file and
    patches nothing. A build that fails with an
    :class:`~events_trio.core.errors.EventsTrioError` fails the lifespan
    startup with its one-line message, and Hypercorn exits.
    """

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._app: Any = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Serve ``scope``, building the app first if needed."""
        if self._app is None:
            failure = self._try_build()
            if failure is not None and scope["type"] == "lifespan":
                await _fail_startup(receive, send, failure)
                return
            if failure is not None:
                raise StartupError(failure)
        await self._app(scope, receive, send)

    def _try_build(self) -> str | None:
        try:
            self._app = self._build()
        except EventsTrioError as error:
            return f"events-trio: error: {error}"
        return None


async def _fail_startup(receive: Any, send: Any, message: str) -> None:
    log.error(message)
    await receive()  # lifespan.startup
    await send({"type": "lifespan.startup.failed", "message": message})


def single_worker(app: Any) -> Any:
    """``app`` whose lifespan startup fails in a second worker (:func:`claim_single_worker`).

    The refused worker answers ``lifespan.startup`` with
    ``lifespan.startup.failed`` itself, so ``app``'s own startup (the hub and
    its watcher) never runs there; Hypercorn then stops the whole server.
    """

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan" and not claim_single_worker():
            await _fail_startup(receive, send, REFUSAL)
            return
        await app(scope, receive, send)

    return asgi
