"""Benchmarks: run with ``nox -s bench`` or ``python -m benchmarks`` (not tests)."""
