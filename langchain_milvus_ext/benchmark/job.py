"""The main job: every case of a configuration on its Milvus target, with the environment.

The service workload is a web app's independent requests, the way most users meet concurrency:
a Starlette app, served by uvicorn in a thread of this process (so an in-process Milvus Lite file
can be reached), runs one ``asimilarity_search`` per ``GET /search?q=...``; a plain asyncio
HTTP/1.1 client in a separate process (its own core and GIL) sends ``service_requests`` requests
from each level of ``service_concurrency`` concurrent clients. starlette and uvicorn are
imported only here.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from functools import partial
from importlib import metadata
from typing import Any

from langchain_core.documents import Document

from .checks import BenchContext
from .config import QUERY_DESCRIPTIONS, BenchmarkConfig, make_embeddings, require_extra
from .report import BenchmarkResults, CaseResult
from .runner import (
    Contender,
    Timed,
    open_store,
    repeat_case,
    resolve_contenders,
    run_cases,
)

PACKAGES = ("langchain-milvus-ext", "langchain-milvus", "langchain-core", "pymilvus", "milvus-lite")


def run_benchmark(config: BenchmarkConfig) -> BenchmarkResults:
    """Run every selected case and return the results; a case that raised or returned wrong
    data gets ``error`` set (with ``config.fail_fast`` the run stops after its workload and N).

    Raises:
        ConfigError: Invalid configuration, or a module of the ``benchmark`` extra this run
            needs (tqdm for the progress bar, the service workload's) is missing.
    """
    config.validate()
    require_extra(progress=config.progress, plot=False, service="service" in config.workloads)
    started = time.perf_counter()
    contenders = resolve_contenders(config.contenders, config.ours_layout)
    results = BenchmarkResults(
        config=config.to_dict(),
        started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    with milvus_target(config) as (uri, target), contextlib.ExitStack() as stack:
        ctx = BenchContext(config, uri, config.token, make_embeddings(config))
        stack.callback(ctx.close)
        results.environment = environment(ctx, target, contenders)
        jobs: list[tuple[str, int, Callable[[], list[CaseResult]]]] = [  # (bar text, cases, job)
            (f"{w} N={n}", len(contenders), partial(run_cases, ctx, contenders, w, n, first))
            for first, (w, n) in enumerate(
                (w, n) for w in config.workloads if w != "service" for n in config.n)
        ]
        if "service" in config.workloads:
            jobs += [(f"service {c.name}", 1, partial(run_service, ctx, c))
                     for c in contenders if c.mode == "async"]
        bar: Any = None
        if config.progress:
            from tqdm import tqdm

            bar = stack.enter_context(tqdm(total=sum(j[1] for j in jobs), file=sys.stderr,
                                           unit="case", dynamic_ncols=True))
        for description, cases, job in jobs:
            if bar is not None:
                bar.set_description(description)
            results.cases += (new := job())
            if bar is not None:
                bar.update(cases)
            failed = [f"FAILED {c.label}: {c.error}" for c in new if c.error is not None]
            for message in failed:
                (bar.write if bar is not None else print)(message, file=sys.stderr)
            if failed and config.fail_fast:
                break
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
        "queries": QUERY_DESCRIPTIONS[config.queries],
        "contenders": {c.name: c.implementation for c in contenders},
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "machine": machine,
    }


@contextlib.contextmanager
def milvus_target(config: BenchmarkConfig) -> Iterator[tuple[str, str]]:
    """Yield ``(uri, description)`` for the run: ``config.uri``, else a Milvus Lite file or
    server process (own process group) in a temporary directory, stopped and removed after."""
    if config.uri:
        yield config.uri, config.uri
        return
    with tempfile.TemporaryDirectory(prefix="lcmx-bench-", ignore_cleanup_errors=True) as tmp:
        if config.target != "lite-server":
            yield os.path.join(tmp, "bench.db"), "Milvus Lite (in-process, temporary file)"
            return
        port, log_path = free_port(), os.path.join(tmp, "milvus-lite-server.log")
        command = [sys.executable, "-m", "milvus_lite", "server", "--data-dir",
                   os.path.join(tmp, "data"), "--host", "127.0.0.1", "--port", str(port)]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        try:
            try:
                wait_for_port(port, lambda: proc.poll() is None)
            except RuntimeError as exc:
                with open(log_path, encoding="utf-8", errors="replace") as fh:
                    raise RuntimeError(f"milvus-lite server: {exc}: {fh.read()[-2000:]}") from exc
            yield f"http://127.0.0.1:{port}", "Milvus Lite server (separate process)"
        finally:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                if proc.poll() is not None:
                    break
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(10)


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, alive: Callable[[], bool], timeout_s: float = 60.0) -> None:
    """Return once ``127.0.0.1:port`` accepts connections, else raise ``RuntimeError``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"the server for port {port} exited")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listened on port {port} in time")


# -- the service workload -------------------------------------------------------------------


