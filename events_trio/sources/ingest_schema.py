"""Our own words for an ingest body that does not fit the schema.

msgspec decodes and validates ingest bodies (fast and strict), but its error
texts are its own and change between releases. Error bodies are part of our
contract, so when msgspec refuses a body this module walks the generic JSON
value and says, in words we wrote and documented (docs/protocol.md), what
is wrong and where: a JSON path such as ``$.type`` or ``$[2].stage``.

Plan: the same checks msgspec's schema makes, in document order, first
problem wins, decoding one level at a time. Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, TypeAlias

import msgspec

#: Longest id or stage name accepted (the watcher's item ids stop at 200 too).
MAX_ID_CHARS: Final = 200

#: The fields of each ingest type: name -> (required, is an id).
_FIELDS: Final[Mapping[str, Mapping[str, tuple[bool, bool]]]] = {
    "work_item": {
        "item_id": (True, True),
        "stage": (True, True),
        "from_stage": (True, True),
        "action": (False, False),
        "commit_msg": (False, False),
    },
    "merge_failure": {"story_id": (True, True), "reason": (True, False)},
    "story_blocked": {"story_id": (True, True), "reason": (True, False)},
}
TYPES: Final = tuple(_FIELDS)

NOT_AN_EVENT_MESSAGE: Final = "expected an event object or an array of event objects"
TOO_DEEP_MESSAGE: Final = "JSON nested too deeply"


@dataclass(frozen=True, slots=True)
class SchemaProblem:
    """What is wrong with an ingest body, and where (``None``: the whole body)."""

    message: str
    field: str | None = None


_JSON_TYPES: Final = {
    ord("{"): "object",
    ord("["): "array",
    ord('"'): "string",
    ord("t"): "boolean",
    ord("f"): "boolean",
    ord("n"): "null",
}
_Shallow: TypeAlias = dict[str, msgspec.Raw] | list[msgspec.Raw]


def _json_type(raw: bytes | msgspec.Raw) -> str:
    # A JSON value's type from its first byte: nothing nested is decoded, so
    # neither deep nesting nor a 5,000-digit number can get in the way.
    text = bytes(raw).lstrip()
    return _JSON_TYPES.get(text[0], "number") if text else "nothing"


def explain(body: bytes) -> SchemaProblem:
    """The first schema problem of an ingest body that is valid UTF-8 JSON.

    Decodes one level at a time (objects into raw fields), so a value nested
    50,000 deep or a number of 5,000 digits is named, not decoded.

    Args:
        body: The request body.

    Returns:
        The problem; a generic one if none of our checks finds it.
    """
    try:
        top = msgspec.json.decode(body, type=_Shallow)
    except msgspec.ValidationError:
        return SchemaProblem(f"{NOT_AN_EVENT_MESSAGE}, got {_json_type(body)}", "$")
    except RecursionError:
        return SchemaProblem(TOO_DEEP_MESSAGE, "$")
    items = enumerate(top) if isinstance(top, list) else [(None, msgspec.Raw(body))]
    for index, raw in items:
        problem = _explain_event(raw, "$" if index is None else f"$[{index}]")
        if problem is not None:
            return problem
    return SchemaProblem("the body is not a valid event or array of events")


def _explain_event(raw: msgspec.Raw, where: str) -> SchemaProblem | None:
    if _json_type(raw) != "object":
        return SchemaProblem(f"expected an event object, got {_json_type(raw)}", where)
    try:
        item = msgspec.json.decode(raw, type=dict[str, msgspec.Raw])
    except RecursionError:
        return SchemaProblem(TOO_DEEP_MESSAGE, where)
    kind_raw = item.get("type")
    if kind_raw is None:
        return SchemaProblem("missing required field", f"{where}.type")
    kind = _string(kind_raw)
    if kind is None or kind not in _FIELDS:
        shown = repr(kind) if kind is not None else f"of type {_json_type(kind_raw)}"
        expected = ", ".join(TYPES)
        return SchemaProblem(
            f"unknown event type {shown}; expected one of {expected}", f"{where}.type"
        )
    return _explain_fields(item, _FIELDS[kind], kind, where)


def _string(raw: msgspec.Raw) -> str | None:
    return msgspec.json.decode(raw, type=str) if _json_type(raw) == "string" else None


def _explain_fields(
    item: dict[str, msgspec.Raw], fields: Mapping[str, tuple[bool, bool]], kind: str, where: str
) -> SchemaProblem | None:
    for name in item:
        if name != "type" and name not in fields:
            note = " (the server stamps events)" if name == "timestamp_ms" else ""
            return SchemaProblem(f"unknown field for a {kind} event{note}", f"{where}.{name}")
    for name, (required, is_id) in fields.items():
        if name not in item:
            if required:
                return SchemaProblem("missing required field", f"{where}.{name}")
            continue
        problem = _explain_value(item[name], is_id=is_id)
        if problem is not None:
            return SchemaProblem(problem, f"{where}.{name}")
    return None


def _explain_value(raw: msgspec.Raw, *, is_id: bool) -> str | None:
    value = _string(raw)
    if value is None:
        return f"expected a string, got {_json_type(raw)}"
    if is_id and not 1 <= len(value) <= MAX_ID_CHARS:
        return f"must be 1 to {MAX_ID_CHARS} characters, got {len(value)}"
    return None
