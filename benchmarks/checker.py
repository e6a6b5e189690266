"""The chaos run's invariant checker: a history in, a verdict out (pure, no I/O but reading).

The promise checked (docs/gateway.md): every event a project server
acknowledged reaches every sink once, in per-project order; the only
repeats are the batch in flight when the gateway crashed; every loss is
announced. Inputs, all JSON lines written by ``benchmarks.chaos``:

* ``acks.jsonl`` — one line per acknowledged event: ``project``, ``key``
  (the ingested story id, or ``item:to_stage`` for a file move), ``kind``
  (``ingest`` or ``move``), ``ack_ms`` (wall clock when acknowledged) and
  ``gen`` (which run of that project's server acknowledged it);
* ``procs.jsonl`` — process lifetimes: ``t_ms``, ``proc`` (``gateway``,
  ``gateway:NAME`` for one of a cluster, ``server:NAME``, ``proxy:NAME``,
  ``postgres``), ``what`` (``start``, ``kill``, ``stop``, ``cont``, ``cut``,
  ``delay``, ``heal``, ``exit``, ``restart-fast``, ``restart-immediate``),
  ``gen``;
* each sink's output, parsed into :class:`Delivery` records in sink order.

A lost event (acknowledged, never delivered to that sink) is **announced**
when the gateway told that sink about it:

* a *restart* notice of the project, after the last event the sink got from
  that server run, covers the run's *tail*: events acknowledged after the
  last one delivered from that run (the dead server held them, unfetched);
* otherwise a *missed* notice of the project, placed where the gap is (after
  the last event delivered before the loss, at or before the first one
  delivered after it, give or take :data:`WINDOW_SLACK_MS`), with a count:
  each notice covers at most its count (``some`` covers any number).

Anything else is a **silent** loss and fails the run, as do order violations
(a project's events of one kind delivered out of acknowledgement order) and
more repeats than the sink's *repeat causes* allow: ``dups_per_cause`` (the
batch in flight) for each fault of a kind in ``repeat_causes``. With one
gateway only its kill -9 repeats anything (``gateway kill``); in a cluster a
takeover can also follow a SIGSTOP past the lease TTL (the paused owner
wakes mid-delivery and finishes its batch before the fence stops it) or a
PostgreSQL restart (leases expire while it is down), so those faults count
as causes there (:data:`CLUSTER_REPEAT_CAUSES`). File moves count as
acknowledged only if their server lived :data:`MOVE_SETTLE_MS` past the
move (the watcher must have had time to see it); the others are
*unconfirmed* and not held against anyone.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import msgspec

#: A file move is acknowledged only if its server then lived this long.
MOVE_SETTLE_MS: Final = 2_000.0
#: How far (ack time) a missed notice's window is widened each way: file
#: moves are stamped by the watcher a little after the rename.
WINDOW_SLACK_MS: Final = 1_000.0
NOTICE_RESTARTED: Final = "restarted"
NOTICE_MISSED: Final = "missed"
#: What can make one gateway deliver the batch in flight again: its kill -9.
GATEWAY_REPEAT_CAUSES: Final = frozenset({"gateway kill"})
#: In a cluster, also a takeover after a pause past the TTL or a store restart.
CLUSTER_REPEAT_CAUSES: Final = GATEWAY_REPEAT_CAUSES | {
    "gateway stop",
    "postgres restart-fast",
    "postgres restart-immediate",
}


@dataclass(frozen=True, slots=True)
class Ack:
    """An event a project server acknowledged (a 202, or a move it had time to see)."""

    project: str
    key: str
    kind: str
    ack_ms: float
    gen: int


@dataclass(frozen=True, slots=True)
class ProcEvent:
    """One line of the process history."""

    t_ms: float
    proc: str
    what: str
    gen: int = 0


@dataclass(frozen=True, slots=True)
class Delivery:
    """One item a sink output: an event (``key``) or a notice (``notice``).

    Attributes:
        project: Project the item is about.
        key: The event's key (as in :class:`Ack`); ``None`` for a notice.
        notice: ``missed``, ``restarted``, ...; ``None`` for an event.
        missed: A missed notice's count; ``None`` when unknown ("some").
        at_ms: When the sink received it (``None`` when unknown).
    """

    project: str
    key: str | None = None
    notice: str | None = None
    missed: int | None = None
    at_ms: float | None = None


@dataclass(frozen=True, slots=True)
class SinkOutput:
    """What one sink produced and how it is judged.

    Attributes:
        name: Sink name for the report.
        deliveries: Its items, in the order it received them.
        kinds: Event kinds this sink is checked for (a chat text may not
            name every event of a grouped burst).
        dups_per_cause: Repeats allowed per repeat cause (the batch in flight).
        repeat_causes: Fault kinds (``"gateway kill"``, ...) that may repeat
            a batch in this sink.
    """

    name: str
    deliveries: Sequence[Delivery]
    kinds: frozenset[str] = frozenset({"ingest", "move"})
    dups_per_cause: int = 0
    repeat_causes: frozenset[str] = GATEWAY_REPEAT_CAUSES


@dataclass(frozen=True, slots=True)
class SinkReport:
    """The checker's figures for one sink."""

    name: str
    acknowledged: int
    delivered: int
    announced: int
    silent: list[str]
    duplicates: int
    allowed_duplicates: int
    order_violations: dict[str, int]
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    unexpected: int

    @property
    def ok(self) -> bool:
        """No silent loss, no order violation, no more repeats than its repeat causes allow."""
        return (
            not self.silent
            and not any(self.order_violations.values())
            and self.duplicates <= self.allowed_duplicates
        )


