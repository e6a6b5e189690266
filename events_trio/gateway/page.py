"""The live page: ``GET /`` and its static files, shipped in the package.

One HTML file, one script, one stylesheet in ``events_trio/gateway/static/``:
no CDN, no build step. The page reads ``GET /api/events/stream`` (an
``EventSource``, which reconnects with ``Last-Event-ID`` by itself) and
``GET /api/projects``.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Final

from quart import Response
from quart_trio import QuartTrio
from werkzeug.exceptions import NotFound

#: Static files served, name -> content type (nothing else is reachable).
STATIC_FILES: Final = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
#: The page must not run anything it did not ship, nor be framed.
_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def static_bytes(name: str) -> bytes:
    """The content of a shipped static file."""
    return files("events_trio.gateway").joinpath("static", name).read_bytes()


def register_page(app: QuartTrio) -> None:
    """Add ``GET /`` and ``GET /static/<name>`` to the gateway ``app``."""

    @app.get("/")
    async def index() -> Response:
        return _static("index.html")

    @app.get("/static/<name>")
    async def static_file(name: str) -> Response:
        if name not in STATIC_FILES:
            raise NotFound()
        return _static(name)


def _static(name: str) -> Response:
    return Response(static_bytes(name), 200, _HEADERS, content_type=STATIC_FILES[name])
