"""Sign-in for the secured page: a real gateway (Hypercorn, port 0), a real httpx client."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Final

import httpx
import pytest
import trio

from events_trio.gateway import GatewayConfig, RunningGateway, run_gateway
from events_trio.gateway.records import Incoming
from events_trio.gateway.session import SESSION_COOKIE, SESSION_MAX_AGE_S, Sessions
from events_trio.gateway.sinks import ConsoleSink
from events_trio.gateway.tracker import Position
from tests.sse import HTTPCORE_EARLY_CLOSE, next_events, open_stream

from .helpers import BASE_MS, failure

pytestmark = HTTPCORE_EARLY_CLOSE

TOKEN: Final = "read-t0ken-of-the-gateway"
ROUTES: Final = ("/api/projects", "/api/events", "/api/events/stream?since=18446744073709551615")


@asynccontextmanager
async def gateway(
    tmp_path: Path, token: str | None = TOKEN, running: list[RunningGateway] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway with a read token and a client of it (``running`` receives the gateway)."""
    config = GatewayConfig(
        port=0, state_dir=tmp_path / "state", graceful_timeout_s=0.2, read_token=token
    )
    async with trio.open_nursery() as nursery:
        gateway: RunningGateway = await nursery.start(
            partial(run_gateway, config, sinks=[ConsoleSink()])
        )
        if running is not None:
            running.append(gateway)
        async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as http:
            yield http
        gateway.shutdown()


async def sign_in(http: httpx.AsyncClient, **kwargs: object) -> httpx.Response:
    response = await http.post("/api/session", json={"token": TOKEN}, **kwargs)  # type: ignore[arg-type]
    http.cookies.clear()  # every test sends the cookie it means to send
    return response


def cookie_of(response: httpx.Response) -> str:
    header = response.headers["set-cookie"]
    return header.split(";", 1)[0].removeprefix(SESSION_COOKIE + "=")


def attributes(response: httpx.Response) -> set[str]:
    """The cookie's attributes, lower case (``expires=...`` left out: it is a date)."""
    parts = response.headers["set-cookie"].split(";")[1:]
    return {p.strip().lower() for p in parts if not p.strip().lower().startswith("expires=")}


def cookie_header(cookie: str | None) -> dict[str, str]:
    return {"Cookie": f"{SESSION_COOKIE}={cookie}"} if cookie else {}


async def status(http: httpx.AsyncClient, path: str, cookie: str | None = None) -> int:
    async with http.stream("GET", path, headers=cookie_header(cookie)) as response:
        return response.status_code


async def test_json_sign_in_sets_an_http_only_strict_cookie_without_secure_over_http(
    tmp_path: Path,
) -> None:
    async with gateway(tmp_path) as http:
        response = await sign_in(http)
    assert response.status_code == 204
    assert attributes(response) == {
        "httponly",
        "samesite=strict",
        "path=/",
        f"max-age={SESSION_MAX_AGE_S}",
    }
    assert TOKEN not in response.headers["set-cookie"]


async def test_form_sign_in_redirects_to_the_page(tmp_path: Path) -> None:
    async with gateway(tmp_path) as http:
        response = await http.post("/api/session", data={"token": TOKEN})
    assert (response.status_code, response.headers["location"]) == (303, "/")
    assert "httponly" in attributes(response)


async def test_cookie_is_secure_behind_a_proxy_that_says_https(tmp_path: Path) -> None:
    async with gateway(tmp_path) as http:
        response = await sign_in(http, headers={"X-Forwarded-Proto": "https"})
    assert "secure" in attributes(response)


@pytest.mark.parametrize("route", ROUTES)
async def test_the_cookie_authorizes_reads_as_the_bearer_header_does(
    tmp_path: Path, route: str
) -> None:
    async with gateway(tmp_path) as http:
        cookie = cookie_of(await sign_in(http))
        assert await status(http, route) == 401
        assert await status(http, route, cookie) == 200
        http.headers["Authorization"] = f"Bearer {TOKEN}"
        assert await status(http, route) == 200