@dataclass(frozen=True, slots=True)
class Report:
    """The checker's verdict over a whole run."""

    sinks: list[SinkReport]
    faults: dict[str, int]
    crashes: int
    unconfirmed_moves: int
    repeat_causes: int = 0

    @property
    def ok(self) -> bool:
        """Every sink passed."""
        return all(sink.ok for sink in self.sinks)


def confirmed(acks: Iterable[Ack], procs: Sequence[ProcEvent]) -> tuple[list[Ack], int]:
    """Acks that count, and how many moves were left out (server killed too soon after)."""
    kills: dict[tuple[str, int], float] = {
        (p.proc.removeprefix("server:"), p.gen): p.t_ms
        for p in procs
        if p.what == "kill" and p.proc.startswith("server:")
    }
    kept: list[Ack] = []
    dropped = 0
    for ack in acks:
        killed_ms = kills.get((ack.project, ack.gen), math.inf)
        if ack.kind == "move" and killed_ms - ack.ack_ms < MOVE_SETTLE_MS:
            dropped += 1
        else:
            kept.append(ack)
    return kept, dropped


def check(acks: Sequence[Ack], procs: Sequence[ProcEvent], sinks: Sequence[SinkOutput]) -> Report:
    """Judge a run: one :class:`SinkReport` per sink."""
    kept, unconfirmed = confirmed(acks, procs)
    faults = Counter(fault_kind(p) for p in procs if p.what in _FAULTS)
    reports = [
        _check_sink(sink, kept, sum(n for kind, n in faults.items() if kind in sink.repeat_causes))
        for sink in sinks
    ]
    causes = frozenset().union(*(sink.repeat_causes for sink in sinks))
    repeats = sum(n for kind, n in faults.items() if kind in causes)
    return Report(
        reports, dict(sorted(faults.items())), faults["gateway kill"], unconfirmed, repeats
    )


_FAULTS: Final = frozenset({"kill", "stop", "cut", "delay", "restart-fast", "restart-immediate"})


def fault_kind(proc: ProcEvent) -> str:
    """``"gateway kill"``, ``"server kill"``, ``"postgres restart-fast"``, ... (name dropped)."""
    return f"{proc.proc.split(':')[0]} {proc.what}"


@dataclass(slots=True)
class _Seen:
    """Where each key first appears in a sink, and how often."""

    first: dict[str, int] = field(default_factory=dict)
    at_ms: dict[str, float] = field(default_factory=dict)
    count: Counter[str] = field(default_factory=Counter)


def _seen(deliveries: Sequence[Delivery]) -> _Seen:
    seen = _Seen()
    for index, item in enumerate(deliveries):
        if item.key is None:
            continue
        seen.count[item.key] += 1
        if item.key not in seen.first:
            seen.first[item.key] = index
            if item.at_ms is not None:
                seen.at_ms[item.key] = item.at_ms
    return seen


def _check_sink(sink: SinkOutput, acks: Sequence[Ack], causes: int) -> SinkReport:
    mine = [ack for ack in acks if ack.kind in sink.kinds]
    seen = _seen(sink.deliveries)
    lost = [ack for ack in mine if ack.key not in seen.first]
    silent = _unannounced(lost, mine, seen, sink.deliveries)
    known = {ack.key for ack in mine}
    latencies = [seen.at_ms[a.key] - a.ack_ms for a in mine if a.key in seen.at_ms]
    return SinkReport(
        name=sink.name,
        acknowledged=len(mine),
        delivered=len(mine) - len(lost),
        announced=len(lost) - len(silent),
        silent=[ack.key for ack in silent],
        duplicates=sum(n - 1 for key, n in seen.count.items() if key in known),
        allowed_duplicates=causes * sink.dups_per_cause,
        order_violations=_order_violations(mine, seen),
        latency_p50_ms=percentile(latencies, 0.50),
        latency_p99_ms=percentile(latencies, 0.99),
        unexpected=sum(1 for key in seen.first if key not in known),
    )


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile; ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _order_violations(acks: Sequence[Ack], seen: _Seen) -> dict[str, int]:
    """Per project: events delivered before one acknowledged earlier (same kind)."""
    violations: Counter[str] = Counter()
    streams: dict[tuple[str, str], list[int]] = {}
    for ack in acks:  # in acknowledgement order
        if ack.key in seen.first:
            streams.setdefault((ack.project, ack.kind), []).append(seen.first[ack.key])
    for (project, _kind), positions in streams.items():
        highest = -1
        for position in positions:
            violations[project] += position < highest
            highest = max(highest, position)
    return {project: violations[project] for project in sorted({a.project for a in acks})}


