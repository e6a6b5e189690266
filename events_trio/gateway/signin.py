"""Read access to the gateway's ``/api/*``: the bearer header or a session cookie.

* Every ``GET``/``HEAD`` under ``/api/`` (the stream included) needs
  ``Authorization: Bearer <read token>`` **or** a valid session cookie
  (``session.py``); 401 otherwise. ``/healthz``, ``/metrics`` and the page
  stay open, as before.
* ``POST /api/session`` signs a browser in: the token as a form field
  ``token`` (answered ``303`` to ``/``) or as JSON ``{"token": ...}``
  (answered ``204``); a wrong token is ``401`` without a cookie. The cookie
  is ``HttpOnly``, ``SameSite=Strict``, ``Path=/``, and ``Secure`` when the
  request came over HTTPS (or through a proxy that sends
  ``X-Forwarded-Proto: https``).
* ``DELETE /api/session`` signs it out (``204``, the cookie cleared).

Without a read token everything is open and ``/api/session`` answers 404.
Only reads honour the cookie: routes that change something (the admin
endpoints) take their own bearer token, so a cross-site request can never
use the cookie to change anything (``SameSite=Strict`` keeps it off
cross-site requests besides).
"""

from __future__ import annotations

from typing import Final

import msgspec
from quart import Response, request
from quart_trio import QuartTrio

from ..hosting.webapp import json_error
from .session import SESSION_COOKIE, SESSION_MAX_AGE_S, Sessions, token_matches

#: Content types read as an HTML form (the page works without script too).
_FORM: Final = ("application/x-www-form-urlencoded", "multipart/form-data")
WRONG_TOKEN_MESSAGE: Final = "wrong token"


class _SignIn(msgspec.Struct):
    token: str


def register_signin(app: QuartTrio, read_token: str | None) -> Sessions | None:
    """Add ``/api/session`` to ``app``; the read check itself sits in front of
    the app (``hosting/access.py``), taking :meth:`Sessions.scope_valid` as
    the alternative to the bearer header.

    Without a read token (``None`` or empty) both ``/api/session`` routes
    answer 404.

    Returns:
        The sessions the cookie check must consult; ``None`` without a token.
    """
    sessions = Sessions(read_token) if read_token else None

    @app.post("/api/session")
    async def sign_in() -> Response:
        if not read_token or sessions is None:
            return _sign_in_off()
        offered, is_form = await _offered_token()
        if offered is None:
            return json_error(
                400, "invalid_body", 'expected a form field "token" or {"token": ...}'
            )
        if not token_matches(offered, read_token):
            return json_error(401, "unauthorized", WRONG_TOKEN_MESSAGE)
        response = Response("", 303, {"Location": "/"}) if is_form else Response("", 204)
        response.set_cookie(
            SESSION_COOKIE,
            sessions.issue(),
            max_age=SESSION_MAX_AGE_S,
            path="/",
            secure=_over_https(),
            httponly=True,
            samesite="Strict",
        )
        return response

    @app.delete("/api/session")
    async def sign_out() -> Response:
        if sessions is None:
            return _sign_in_off()
        sessions.revoke(request.cookies.get(SESSION_COOKIE))
        response = Response("", 204)
        response.delete_cookie(
            SESSION_COOKIE, path="/", secure=_over_https(), httponly=True, samesite="Strict"
        )
        return response

    return sessions


def _sign_in_off() -> Response:
    return json_error(404, "not_found", "this gateway has no read token: there is no sign-in")


def _over_https() -> bool:
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return request.scheme == "https" or forwarded == "https"


async def _offered_token() -> tuple[str | None, bool]:
    """The token a sign-in offers (``None`` when the body has none) and whether it was a form."""
    content_type = request.mimetype
    if content_type in _FORM:
        token = (await request.form).get("token")
        return (token if token else None), True
    try:
        return msgspec.json.decode(await request.get_data(), type=_SignIn).token, False
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None, False
