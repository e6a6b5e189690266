"""Parsing `since` and `wait` exactly as the wire contract says."""

from __future__ import annotations

import pytest

from events_trio.core.errors import InvalidParameter
from events_trio.wire.query import EventsQuery, parse_events_query, parse_u64, parse_wait


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("42", 42),
        ("007", 7),
        ("18446744073709551615", 2**64 - 1),
        ("0" * 10_000 + "1", 1),
    ],
)
def test_valid_u64(text: str, value: int) -> None:
    assert parse_u64(text) == value


@pytest.mark.parametrize(
    "text",
    [
        "",
        "-1",
        "+1",
        " 1",
        "1 ",
        "1.0",
        "1e3",
        "0x10",
        "18446744073709551616",
        "9" * 10_000,
        "\u0661",  # ARABIC-INDIC DIGIT ONE: str.isdigit() accepts it, Rust does not
        "1\x00",
        "abc",
    ],
)
def test_invalid_u64(text: str) -> None:
    assert parse_u64(text) is None


@pytest.mark.parametrize(
    ("text", "value"),
    [("0", 0.0), ("1", 1.0), ("0.25", 0.25), (".5", 0.5), ("2.", 2.0), ("30", 30.0), ("31", 30.0)],
)
def test_valid_wait_is_capped_at_30(text: str, value: float) -> None:
    assert parse_wait(text) == value


def test_huge_wait_is_capped() -> None:
    assert parse_wait("9" * 10_000) == 30.0


@pytest.mark.parametrize("text", ["", "nan", "inf", "-1", "1e3", "abc", " 1", "1,5", "\u0661"])
def test_invalid_wait(text: str) -> None:
    assert parse_wait(text) is None


def test_defaults_when_absent() -> None:
    assert parse_events_query({}) == EventsQuery(since=0, wait=0.0)


def test_unknown_parameters_are_ignored() -> None:
    assert parse_events_query({"since": ["5"], "foo": ["bar"]}) == EventsQuery(5, 0.0)


@pytest.mark.parametrize("name", ["since", "wait"])
def test_repeated_parameter_is_rejected(name: str) -> None:
    with pytest.raises(InvalidParameter, match=rf"^{name} given more than once; ") as error:
        parse_events_query({name: ["1", "2"]})
    assert error.value.parameter == name
