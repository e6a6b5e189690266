"""README's CLI reference lists exactly the flags ``--help`` knows (it cannot drift)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from events_trio.cli.main import build_parser

README = Path(__file__).parents[1] / "README.md"


def reference() -> str:
    text = README.read_text()
    start = text.index("## CLI reference")
    return text[start : text.index("\n## ", start)]


def subcommands() -> dict[str, argparse.ArgumentParser]:
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


def flags(parser: argparse.ArgumentParser) -> set[str]:
    return {
        option
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }


def documented(command: str) -> set[str]:
    """Flags in the README paragraph (and table) of ``events-trio COMMAND``."""
    section = reference()
    start = section.index(f"`events-trio {command}`")
    nxt = section.find("`events-trio ", start + 1)
    block = section[start : nxt if nxt != -1 else None]
    return set(re.findall(r"(--[a-z][a-z-]*)", block))


def test_every_subcommand_is_in_the_reference() -> None:
    for command in subcommands():
        assert f"`events-trio {command}`" in reference(), command


def test_every_flag_of_every_subcommand_is_documented() -> None:
    for command, parser in subcommands().items():
        assert flags(parser) <= documented(command), command


def test_every_documented_flag_exists() -> None:
    for command, parser in subcommands().items():
        assert documented(command) <= flags(parser), command
