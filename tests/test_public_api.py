"""The public API: everything documented is importable from ``events_trio``."""

from __future__ import annotations

import inspect

import events_trio


def test_all_lists_every_public_name_once() -> None:
    public = {name for name in vars(events_trio) if not name.startswith("_")}
    modules = {name for name, value in vars(events_trio).items() if inspect.ismodule(value)}
    assert len(set(events_trio.__all__)) == len(events_trio.__all__)
    assert set(events_trio.__all__) == public - modules


def test_every_public_name_has_a_docstring() -> None:
    for name in events_trio.__all__:
        value = getattr(events_trio, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), f"{name} has no docstring"
