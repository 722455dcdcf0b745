"""``run_benchmark``: run and check every (workload, N, contender) case."""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from importlib import metadata
from typing import Any, TextIO

from .ceiling import ceiling_view, run_ceiling_case
from .checks import CheckFailure, check_case
from .config import BenchmarkConfig, require_extra
from .contenders import Contender, resolve_contenders
from .context import BenchContext
from .data import describe_queries
from .embeddings import make_embeddings
from .results import BenchmarkResults, CaseResult, LatencyStats
from .store_cases import run_store_case
from .targets import milvus_target

logger = logging.getLogger(__name__)

_PACKAGES = (
    "langchain-milvus-ext",
    "langchain-milvus",
    "langchain-core",
    "pymilvus",
    "milvus-lite",
)


def run_benchmark(config: BenchmarkConfig) -> BenchmarkResults:
    """Run every selected case and return the results (failures are recorded, not raised).

    A case whose contender raises or returns wrong data gets ``error`` set; with
    ``config.fail_fast`` the run stops there. Check :attr:`BenchmarkResults.failures`.

    Example:
        >>> results = run_benchmark(BenchmarkConfig(n=(5,), prefill=20))  # doctest: +SKIP
        >>> print(results.to_json())  # doctest: +SKIP

    Raises:
        ConfigError: Invalid configuration, a required contender is missing, or tqdm (the
            progress bar, from the `benchmark` extra) is missing while ``config.progress``.
    """
    config.validate()
    require_extra(progress=config.progress, plot=False)
    started = time.perf_counter()
    resolved = resolve_contenders(config)
    embeddings = make_embeddings(config)
    results = BenchmarkResults(
        config=config.to_dict(),
        unavailable=dict(resolved.unavailable),
        started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    cases = [
        (workload, n, contender)
        for workload in config.workloads
        for n in config.n
        for contender in resolved.contenders
    ]
    with milvus_target(config) as (uri, target):
        ctx = BenchContext(config=config, uri=uri, token=config.token, embeddings=embeddings)
        results.environment = _environment(config, target, resolved.implementations())
        bar = _progress_bar(config.progress)(
            total=len(cases),
            file=sys.stderr,
            disable=not config.progress,
            unit="case",
            dynamic_ncols=True,
        )
        try:
            for workload, n, contender in cases:
                bar.set_description(f"{workload} N={n} {contender.name}")
                result = run_case(ctx, contender, workload, n)
                results.cases.append(result)
                bar.update()
                if result.error is not None:
                    bar.write(f"FAILED {result.label}: {result.error}", file=sys.stderr)
                    if config.fail_fast:
                        break
        finally:
            bar.close()
            ctx.close()
    results.wall_time_s = time.perf_counter() - started
    return results


def run_case(ctx: BenchContext, contender: Contender, workload: str, n: int) -> CaseResult:
    """Run and check one case on a fresh collection, which is dropped afterwards."""
    result = CaseResult(workload=workload, n=n, contender=contender.name)
    name = ctx.collection_name(contender.name, workload, n)
    try:
        if contender.mode == "ceiling":
            timed, rows_before = run_ceiling_case(ctx, workload, n, name)
            view = ceiling_view(name)
        else:
            timed, rows_before, view = run_store_case(ctx, contender, workload, n, name)
        result.embed_requests = ctx.embeddings.requests
        result.embed_texts = ctx.embeddings.texts
        result.total_s = timed.total_s
        result.throughput = n / timed.total_s if timed.total_s > 0 else float("inf")
        result.latency = LatencyStats.from_seconds(timed.latencies_s)
        result.rows_before = rows_before
        report = check_case(ctx, view, workload, n, timed.outputs, rows_before)
        result.rows_after = report.rows_after
        result.recall = report.recall
        result.checks = report.passed
    except CheckFailure as exc:
        result.error = f"wrong data: {exc}"
    except Exception as exc:  # a contender may raise anything; record it, name the case
        logger.debug("case %s raised", result.label, exc_info=True)
        result.error = f"{type(exc).__name__}: {str(exc)[:500]}"
    finally:
        with contextlib.suppress(Exception):
            ctx.drop(name)
    return result


def _environment(config: BenchmarkConfig, target: str, impls: dict[str, str]) -> dict[str, object]:
    versions = {}
    for package in _PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    if config.embeddings == "fake":
        embeddings = f"DeterministicFakeEmbedding(size={config.effective_dim})"
    else:
        embeddings = f"OpenAI {config.openai_model}"
        if config.openai_base_url:
            embeddings += f" at {config.openai_base_url}"
    if config.embed_latency_ms:
        embeddings += f" + {config.embed_latency_ms:g} ms/request"
    metric = "each store's default" if config.metric == "native" else config.metric
    return {
        "target": target,
        "index": f"AUTOINDEX, metric {metric}",
        "embeddings": embeddings,
        "queries": describe_queries(config.queries),
        "contenders": impls,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "versions": versions,
    }


class _NoBar:
    """What the run uses of a tqdm bar, doing nothing but writing messages (no tqdm needed)."""

    def __init__(self, **_: Any) -> None:
        pass

    def set_description(self, _: str) -> None:
        pass

    def update(self) -> None:
        pass

    def write(self, message: str, file: TextIO | None = None) -> None:
        print(message, file=file or sys.stderr)

    def close(self) -> None:
        pass


def _progress_bar(progress: bool) -> Callable[..., Any]:
    """tqdm (imported only when a bar is shown) or a silent stand-in."""
    if not progress:
        return _NoBar
    from tqdm import tqdm

    return tqdm  # type: ignore[no-any-return]
