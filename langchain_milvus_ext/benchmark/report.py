"""Results (per-case medians and spreads over the repetitions, ratios, JSON) and the report
(aligned plain text for the terminal, GitHub markdown for docs)."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .config import CEILING, CONTENDERS, LCM_ASYNC, OURS_SYNC, QUERY_DESCRIPTIONS, WORKLOADS


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear interpolation (``numpy.percentile``).

    Example:
        >>> percentile([1.0, 2.0, 3.0, 4.0], 50)
        2.5
    """
    if not values or not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile needs values and 0 <= q <= 100, got {len(values)}, {q}")
    return float(np.percentile(values, q))


@dataclass(frozen=True)
class LatencyStats:
    """Per-operation latency summary, in milliseconds."""

    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float

    @classmethod
    def from_seconds(cls, latencies_s: Sequence[float]) -> LatencyStats:
        """Summarise latencies given in seconds."""
        ms = np.asarray(latencies_s) * 1000.0
        p50, p95, p99 = (float(v) for v in np.percentile(ms, [50, 95, 99]))
        return cls(p50, p95, p99, float(ms.mean()), float(ms.max()))


@dataclass
class CaseResult:
    """One (workload, N, contender[, concurrency]) cell, over its timed repetitions.

    ``total_s`` is the median of ``totals_s`` and ``throughput`` N / ``total_s``; ``latency`` is
    the median repetition's (the faster middle one of an even count; each repetition's in
    ``rep_latencies``), the embedding counts the last one's. ``ops_timed``: the calls a
    sync loop stopped at the case budget made (its only repetition; what ``total_s``,
    ``throughput`` and ``latency`` are of). ``calls_ms``: a sync loop's time per call (ms), by
    repetition. ``concurrency``: the service workload's HTTP clients. ``error``: the case
    raised or a check failed. ``wall_s``: set-up and checks included.
    """

    workload: str
    n: int
    contender: str
    concurrency: int | None = None
    total_s: float | None = None
    throughput: float | None = None
    throughput_min: float | None = None
    throughput_max: float | None = None
    totals_s: list[float] = field(default_factory=list)
    latency: LatencyStats | None = None
    rep_latencies: list[LatencyStats] = field(default_factory=list)
    embed_requests: int | None = None
    embed_texts: int | None = None
    rows_before: int | None = None
    rows_after: int | None = None
    recall: float | None = None
    checks: list[str] = field(default_factory=list)
    error: str | None = None
    ops_timed: int | None = None
    calls_ms: list[list[float]] = field(default_factory=list)
    wall_s: float | None = None

    @property
    def ok(self) -> bool:
        """Whether the case ran and passed its checks."""
        return self.error is None and self.throughput is not None

    @property
    def repeats(self) -> int:
        """Timed repetitions that ran."""
        return len(self.totals_s)

    @property
    def label(self) -> str:
        """``contender/workload/N=...[/clients=...]``, used in messages."""
        clients = f"/clients={self.concurrency}" if self.concurrency is not None else ""
        return f"{self.contender}/{self.workload}/N={self.n}{clients}"

    def add_repetition(
        self, total_s: float, latencies_s: Sequence[float], ops: int | None = None, *,
        per_call: bool = False,
    ) -> None:
        """Record one timed repetition of ``ops`` operations (default N; fewer only for a
        case's single, budget-stopped repetition) and recompute the median and spread;
        ``per_call``: the latencies are the calls' own times (a sync loop), kept in
        ``calls_ms``."""
        if ops is not None and ops != self.n:
            self.ops_timed = ops
        if per_call:
            self.calls_ms.append([round(s * 1000.0, 4) for s in latencies_s])
        self.totals_s.append(total_s)
        self.total_s = median = statistics.median(self.totals_s)
        done = self.ops_timed or self.n
        self.throughput = done / median if median > 0 else float("inf")
        self.throughput_min = done / max(self.totals_s)
        self.throughput_max = done / min(self.totals_s) if min(self.totals_s) > 0 else None
        self.rep_latencies.append(LatencyStats.from_seconds(latencies_s))
        self.latency = self.rep_latencies[self.totals_s.index(statistics.median_low(self.totals_s))]

    def first_calls_ms(self, calls: int) -> float:
        """The median over repetitions of the time a sync loop's first ``calls`` calls took."""
        return statistics.median(sum(rep[:calls]) for rep in self.calls_ms)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaseResult:
        """Inverse of ``dataclasses.asdict`` (unknown keys, such as ratios, ignored)."""
        values = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        latency = values.pop("latency", None)
        reps = [LatencyStats(**r) for r in values.pop("rep_latencies", [])]
        return cls(**values, latency=LatencyStats(**latency) if latency else None,
                   rep_latencies=reps)


