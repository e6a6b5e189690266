"""Projects at run time: ``POST /api/projects`` and ``DELETE /api/projects/NAME``.

Both need ``Authorization: Bearer <admin token>`` (``--admin-token``,
``EVENTS_TRIO_GATEWAY_ADMIN_TOKEN`` or ``[gateway] admin_token``): missing
-> 401, wrong -> 403. The session cookie of the page is **not** accepted,
so no cross-site request can change the registry. Without an admin token
the endpoints are off and answer 404, as if they did not exist.

* ``POST /api/projects`` with ``{"name", "url", "token"?, "poll_interval_s"?}``
  -> 201 and the project's status; it is polled at once (a project the
  gateway has never seen starts from "now"). 400 for a bad name or URL,
  409 if the name is taken.
* ``DELETE /api/projects/NAME`` -> 204; it stops being polled at once and
  its entries stay in the log. 404 for an unknown name.

Projects added here live until the gateway stops (a SIGHUP reload leaves
them alone: it manages the file's projects, ``reload.py``); put them in the
TOML file to keep them across restarts.
"""

from __future__ import annotations

from typing import Final

import msgspec
from quart import Response, request
from quart_trio import QuartTrio

from ..core.errors import ConfigError
from ..hosting.webapp import json_error
from ..wire.auth import WWW_AUTHENTICATE, bearer_matches
from ..wire.responses import JSON
from .config import ProjectConfig
from .registry import ProjectExists, ProjectRegistry

#: Largest ``POST /api/projects`` body read.
MAX_ADMIN_BODY_BYTES: Final = 16 * 1024


class NewProject(msgspec.Struct, forbid_unknown_fields=True):
    """The body of ``POST /api/projects``."""

    name: str
    url: str
    token: str | None = None
    poll_interval_s: float | None = None


def register_admin(
    app: QuartTrio, registry: ProjectRegistry | None, admin_token: str | None
) -> None:
    """Add the admin routes to ``app`` (answering 404 without ``admin_token``)."""

    @app.post("/api/projects")
    async def add_project() -> Response:
        refused = _refused(registry, admin_token)
        if refused is not None or registry is None:
            return refused or _off()
        body = await request.get_data()
        if len(body) > MAX_ADMIN_BODY_BYTES:
            return json_error(413, "too_large", f"body over {MAX_ADMIN_BODY_BYTES} bytes")
        try:
            new = msgspec.json.decode(body, type=NewProject)
            project = ProjectConfig(new.name, new.url, new.token, new.poll_interval_s)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            return json_error(
                400, "invalid_body", 'expected {"name": ..., "url": ..., "token"?: ...}'
            )
        except ConfigError as error:
            return json_error(400, "invalid_project", str(error))
        try:
            status = await registry.add(project, by_api=True)
        except ProjectExists as error:
            return json_error(409, "project_exists", str(error))
        except ConfigError as error:
            return json_error(503, "unavailable", str(error))
        return Response(msgspec.json.encode(status.to_json()), 201, content_type=JSON)

    @app.delete("/api/projects/<name>")
    async def remove_project(name: str) -> Response:
        refused = _refused(registry, admin_token)
        if refused is not None or registry is None:
            return refused or _off()
        try:
            found = await registry.delete(name)
        except ConfigError as error:
            return json_error(503, "unavailable", str(error))
        if not found:
            return json_error(404, "unknown_project", f"no project {name!r}")
        return Response("", 204)


def _refused(registry: ProjectRegistry | None, admin_token: str | None) -> Response | None:
    if not admin_token or registry is None:
        return _off()
    authorization = request.headers.get("Authorization")
    if not authorization or not authorization.lower().startswith("bearer "):
        response = json_error(401, "unauthorized", "missing admin bearer token")
        response.headers["WWW-Authenticate"] = WWW_AUTHENTICATE
        return response
    if not bearer_matches(authorization, admin_token):
        return json_error(403, "forbidden", "wrong admin token")
    return None


def _off() -> Response:
    return json_error(
        404, "not_found", "the admin API is off: start the gateway with --admin-token"
    )