async def test_the_stream_with_a_cookie_carries_events_appended_after_sign_in(
    tmp_path: Path,
) -> None:
    running: list[RunningGateway] = []
    async with gateway(tmp_path, running=running) as http:
        cookie = cookie_of(await sign_in(http))
        async with open_stream(http, "/api/events/stream", headers=cookie_header(cookie)) as (
            response,
            stream,
        ):
            assert response.status_code == 200
            await running[0].log_store.append(
                "billing", [Incoming(failure("42_story_x", BASE_MS), BASE_MS)], Position("", 1)
            )
            found = await next_events(stream, 1)
    assert '"story_id":"42_story_x"' in (found[0].data or "")


@pytest.mark.parametrize(
    "body", [{"json": {"token": "wrong"}}, {"data": {"token": "wrong"}}, {"json": {"token": ""}}]
)
async def test_a_wrong_token_is_401_without_a_cookie(
    tmp_path: Path, body: dict[str, object]
) -> None:
    async with gateway(tmp_path) as http:
        response = await http.post("/api/session", **body)  # type: ignore[arg-type]
    assert (response.status_code, response.json()) == (
        401,
        {"error": "unauthorized", "message": "wrong token"},
    )
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize("content", [b"", b"not json", b'{"tok":"x"}', b'{"token":5}'])
async def test_a_sign_in_without_a_token_is_400(tmp_path: Path, content: bytes) -> None:
    async with gateway(tmp_path) as http:
        response = await http.post(
            "/api/session", content=content, headers={"Content-Type": "application/json"}
        )
    assert (response.status_code, response.json()["error"]) == (400, "invalid_body")
    assert "set-cookie" not in response.headers


async def test_sign_out_clears_the_cookie_and_the_old_value_stops_working(
    tmp_path: Path,
) -> None:
    async with gateway(tmp_path) as http:
        cookie = cookie_of(await sign_in(http))
        response = await http.delete("/api/session", headers=cookie_header(cookie))
        assert response.status_code == 204
        assert cookie_of(response) in ("", '""')
        assert "max-age=0" in attributes(response)
        assert await status(http, "/api/projects", cookie) == 401


async def test_a_tampered_cookie_is_refused(tmp_path: Path) -> None:
    async with gateway(tmp_path) as http:
        cookie = cookie_of(await sign_in(http))
        expires, nonce, mac = cookie.split(".")
        forged = f"{int(expires) + 10**6}.{nonce}.{mac}"
        assert await status(http, "/api/projects", forged) == 401
        assert await status(http, "/api/projects", "9" * 5000 + ".x.y") == 401


async def test_the_token_is_never_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with gateway(tmp_path) as http:
        await sign_in(http)
        await http.post("/api/session", data={"token": TOKEN + "x"})
    assert TOKEN not in caplog.text


async def test_without_a_read_token_there_is_no_sign_in(tmp_path: Path) -> None:
    async with gateway(tmp_path, token=None) as http:
        response = await http.post("/api/session", json={"token": "x"})
        assert await status(http, "/api/projects") == 200
    assert response.status_code == 404


def test_sessions_expire_after_their_max_age() -> None:
    now = [1_000_000.0]
    sessions = Sessions(TOKEN, lambda: now[0])
    value = sessions.issue()
    now[0] += SESSION_MAX_AGE_S - 1
    assert sessions.valid(value)
    now[0] += 1
    assert not sessions.valid(value)


def test_a_new_read_token_signs_every_browser_out() -> None:
    value = Sessions(TOKEN).issue()
    assert Sessions(TOKEN).valid(value)
    assert not Sessions(TOKEN + "2").valid(value)


def test_revoking_one_session_keeps_the_others() -> None:
    sessions = Sessions(TOKEN)
    first, second = sessions.issue(), sessions.issue()
    sessions.revoke(first)
    assert (sessions.valid(first), sessions.valid(second)) == (False, True)
