"""The ``--store`` URL: which backend, and how to show it without its password (no driver imported)."""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit, urlunsplit

from ..core.errors import ConfigError

SCHEMES: Final = ("postgresql", "postgres")


def check_store_url(url: str) -> str:
    """``url`` if it names a PostgreSQL database, else a ConfigError naming what is wrong.

    Raises:
        ConfigError: not ``postgresql://[USER[:PASSWORD]@]HOST[:PORT]/DBNAME``.
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a bad port
    except ValueError:
        raise ConfigError(
            f"--store {redact(url)}: not a URL with a port 0..65535 (postgresql://USER@HOST:PORT/DBNAME)"
        ) from None
    if parts.scheme not in SCHEMES:
        raise ConfigError(
            f"--store {redact(url)}: must be a postgresql://USER@HOST:PORT/DBNAME URL "
            "(without --store the gateway uses SQLite in --state-dir)"
        )
    if not parts.hostname or not parts.path.strip("/"):
        raise ConfigError(f"--store {redact(url)}: the URL needs a host and a database name")
    return url


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (safe to log and serve)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparsable URL>"
    if password is None and "password=" not in parts.query:
        return url
    if password is not None:
        user = parts.username or ""
        host = parts.netloc.rpartition("@")[2]
        parts = parts._replace(netloc=f"{user}:***@{host}")
    if "password=" in parts.query:
        query = "&".join(
            "password=***" if item.startswith("password=") else item
            for item in parts.query.split("&")
        )
        parts = parts._replace(query=query)
    return urlunsplit(parts)
