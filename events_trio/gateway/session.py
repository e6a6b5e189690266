"""Browser sessions for the secured page (sans-IO: no Quart, no Trio).

``EventSource`` cannot send an ``Authorization`` header, so with a read
token set the page signs in once (``POST /api/session``) and the browser
then carries a session cookie instead. The cookie is stateless and
survives a gateway restart::

    <expires_s>.<nonce>.<mac>     mac = HMAC-SHA256(key, "<expires_s>.<nonce>")

The key is derived from the read token, so changing the token signs every
browser out. Signing out revokes the nonce until its expiry (in memory: a
restarted gateway forgets revocations, but the browser dropped the cookie
already). The token itself is never stored in the cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from typing import Any, Final

from ..wire.auth import scope_cookie

#: Name of the session cookie.
SESSION_COOKIE: Final = "events_trio_session"
#: How long one sign-in lasts.
SESSION_MAX_AGE_S: Final = 12 * 3600
#: Revoked sessions remembered at most (the oldest are forgotten first).
MAX_REVOKED: Final = 10_000
_KEY_LABEL: Final = b"events-trio gateway session v1"


def token_matches(offered: str, token: str) -> bool:
    """Constant-time comparison of an offered token with the read token."""
    return hmac.compare_digest(offered.encode("utf-8", "replace"), token.encode())


class Sessions:
    """Issues and checks session cookie values for one read token.

    Args:
        read_token: The gateway's read token (the key is derived from it).
        clock_s: Wall clock in seconds (tests pin it).
    """

    def __init__(self, read_token: str, clock_s: Callable[[], float] = time.time) -> None:
        self._key = hmac.new(read_token.encode(), _KEY_LABEL, hashlib.sha256).digest()
        self._clock_s = clock_s
        self._revoked: dict[str, int] = {}

    def issue(self) -> str:
        """A new cookie value, valid for :data:`SESSION_MAX_AGE_S`."""
        expires = int(self._clock_s()) + SESSION_MAX_AGE_S
        signed = f"{expires}.{secrets.token_urlsafe(18)}"
        return f"{signed}.{self._mac(signed)}"

    def valid(self, value: str | None) -> bool:
        """Whether ``value`` is a cookie this gateway issued, unexpired and not revoked."""
        parsed = self._parse(value)
        return parsed is not None and parsed[1] not in self._revoked

    def scope_valid(self, scope: dict[str, Any]) -> bool:
        """Whether an ASGI request carries a valid session cookie."""
        return self.valid(scope_cookie(scope, SESSION_COOKIE))

    def revoke(self, value: str | None) -> None:
        """Sign ``value`` out (no-op for an invalid value)."""
        parsed = self._parse(value)
        if parsed is None:
            return
        now = int(self._clock_s())
        self._revoked = {n: e for n, e in self._revoked.items() if e > now}
        while len(self._revoked) >= MAX_REVOKED:
            del self._revoked[next(iter(self._revoked))]
        self._revoked[parsed[1]] = parsed[0]

    def _parse(self, value: str | None) -> tuple[int, str] | None:
        expires_text, _, rest = (value or "").partition(".")
        nonce, _, mac = rest.partition(".")
        if not (expires_text.isascii() and expires_text.isdigit() and nonce and mac):
            return None
        if not hmac.compare_digest(mac.encode(), self._mac(f"{expires_text}.{nonce}").encode()):
            return None
        expires = int(expires_text)
        return (expires, nonce) if expires > self._clock_s() else None

    def _mac(self, signed: str) -> str:
        return hmac.new(self._key, signed.encode(), hashlib.sha256).hexdigest()
