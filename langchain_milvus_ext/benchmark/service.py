"""The service workload: a web app's independent requests, the way most users meet concurrency.

A Starlette app, served by uvicorn in a thread of this process (so an in-process Milvus Lite
file can be reached), runs one ``asimilarity_search`` per ``GET /search?q=...``, for our store
or langchain-milvus on a collection pre-filled like the search workload's. An httpx client in a
separate process (its own core and GIL) sends ``service_requests`` requests from each level of
``service_concurrency`` concurrent clients; each level is a case. starlette, uvicorn and httpx
(the ``benchmark`` extra) are imported only here.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from langchain_core.documents import Document

from .checks import BenchContext
from .report import CaseResult
from .runner import (
    Contender,
    Timed,
    build_store,
    close_store,
    free_port,
    repeat_case,
    setup_store,
    wait_for_port,
)


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
                clients = case.concurrency or 1

                def one(fresh: bool, clients: int = clients) -> tuple[Timed, int]:
                    return load(url, queries, clients), rows

                # The app was set up once; a repetition's other time is the load process starting.
                repeat_case(ctx, case, name, one, drop=False, only_timed=True)
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

    store = build_store(ctx, contender, name, fresh=True)
    try:
        _, rows = setup_store(ctx, store, "search", name)

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
        ))
        thread = threading.Thread(target=server.run, name="bench-service", daemon=True)
        thread.start()
        try:
            wait_for_port(port, thread.is_alive)
            yield f"http://127.0.0.1:{port}", rows
        finally:
            server.should_exit = True
            thread.join(30)
    finally:
        close_store(store)


def load(url: str, queries: list[str], clients: int) -> Timed:
    """Run :func:`_load` in a separate Python process (the load's CPU is not the app's)."""
    done = subprocess.run(
        [sys.executable, "-m", __name__, url, str(clients)],
        input=json.dumps(queries), capture_output=True, text=True, timeout=3600, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the HTTP load failed: {done.stderr[-2000:]}")
    data = json.loads(done.stdout.strip().splitlines()[-1])
    outputs = [[Document(**d) for d in out] for out in data["outputs"]]
    return Timed(data["total_s"], data["latencies"], outputs)


async def _load(url: str, queries: list[str], clients: int) -> dict[str, Any]:
    """One request per query from ``clients`` concurrent clients, after an untimed warm-up
    round (one request per client: connections, the store's async client), after which the
    app resets the embedding counters."""
    import httpx

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=600.0) as client:

        async def run(indexes: Iterator[int], outputs: list[Any], latencies: list[float]) -> None:
            for i in indexes:  # shared by the clients: each request is sent once
                t0 = time.perf_counter()
                response = await client.get("/search", params={"q": queries[i]})
                response.raise_for_status()
                latencies[i] = time.perf_counter() - t0
                outputs[i] = response.json()

        async def round_(count: int) -> tuple[list[Any], list[float]]:
            outputs, latencies = [None] * count, [0.0] * count
            indexes = iter(range(count))
            await asyncio.gather(*(run(indexes, outputs, latencies) for _ in range(clients)))
            return outputs, latencies

        await round_(min(clients, len(queries)))
        (await client.post("/reset")).raise_for_status()
        gc.collect()
        start = time.perf_counter()
        outputs, latencies = await round_(len(queries))
        total_s = time.perf_counter() - start
    return {"total_s": total_s, "latencies": latencies, "outputs": outputs}


if __name__ == "__main__":  # the load process: URL and clients as arguments, queries on stdin
    result = asyncio.run(_load(sys.argv[1], json.load(sys.stdin), int(sys.argv[2])))
    print(json.dumps(result))
