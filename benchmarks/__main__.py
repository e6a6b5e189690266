"""Run every benchmark, print one table with targets, write the figures as JSON.

``python -m benchmarks [NAME ...]`` (``nox -s bench``). Each benchmark module
has ``run() -> list[Row]``; a row is a dict with ``benchmark``, ``figure``,
``target`` and ``met`` (``True``/``False``, or ``None`` when there is no
target), plus any raw numbers.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Final

BENCHMARKS: Final = (
    "bench_core",
    "bench_http",
    "bench_watcher",
    "bench_move",
    "bench_memory",
    "bench_gateway",
    "bench_gateway_vs",
    "bench_scale",
    "bench_cluster",
)
RESULTS: Final = Path(__file__).parent / "results" / "latest.json"


def table(rows: list[dict[str, Any]]) -> str:
    """Rows as an aligned text table."""
    header = ("benchmark", "figure", "target", "met")
    cells = [header] + [
        (
            str(r["benchmark"]),
            str(r["figure"]),
            str(r.get("target") or "-"),
            {True: "yes", False: "NO", None: "-"}[r.get("met")],
        )
        for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(4)]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(4)).rstrip() for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(names: list[str]) -> None:
    rows: list[dict[str, Any]] = []
    for name in names or BENCHMARKS:
        started = time.monotonic()
        print(f"running {name} ...", file=sys.stderr, flush=True)
        module = importlib.import_module(f"benchmarks.{name}")
        try:
            rows.extend(module.run())
        # One broken benchmark must not lose the others' figures.
        except Exception as error:  # noqa: BLE001
            traceback.print_exc()
            rows.append(
                {"benchmark": name, "figure": f"FAILED: {error}"[:200], "target": "-", "met": False}
            )
        print(f"  {name}: {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    print(table(rows))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"\nfigures written to {RESULTS}")


if __name__ == "__main__":
    main(sys.argv[1:])