def _unannounced(
    lost: Sequence[Ack], acks: Sequence[Ack], seen: _Seen, deliveries: Sequence[Delivery]
) -> list[Ack]:
    """The lost events no notice covers."""
    by_project: dict[str, list[Ack]] = {}
    for ack in lost:
        by_project.setdefault(ack.project, []).append(ack)
    silent: list[Ack] = []
    for project, losses in by_project.items():
        delivered = [a for a in acks if a.project == project and a.key in seen.first]
        notices = [(i, d) for i, d in enumerate(deliveries) if d.project == project and d.notice]
        rest = [a for a in losses if not _restart_covers(a, delivered, seen, notices)]
        silent += _missed_uncovered(rest, delivered, seen, notices)
    return silent


def _restart_covers(
    loss: Ack,
    delivered: Sequence[Ack],
    seen: _Seen,
    notices: Sequence[tuple[int, Delivery]],
) -> bool:
    """A restart notice after the last delivery of ``loss``'s server run, and ``loss`` in its tail."""
    same_run = [a for a in delivered if a.gen == loss.gen and a.kind == loss.kind]
    if any(a.ack_ms > loss.ack_ms for a in same_run):
        return False  # not the tail: later events of that run got through
    earlier = [a for a in delivered if a.gen <= loss.gen]
    after = max((seen.first[a.key] for a in earlier), default=-1)
    return any(d.notice == NOTICE_RESTARTED and i > after for i, d in notices)


def _missed_uncovered(
    losses: Sequence[Ack],
    delivered: Sequence[Ack],
    seen: _Seen,
    notices: Sequence[tuple[int, Delivery]],
) -> list[Ack]:
    """Assign each loss to the first missed notice in its window with count to spare."""
    budget = {i: (math.inf if d.missed is None else d.missed) for i, d in notices}
    missed = [i for i, d in notices if d.notice == NOTICE_MISSED]
    uncovered: list[Ack] = []
    for loss in sorted(losses, key=lambda a: a.ack_ms):
        low, high = _window(loss, delivered, seen)
        slot = next((i for i in missed if low < i <= high and budget[i] >= 1), None)
        if slot is None:
            uncovered.append(loss)
        else:
            budget[slot] -= 1
    return uncovered


def _window(loss: Ack, delivered: Sequence[Ack], seen: _Seen) -> tuple[int, float]:
    """Sink positions between which a notice of ``loss`` must sit."""
    before = [seen.first[a.key] for a in delivered if a.ack_ms < loss.ack_ms - WINDOW_SLACK_MS]
    after = [seen.first[a.key] for a in delivered if a.ack_ms > loss.ack_ms + WINDOW_SLACK_MS]
    return max(before, default=-1), min(after, default=math.inf)


# --- reading a run's files ---------------------------------------------------------------

_WEBHOOK_LINES: Final = (
    (re.compile(r"^(?P<p>[^:]+): merge failed: (?P<key>\S+) — "), None),
    (re.compile(r"^(?P<p>[^:]+): (?P<n>\d+) events? missed from "), NOTICE_MISSED),
    (re.compile(r"^(?P<p>[^:]+): some events may have been missed from "), NOTICE_MISSED),
    (re.compile(r"^(?P<p>[^:]+): project \S+ restarted; "), NOTICE_RESTARTED),
)


