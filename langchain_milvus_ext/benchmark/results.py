"""Result dataclasses, percentile math and JSON (de)serialisation."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .config import CEILING, CONTENDERS, LCM_ASYNC, OURS_SYNC, WORKLOADS


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation (numpy's default method).

    Example:
        >>> percentile([1.0, 2.0, 3.0, 4.0], 50)
        2.5
    """
    if not values:
        raise ValueError("percentile of an empty sequence")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"q must be within [0, 100], got {q}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    fraction = position - low
    return ordered[low] + (ordered[high] - ordered[low]) * fraction


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
        ms = [v * 1000.0 for v in latencies_s]
        return cls(
            p50_ms=percentile(ms, 50),
            p95_ms=percentile(ms, 95),
            p99_ms=percentile(ms, 99),
            mean_ms=sum(ms) / len(ms),
            max_ms=max(ms),
        )


@dataclass
class CaseResult:
    """One (workload, N, contender) measurement.

    ``total_s`` is the wall time of the N operations; ``throughput`` is N / ``total_s``.
    ``error`` is set when the case raised or a correctness check failed; the timing fields
    may then be ``None``.
    """

    workload: str
    n: int
    contender: str
    total_s: float | None = None
    throughput: float | None = None
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
    def label(self) -> str:
        """``contender/workload/N=...``, used in messages."""
        return f"{self.contender}/{self.workload}/N={self.n}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaseResult:
        values = dict(data)
        latency = values.pop("latency", None)
        values["latency"] = LatencyStats(**latency) if latency is not None else None
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in values.items() if k in known})


@dataclass
class BenchmarkResults:
    """Everything a run measured.

    Attributes:
        config: The run's :class:`~.config.BenchmarkConfig` as a dict.
        environment: Versions, target and what each contender really was.
        cases: One entry per (workload, N, contender) that ran.
        unavailable: Contenders that could not run, with the reason.
        started_at: ISO-8601 start time.
        wall_time_s: Duration of the whole run, set-up included.
    """

    config: dict[str, Any]
    environment: dict[str, Any] = field(default_factory=dict)
    cases: list[CaseResult] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    started_at: str = ""
    wall_time_s: float = 0.0

    def get(self, workload: str, n: int, contender: str) -> CaseResult | None:
        """The case for these keys, if it ran."""
        for case in self.cases:
            if (case.workload, case.n, case.contender) == (workload, n, contender):
                return case
        return None

    def ratio(self, case: CaseResult, baseline: str) -> float | None:
        """``case``'s throughput divided by ``baseline``'s for the same workload and N."""
        base = self.get(case.workload, case.n, baseline)
        if base is None or not base.ok or not case.ok:
            return None
        assert case.throughput is not None and base.throughput is not None
        return case.throughput / base.throughput if base.throughput > 0 else None

    def speedup_vs_langchain_async(self, case: CaseResult) -> float | None:
        return self.ratio(case, LCM_ASYNC)

    def speedup_vs_ours_sync(self, case: CaseResult) -> float | None:
        return self.ratio(case, OURS_SYNC)

    def fraction_of_ceiling(self, case: CaseResult) -> float | None:
        return self.ratio(case, CEILING)

    @property
    def query_set(self) -> str:
        """The search / MMR query set of the run (results saved before the option: tutorial)."""
        return str(self.config.get("queries", "tutorial"))

    @property
    def failures(self) -> list[CaseResult]:
        """Cases that raised or failed a correctness check."""
        return [c for c in self.cases if c.error is not None]

    def ordered_cases(self) -> list[CaseResult]:
        """Cases sorted by workload, N and contender in their canonical orders."""

        def key(case: CaseResult) -> tuple[int, int, int]:
            return (_index(WORKLOADS, case.workload), case.n, _index(CONTENDERS, case.contender))

        return sorted(self.cases, key=key)

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dict, with the derived ratios added to each case."""
        cases = []
        for case in self.ordered_cases():
            entry = case.to_dict()
            entry["speedup_vs_langchain_milvus_async"] = self.speedup_vs_langchain_async(case)
            entry["speedup_vs_ours_sync"] = self.speedup_vs_ours_sync(case)
            entry["fraction_of_ceiling"] = self.fraction_of_ceiling(case)
            cases.append(entry)
        return {
            "config": self.config,
            "environment": self.environment,
            "started_at": self.started_at,
            "wall_time_s": self.wall_time_s,
            "unavailable": self.unavailable,
            "cases": cases,
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchmarkResults:
        return cls(
            config=dict(data.get("config", {})),
            environment=dict(data.get("environment", {})),
            cases=[CaseResult.from_dict(c) for c in data.get("cases", [])],
            unavailable=dict(data.get("unavailable", {})),
            started_at=str(data.get("started_at", "")),
            wall_time_s=float(data.get("wall_time_s", 0.0)),
        )

    @classmethod
    def from_json(cls, text: str) -> BenchmarkResults:
        return cls.from_dict(json.loads(text))


def _index(order: Sequence[str], value: str) -> int:
    return order.index(value) if value in order else len(order)
