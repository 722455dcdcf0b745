"""The contenders, and a case: set up, warmed up, timed, repeated and checked. Every contender
gets a fresh collection per repetition of add, delete and upsert (one per case for search and
mmr) filled untimed, and one untimed warm-up read in the timed work's event loop; stores make N
single calls (a sync loop, or ``asyncio.gather`` in a fresh loop), the ceiling one batched call.
A contender runs all its repetitions of a (workload, N) in a row (the median sets aside the
first, which meets what the previous contender left running); which contender goes first
rotates from one (workload, N) to the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import numpy as np
from langchain_core.documents import Document
from langchain_core.vectorstores.utils import maximal_marginal_relevance
from pymilvus import DataType

from .checks import TEXT_FIELD, BenchContext, CheckFailure, check_case, key_filter
from .config import (
    CEILING,
    CONTENDERS,
    LCM_ASYNC,
    LCM_SYNC,
    OURS_ASYNC,
    OURS_LAYOUTS,
    OURS_SYNC,
    doc_key,
    updated_document,
)
from .report import CaseResult

logger = logging.getLogger(__name__)
READ_WORKLOADS = frozenset({"search", "mmr"})  # their repetitions share one collection
WRITE_WORKLOADS = frozenset({"add", "delete", "upsert"})  # a fresh collection each time


@dataclass(frozen=True)
class Contender:
    """One column of the comparison: a store driven sync or async, or the batched ceiling.
    ``auto_id`` is langchain-milvus's tutorial setting (ours refuses caller ids with it, so
    upserts could not address rows); ``delete_kwargs(key)`` deletes metadata ``id`` = key;
    ``store_kwargs``: more arguments of the store (our ``columns`` layout)."""

    name: str
    mode: Literal["sync", "async", "ceiling"]
    implementation: str
    store_class: type[Any] | None = None
    auto_id: bool = False
    delete_kwargs: Callable[[str], dict[str, Any]] | None = None
    store_kwargs: Mapping[str, Any] = field(default_factory=dict)


def resolve_contenders(names: Sequence[str], ours_layout: str = "dynamic") -> list[Contender]:
    """The contenders named, in report order (``langchain_milvus`` is imported here); our store
    and the ceiling keep metadata in ``ours_layout`` (a key of ``OURS_LAYOUTS``)."""
    from langchain_milvus import Milvus

    from langchain_milvus_ext import MilvusVectorStore

    def ours_delete(key: str) -> dict[str, Any]:
        return {"filter": {"id": key}}

    def lcm_delete(key: str) -> dict[str, Any]:
        return {"expr": f"id == '{key}'"}  # the tutorial's expression

    described, layout_kwargs = OURS_LAYOUTS[ours_layout]
    stores = [  # (sync name, async name), implementation, class, auto_id, delete, kwargs
        ((OURS_SYNC, OURS_ASYNC), f"langchain_milvus_ext.MilvusVectorStore{described}",
         MilvusVectorStore, False, ours_delete, layout_kwargs),
        ((LCM_SYNC, LCM_ASYNC), "langchain_milvus.Milvus", Milvus, True, lcm_delete, {}),
    ]
    modes: tuple[Literal["sync", "async"], ...] = ("sync", "async")
    table = {name: Contender(name, mode, f"{impl}, {mode}", cls, auto_id, delete, kwargs)
             for pair, impl, cls, auto_id, delete, kwargs in stores
             for name, mode in zip(pair, modes, strict=True)}
    metadata = "dynamic field" if ours_layout == "dynamic" else "scalar columns"
    table[CEILING] = Contender(  # one batched call into our store's layout
        CEILING, "ceiling", f"pymilvus MilvusClient, one batched call, metadata in {metadata}")
    return [table[name] for name in CONTENDERS if name in names]


@dataclass(frozen=True)
class Timed:
    """Wall time, each operation's latency and result; ``sequential``: a sync loop, whose
    latencies are the calls' own times; ``stopped_early``: it stopped at its time budget, so
    only ``len(outputs)`` operations ran."""

    total_s: float
    latencies_s: list[float]
    outputs: list[Any]
    stopped_early: bool = False
    sequential: bool = False


def time_sync(calls: Sequence[Callable[[], Any]], budget_s: float = 0.0) -> Timed:
    """Run ``calls`` one after another; latency = each call's time. With ``budget_s``, no call
    starts once the loop took that long (at least one runs)."""
    outputs: list[Any] = []
    latencies: list[float] = []
    gc.collect()  # the previous case's garbage is not collected inside this one's timing
    start = time.perf_counter()
    for call in calls:
        if budget_s and outputs and time.perf_counter() - start >= budget_s:
            break
        t0 = time.perf_counter()
        outputs.append(call())
        latencies.append(time.perf_counter() - t0)
    return Timed(time.perf_counter() - start, latencies, outputs, len(outputs) < len(calls),
                 sequential=True)


async def time_gather(calls: Sequence[Callable[[], Awaitable[Any]]]) -> Timed:
    """Run ``calls`` with ``asyncio.gather``; latency = from submission to completion."""
    latencies = [0.0] * len(calls)

    async def one(i: int, call: Callable[[], Awaitable[Any]]) -> Any:
        result = await call()
        latencies[i] = time.perf_counter() - start
        return result

    gc.collect()
    start = time.perf_counter()
    outputs = await asyncio.gather(*(one(i, c) for i, c in enumerate(calls)))
    return Timed(time.perf_counter() - start, latencies, list(outputs))


def time_batch(call: Callable[[], Sequence[Any]]) -> Timed:
    """Run one batched call doing N operations; each operation's latency is the call's."""
    gc.collect()
    start = time.perf_counter()
    outputs = list(call())
    total = time.perf_counter() - start
    return Timed(total, [total] * len(outputs), outputs)


@contextlib.contextmanager
def open_store(
    ctx: BenchContext, contender: Contender, workload: str, name: str, *, fresh: bool
) -> Iterator[tuple[Any, list[Any], int]]:
    """Yield the contender's store on collection ``name``, the ids it was filled with and its
    rows (``fresh``: dropped, recreated and filled, untimed); its sync client is closed after."""
    assert contender.store_class is not None
    connection = {"uri": ctx.uri, **({"token": ctx.token} if ctx.token else {})}
    store = contender.store_class(
        embedding_function=ctx.embeddings, collection_name=name, connection_args=connection,
        index_params=ctx.store_index_params, drop_old=fresh, auto_id=contender.auto_id,
        **contender.store_kwargs,
    )
    try:
        if not fresh:
            yield store, [], ctx.count(name)
            return
        docs = ctx.initial_docs(workload)
        ids, rows = list(store.add_documents(docs)), ctx.count(name)
        if rows != len(docs) or len(ids) != rows:
            raise CheckFailure(f"set-up: {len(docs)} documents gave {rows} rows, {len(ids)} ids")
        yield store, ids, rows
    finally:
        (store.close if hasattr(store, "close") else store._milvus_client.close)()


def store_calls(
    ctx: BenchContext, store: Any, contender: Contender, workload: str, n: int, ids: list[Any]
) -> list[Callable[[], Any]]:
    """The N single calls of a workload, bound to the sync or the async methods."""
    cfg, run_async = ctx.config, contender.mode == "async"

    def bind(sync: Callable[..., Any], async_: Callable[..., Any], *args: Any,
             **kwargs: Any) -> Callable[[], Any]:
        return partial(async_ if run_async else sync, *args, **kwargs)

    if workload == "add":
        return [bind(store.add_documents, store.aadd_documents, [d]) for d in ctx.docs[:n]]
    if workload == "mmr":
        return [bind(store.max_marginal_relevance_search, store.amax_marginal_relevance_search,
                     q, k=cfg.k, fetch_k=cfg.fetch_k, lambda_mult=cfg.lambda_mult)
                for q in ctx.queries(n)]
    if workload == "delete":
        assert contender.delete_kwargs is not None
        return [bind(store.delete, store.adelete, **contender.delete_kwargs(doc_key(i)))
                for i in range(n)]
    if workload == "upsert":
        return [bind(store.upsert, store.aupsert, ids=[ids[i]],
                     documents=[updated_document(ctx.prefill_docs[i])]) for i in range(n)]
    return [bind(store.similarity_search, store.asimilarity_search, q, k=cfg.k)
            for q in ctx.queries(n)]  # search, service


# -- the ceiling: one batched pymilvus call per workload ------------------------------------

PK, VECTOR = "pk", "vector"
META_FIELDS: tuple[str, ...] = ("id", "score", "category")
INSERT_CHUNK = 1000


def _write(ctx: BenchContext, write: Callable[..., Any], name: str, pks: Sequence[str],
           docs: Sequence[Document]) -> Any:
    """Embed ``docs`` in one request and ``insert`` or ``upsert`` them as rows keyed ``pks``."""
    vectors = ctx.embeddings.embed_documents([d.page_content for d in docs])
    return write(name, [
        {PK: pk, TEXT_FIELD: doc.page_content, VECTOR: vector,
         **{key: doc.metadata[key] for key in META_FIELDS}}
        for pk, doc, vector in zip(pks, docs, vectors, strict=True)
    ])


def _to_document(hit: Any) -> Document:
    entity = hit["entity"]
    return Document(id=str(hit[PK] if PK in hit else hit["id"]),  # 2.3 servers key hits by "id"
                    page_content=entity[TEXT_FIELD],
                    metadata={key: entity[key] for key in META_FIELDS})


def _run_ceiling(
    ctx: BenchContext, workload: str, n: int, name: str, *, fresh: bool
) -> tuple[Timed, int]:
    """One repetition of the ceiling: set up (if ``fresh``), warm up and time the batch."""
    client = ctx.client()
    try:
        if fresh:  # our store's metadata layout (dynamic field or scalar columns), our keys
            if client.has_collection(name):
                client.drop_collection(name)
            dynamic = ctx.config.ours_layout == "dynamic"
            schema = client.create_schema(auto_id=False, enable_dynamic_field=dynamic)
            schema.add_field(PK, DataType.VARCHAR, is_primary=True, max_length=64)
            schema.add_field(TEXT_FIELD, DataType.VARCHAR, max_length=65_535)
            schema.add_field(VECTOR, DataType.FLOAT_VECTOR, dim=ctx.dim)
            if not dynamic:  # langchain-milvus's layout: a scalar field per metadata key
                schema.add_field("id", DataType.VARCHAR, max_length=65_535)
                schema.add_field("score", DataType.DOUBLE)
                schema.add_field("category", DataType.VARCHAR, max_length=65_535)
            index = client.prepare_index_params()
            index.add_index(field_name=VECTOR, index_type="AUTOINDEX",
                            metric_type=ctx.ceiling_metric, params={})
            client.create_collection(name, schema=schema, index_params=index,
                                     consistency_level="Session")
            client.load_collection(name)
            docs = ctx.initial_docs(workload)
            pks = ["seed"] if workload == "add" else [f"p{i}" for i in range(len(docs))]
            for start in range(0, len(docs), INSERT_CHUNK):
                end = start + INSERT_CHUNK
                _write(ctx, client.insert, name, pks[start:end], docs[start:end])
        rows = ctx.count(name)
        _ceiling_batch(ctx, client, "mmr" if workload == "mmr" else "search", 1, name)
        ctx.embeddings.reset()
        return time_batch(partial(_ceiling_batch, ctx, client, workload, n, name)), rows
    finally:
        client.close()


def _ceiling_batch(ctx: BenchContext, client: Any, workload: str, n: int, name: str) -> list[Any]:
    """The workload's N operations as one batched pymilvus call; one result per operation."""
    cfg = ctx.config
    if workload == "add":
        result = _write(ctx, client.insert, name, [f"a{i}" for i in range(n)], ctx.docs[:n])
        return [[pk] for pk in result["ids"]]
    if workload == "delete":
        client.delete(name, filter=key_filter([doc_key(i) for i in range(n)]))
        return [True] * n
    if workload == "upsert":
        docs = [updated_document(d) for d in ctx.prefill_docs[:n]]
        _write(ctx, client.upsert, name, [f"p{i}" for i in range(n)], docs)
        return [None] * n
    mmr = workload == "mmr"
    vectors = ctx.embeddings.embed_documents(ctx.queries(n))  # the N texts, duplicates included
    rows = client.search(
        name, data=vectors, limit=cfg.fetch_k if mmr else cfg.k, anns_field=VECTOR,
        output_fields=[TEXT_FIELD, *META_FIELDS, *([VECTOR] if mmr else [])],
        search_params={"metric_type": ctx.ceiling_metric, "params": {}},
    )
    if not mmr:
        return [[_to_document(h) for h in row] for row in rows]
    out = []
    for query, row in zip(vectors, rows, strict=True):
        hits = list(row)
        picked = maximal_marginal_relevance(
            np.asarray(query, dtype=np.float32), [list(h["entity"][VECTOR]) for h in hits],
            lambda_mult=cfg.lambda_mult, k=cfg.k,
        )
        out.append([_to_document(hits[j]) for j in picked])
    return out


