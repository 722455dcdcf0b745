"""Plain-text table of the results."""

from __future__ import annotations

from collections.abc import Sequence

from .data import describe_queries
from .results import BenchmarkResults, CaseResult

COLUMNS: tuple[str, ...] = (
    "workload",
    "N",
    "contender",
    "total s",
    "ops/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "vs lcm-async",
    "vs ours-sync",
    "of ceiling",
    "embed reqs",
    "check",
)
_LEFT = {"workload", "contender", "check"}


def fmt_seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if value < 0.1 else f"{value:.3f}" if value < 100 else f"{value:.1f}"


def fmt_rate(value: float | None) -> str:
    """Throughput with a precision that suits its size: ``0.52``, ``12.3``, ``1,234``."""
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def fmt_ratio(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}x" if value >= 9.95 else f"{value:.2f}x"


def fmt_percent(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 100:.0f}%" if value >= 0.1 else f"{value * 100:.1f}%"


def case_row(results: BenchmarkResults, case: CaseResult) -> list[str]:
    """The table cells of one case."""
    lat = case.latency
    check = "ok" if case.ok else "FAIL"
    if case.ok and case.recall is not None and case.recall < 1.0:
        check = f"ok r={case.recall:.2f}"
    return [
        case.workload,
        str(case.n),
        case.contender,
        fmt_seconds(case.total_s),
        fmt_rate(case.throughput),
        fmt_ms(lat.p50_ms if lat else None),
        fmt_ms(lat.p95_ms if lat else None),
        fmt_ms(lat.p99_ms if lat else None),
        fmt_ratio(results.speedup_vs_langchain_async(case)),
        fmt_ratio(results.speedup_vs_ours_sync(case)),
        fmt_percent(results.fraction_of_ceiling(case)),
        "-" if case.embed_requests is None else str(case.embed_requests),
        check,
    ]


def render_table(header: Sequence[str], rows: Sequence[Sequence[str] | None]) -> str:
    """Align ``rows`` under ``header``; a ``None`` row becomes a separator line."""
    widths = [len(h) for h in header]
    for row in rows:
        if row is None:
            continue
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        out = []
        for i, cell in enumerate(cells):
            out.append(cell.ljust(widths[i]) if header[i] in _LEFT else cell.rjust(widths[i]))
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * w for w in widths)
    lines = [line(header), rule]
    for row in rows:
        lines.append(rule if row is None else line(row))
    return "\n".join(lines)


def format_table(results: BenchmarkResults) -> str:
    """The results table: one block per (workload, N), a row per contender."""
    rows: list[list[str] | None] = []
    previous: tuple[str, int] | None = None
    for case in results.ordered_cases():
        group = (case.workload, case.n)
        if previous is not None and group != previous:
            rows.append(None)
        previous = group
        rows.append(case_row(results, case))
    return render_table(COLUMNS, rows)


def format_report(results: BenchmarkResults) -> str:
    """Title, table, notes on contenders and failures."""
    env = results.environment
    lines = [
        "Milvus vector-store benchmark "
        f"(target: {env.get('target', '?')}, index: {env.get('index', '?')}, "
        f"embeddings: {env.get('embeddings', '?')}, "
        f"prefill: {results.config.get('prefill')}, k: {results.config.get('k')}, "
        f"queries: {describe_queries(results.query_set)})",
        "",
        format_table(results),
        "",
        "ops/s = N / total s. Latency per call: sync loops time each call; async gathers time "
        "each call from the moment all N were submitted; the ceiling is one batched call, so "
        "every operation's latency is the batch's.",
    ]
    impls = env.get("contenders")
    if isinstance(impls, dict):
        lines.append("Contenders: " + "; ".join(f"{k} = {v}" for k, v in impls.items()))
    for name, reason in results.unavailable.items():
        lines.append(f"UNAVAILABLE {name}: {reason}")
    for case in results.failures:
        lines.append(f"FAILED {case.label}: {case.error}")
    lines.append(f"Total run time: {results.wall_time_s:.1f} s")
    return "\n".join(lines)
