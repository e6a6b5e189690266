"""The Hypercorn door: ``hypercorn --worker-class trio 'events_trio.asgi:app'``.

Settings come from ``EVENTS_TRIO_*`` environment variables
(:meth:`~events_trio.config.ServerConfig.from_env`). The event hub, and the
pipeline watcher when ``EVENTS_TRIO_PIPELINE`` is set, run in the app's
lifespan (QuartTrio's ``app.nursery``), so they start and stop with the
server, exactly as under ``events-trio serve``. Our loggers (``events_trio``)
print at ``EVENTS_TRIO_LOG_LEVEL`` beside Hypercorn's own lines.

One process owns one buffer. Hypercorn's ``--workers N`` starts N worker
processes from one parent; each would hold a different buffer and a poller
would see a different history on every connection. The second worker of a
parent therefore refuses to start: :func:`single_worker` fails its lifespan
startup before the hub starts, see :func:`claim_single_worker`.

The app is the one ``events-trio serve`` runs (:func:`~events_trio.app.create_asgi`);
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
from pathlib import Path
from typing import IO, Any, Final

from .cli.main import configure_logging
from .hosting.hypercorn_fix import install as install_hypercorn_fix
from .server.app import create_asgi
from .server.config import ServerConfig
from .server.hub import EventHub, Source
from .sources.watcher import PipelineWatcher

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
    sources: list[Source] = []
    if config.pipeline is not None:
        watcher = PipelineWatcher(config.pipeline)
        watcher.prepare()
        sources.append(watcher)
    hub = EventHub(
        config.capacity, channel_capacity=config.channel_capacity, clock_ms=config.clock_ms
    )
    asgi_app = create_asgi(
        hub, sources=sources, ingest_token=config.ingest_token, read_token=config.read_token
    )
    watching = "no pipeline" if config.pipeline is None else f"pipeline {config.pipeline}"
    log.info("events-trio app ready (capacity %d, %s)", config.capacity, watching)
    return single_worker(asgi_app)


def single_worker(app: Any) -> Any:
    """``app`` whose lifespan startup fails in a second worker (:func:`claim_single_worker`).

    The refused worker answers ``lifespan.startup`` with
    ``lifespan.startup.failed`` itself, so ``app``'s own startup (the hub and
    its watcher) never runs there; Hypercorn then stops the whole server.
    """

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan" and not claim_single_worker():
            log.error(REFUSAL)
            await receive()  # lifespan.startup
            await send({"type": "lifespan.startup.failed", "message": REFUSAL})
            return
        await app(scope, receive, send)

    return asgi


app = create_asgi_app()