# -- a case -----------------------------------------------------------------------------------


def repeat_case(
    ctx: BenchContext, result: CaseResult, collection: str,
    one: Callable[[bool], tuple[Timed, int]], *, only_timed: bool = False,
) -> CaseResult:
    """Run and check ``one(fresh)`` (a timed repetition) up to ``repeat`` times, in a row, until
    one more would take the case past ``case_budget_s`` (``only_timed``: counting timed work
    only); errors and failed checks are recorded on ``result`` and end its repetitions.
    ``result.wall_s`` adds up their times. A write workload's collection is dropped after each:
    Milvus Lite flushes and indexes the rows written in background threads of this process,
    which would otherwise run in the timed work that comes next."""
    cfg, spent = ctx.config, 0.0
    while result.error is None and result.repeats < cfg.repeat and not (
        result.repeats and cfg.case_budget_s and spent + spent / result.repeats > cfg.case_budget_s
    ):
        rep_started = time.perf_counter()
        try:
            timed, rows_before = one(result.workload not in READ_WORKLOADS or not result.repeats)
            result.embed_requests = ctx.embeddings.requests
            result.embed_texts = ctx.embeddings.texts
            ops = len(timed.outputs) if timed.stopped_early else result.n
            result.rows_after, result.recall, result.checks = check_case(
                ctx, collection, result.workload, ops, timed.outputs, rows_before)
            result.add_repetition(timed.total_s, timed.latencies_s, ops,
                                  per_call=timed.sequential)
            result.rows_before = rows_before
            spent += timed.total_s if only_timed else max(time.perf_counter() - rep_started,
                                                          timed.total_s)
        except CheckFailure as exc:
            result.error = f"wrong data: {exc}"
        except Exception as exc:  # a contender may raise anything; record it, name the case
            logger.debug("case %s raised", result.label, exc_info=True)
            result.error = f"{type(exc).__name__}: {str(exc)[:500]}"
        if result.workload in WRITE_WORKLOADS:  # no rows it wrote outlive its turn
            with contextlib.suppress(Exception):
                ctx.drop(collection)
        result.wall_s = (result.wall_s or 0.0) + time.perf_counter() - rep_started
    return result


