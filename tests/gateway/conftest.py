"""Fixtures of the gateway tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from .helpers import FakeProject, InlineLog


@pytest.fixture
def fake() -> FakeProject:
    """An in-process project server (long-polls like ours)."""
    return FakeProject()


@pytest.fixture
def log() -> InlineLog:
    """An in-memory merged log."""
    return InlineLog()


@pytest.fixture
async def http(fake: FakeProject) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose every request reaches ``fake``."""
    async with httpx.AsyncClient(transport=fake.transport()) as client:
        yield client
