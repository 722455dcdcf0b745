"""``run_benchmark``: where it runs, and every (workload, N, contender) case, repeated and checked.

Milvus Lite 3.x opened as a ``.db`` file serves from threads *inside the benchmark's process*,
so client and "server" share one GIL. ``--target lite-server`` starts ``python -m milvus_lite
server`` as a separate process on a free loopback port instead, closer to a real deployment.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from functools import partial
from importlib import metadata
from typing import Any

from .checks import BenchContext, CheckFailure, check_case
from .config import BenchmarkConfig, require_extra
from .contenders import READ_WORKLOADS, Contender, Timed, resolve_contenders, run_repetition
from .data import describe_queries, make_embeddings
from .results import BenchmarkResults, CaseResult
from .service import free_port, wait_for_port

logger = logging.getLogger(__name__)
PACKAGES = ("langchain-milvus-ext", "langchain-milvus", "langchain-core", "pymilvus", "milvus-lite")


def run_benchmark(config: BenchmarkConfig) -> BenchmarkResults:
    """Run every selected case and return the results (failures are recorded, not raised).

    Each case runs ``config.repeat`` timed repetitions, each after a warm-up call, and stops
    repeating early once its repetitions took ``config.case_budget_s``. A case whose contender
    raises or returns wrong data gets ``error`` set; with ``config.fail_fast`` the run stops.

    Example:
        >>> results = run_benchmark(BenchmarkConfig(n=(5,), prefill=20))  # doctest: +SKIP
        >>> print(results.to_json())  # doctest: +SKIP

    Raises:
        ConfigError: Invalid configuration, or a module of the ``benchmark`` extra this run
            needs (tqdm for the progress bar, the service workload's) is missing.
    """
    config.validate()
    service = "service" in config.workloads
    require_extra(progress=config.progress, plot=False, service=service)
    started = time.perf_counter()
    contenders = resolve_contenders(config.contenders)
    results = BenchmarkResults(
        config=config.to_dict(),
        started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    with milvus_target(config) as (uri, target):
        ctx = BenchContext(config, uri, config.token, make_embeddings(config))
        results.environment = environment(ctx, target, contenders)
        jobs: list[tuple[str, Callable[[], list[CaseResult]]]] = [
            (f"{w} N={n} {c.name}", partial(run_case, ctx, c, w, n))
            for w in config.workloads if w != "service" for n in config.n for c in contenders
        ]  # fmt: skip
        if service:
            from .service import run_service  # starlette, uvicorn, httpx: only here

            jobs += [(f"service {c.name}", partial(run_service, ctx, c, repeat_case))
                     for c in contenders if c.mode == "async"]  # fmt: skip
        progress = _Progress(config.progress, len(jobs))
        try:
            for description, job in jobs:
                progress.step(description)
                results.cases += (new := job())
                if progress.done(new) and config.fail_fast:
                    break
        finally:
            progress.close()
            ctx.close()
    results.wall_time_s = time.perf_counter() - started
    return results


def repeat_case(
    ctx: BenchContext,
    result: CaseResult,
    collection: str,
    one: Callable[[bool], tuple[Timed, int]],
    *,
    drop: bool = True,
) -> CaseResult:
    """Run ``one(fresh)`` (a timed repetition) up to ``repeat`` times, checking each one.

    Repetitions stop early once they took ``case_budget_s`` (at least one always runs).
    Errors and failed checks are recorded on ``result``; the collection is dropped afterwards
    if ``drop``. ``one`` gets ``fresh=False`` when the repetition reuses the collection.
    """
    cfg = ctx.config
    try:
        while result.repeats < cfg.repeat:
            elapsed = sum(result.totals_s)
            if result.repeats and cfg.case_budget_s and (
                elapsed + elapsed / result.repeats > cfg.case_budget_s
            ):
                break
            fresh = result.workload not in READ_WORKLOADS or not result.repeats
            timed, rows_before = one(fresh)
            result.embed_requests = ctx.embeddings.requests
            result.embed_texts = ctx.embeddings.texts
            report = check_case(ctx, collection, result.workload, result.n, timed.outputs,
                                rows_before)  # fmt: skip
            result.add_repetition(timed.total_s, timed.latencies_s)
            result.rows_before, result.rows_after = rows_before, report.rows_after
            result.recall, result.checks = report.recall, report.passed
    except CheckFailure as exc:
        result.error = f"wrong data: {exc}"
    except Exception as exc:  # a contender may raise anything; record it, name the case
        logger.debug("case %s raised", result.label, exc_info=True)
        result.error = f"{type(exc).__name__}: {str(exc)[:500]}"
    finally:
        if drop:
            with contextlib.suppress(Exception):
                ctx.drop(collection)
    return result


def run_case(ctx: BenchContext, contender: Contender, workload: str, n: int) -> list[CaseResult]:
    """Run and check one case's repetitions (fresh collections; dropped afterwards)."""
    name = ctx.collection_name(contender.name, workload, n)

    def one(fresh: bool) -> tuple[Timed, int]:
        return run_repetition(ctx, contender, workload, n, name, fresh=fresh)

    return [repeat_case(ctx, CaseResult(workload, n, contender.name), name, one)]


def environment(ctx: BenchContext, target: str, contenders: list[Contender]) -> dict[str, Any]:
    """What the results depend on: target, index, embeddings, versions and the machine."""
    config = ctx.config
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    with contextlib.suppress(Exception):
        versions["server"] = str(ctx.checker.get_server_version())
    if config.embeddings == "fake":
        embeddings = f"DeterministicFakeEmbedding(size={config.effective_dim})"
    else:
        embeddings = f"OpenAI {config.openai_model}" + (
            f" at {config.openai_base_url}" if config.openai_base_url else ""
        )
    if config.embed_latency_ms:
        embeddings += f" + {config.embed_latency_ms:g} ms/request"
    metric = "each store's default" if config.metric == "native" else config.metric
    return {
        "target": target,
        "index": f"AUTOINDEX, metric {metric}",
        "embeddings": embeddings,
        "queries": describe_queries(config.queries),
        "contenders": {c.name: c.implementation for c in contenders},
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "machine": machine(),
    }


def machine() -> dict[str, Any]:
    """This machine: ``{"cores": 2, "memory_gib": 7.8, "cpu": "AMD EPYC ..."}``."""
    info: dict[str, Any] = {"cores": os.cpu_count(), "memory_gib": None,
                            "cpu": platform.processor() or platform.machine()}  # fmt: skip
    with contextlib.suppress(ValueError, OSError, AttributeError):
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        info["memory_gib"] = round(memory / 2**30, 1)
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo", encoding="utf-8") as fh:
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in fh if "model name" in line)
    return info


