"""PerOriginTransport: one pool per origin, created on first use, all closed together."""

from __future__ import annotations

import httpx

from events_trio.gateway.service import make_client
from events_trio.gateway.transport import PerOriginTransport


class FakePool(httpx.AsyncBaseTransport):
    def __init__(self, number: int) -> None:
        self.number = number
        self.closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=f"pool {self.number}")

    async def aclose(self) -> None:
        self.closed = True


def counting_factory(made: list[FakePool]) -> PerOriginTransport:
    def new_pool() -> FakePool:
        made.append(FakePool(len(made)))
        return made[-1]

    return PerOriginTransport(httpx.Limits(), pool_factory=new_pool)


async def test_requests_to_one_origin_share_its_pool() -> None:
    made: list[FakePool] = []
    async with httpx.AsyncClient(transport=counting_factory(made)) as client:
        first = await client.get("http://10.0.0.5:7070/api/events?since=0")
        second = await client.get("http://10.0.0.5:7070/healthz")
    assert (first.text, second.text, len(made)) == ("pool 0", "pool 0", 1)


async def test_each_origin_gets_its_own_pool() -> None:
    made: list[FakePool] = []
    async with httpx.AsyncClient(transport=counting_factory(made)) as client:
        texts = [
            (await client.get(url)).text
            for url in (
                "http://10.0.0.5:7070/",
                "http://10.0.0.5:7071/",
                "http://10.0.0.6:7070/",
                "https://10.0.0.5:7070/",
            )
        ]
    assert texts == ["pool 0", "pool 1", "pool 2", "pool 3"]


async def test_closing_the_client_closes_every_pool() -> None:
    made: list[FakePool] = []
    client = httpx.AsyncClient(transport=counting_factory(made))
    await client.get("http://a.example/")
    await client.get("http://b.example/")
    await client.aclose()
    assert [pool.closed for pool in made] == [True, True]


async def test_the_gateway_client_pools_per_origin() -> None:
    async with make_client(1_000) as client:
        assert isinstance(client._transport, PerOriginTransport)
