from __future__ import annotations

import httpx

from events_trio.events import MergeFailure
from events_trio.server import RunningServer
import trio.testing


async def test_published_event_is_served(server: RunningServer, client: httpx.AsyncClient) -> None:
    server.hub.publish(MergeFailure("42_story_x", "conflict"))
    await trio.testing.wait_all_tasks_blocked()
    response = await client.get("/api/events", params={"since": 0})
    assert response.status_code == 200
    assert response.content == (
        b'[{"type":"merge_failure","story_id":"42_story_x","reason":"conflict",'
        b'"timestamp_ms":1764201600000}]'
    )
