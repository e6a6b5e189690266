"""A throwaway PostgreSQL for the tests, started from Debian's binaries.

``PgServer.start()`` runs ``initdb`` into a temp directory and ``pg_ctl
start`` on a free loopback port with fsync off. PostgreSQL refuses to run
as root: when the tests run as root, the server runs as the unprivileged
user ``events-trio-pg`` (created when missing). Missing binaries fail the
test that needs them (``.ci/run`` installs Debian's ``postgresql``): no
test is skipped for want of PostgreSQL.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Final

from tests.support import free_port

#: The unprivileged user the server runs as when the tests run as root.
PG_USER: Final = "events-trio-pg"
#: The database superuser initdb creates (trust auth on loopback).
SUPERUSER: Final = "postgres"
_SETTINGS: Final = (
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
    "-c max_connections=200 -c listen_addresses=127.0.0.1"
)


class PostgresMissing(RuntimeError):
    """Debian's PostgreSQL server binaries are not installed."""


def pg_bindir() -> Path:
    """Where ``initdb`` and ``pg_ctl`` live (the newest Debian install)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise PostgresMissing(
        "PostgreSQL server binaries not found (initdb): install Debian's postgresql "
        "(.ci/run does: apt-get install postgresql)"
    )


def _run_as() -> int | None:
    """The uid to run the server as: ``events-trio-pg`` when we are root, else us."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(PG_USER).pw_uid
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
            check=True,
        )
        return pwd.getpwnam(PG_USER).pw_uid


class PgServer:
    """One PostgreSQL cluster: a data directory, a port, start/stop/restart.

    Attributes:
        settings: ``postgres`` options it starts with (fsync off by default:
            the tests never crash the host, only the server).
    """

    settings: str = _SETTINGS

    def __init__(self) -> None:
        self.bindir = pg_bindir()
        self.uid = _run_as()
        self.root = Path(tempfile.mkdtemp(prefix="events-trio-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._names = itertools.count(1)
        if self.uid is not None:
            os.chown(self.root, self.uid, -1)

    def _pg(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            user=self.uid,
            cwd=self.root,
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )

    def start(self) -> PgServer:
        """``initdb`` (first time) and start; returns when it accepts connections."""
        if not self.data.exists():
            self._pg(
                "initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust",
                "-E", "UTF8", "--no-sync", "--locale=C",
            )  # fmt: skip
        options = f"-p {self.port} -k {self.root} {self.settings}"
        self._pg(
            "pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data),
            "-l", str(self.root / "server.log"), "-o", options,
        )  # fmt: skip
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``immediate`` is a crash: no checkpoint)."""
        self._pg("pg_ctl", "stop", "-w", "-t", "60", "-m", mode, "-D", str(self.data), check=False)

    def restart(self, mode: str = "fast") -> None:
        """Stop and start again on the same port (connections are cut)."""
        self.stop(mode)
        self.start()

    def cleanup(self) -> None:
        """Stop the server and delete its directory."""
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, dbname: str = SUPERUSER) -> str:
        """A ``postgresql://`` URL for ``dbname``."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self) -> str:
        """A new empty database; returns its URL."""
        name = f"t{os.getpid()}_{next(self._names)}"
        self._pg("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER,
                 "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", f"CREATE DATABASE {name}")  # fmt: skip
        return self.url(name)

    def sql(self, dbname_url: str, statement: str) -> str:
        """Run one SQL statement with psql (for tests peeking at tables); returns its output."""
        return self._pg(
            "psql", dbname_url, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", statement
        ).stdout.strip()
