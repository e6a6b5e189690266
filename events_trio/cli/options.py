"""Flags several subcommands share."""

from __future__ import annotations

import argparse
import os


def add_access_arguments(parser: argparse.ArgumentParser, *, env: str) -> None:
    """Add ``--read-token`` and ``--allow-unauthenticated`` (``serve``, ``gateway``).

    The token's default comes from the variable ``env``; ``--help`` names
    the variable, never its value.
    """
    parser.add_argument(
        "--read-token",
        default=os.environ.get(env) or None,
        help=f"require 'Authorization: Bearer TOKEN' to read events (default: ${env}; "
        "prefer the variable, flags show in ps)",
    )
    parser.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        help="serve on a non-loopback interface without a read token",
    )
