"""One small connection pool per origin, behind the gateway's one HTTP client.

httpcore's connection pool scans every connection it holds on each request
and on each response close, and, for every idle connection in that scan,
all of them again. With one pool for 1,000 long-polling projects that is
O(n^2) work per poll: the gateway spent 94% of its CPU in
``AsyncConnectionPool._assign_requests_to_connections`` and needed 80 s to
bring 1,000 projects up (benchmarks/bench_scale.py). Project servers are
separate origins, so a pool per origin (scheme, host, port) holds only the
connections of the projects behind that origin: the same keep-alive reuse,
each project's next poll on its own connection, at O(1) per poll.

The pools share one TLS context (httpx would otherwise load the CA bundle
once per pool). Event streams (``http://``) bypass the pools: each gets a
connection of its own, read with h11 directly (sse_connection.py).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

import httpx

from .sse_connection import STREAM_EXTENSION, open_event_stream

OriginKey = tuple[bytes, bytes, int | None]
PoolFactory = Callable[[], httpx.AsyncBaseTransport]


class PerOriginTransport(httpx.AsyncBaseTransport):
    """Routes each request to the connection pool of its origin, created on first use.

    Args:
        limits: Limits of each origin's pool.
        ssl_context: TLS settings shared by every pool (default: httpx's,
            without environment overrides).
        pool_factory: Makes one origin's pool (tests inject a fake).
    """

    def __init__(
        self,
        limits: httpx.Limits,
        *,
        ssl_context: ssl.SSLContext | None = None,
        pool_factory: PoolFactory | None = None,
    ) -> None:
        context = ssl_context or httpx.create_ssl_context(trust_env=False)

        def new_pool() -> httpx.AsyncBaseTransport:
            return httpx.AsyncHTTPTransport(verify=context, limits=limits, trust_env=False)

        self._new_pool = pool_factory or new_pool
        self.pools: dict[OriginKey, httpx.AsyncBaseTransport] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` through its origin's pool (an event stream on its own connection)."""
        url = request.url
        if request.extensions.get(STREAM_EXTENSION) and url.raw_scheme == b"http":
            return await open_event_stream(request)
        key = (url.raw_scheme, url.raw_host, url.port)
        pool = self.pools.get(key)
        if pool is None:
            pool = self.pools[key] = self._new_pool()
        return await pool.handle_async_request(request)

    async def aclose(self) -> None:
        """Close every pool."""
        pools, self.pools = list(self.pools.values()), {}
        for pool in pools:
            await pool.aclose()