# -- where it runs ------------------------------------------------------------------------


@contextlib.contextmanager
def milvus_target(config: BenchmarkConfig) -> Iterator[tuple[str, str]]:
    """Yield ``(uri, description)`` for the run, and clean up afterwards."""
    if config.uri:
        yield config.uri, config.uri
        return
    with tempfile.TemporaryDirectory(prefix="lcmx-bench-", ignore_cleanup_errors=True) as tmp:
        if config.target == "lite-server":
            with lite_server(os.path.join(tmp, "data")) as uri:
                yield uri, "Milvus Lite server (separate process)"
        else:
            yield os.path.join(tmp, "bench.db"), "Milvus Lite (in-process, temporary file)"


@contextlib.contextmanager
def lite_server(data_dir: str) -> Iterator[str]:
    """Run a Milvus Lite server process (its own process group) for the block; yields its URI.

    Raises:
        RuntimeError: The server exited or did not accept connections in time (with its log).
    """
    port = free_port()
    log_path = os.path.join(os.path.dirname(data_dir) or ".", "milvus-lite-server.log")
    command = [sys.executable, "-m", "milvus_lite", "server", "--data-dir", data_dir,
               "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    try:
        try:
            wait_for_port(port, lambda: proc.poll() is None)
        except RuntimeError as exc:
            with open(log_path, encoding="utf-8", errors="replace") as fh:
                raise RuntimeError(f"milvus-lite server: {exc}: {fh.read()[-2000:]}") from exc
        yield f"http://127.0.0.1:{port}"
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if proc.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)


class _Progress:
    """A tqdm bar on stderr (tqdm imported only when shown), or just the failure messages."""

    def __init__(self, show: bool, total: int) -> None:
        self.bar: Any = None
        if show:
            from tqdm import tqdm

            self.bar = tqdm(total=total, file=sys.stderr, unit="case", dynamic_ncols=True)

    def step(self, description: str) -> None:
        if self.bar is not None:
            self.bar.set_description(description)

    def done(self, cases: list[CaseResult]) -> bool:
        """Count a finished job; report its failed cases. ``True`` if one failed."""
        if self.bar is not None:
            self.bar.update()
        failed = [f"FAILED {c.label}: {c.error}" for c in cases if c.error is not None]
        for message in failed:
            (self.bar.write if self.bar is not None else print)(message, file=sys.stderr)
        return bool(failed)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