def _lines(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    out: list[dict[str, object]] = []
    for line in path.read_bytes().splitlines():
        try:
            out.append(msgspec.json.decode(line))
        except msgspec.DecodeError:
            continue  # a torn last line (a crash mid-write) is not a delivery
    return out


def read_acks(path: Path) -> list[Ack]:
    """``acks.jsonl``, in acknowledgement order."""
    acks = [msgspec.convert(line, Ack) for line in _lines(path)]
    return sorted(acks, key=lambda a: a.ack_ms)


def read_procs(path: Path) -> list[ProcEvent]:
    """``procs.jsonl``."""
    return [msgspec.convert(line, ProcEvent) for line in _lines(path)]


def jsonl_key(line: dict[str, object]) -> str | None:
    """An event's key as the publisher logged it: story id, or ``item:to_stage``."""
    if line.get("type") == "stage_transition":
        return f"{line['story_id']}:{line['to_stage']}"
    story = line.get("story_id")
    return str(story) if story is not None else None


def read_jsonl_sink(path: Path, arrivals: dict[str, float]) -> list[Delivery]:
    """The gateway's JSON-lines sink; ``arrivals`` maps keys to when they were first seen."""
    deliveries: list[Delivery] = []
    for line in _lines(path):
        project = str(line.get("project", ""))
        if line.get("type") == "gateway_notice":
            count = line.get("missed")
            deliveries.append(
                Delivery(
                    project,
                    notice=str(line["notice"]),
                    missed=count if isinstance(count, int) else None,
                )
            )
        elif (key := jsonl_key(line)) is not None:
            deliveries.append(Delivery(project, key=key, at_ms=arrivals.get(key)))
    return deliveries


def read_webhook_sink(path: Path) -> list[Delivery]:
    """The receiver's log of webhook posts (``t_ms``, ``text``), one chat line each."""
    deliveries: list[Delivery] = []
    for post in _lines(path):
        at_ms = float(str(post["t_ms"]))
        for text in str(post["text"]).splitlines():
            item = webhook_delivery(text, at_ms)
            if item is not None:
                deliveries.append(item)
    return deliveries


def webhook_delivery(text: str, at_ms: float) -> Delivery | None:
    """One chat line as a delivery (merge failures and loss notices); ``None`` otherwise."""
    for pattern, notice in _WEBHOOK_LINES:
        match = pattern.match(text)
        if match is None:
            continue
        if notice is None:
            return Delivery(match["p"], key=match["key"], at_ms=at_ms)
        count = match.groupdict().get("n")
        return Delivery(match["p"], notice=notice, missed=int(count) if count else None)
    return None


def read_arrivals(path: Path) -> dict[str, float]:
    """``arrivals.jsonl``: when the run first saw each key in the JSON-lines sink."""
    arrivals: dict[str, float] = {}
    for line in _lines(path):
        arrivals.setdefault(str(line["key"]), float(str(line["t_ms"])))
    return arrivals


def check_run(run: Path, batch: int, *, cluster: bool = False) -> Report:
    """Judge the run whose files are in ``run`` (as ``benchmarks.chaos`` writes them).

    Args:
        run: The run directory.
        batch: The sinks' batch limit: what one repeat cause may deliver again.
        cluster: Several gateways on PostgreSQL (:data:`CLUSTER_REPEAT_CAUSES`;
            the JSON-lines sink, exactly-once across a kill -9, may then repeat
            the batch a paused owner finishes after it lost the sink's lease).
    """
    causes = CLUSTER_REPEAT_CAUSES if cluster else GATEWAY_REPEAT_CAUSES
    sinks = [
        SinkOutput(
            "jsonl",
            read_jsonl_sink(run / "sink.jsonl", read_arrivals(run / "arrivals.jsonl")),
            dups_per_cause=batch if cluster else 0,
            repeat_causes=causes,
        ),
        SinkOutput(
            "webhook",
            read_webhook_sink(run / "webhook.jsonl"),
            kinds=frozenset({"ingest"}),
            dups_per_cause=batch,
            repeat_causes=causes,
        ),
    ]
    return check(read_acks(run / "acks.jsonl"), read_procs(run / "procs.jsonl"), sinks)


def table(report: Report, seed: int | None = None) -> str:
    """The report as a plain-text table."""
    lines = [] if seed is None else [f"seed {seed}"]
    faults = ", ".join(f"{kind} {n}" for kind, n in report.faults.items()) or "none"
    settle_s = MOVE_SETTLE_MS / 1000
    repeats = (
        f"gateway crashes {report.crashes}; faults that may repeat a batch {report.repeat_causes}"
    )
    lines += [
        f"faults: {faults} ({repeats})",
        f"file moves unconfirmed (server killed within {settle_s:g} s): {report.unconfirmed_moves}",
        "sink     acked  delivered  announced  silent  dups (allowed)  order  p50 ms  p99 ms",
    ]
    for s in report.sinks:
        lines.append(
            f"{s.name:<8} {s.acknowledged:>5}  {s.delivered:>9}  {s.announced:>9}  "
            f"{len(s.silent):>6}  {s.duplicates:>4} ({s.allowed_duplicates:>5})  "
            f"{sum(s.order_violations.values()):>5}  {_ms(s.latency_p50_ms):>6}  "
            f"{_ms(s.latency_p99_ms):>6}"
        )
        if s.silent:
            lines.append(f"  silent losses in {s.name}: {', '.join(s.silent[:10])}")
    lines.append("verdict: " + ("PASS" if report.ok else "FAIL"))
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"