RATIOS = {  # JSON key: (table column, baseline contender, format)
    "speedup_vs_langchain_milvus_async": ("vs lcm-async", LCM_ASYNC, "x"),
    "speedup_vs_ours_sync": ("vs ours-sync", OURS_SYNC, "x"),
    "fraction_of_ceiling": ("of ceiling", CEILING, "%"),
}


@dataclass
class BenchmarkResults:
    """Everything a run measured: its config (as a dict), environment (target, versions,
    machine), one case per cell that ran, start time and whole duration."""

    config: dict[str, Any]
    environment: dict[str, Any] = field(default_factory=dict)
    cases: list[CaseResult] = field(default_factory=list)
    started_at: str = ""
    wall_time_s: float = 0.0

    def get(
        self, workload: str, n: int, contender: str, concurrency: int | None = None
    ) -> CaseResult | None:
        """The case for these keys, if it ran."""
        key = (workload, n, contender, concurrency)
        return next((c for c in self.cases
                     if (c.workload, c.n, c.contender, c.concurrency) == key), None)

    def ratio(self, case: CaseResult, baseline: str) -> float | None:
        """``case``'s median throughput over ``baseline``'s in the same cell (else ``None``).

        Two sync loops of which one stopped at the case budget are compared on the calls both
        made: the first ones. A call's cost can change along a loop (a delete of one row in
        N gets cheaper as the collection empties), so the rate of a loop's first calls is not
        that of a whole loop.
        """
        base = self.get(case.workload, case.n, baseline, case.concurrency)
        if base is None or not base.ok or not case.ok or not base.throughput:
            return None
        if case.calls_ms and base.calls_ms and (case.ops_timed or base.ops_timed):
            calls = min(len(rep) for rep in case.calls_ms + base.calls_ms)
            mine = case.first_calls_ms(calls)
            return base.first_calls_ms(calls) / mine if mine > 0 else None
        return (case.throughput or 0.0) / base.throughput

    @property
    def query_set(self) -> str:
        """The run's search / MMR query set (results saved before the option: tutorial)."""
        return str(self.config.get("queries", "tutorial"))

    @property
    def failures(self) -> list[CaseResult]:
        """Cases that raised or failed a correctness check."""
        return [c for c in self.cases if c.error is not None]

    def ordered_cases(self) -> list[CaseResult]:
        """Cases sorted by workload, N, concurrency and contender in their canonical orders."""

        def index(order: Sequence[str], value: str) -> int:
            return order.index(value) if value in order else len(order)

        return sorted(self.cases, key=lambda c: (index(WORKLOADS, c.workload), c.n,
                                                 c.concurrency or 0,
                                                 index(CONTENDERS, c.contender)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dict, with the ratios (of medians) added to each case."""
        cases = [{**asdict(c), **{k: self.ratio(c, base) for k, (_, base, _) in RATIOS.items()}}
                 for c in self.ordered_cases()]
        return {**asdict(self), "cases": cases}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> BenchmarkResults:
        """Inverse of :meth:`to_json`."""
        data = {k: v for k, v in json.loads(text).items() if k in cls.__dataclass_fields__}
        return cls(**{**data, "cases": [CaseResult.from_dict(c) for c in data.get("cases", [])]})


# -- tables -----------------------------------------------------------------------------------

STORE_COLUMNS: tuple[str, ...] = (
    "workload", "N", "contender", "total s", "ops/s", "min-max ops/s", "reps", "p50 ms",
    "p95 ms", "p99 ms", "vs lcm-async", "vs ours-sync", "of ceiling", "embed reqs", "check",
)
SERVICE_COLUMNS: tuple[str, ...] = (
    "clients", "requests", "contender", "req/s", "min-max req/s", "reps", "p50 ms", "p99 ms",
    "vs lcm-async", "embed reqs", "check",
)
_LEFT = {"workload", "contender", "check"}
NOTE = (
    "ops/s = N / median total s over the reps (min-max: their spread; a cell stops repeating "
    "once its reps, set-up included, took --case-budget-s); ratios are of medians (two sync "
    "loops, one stopped at the budget: of the time their common first calls took). Latency per "
    "call: sync loops time each call; async gathers time each call from the moment all N were "
    "submitted; the ceiling is one batched call, so every operation's latency is the batch's."
)
SERVICE_NOTE = "Service: one HTTP request = one asimilarity_search; latency per request."
Row = Sequence[str] | None  # None: a separator line


def _fmt(value: float | None, kind: str) -> str:
    """A number as its column shows it: seconds, rate, ms, ratio (``x``) or percent."""
    if value is None:
        return "-"
    if kind == "s":
        return f"{value:.4f}" if value < 0.1 else f"{value:.3f}" if value < 100 else f"{value:.1f}"
    if kind == "rate":
        return f"{value:,.0f}" if value >= 100 else f"{value:.2f}" if value < 10 else f"{value:.1f}"
    if kind == "ms":
        return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"
    if kind == "x":
        return f"{value:.1f}x" if value >= 9.95 else f"{value:.2f}x"
    return f"{value * 100:.0f}%" if value >= 0.1 else f"{value * 100:.1f}%"


def render_table(header: Sequence[str], rows: Sequence[Row], markdown: bool = False) -> str:
    """Align ``rows`` under ``header``, a ``None`` row being a separator line; or, ``markdown``,
    a GitHub markdown table (separator rows dropped)."""
    if markdown:
        align = ["---" if h in _LEFT else "---:" for h in header]
        lines = [header, align, *(r for r in rows if r is not None)]
        return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)
    widths = [max([len(h), *(len(r[i]) for r in rows if r is not None)])
              for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        columns = zip(cells, widths, header, strict=True)
        return "  ".join(c.ljust(w) if h in _LEFT else c.rjust(w) for c, w, h in columns).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(rule if r is None else line(r) for r in rows)])


def format_table(results: BenchmarkResults, markdown: bool = False) -> str:
    """The store workloads' table (a block per workload and N), then the service table."""
    tables = []
    for service, columns in ((False, STORE_COLUMNS), (True, SERVICE_COLUMNS)):
        rows: list[Row] = []
        previous: tuple[str, int, int | None] | None = None
        for case in results.ordered_cases():
            if (case.workload == "service") != service:
                continue
            if previous is not None and (case.workload, case.n, case.concurrency) != previous:
                rows.append(None)
            previous = (case.workload, case.n, case.concurrency)
            check = "ok" if case.ok else "FAIL"
            if case.ok and case.recall is not None and case.recall < 1.0:
                check = f"ok r={case.recall:.2f}"
            rate, spread = _fmt(case.throughput, "rate"), "-"
            if case.ok:
                spread = f"{_fmt(case.throughput_min, 'rate')}-{_fmt(case.throughput_max, 'rate')}"
            lat = case.latency
            latencies = [_fmt(lat.p50_ms, "ms"), _fmt(lat.p95_ms, "ms"),
                         _fmt(lat.p99_ms, "ms")] if lat else [_fmt(None, "ms")] * 3
            cells = {  # both tables' cells, by column
                "workload": case.workload, "N": str(case.n), "contender": case.contender,
                "clients": str(case.concurrency), "requests": str(case.n),
                "total s": _fmt(case.total_s, "s") + ("*" if case.ops_timed else ""),
                "ops/s": rate, "req/s": rate, "min-max ops/s": spread, "min-max req/s": spread,
                "reps": str(case.repeats),
                **dict(zip(("p50 ms", "p95 ms", "p99 ms"), latencies, strict=True)),
                **{column: _fmt(results.ratio(case, base), kind)
                   for column, base, kind in RATIOS.values()},
                "embed reqs": "-" if case.embed_requests is None else str(case.embed_requests),
                "check": check,
            }
            rows.append([cells[c] for c in columns])
        if rows:
            tables.append(render_table(columns, rows, markdown))
    return "\n\n".join(tables)


def format_report(results: BenchmarkResults, markdown: bool = False) -> str:
    """Title, tables, notes on contenders, versions and failures: plain text, or GitHub markdown
    (what ``--markdown PATH`` writes)."""
    env, cfg, queries = results.environment, results.config, results.query_set
    title = (
        "Milvus vector-store benchmark "
        f"(target: {env.get('target', '?')}, index: {env.get('index', '?')}, "
        f"embeddings: {env.get('embeddings', '?')}, prefill: {cfg.get('prefill')}, "
        f"k: {cfg.get('k')}, queries: {QUERY_DESCRIPTIONS.get(queries, queries)})"
    )
    lines = [NOTE, *([SERVICE_NOTE] if any(c.workload == "service" for c in results.cases) else [])]
    if isinstance(impls := env.get("contenders"), dict):
        lines.append("Contenders: " + "; ".join(f"{k} = {v}" for k, v in impls.items()))
    if isinstance(versions := env.get("versions"), dict):
        lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    if isinstance(m := env.get("machine"), dict):
        lines.append(f"Machine: {m.get('cores')} cores, {m.get('memory_gib')} GiB, {m.get('cpu')}")
    lines += [f"* {c.label}: the sync loop stopped at --case-budget-s after {c.ops_timed} of "
              f"{c.n} calls; total s, ops/s and latencies are of those calls, and its ratio to "
              "another sync loop compares the calls both made"
              for c in results.ordered_cases() if c.ops_timed]
    lines += [f"FAILED {case.label}: {case.error}" for case in results.failures]
    lines.append(f"Total run time: {results.wall_time_s:.1f} s")
    if markdown:
        return "\n\n".join([f"**{title}**", format_table(results, markdown=True), *lines]) + "\n"
    return "\n".join([title, "", format_table(results), "", *lines])

