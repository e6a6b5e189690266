"""What both Quart-Trio apps share: JSON errors and the event-stream response.

Every error either app answers is the JSON body of
:func:`~events_trio.wire.responses.error_body`, never an HTML page: bad
parameters (400 with ``"parameter"``), HTTP errors (their status, a
snake-case code, werkzeug's ``Allow``) and anything unexpected (500).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from quart import Response
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from ..core.errors import InvalidParameter
from ..wire.responses import JSON, error_body, http_error_fields
from ..wire.sse import CONTENT_TYPE, STREAM_HEADERS

log = logging.getLogger("events_trio.app")


def new_app(name: str) -> QuartTrio:
    """A Quart-Trio app answering errors as JSON, without static files or automatic OPTIONS."""
    app = QuartTrio(name, static_folder=None)
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    register_json_errors(app)
    return app


def json_response(body: bytes, status: int = 200) -> Response:
    """A ``application/json`` response of ``body``."""
    return Response(body, status, content_type=JSON)


def json_error(status: int, error: str, message: str, **extra: Any) -> Response:
    """A JSON error response: ``{"error": error, "message": message, **extra}``."""
    return json_response(error_body(error, message, **extra), status)


def register_json_errors(app: QuartTrio) -> None:
    """Answer errors as JSON on ``app``: bad parameters, HTTP errors, anything unexpected."""
    app.register_error_handler(InvalidParameter, _invalid_parameter)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)


async def _invalid_parameter(error: InvalidParameter) -> Response:
    return json_error(400, "invalid_parameter", error.message, parameter=error.parameter)


async def _http_error(error: HTTPException) -> Response:
    code = error.code or 500
    response = json_error(code, *http_error_fields(code))
    allowed = error.get_response().headers.get("Allow")
    if allowed:
        response.headers["Allow"] = allowed
    return response


async def _unexpected(error: Exception) -> Response:
    log.exception("unhandled error", exc_info=error)
    return json_error(500, "internal_error", "internal server error")


def stream_response(
    frames: AsyncIterator[bytes], headers: Mapping[str, str] | None = None
) -> Response:
    """The ``text/event-stream`` response for ``frames``, never cut by Quart's timeout."""
    response = Response(
        frames, 200, {**STREAM_HEADERS, **(headers or {})}, content_type=CONTENT_TYPE
    )
    response.timeout = None  # a stream lives until the client or the server ends it
    return response
