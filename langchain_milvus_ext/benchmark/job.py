"""The main job: every case of a configuration on its Milvus target, with the environment.

`run_benchmark` is the entry point of the CLI and of the notebook; the cases themselves run in
`runner` (and the service workload in `service`).
"""

from __future__ import annotations

import contextlib
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

from .checks import BenchContext
from .config import BenchmarkConfig, describe_queries, make_embeddings, require_extra
from .report import BenchmarkResults, CaseResult
from .runner import PACKAGES, Contender, free_port, resolve_contenders, run_case, wait_for_port


def run_benchmark(config: BenchmarkConfig) -> BenchmarkResults:
    """Run every selected case and return the results; a case that raised or returned wrong
    data gets ``error`` set (with ``config.fail_fast`` the run stops there).

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
        ]
        if service:
            from .service import run_service  # starlette, uvicorn, httpx: only here

            jobs += [(f"service {c.name}", partial(run_service, ctx, c))
                     for c in contenders if c.mode == "async"]
        bar: Any = None
        if config.progress:
            from tqdm import tqdm

            bar = tqdm(total=len(jobs), file=sys.stderr, unit="case", dynamic_ncols=True)
        try:
            for description, job in jobs:
                if bar is not None:
                    bar.set_description(description)
                results.cases += (new := job())
                if bar is not None:
                    bar.update()
                failed = [f"FAILED {c.label}: {c.error}" for c in new if c.error is not None]
                for message in failed:
                    (bar.write if bar is not None else print)(message, file=sys.stderr)
                if failed and config.fail_fast:
                    break
        finally:
            if bar is not None:
                bar.close()
            ctx.close()
    results.wall_time_s = time.perf_counter() - started
    return results




def environment(ctx: BenchContext, target: str, contenders: list[Contender]) -> dict[str, Any]:
    """What the results depend on: target, index, embeddings, versions and the machine."""
    config, versions = ctx.config, {}
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
        at = f" at {config.openai_base_url}" if config.openai_base_url else ""
        embeddings = f"OpenAI {config.openai_model}{at}"
    if config.embed_latency_ms:
        embeddings += f" + {config.embed_latency_ms:g} ms/request"
    machine: dict[str, Any] = {"cores": os.cpu_count(), "memory_gib": None,
                               "cpu": platform.processor() or platform.machine()}
    with contextlib.suppress(ValueError, OSError, AttributeError):
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        machine["memory_gib"] = round(memory / 2**30, 1)
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo", encoding="utf-8") as fh:
        machine["cpu"] = next(line.split(":", 1)[1].strip() for line in fh if "model name" in line)
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
        "machine": machine,
    }


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
    """Run a Milvus Lite server process (own process group) for the block; yields its URI.

    Raises:
        RuntimeError: The server exited or did not accept connections in time (with its log).
    """
    port = free_port()
    log_path = os.path.join(os.path.dirname(data_dir) or ".", "milvus-lite-server.log")
    command = [sys.executable, "-m", "milvus_lite", "server", "--data-dir", data_dir,
               "--host", "127.0.0.1", "--port", str(port)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
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
