"""docs/openapi.yaml: valid, complete, and true of both live processes (schemathesis)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from events_trio.gateway.app import create_gateway_app
from events_trio.server.app import create_app
from events_trio.server.hub import EventHub
from events_trio.wire.query import parse_wait
from tests.gateway.helpers import InlineLog
from tests.live import LiveStack

SPEC: Path = Path(__file__).parents[1] / "docs" / "openapi.yaml"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
#: Streams never end: they are tested in test_stream.py, not fuzzed.
STREAM = "/api/events/stream"
#: Served outside Quart's routing: the fast path and the metrics wrapper.
#: Routes both processes serve in raw ASGI, in front of their Quart routes.
ASGI_ROUTES = {("/api/events", "get"), ("/metrics", "get")}

schema = schemathesis.openapi.from_path(SPEC)
fuzzed = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def load_spec() -> dict[str, Any]:
    spec, _ = read_from_filename(str(SPEC))
    return dict(spec)


def operations(tag: str) -> set[tuple[str, str]]:
    return {
        (path, method)
        for path, item in load_spec()["paths"].items()
        for method, operation in item.items()
        if tag in operation["tags"]
    }


def routes(app: Any) -> set[tuple[str, str]]:
    found = set()
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        found |= {(path, m.lower()) for m in rule.methods - {"HEAD", "OPTIONS"}}
    return found


def test_spec_is_valid_openapi() -> None:
    validate(load_spec())


def test_spec_describes_every_project_server_route() -> None:
    assert operations("project-server") == routes(create_app(EventHub())) | ASGI_ROUTES


def test_spec_describes_every_gateway_route() -> None:
    app = create_gateway_app(InlineLog(), [])
    assert operations("gateway") == routes(app) | ASGI_ROUTES


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    with LiveStack(tmp_path_factory.mktemp("state"), projects=("a",)) as stack:
        yield stack


def bounded_wait(case: schemathesis.Case[Any]) -> None:
    """A valid ``wait`` would hold each example up to 30 s: answer at once instead.

    Invalid ``wait`` values are kept, so their 400 is still checked.
    """
    query = case.query or {}
    wait = query.get("wait")
    if isinstance(wait, str) and parse_wait(wait) is not None:
        query["wait"] = "0"


@schema.include(tag="project-server").exclude(path=STREAM).parametrize()
@fuzzed
def test_project_server_answers_as_the_spec_says(
    case: schemathesis.Case[Any], live: LiveStack
) -> None:
    bounded_wait(case)
    case.call_and_validate(base_url=live.server("a").url, checks=CHECKS)


@schema.include(tag="gateway").exclude(path=STREAM).parametrize()
@fuzzed
def test_gateway_answers_as_the_spec_says(case: schemathesis.Case[Any], live: LiveStack) -> None:
    bounded_wait(case)
    case.call_and_validate(base_url=live.gateway_url, checks=CHECKS)
