"""Results: per-case medians and spreads over the repetitions, ratios, JSON (de)serialisation."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .config import CEILING, CONTENDERS, LCM_ASYNC, OURS_SYNC, WORKLOADS


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

    ``totals_s`` holds every repetition's wall time; ``total_s`` is their median and
    ``throughput`` is N / ``total_s``; ``throughput_min``/``throughput_max`` give the spread.
    ``latency`` is the median repetition's, the embedding counts the last one's.
    ``concurrency`` is set for the service workload (HTTP clients). ``error`` is set when the
    case raised or a correctness check failed.
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
    embed_requests: int | None = None
    embed_texts: int | None = None
    rows_before: int | None = None
    rows_after: int | None = None
    recall: float | None = None
    checks: list[str] = field(default_factory=list)
    error: str | None = None

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

    def add_repetition(self, total_s: float, latencies_s: Sequence[float]) -> None:
        """Record one timed repetition and recompute the median and spread."""
        self.totals_s.append(total_s)
        median = statistics.median(self.totals_s)
        self.total_s = median
        self.throughput = self.n / median if median > 0 else float("inf")
        self.throughput_min = self.n / max(self.totals_s)
        self.throughput_max = self.n / min(self.totals_s) if min(self.totals_s) > 0 else None
        if total_s == median or self.latency is None:
            self.latency = LatencyStats.from_seconds(latencies_s)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaseResult:
        """Inverse of ``dataclasses.asdict`` (keys it does not know, such as ratios, ignored)."""
        values = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        latency = values.pop("latency", None)
        return cls(**values, latency=LatencyStats(**latency) if latency else None)


@dataclass
class BenchmarkResults:
    """Everything a run measured.

    Attributes:
        config: The run's :class:`~.config.BenchmarkConfig` as a dict.
        environment: Target, versions (package, pymilvus, milvus-lite, server), machine.
        cases: One entry per cell that ran.
        started_at: ISO-8601 start time.
        wall_time_s: Duration of the whole run, set-up included.
    """

    config: dict[str, Any]
    environment: dict[str, Any] = field(default_factory=dict)
    cases: list[CaseResult] = field(default_factory=list)
    started_at: str = ""
    wall_time_s: float = 0.0

    def get(
        self, workload: str, n: int, contender: str, concurrency: int | None = None
    ) -> CaseResult | None:
        """The case for these keys, if it ran."""
        for case in self.cases:
            if (case.workload, case.n, case.contender, case.concurrency) == (
                workload, n, contender, concurrency,
            ):  # fmt: skip
                return case
        return None

    def ratio(self, case: CaseResult, baseline: str) -> float | None:
        """``case``'s median throughput over ``baseline``'s in the same cell (else ``None``)."""
        base = self.get(case.workload, case.n, baseline, case.concurrency)
        if base is None or not base.ok or not case.ok or not base.throughput:
            return None
        assert case.throughput is not None
        return case.throughput / base.throughput

    @property
    def query_set(self) -> str:
        """The search / MMR query set of the run (results saved before the option: tutorial)."""
        return str(self.config.get("queries", "tutorial"))

    @property
    def failures(self) -> list[CaseResult]:
        """Cases that raised or failed a correctness check."""
        return [c for c in self.cases if c.error is not None]

    def ordered_cases(self) -> list[CaseResult]:
        """Cases sorted by workload, N, concurrency and contender in their canonical orders."""

        def key(case: CaseResult) -> tuple[int, int, int, int]:
            return (_index(WORKLOADS, case.workload), case.n, case.concurrency or 0,
                    _index(CONTENDERS, case.contender))  # fmt: skip

        return sorted(self.cases, key=key)

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dict, with the ratios (from medians) added to each case."""
        ratios = {"speedup_vs_langchain_milvus_async": LCM_ASYNC,
                  "speedup_vs_ours_sync": OURS_SYNC, "fraction_of_ceiling": CEILING}  # fmt: skip
        cases = [{**asdict(c), **{k: self.ratio(c, base) for k, base in ratios.items()}}
                 for c in self.ordered_cases()]  # fmt: skip
        return {**asdict(self), "cases": cases}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> BenchmarkResults:
        """Inverse of :meth:`to_json`."""
        data = {k: v for k, v in json.loads(text).items() if k in cls.__dataclass_fields__}
        return cls(**{**data, "cases": [CaseResult.from_dict(c) for c in data.get("cases", [])]})


def _index(order: Sequence[str], value: str) -> int:
    return order.index(value) if value in order else len(order)