def run_service(ctx: BenchContext, contender: Contender) -> list[CaseResult]:
    """One case per level of ``ctx.config.service_concurrency``, each repeated and checked."""
    cfg = ctx.config
    n, name = cfg.service_requests, ctx.collection_name(contender.name, "service", 0)
    queries = ctx.queries(n)
    cases = [CaseResult("service", n, contender.name, concurrency=c)
             for c in cfg.service_concurrency]
    try:
        with serve(ctx, contender, name) as (url, rows):
            for case in cases:

                def one(fresh: bool, clients: int = case.concurrency or 1) -> tuple[Timed, int]:
                    return load(url, queries, clients), rows

                # The app was set up once; a repetition's other time is the load process starting.
                repeat_case(ctx, case, name, one, only_timed=True)
    except Exception as exc:  # the app did not start: every level fails, named
        for case in cases:
            case.error = case.error or f"{type(exc).__name__}: {str(exc)[:500]}"
    finally:
        with contextlib.suppress(Exception):
            ctx.drop(name)
    return cases


@contextlib.contextmanager
def serve(ctx: BenchContext, contender: Contender, name: str) -> Iterator[tuple[str, int]]:
    """Fill ``name`` with the pre-fill (untimed) and serve the app; yields its URL and rows."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    with open_store(ctx, contender, "search", name, fresh=True) as (store, _, rows):

        async def search(request: Request) -> JSONResponse:
            docs = await store.asimilarity_search(request.query_params["q"], k=ctx.config.k)
            return JSONResponse([{"id": d.id, "page_content": d.page_content,
                                  "metadata": d.metadata} for d in docs])

        async def reset(request: Request) -> JSONResponse:  # after the warm-up round
            ctx.embeddings.reset()
            return JSONResponse(None)

        port = free_port()
        app = Starlette(routes=[Route("/search", search), Route("/reset", reset, methods=["POST"])])
        server = uvicorn.Server(uvicorn.Config(
            app, host="127.0.0.1", port=port, loop="asyncio", lifespan="off",
            log_level="warning", access_log=False,
            # uvicorn closes a connection idle for 5 s by default; a client of the pool that
            # waited that long behind 127 others would then read from a closed socket
            timeout_keep_alive=600,
        ))
        thread = threading.Thread(target=server.run, name="bench-service", daemon=True)
        thread.start()
        try:
            wait_for_port(port, thread.is_alive)
            yield f"http://127.0.0.1:{port}", rows
        finally:
            server.should_exit = True
            thread.join(30)


def load(url: str, queries: list[str], clients: int) -> Timed:
    """Run :func:`load_process` in a separate Python process (the load's CPU is not the app's)."""
    code = f"from {__name__} import load_process; load_process()"
    done = subprocess.run(
        [sys.executable, "-c", code, url, str(clients)],
        input=json.dumps(queries), capture_output=True, text=True, timeout=3600, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the HTTP load failed: {done.stderr[-2000:]}")
    data = json.loads(done.stdout.strip().splitlines()[-1])
    outputs = [[Document(**d) for d in out] for out in data["outputs"]]
    return Timed(data["total_s"], data["latencies"], outputs)


def load_process() -> None:
    """The load process: URL and clients as arguments, queries on stdin, results on stdout."""
    print(json.dumps(asyncio.run(_load(sys.argv[1], json.load(sys.stdin), int(sys.argv[2])))))


class _Connection:
    """One keep-alive HTTP/1.1 connection of the load: a request, then its whole answer.

    Not httpx: its client, shared by 128 concurrent requests, served 89 trivial requests/s
    where this one serves 6,085 (the same uvicorn app, an empty handler), so the service
    workload measured the load's client instead of the store."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, url: str) -> _Connection:
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, host)

    async def request(self, method: str, target: str) -> Any:
        """Send one request without a body; return its JSON answer (an error unless 200)."""
        self.writer.write(f"{method} {target} HTTP/1.1\r\nHost: {self.host}\r\n"
                          "Content-Length: 0\r\n\r\n".encode("ascii"))
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {name.strip().lower(): value for name, value in
                   (line.split(":", 1) for line in header_lines if ":" in line)}
        length = headers.get("content-length")
        if length is None:
            raise RuntimeError(f"{method} {target}: an answer without Content-Length")
        body = await self.reader.readexactly(int(length))
        if status_line.split(" ", 2)[1] != "200":
            raise RuntimeError(f"{method} {target}: {status_line}: {body[:500]!r}")
        return json.loads(body)

    def close(self) -> None:
        self.writer.close()


async def _load(url: str, queries: list[str], clients: int) -> dict[str, Any]:
    """One request per query from ``clients`` concurrent clients, each on its own keep-alive
    connection, after an untimed warm-up round (one request per client: connections, the
    store's async client), after which the app resets the embedding counters."""
    connections = [await _Connection.open(url) for _ in range(clients)]
    try:

        async def run(connection: _Connection, indexes: Iterator[int], outputs: list[Any],
                      latencies: list[float]) -> None:
            for i in indexes:  # shared by the clients: each request is sent once
                t0 = time.perf_counter()
                target = "/search?" + urllib.parse.urlencode({"q": queries[i]})
                outputs[i] = await connection.request("GET", target)
                latencies[i] = time.perf_counter() - t0

        async def round_(count: int) -> tuple[list[Any], list[float]]:
            outputs, latencies = [None] * count, [0.0] * count
            indexes = iter(range(count))
            await asyncio.gather(*(run(c, indexes, outputs, latencies) for c in connections))
            return outputs, latencies

        await round_(min(clients, len(queries)))
        await connections[0].request("POST", "/reset")
        gc.collect()
        start = time.perf_counter()
        outputs, latencies = await round_(len(queries))
        total_s = time.perf_counter() - start
    finally:
        for connection in connections:
            connection.close()
    return {"total_s": total_s, "latencies": latencies, "outputs": outputs}
