"""PNG charts (matplotlib, imported only here): throughput per workload at the largest N,
ops/s against N (log-log), and the service workload's requests/s and p99 against clients."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .config import CONTENDERS, STORE_WORKLOADS
from .report import BenchmarkResults, CaseResult

COLORS = dict(zip(CONTENDERS, ("#9ecae1", "#2171b5", "#fdae6b", "#d94801", "#6a6a6a"), strict=True))
Panel = tuple[str, str, str, Callable[[CaseResult], float] | None]
"""``(title, y label, workload, y value)``; no y value = median throughput with its spread."""


def _subtitle(results: BenchmarkResults) -> str:
    env, cfg = results.environment, results.config
    return (f"{env.get('target', '')} | {env.get('index', '')}\n{env.get('embeddings', '')} | "
            f"prefill {cfg.get('prefill')}, k={cfg.get('k')}, {results.query_set} queries, "
            f"median of up to {cfg.get('repeat', 1)} runs")


@contextlib.contextmanager
def _figure(path: str | os.PathLike[str], columns: int, width: float) -> Iterator[Any]:
    """A figure of ``columns`` panels (``fig.axes``), written to ``path`` after the block."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.subplots(1, columns, figsize=(width, 4.8), squeeze=False)[0]
    yield fig
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(Path(path), dpi=150)
    plt.close(fig)


def _rate(case: CaseResult) -> float:
    return case.throughput or 0.0


def _errors(cases: list[CaseResult]) -> list[list[float]]:
    """Error bars from each case's min-max spread around its median."""
    return [[_rate(c) - (c.throughput_min or _rate(c)) for c in cases],
            [(c.throughput_max or _rate(c)) - _rate(c) for c in cases]]


def write_plot(results: BenchmarkResults, path: str | os.PathLike[str]) -> Path:
    """Write ``path``: each contender's median ops/s (min-max error bars) per workload at the
    largest N; ``ValueError`` if no store case succeeded."""
    ok = [c for c in results.cases if c.ok and c.workload != "service"]
    if not ok:
        raise ValueError("no successful case to plot")
    n = max(c.n for c in ok)
    workloads = [w for w in STORE_WORKLOADS if any(c.workload == w and c.n == n for c in ok)]
    contenders = [name for name in CONTENDERS if any(c.contender == name for c in ok)]
    width = 0.8 / len(contenders)
    with _figure(path, 1, max(8.0, 1.9 * len(workloads) + 3)) as fig:
        ax = fig.axes[0]
        for j, contender in enumerate(contenders):
            cases = [(i, c) for i, w in enumerate(workloads)
                     if (c := results.get(w, n, contender)) is not None and c.ok]
            xs = [i + (j - (len(contenders) - 1) / 2) * width for i, _ in cases]
            ys = [_rate(c) for _, c in cases]
            bars = ax.bar(xs, ys, width=width * 0.95, label=contender, color=COLORS.get(contender),
                          yerr=_errors([c for _, c in cases]), capsize=2, ecolor="#333333")
            tops = [c.throughput_max or _rate(c) for _, c in cases]  # labels above the spread
            for bar, value, top in zip(bars, ys, tops, strict=True):
                short = (f"{value / 1000:.0f}k" if value >= 10_000 else f"{value / 1000:.1f}k"
                         if value >= 1000 else f"{value:.0f}" if value >= 10 else f"{value:.1f}")
                ax.annotate(short, (bar.get_x() + bar.get_width() / 2, top), xytext=(0, 2),
                            textcoords="offset points", ha="center", va="bottom", fontsize=7,
                            rotation=90 if len(contenders) > 4 else 0)
        ax.set_yscale("log")
        ax.set_xticks(range(len(workloads)), workloads)
        ax.set_ylabel("throughput (operations/s, log scale)")
        ax.margins(y=0.15)
        ax.set_title(f"Throughput at N={n} concurrent single operations\n{_subtitle(results)}",
                     fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(ncols=min(len(contenders), 5), fontsize=8, loc="upper center",
                  bbox_to_anchor=(0.5, -0.08), frameon=False)
        if failed := [c.label for c in results.failures if c.n == n]:
            fig.text(0.01, 0.01, "failed (not shown): " + ", ".join(failed), fontsize=7,
                     color="red")
    return Path(path)


def _lines(
    results: BenchmarkResults, path: Path, panels: list[Panel],
    x: Callable[[CaseResult], float], xlabel: str, title: str,
) -> Path:
    """One log-log panel per :data:`Panel`: a line per contender."""
    with _figure(path, len(panels), max(8.0, 4.2 * len(panels) + 1)) as fig:
        for ax, (panel, ylabel, workload, y) in zip(fig.axes, panels, strict=True):
            for contender in CONTENDERS:
                cases = sorted((c for c in results.cases if c.ok and c.contender == contender
                                and c.workload == workload), key=x)
                if cases:
                    ax.errorbar([x(c) for c in cases], [(y or _rate)(c) for c in cases],
                                yerr=None if y else _errors(cases), marker="o", capsize=2,
                                label=contender, color=COLORS.get(contender))
            ax.set(xscale="log", yscale="log", title=panel, xlabel=xlabel, ylabel=ylabel)
            ax.grid(which="both", alpha=0.3)
        fig.axes[0].legend(fontsize=7)
        fig.suptitle(f"{title}\n{_subtitle(results)}", fontsize=9)
    return path


def write_plots(results: BenchmarkResults, path: str | os.PathLike[str]) -> list[Path]:
    """Write every chart the results allow (``ValueError`` if none): ``path``, with several N
    ``<stem>-scaling.png``, with the service workload ``<stem>-service.png``."""
    base, ok = Path(path), [c for c in results.cases if c.ok]
    store = [c for c in ok if c.workload != "service"]
    if not ok:
        raise ValueError("no successful case to plot")
    written = [write_plot(results, base)] if store else []
    if len({c.n for c in store}) > 1:
        workloads = [w for w in STORE_WORKLOADS if any(c.workload == w for c in store)]
        written.append(_lines(results, base.with_name(f"{base.stem}-scaling.png"),
                              [(w, "ops/s", w, None) for w in workloads], lambda c: c.n,
                              "N (operations)", "How throughput grows with the work"))
    if len(store) < len(ok):  # service cases
        panels: list[Panel] = [
            ("requests/s", "requests/s", "service", None),
            ("p99 latency", "ms", "service", lambda c: c.latency.p99_ms if c.latency else 0.0),
        ]
        written.append(_lines(results, base.with_name(f"{base.stem}-service.png"), panels,
                              lambda c: c.concurrency or 1, "concurrent HTTP clients",
                              "ASGI service: one asimilarity_search per request"))
    return written
