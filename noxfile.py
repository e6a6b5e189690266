"""Development tasks: ``nox -s lint typecheck tests``, ``nox -s bench`` and ``nox -s lock``.

Every session but ``tests_latest`` installs exactly what ``requirements.lock``
pins (hashes checked), so a session tests what CI tests.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"
LOCK = "requirements.lock"
#: How requirements.lock is made (``nox -s lock`` runs it; the lock's header repeats it).
LOCK_COMMAND = (
    "uv pip compile pyproject.toml requirements.in --extra test --extra dev"
    " --generate-hashes --python-version 3.11 --python-platform x86_64-unknown-linux-gnu"
    f" -o {LOCK}"
)


def install_locked(session: nox.Session) -> None:
    """The locked dependencies, then the package itself without resolving again."""
    session.install("-r", LOCK)
    session.install("--no-deps", "--no-build-isolation", "-e", ".")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the test suite with branch coverage."""
    install_locked(session)
    session.run(
        "pytest",
        "--cov=events_trio",
        "--cov-report=term-missing:skip-covered",
        *session.posargs,
    )


@nox.session(python=PYTHON, default=False)
def tests_latest(session: nox.Session) -> None:
    """The suite on the newest releases pyproject.toml allows (no lock): finds upstream drift."""
    session.install("--upgrade", "--upgrade-strategy", "eager", "-e", ".[test]")
    session.run("pip", "list", "--format=freeze")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check, and the import contracts (lint-imports)."""
    install_locked(session)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("lint-imports")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package, the tests and the benchmarks."""
    install_locked(session)
    session.run("mypy")


@nox.session(python=PYTHON, default=False)
def lock(session: nox.Session) -> None:
    """Recompute requirements.lock from pyproject.toml and requirements.in (newest allowed)."""
    session.install("uv")
    session.run(*LOCK_COMMAND.split(), *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Print the benchmark figures (not a test; takes a few minutes)."""
    install_locked(session)
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session(python=PYTHON, default=False)
def soak(session: nox.Session) -> None:
    """Server and gateway under mixed load for 30 min (``-- --minutes N``); not in CI."""
    install_locked(session)
    session.run("python", "-m", "benchmarks.soak", *session.posargs)


@nox.session(python=PYTHON, default=False)
def chaos(session: nox.Session) -> None:
    """Random faults, then the delivery checker (``-- --minutes N --store sqlite --seed S``)."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "benchmarks.chaos", *session.posargs)
