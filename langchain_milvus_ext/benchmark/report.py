"""The results as tables: aligned plain text for the terminal, GitHub markdown for docs."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .config import CEILING, LCM_ASYNC, OURS_SYNC
from .data import describe_queries
from .results import BenchmarkResults, CaseResult

STORE_COLUMNS: tuple[str, ...] = (
    "workload", "N", "contender", "total s", "ops/s", "min-max ops/s", "reps", "p50 ms",
    "p95 ms", "p99 ms", "vs lcm-async", "vs ours-sync", "of ceiling", "embed reqs", "check",
)  # fmt: skip
SERVICE_COLUMNS: tuple[str, ...] = (
    "clients", "requests", "contender", "req/s", "min-max req/s", "reps", "p50 ms", "p99 ms",
    "vs lcm-async", "embed reqs", "check",
)  # fmt: skip
_LEFT = {"workload", "contender", "check"}
NOTE = (
    "ops/s = N / median total s over the reps (min-max: their spread; a cell stops repeating "
    "once its reps took --case-budget-s); ratios are of medians. Latency per call: sync loops "
    "time each call; async gathers time each call from the moment all N were submitted; the "
    "ceiling is one batched call, so every operation's latency is the batch's."
)
SERVICE_NOTE = "Service: one HTTP request = one asimilarity_search; latency per request."


def fmt_seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if value < 0.1 else f"{value:.3f}" if value < 100 else f"{value:.1f}"


def fmt_rate(value: float | None) -> str:
    """Throughput with a precision that suits its size: ``0.52``, ``12.3``, ``1,234``."""
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}x" if value >= 9.95 else f"{value:.2f}x"


def fmt_percent(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 100:.0f}%" if value >= 0.1 else f"{value * 100:.1f}%"


def case_cells(results: BenchmarkResults, case: CaseResult) -> dict[str, str]:
    """Every table cell of one case, by column name (both tables pick theirs)."""
    lat = case.latency
    check = "ok" if case.ok else "FAIL"
    if case.ok and case.recall is not None and case.recall < 1.0:
        check = f"ok r={case.recall:.2f}"
    spread = "-"
    if case.ok:
        spread = f"{fmt_rate(case.throughput_min)}-{fmt_rate(case.throughput_max)}"
    rate = fmt_rate(case.throughput)
    return {
        "workload": case.workload, "N": str(case.n), "contender": case.contender,
        "clients": str(case.concurrency), "requests": str(case.n),
        "total s": fmt_seconds(case.total_s), "ops/s": rate, "req/s": rate,
        "min-max ops/s": spread, "min-max req/s": spread, "reps": str(case.repeats),
        "p50 ms": fmt_ms(lat.p50_ms if lat else None),
        "p95 ms": fmt_ms(lat.p95_ms if lat else None),
        "p99 ms": fmt_ms(lat.p99_ms if lat else None),
        "vs lcm-async": fmt_ratio(results.ratio(case, LCM_ASYNC)),
        "vs ours-sync": fmt_ratio(results.ratio(case, OURS_SYNC)),
        "of ceiling": fmt_percent(results.ratio(case, CEILING)),
        "embed reqs": "-" if case.embed_requests is None else str(case.embed_requests),
        "check": check,
    }  # fmt: skip


def render_table(header: Sequence[str], rows: Sequence[Sequence[str] | None]) -> str:
    """Align ``rows`` under ``header``; a ``None`` row becomes a separator line."""
    widths = [max([len(h), *(len(r[i]) for r in rows if r is not None)])
              for i, h in enumerate(header)]  # fmt: skip

    def line(cells: Sequence[str]) -> str:
        columns = zip(cells, widths, header, strict=True)
        return "  ".join(c.ljust(w) if h in _LEFT else c.rjust(w) for c, w, h in columns).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(rule if r is None else line(r) for r in rows)])


def render_markdown(header: Sequence[str], rows: Sequence[Sequence[str] | None]) -> str:
    """``rows`` as a GitHub markdown table (separator rows are dropped)."""
    align = ["---" if h in _LEFT else "---:" for h in header]
    lines = [header, align, *(r for r in rows if r is not None)]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def _rows(
    results: BenchmarkResults, service: bool, columns: Sequence[str]
) -> list[list[str] | None]:
    rows: list[list[str] | None] = []
    previous: tuple[str, int, int | None] | None = None
    for case in results.ordered_cases():
        if (case.workload == "service") != service:
            continue
        group = (case.workload, case.n, case.concurrency)
        if previous is not None and group != previous:
            rows.append(None)
        previous = group
        cells = case_cells(results, case)
        rows.append([cells[c] for c in columns])
    return rows


def format_table(
    results: BenchmarkResults,
    render: Callable[[Sequence[str], Sequence[Sequence[str] | None]], str] = render_table,
) -> str:
    """The store workloads' table (a block per workload and N), then the service table."""
    tables = []
    for service, columns in ((False, STORE_COLUMNS), (True, SERVICE_COLUMNS)):
        rows = _rows(results, service, columns)
        if rows:
            tables.append(render(columns, rows))
    return "\n\n".join(tables)


def _header_and_footer(results: BenchmarkResults) -> tuple[str, list[str]]:
    env, cfg = results.environment, results.config
    title = (
        "Milvus vector-store benchmark "
        f"(target: {env.get('target', '?')}, index: {env.get('index', '?')}, "
        f"embeddings: {env.get('embeddings', '?')}, prefill: {cfg.get('prefill')}, "
        f"k: {cfg.get('k')}, queries: {describe_queries(results.query_set)})"
    )
    lines = [NOTE, *([SERVICE_NOTE] if any(c.workload == "service" for c in results.cases) else [])]
    if isinstance(impls := env.get("contenders"), dict):
        lines.append("Contenders: " + "; ".join(f"{k} = {v}" for k, v in impls.items()))
    if isinstance(versions := env.get("versions"), dict):
        lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    if isinstance(m := env.get("machine"), dict):
        lines.append(f"Machine: {m.get('cores')} cores, {m.get('memory_gib')} GiB, {m.get('cpu')}")
    lines += [f"FAILED {case.label}: {case.error}" for case in results.failures]
    return title, [*lines, f"Total run time: {results.wall_time_s:.1f} s"]


def format_report(results: BenchmarkResults) -> str:
    """Title, tables, notes on contenders, versions and failures (plain text)."""
    title, footer = _header_and_footer(results)
    return "\n".join([title, "", format_table(results), "", *footer])


def format_markdown(results: BenchmarkResults) -> str:
    """The same report as GitHub markdown (what ``--markdown PATH`` writes)."""
    title, footer = _header_and_footer(results)
    return "\n\n".join([f"**{title}**", format_table(results, render_markdown), *footer]) + "\n"
