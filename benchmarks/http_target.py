"""A server process to load: our project server, or a bare ASGI ceiling.

``python -m benchmarks.http_target ours|bare|bare-patched PORT`` serves on 127.0.0.1:PORT
with 500 merge-failure events already stored (about 70 KB at ``since=0``).
``bare`` is the stack's ceiling: a plain ASGI callable on the same Hypercorn
trio worker answering the very same bytes, with no routing or parsing;
``bare-patched`` is the same on the worker our server really runs on
(Hypercorn plus ``hypercorn_fix``, which the crash hazard requires).
"""

from __future__ import annotations

import sys
from typing import Any, Final

import trio
from hypercorn.trio import serve

from events_trio.core.buffer import EventBuffer
from events_trio.core.events import MergeFailure, to_stored
from events_trio.hosting.hypercorn_fix import install as install_hypercorn_fix
from events_trio.server.config import ServerConfig
from events_trio.server.hub import EventHub
from events_trio.server.run import hypercorn_config, run_server

EVENTS: Final = 500
REASON: Final = "merge conflict in src/pipeline/stages.rs: both modified"


def fill(buffer: EventBuffer) -> None:
    """Store ``EVENTS`` merge failures with realistic ids and reasons."""
    for i in range(EVENTS):
        stored = to_stored(MergeFailure(f"{1000 + i}_story_feature_{i}", REASON), buffer.clock_ms())
        assert stored is not None
        buffer.push(stored)


async def serve_ours(port: int) -> None:
    hub = EventHub()
    fill(hub.buffer)
    print("ready", hub.buffer.latest_ms, flush=True)
    await run_server(ServerConfig(port=port, log_level="error"), hub=hub)


async def serve_bare(port: int) -> None:
    buffer = EventBuffer()
    fill(buffer)
    full = buffer.encoded_since(0)
    latest = buffer.latest_ms

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b"[]" if scope["query_string"].endswith(str(latest).encode()) else full
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    print("ready", latest, flush=True)
    await serve(app, hypercorn_config(ServerConfig(port=port)))  # type: ignore[arg-type]


def main() -> None:
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "bare-patched":
        # The worker our server runs on: Hypercorn with the connection fix
        # the first known stack hazard requires (events_trio/hosting/hypercorn_fix.py).
        install_hypercorn_fix()
    trio.run(serve_ours if mode == "ours" else serve_bare, port)


if __name__ == "__main__":
    main()