def run_cases(
    ctx: BenchContext, contenders: Sequence[Contender], workload: str, n: int, first: int = 0
) -> list[CaseResult]:
    """Run and check the contenders' cases of ``workload`` at ``n``, one after another, each
    case's repetitions in a row, starting with the ``first``-th contender (mod their number)
    and going round; results in ``contenders``' order. Search collections are dropped at the
    end."""
    results = [CaseResult(workload, n, c.name) for c in contenders]
    names = [ctx.collection_name(c.name, workload, n) for c in contenders]
    try:
        for j in range(len(contenders)):
            i = (first + j) % len(contenders)
            repeat_case(ctx, results[i], names[i],
                        partial(run_repetition, ctx, contenders[i], results[i]))
    finally:
        for name in names:
            with contextlib.suppress(Exception):
                ctx.drop(name)
    return results


def run_repetition(
    ctx: BenchContext, contender: Contender, result: CaseResult, fresh: bool
) -> tuple[Timed, int]:
    """One repetition of ``result``'s case: set up (if ``fresh``), warm up and time; a first
    sync loop starts no call once it took ``case_budget_s``, set-up included."""
    workload, n = result.workload, result.n
    name = ctx.collection_name(contender.name, workload, n)
    started = time.perf_counter()
    if contender.mode == "ceiling":
        return _run_ceiling(ctx, workload, n, name, fresh=fresh)
    with open_store(ctx, contender, workload, name, fresh=fresh) as (store, ids, rows):
        calls = store_calls(ctx, store, contender, workload, n, ids)
        warm = store_calls(ctx, store, contender, "mmr" if workload == "mmr" else "search",
                           1, [])[0]
        if contender.mode == "sync":
            warm()
            ctx.embeddings.reset()
            budget_s = 0.0 if result.repeats else ctx.config.case_budget_s
            left = max(budget_s - (time.perf_counter() - started), 1e-9) if budget_s else 0.0
            return time_sync(calls, left), rows

        async def gather() -> Timed:
            try:
                await warm()
                ctx.embeddings.reset()
                return await time_gather(calls)
            finally:  # the store's async client, for this loop
                if hasattr(store, "aclose"):
                    await store.aclose()
                elif store._async_milvus_client is not None:
                    await store._async_milvus_client.close()

        return asyncio.run(gather()), rows
