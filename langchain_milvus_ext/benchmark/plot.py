"""PNG chart: contenders' throughput per workload at the largest N (grouped bars, log scale)."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

from .config import CONTENDERS, WORKLOADS
from .results import BenchmarkResults

COLORS: dict[str, str] = {
    "ours-sync": "#9ecae1",
    "ours-async": "#2171b5",
    "langchain-milvus-sync": "#fdae6b",
    "langchain-milvus-async": "#d94801",
    "ceiling": "#6a6a6a",
}


def _short(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    if value >= 10:
        return f"{value:.0f}"
    return f"{value:.1f}"


def write_plot(results: BenchmarkResults, path: str | os.PathLike[str]) -> Path:
    """Write the chart to ``path`` (parent directories created) and return the path.

    Raises:
        ValueError: No successful case to plot.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [c for c in results.cases if c.ok]
    if not ok:
        raise ValueError("no successful case to plot")
    n = max(c.n for c in ok)
    workloads = [w for w in WORKLOADS if any(c.workload == w and c.n == n for c in ok)]
    contenders = [name for name in CONTENDERS if any(c.contender == name for c in ok)]
    width = 0.8 / max(len(contenders), 1)

    fig, ax = plt.subplots(figsize=(max(8.0, 1.9 * len(workloads) + 3), 5.6))
    for j, contender in enumerate(contenders):
        xs, ys = [], []
        for i, workload in enumerate(workloads):
            case = results.get(workload, n, contender)
            if case is not None and case.ok and case.throughput:
                xs.append(i + (j - (len(contenders) - 1) / 2) * width)
                ys.append(case.throughput)
        bars = ax.bar(
            xs,
            ys,
            width=width * 0.95,
            label=contender,
            color=COLORS.get(contender, None),
            edgecolor="white",
            linewidth=0.5,
        )
        for bar, value in zip(bars, ys, strict=True):
            ax.annotate(
                _short(value),
                (bar.get_x() + bar.get_width() / 2, value),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=7,
                rotation=90 if len(contenders) > 4 else 0,
            )
    ax.set_yscale("log")
    ax.set_xticks(range(len(workloads)))
    ax.set_xticklabels(workloads)
    ax.set_ylabel("throughput (operations/s, log scale)")
    ax.margins(y=0.15)
    env = results.environment
    subtitle = (
        f"{env.get('target', '')} | {env.get('index', '')} | {env.get('embeddings', '')} | "
        f"prefill {results.config.get('prefill')}, k={results.config.get('k')}, "
        f"{results.query_set} queries"
    )
    chars_per_line = int(fig.get_figwidth() * 11)  # about 11 characters per inch at size 9
    ax.set_title(
        f"Throughput at N={n} concurrent single operations\n"
        + textwrap.fill(subtitle, chars_per_line, break_on_hyphens=False),
        fontsize=9,
    )
    ax.grid(axis="y", which="major", alpha=0.3)
    ax.legend(
        ncols=min(len(contenders), 5),
        fontsize=8,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.08),
        frameon=False,
    )
    failed = [c.label for c in results.failures if c.n == n]
    if failed:
        fig.text(0.01, 0.01, "failed (not shown): " + ", ".join(failed), fontsize=7, color="red")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=150)
    plt.close(fig)
    return out
