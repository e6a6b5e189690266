"""Which log entries reach a sink: project globs and entry types (pure).

A ``[[sink]]`` may say ``projects = ["billing", "search-*"]`` (shell-style
globs on project names, case-sensitive) and ``types = ["merge_failure",
"story_blocked"]``; an entry reaches the sink only if it matches both, and
a missing key matches everything. The runner still advances the sink's
offset over the entries it filters out, so they are never looked at again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Final

from ..core.errors import ConfigError
from .records import LogEntry

#: What ``types = [...]`` may name: the three event types and gateway notices.
ENTRY_TYPES: Final = ("stage_transition", "merge_failure", "story_blocked", "notice")
_TYPE_PREFIXES: Final = {
    name: b'{"type":"' + name.encode() + b'"' for name in ENTRY_TYPES if name != "notice"
}


def entry_type(entry: LogEntry) -> str:
    """``notice`` for notices, else the event's ``type`` (read from the body's head)."""
    if entry.kind == "notice":
        return "notice"
    # Every stored event body is encoded with "type" first (events.py): no decode needed.
    for name, prefix in _TYPE_PREFIXES.items():
        if entry.body.startswith(prefix):
            return name
    return "unknown"  # not written by this gateway; matches no ``types`` filter


@dataclass(frozen=True, slots=True)
class Route:
    """A sink's filter.

    Attributes:
        projects: Globs on project names (``None``: every project).
        types: Entry types from :data:`ENTRY_TYPES` (``None``: every type).
    """

    projects: tuple[str, ...] | None = None
    types: frozenset[str] | None = None

    @property
    def everything(self) -> bool:
        """True when nothing is filtered out."""
        return self.projects is None and self.types is None

    def accepts(self, entry: LogEntry) -> bool:
        """Whether ``entry`` reaches the sink."""
        if self.projects is not None and not any(
            fnmatchcase(entry.project, glob) for glob in self.projects
        ):
            return False
        return self.types is None or entry_type(entry) in self.types

    def select(self, entries: Sequence[LogEntry]) -> Sequence[LogEntry]:
        """The entries that reach the sink, in order."""
        if self.everything:
            return entries
        return [entry for entry in entries if self.accepts(entry)]


def parse_route(table: dict[str, Any]) -> Route:
    """The route of a ``[[sink]]`` table (its ``projects`` and ``types`` keys).

    Raises:
        ConfigError: a key is not a non-empty list of strings, or names an
            unknown type; the message starts with the key (``sink.types: ...``).
    """
    projects = _strings(table, "projects")
    types = _strings(table, "types")
    if types is not None:
        unknown = [name for name in types if name not in ENTRY_TYPES]
        if unknown:
            raise ConfigError(
                f"sink.types: unknown type {unknown[0]!r}; expected {', '.join(ENTRY_TYPES)}"
            )
    return Route(projects, None if types is None else frozenset(types))


def _strings(table: dict[str, Any], key: str) -> tuple[str, ...] | None:
    if key not in table:
        return None
    value = table[key]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"sink.{key} must be a list of strings, e.g. {key} = [{_EXAMPLE[key]}]")
    if not value:
        raise ConfigError(f"sink.{key} must not be empty (leave it out to match all)")
    return tuple(value)


_EXAMPLE: Final = {"projects": '"billing", "search-*"', "types": '"merge_failure"'}


#: The route of a sink without ``projects`` or ``types``: every entry.
EVERYTHING: Final = Route()
