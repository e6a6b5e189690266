"""Many simulated project servers in one process, driven over stdin.

``python -m benchmarks.sim_servers COUNT`` runs ONE Hypercorn ``serve`` with
COUNT binds (``127.0.0.1:0`` each). Requests are routed by the port they
arrived on (``scope["server"]``) to that project's own
:class:`~events_trio.server.hub.EventHub`, served by the complete project-server
stack (:func:`events_trio.server.app.create_asgi`: guard, fast path, Quart). So a
gateway sees COUNT independent servers for the cost of one process.

The first stdout line is ``{"urls": [...]}``. Then, one command per stdin
line, one JSON answer per command on stdout:

* ``mode long-poll`` / ``mode interval``: in ``interval`` mode every server
  looks like the Rust original (``wait`` dropped from the query, no
  ``X-Events-*`` headers), so a gateway falls back to interval polling.
* ``requests``: HTTP requests served since the last ``requests``.
* ``publish RATE SECONDS``: publish ``RATE*SECONDS`` merge failures, round
  robin over the projects, at RATE per second. Event ``n`` goes to project
  ``n % COUNT`` with story id ``{n}_story_{time_ns at publish}`` and reason
  ``bench``, so a sink line tells its own latency and where it belongs.
* ``stop``: exit.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from typing import Any, Final

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from events_trio.core.events import MergeFailure
from events_trio.hosting.hypercorn_fix import install as install_hypercorn_fix
from events_trio.server.app import create_asgi
from events_trio.server.hub import EventHub

REASON: Final = "bench"
ASGIApp = Any


class Router:
    """Routes each request to the project bound to its port; counts requests."""

    def __init__(self) -> None:
        self.apps: dict[int, ASGIApp] = {}
        self.rust_like = False
        self.requests = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        self.requests += 1
        app = self.apps[scope["server"][1]]
        if self.rust_like:
            await _as_rust(app, scope, receive, send)
        else:
            await app(scope, receive, send)


async def _lifespan(receive: Any, send: Any) -> None:
    # The routed apps are served by the fast path (GET /api/events), which
    # needs no start-up; the hubs run in this process's own nursery.
    while (message := await receive())["type"] != "lifespan.shutdown":
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})


async def _as_rust(app: ASGIApp, scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Drop ``wait`` and the ``X-Events-*`` headers: the server now looks like the Rust one."""
    query = b"&".join(p for p in scope["query_string"].split(b"&") if not p.startswith(b"wait="))

    async def strip(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            headers = [h for h in message["headers"] if not h[0].lower().startswith(b"x-events-")]
            message = {**message, "headers": headers}
        await send(message)

    await app({**scope, "query_string": query}, receive, strip)


def _config(count: int) -> Config:
    config = Config()
    config.bind = ["127.0.0.1:0"] * count
    config.accesslog = None
    config.graceful_timeout = 0.5
    config.keep_alive_timeout = 75.0
    config.loglevel = "WARNING"
    return config


def _reply(value: object) -> None:
    print(json.dumps(value), flush=True)


#: At high rates events are published in ticks of this length (one sleep per
#: tick, not per event, so the load process keeps up with 10,000 ev/s).
PUBLISH_TICK_S: Final = 0.001


async def _publish(hubs: list[EventHub], rate: float, seconds: float) -> int:
    total = int(rate * seconds)
    start = trio.current_time()
    n = 0
    while n < total:
        due = min(total, int((trio.current_time() - start) * rate) + 1)
        for k in range(n, due):
            hubs[k % len(hubs)].publish(MergeFailure(f"{k}_story_{time.time_ns()}", REASON))
        n = due
        await trio.sleep_until(max(start + n / rate, trio.current_time() + PUBLISH_TICK_S / 10))
    return total


async def main(count: int) -> None:
    install_hypercorn_fix()
    router = Router()
    hubs = [EventHub() for _ in range(count)]
    async with trio.open_nursery() as nursery:
        for hub in hubs:
            await nursery.start(hub.run)
        binds = await nursery.start(serve, router, _config(count))
        for hub, bind in zip(hubs, binds, strict=True):
            router.apps[int(bind.rsplit(":", 1)[1])] = create_asgi(hub)
        # 1,000 simulated servers in one heap: a full collection would pause
        # them all for ~250 ms at once, a stall no real fleet has (each
        # server's own heap is small), which would show up as the gateway's
        # latency. So the harness freezes its start-up objects and leaves the
        # cyclic collector off while it runs (memory is reclaimed by refcount).
        gc.collect()
        gc.freeze()
        gc.disable()
        _reply({"urls": binds})
        while command := (await trio.to_thread.run_sync(sys.stdin.readline)).split():
            if command[0] == "mode":
                router.rust_like = command[1] == "interval"
                _reply({"mode": command[1]})
            elif command[0] == "requests":
                _reply({"requests": router.requests})
                router.requests = 0
            elif command[0] == "publish":
                started = time.monotonic()
                published = await _publish(hubs, float(command[1]), float(command[2]))
                _reply({"published": published, "elapsed_s": time.monotonic() - started})
            else:
                break
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]))
