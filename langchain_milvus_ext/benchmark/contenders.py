"""Contenders and how one timed repetition of a case runs: set-up, warm-up, the timed work.

Fairness rules, the same for every contender:

* A fresh collection per repetition of a writing workload (add, delete, upsert), and per case
  for the reading ones (search, mmr), created and filled *before* timing. langchain-milvus
  only creates its collection on the first insert, so the add workload first writes one seed
  document (untimed, counted in the expected row count); the others write the ``prefill``
  documents with one call.
* One warm-up call (the workload's read: a search, or an MMR search for mmr) right before the
  timed work, in the same event loop for async contenders, so connection set-up, collection
  loading and first-use costs are not measured. The embedding counters are reset after it.
* Store contenders make N single calls: a sync loop, or an ``asyncio.gather`` of N tasks in a
  fresh event loop (as a script using the tutorial's pattern would). The ``ceiling`` makes the
  same N operations as one batched pymilvus call.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import numpy as np
from langchain_core.documents import Document
from langchain_core.vectorstores.utils import maximal_marginal_relevance
from pymilvus import DataType

from .checks import TEXT_FIELD, BenchContext, CheckFailure, key_filter, milvus_client
from .config import CEILING, CONTENDERS, LCM_ASYNC, LCM_SYNC, OURS_ASYNC, OURS_SYNC
from .data import doc_key, seed_document, updated_document

Mode = Literal["sync", "async", "ceiling"]
READ_WORKLOADS = frozenset({"search", "mmr"})
"""Workloads that leave the collection unchanged: their repetitions share one collection."""


@dataclass(frozen=True)
class Contender:
    """One column of the comparison: a store driven sync or async, or the batched ceiling.

    Attributes:
        name: One of :data:`~.config.CONTENDERS`.
        mode: ``sync`` loop, ``async`` gather, or ``ceiling`` (one batched pymilvus call).
        implementation: Human-readable description, shown in the report.
        store_class: Builds the store from langchain-milvus's constructor arguments
            (``None`` for the ceiling).
        auto_id: Passed to the store: ``True`` for langchain-milvus like the tutorial; ours
            keeps its default ``False`` (with ``True`` it refuses caller-chosen ids, so the
            upsert workload could not address rows).
        delete_kwargs: Arguments of ``delete``/``adelete`` removing the documents whose
            metadata ``id`` is the given key.
    """

    name: str
    mode: Mode
    implementation: str
    store_class: type[Any] | None = None
    auto_id: bool = False
    delete_kwargs: Callable[[str], dict[str, Any]] | None = None


def _ours_delete(key: str) -> dict[str, Any]:
    return {"filter": {"id": key}}  # a dict filter


def _lcm_delete(key: str) -> dict[str, Any]:
    return {"expr": f"id == '{key}'"}  # the tutorial's expression


def resolve_contenders(names: Sequence[str]) -> list[Contender]:
    """The contenders named, in report order (``langchain_milvus`` is imported here)."""
    from langchain_milvus import Milvus

    from langchain_milvus_ext import MilvusVectorStore as Ours

    ours, lcm = "langchain_milvus_ext.MilvusVectorStore", "langchain_milvus.Milvus"
    table = {
        OURS_SYNC: Contender(OURS_SYNC, "sync", f"{ours}, sync", Ours, False, _ours_delete),
        OURS_ASYNC: Contender(OURS_ASYNC, "async", f"{ours}, async", Ours, False, _ours_delete),
        LCM_SYNC: Contender(LCM_SYNC, "sync", f"{lcm}, sync", Milvus, True, _lcm_delete),
        LCM_ASYNC: Contender(LCM_ASYNC, "async", f"{lcm}, async", Milvus, True, _lcm_delete),
        CEILING: Contender(CEILING, "ceiling", "pymilvus MilvusClient, one batched call"),
    }
    return [table[name] for name in CONTENDERS if name in names]


# -- timing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timed:
    """Wall time of the whole batch, each operation's latency, and each operation's result."""

    total_s: float
    latencies_s: list[float]
    outputs: list[Any]


def time_sync(calls: Sequence[Callable[[], Any]]) -> Timed:
    """Run ``calls`` one after another (the tutorial's sync loop); latency = each call's time."""
    outputs: list[Any] = []
    latencies: list[float] = []
    gc.collect()  # garbage of the previous case is not collected inside this one's timing
    start = time.perf_counter()
    for call in calls:
        t0 = time.perf_counter()
        outputs.append(call())
        latencies.append(time.perf_counter() - t0)
    return Timed(time.perf_counter() - start, latencies, outputs)


async def time_gather(calls: Sequence[Callable[[], Awaitable[Any]]]) -> Timed:
    """Run ``calls`` with ``asyncio.gather`` (the tutorial's async pattern).

    All are submitted at one instant; each latency runs from it to that call's completion.
    """
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


# -- store contenders ----------------------------------------------------------------------


def build_store(ctx: BenchContext, contender: Contender, name: str, *, fresh: bool) -> Any:
    """The contender's store on collection ``name`` (``fresh``: dropped and recreated)."""
    assert contender.store_class is not None
    connection = {"uri": ctx.uri, **({"token": ctx.token} if ctx.token else {})}
    return contender.store_class(
        embedding_function=ctx.embeddings, collection_name=name, connection_args=connection,
        index_params=ctx.store_index_params, drop_old=fresh, auto_id=contender.auto_id,
    )  # fmt: skip


def setup_store(ctx: BenchContext, store: Any, workload: str, name: str) -> tuple[list[Any], int]:
    """Fill a fresh collection, untimed. Returns the pre-fill ids and the row count."""
    docs = [seed_document()] if workload == "add" else ctx.prefill_docs
    ids = list(store.add_documents(docs))
    rows = ctx.count(name)
    if rows != len(docs) or len(ids) != rows:
        raise CheckFailure(f"set-up: {len(docs)} documents gave {rows} rows, {len(ids)} ids")
    return ids, rows


def store_calls(
    ctx: BenchContext, store: Any, contender: Contender, workload: str, n: int, ids: list[Any]
) -> list[Callable[[], Any]]:
    """The N single calls of a workload, bound to the sync or the async methods."""
    cfg, a = ctx.config, contender.mode == "async"
    if workload == "add":
        add = store.aadd_documents if a else store.add_documents
        return [partial(add, [d]) for d in ctx.add_docs[:n]]
    if workload in ("search", "service"):
        search = store.asimilarity_search if a else store.similarity_search
        return [partial(search, q, k=cfg.k) for q in ctx.queries(n)]
    if workload == "mmr":
        mmr = store.amax_marginal_relevance_search if a else store.max_marginal_relevance_search
        return [partial(mmr, q, k=cfg.k, fetch_k=cfg.fetch_k, lambda_mult=cfg.lambda_mult)
                for q in ctx.queries(n)]  # fmt: skip
    if workload == "delete":
        delete, kwargs = (store.adelete if a else store.delete), contender.delete_kwargs
        assert kwargs is not None
        return [partial(delete, **kwargs(doc_key(i))) for i in range(n)]
    if workload == "upsert":
        upsert = store.aupsert if a else store.upsert
        return [partial(upsert, ids=[ids[i]], documents=[updated_document(ctx.prefill_docs[i])])
                for i in range(n)]  # fmt: skip
    raise ValueError(f"unknown workload {workload!r}")


def warm_up_call(
    ctx: BenchContext, store: Any, contender: Contender, workload: str
) -> Callable[[], Any]:
    """The one untimed read before the timed work (an MMR search for mmr, else a search)."""
    read = "mmr" if workload == "mmr" else "search"
    return store_calls(ctx, store, contender, read, 1, [])[0]


def close_store(store: Any) -> None:
    """Release the store's sync client (ours: ``close()``; langchain-milvus: its client)."""
    close = getattr(store, "close", None) or getattr(store, "_milvus_client", store).close
    close()


async def aclose_store(store: Any) -> None:
    """Release the store's async client for the running loop."""
    if hasattr(store, "aclose"):
        await store.aclose()
    elif getattr(store, "_async_milvus_client", None) is not None:
        await store._async_milvus_client.close()


def run_repetition(
    ctx: BenchContext, contender: Contender, workload: str, n: int, name: str, *, fresh: bool
) -> tuple[Timed, int]:
    """Set up (if ``fresh``), warm up and time one repetition; returns it and the rows before."""
    if contender.mode == "ceiling":
        return _run_ceiling(ctx, workload, n, name, fresh=fresh)
    store = build_store(ctx, contender, name, fresh=fresh)
    try:
        ids, rows = setup_store(ctx, store, workload, name) if fresh else ([], ctx.count(name))
        calls = store_calls(ctx, store, contender, workload, n, ids)
        warm = warm_up_call(ctx, store, contender, workload)
        if contender.mode == "sync":
            warm()
            ctx.embeddings.reset()
            return time_sync(calls), rows

        async def gather() -> Timed:
            try:
                await warm()
                ctx.embeddings.reset()
                return await time_gather(calls)
            finally:
                await aclose_store(store)

        return asyncio.run(gather()), rows
    finally:
        close_store(store)


# -- the ceiling: one batched pymilvus call per workload -----------------------------------

PK, VECTOR = "pk", "vector"
META_FIELDS: tuple[str, ...] = ("id", "score", "category")
INSERT_CHUNK = 1000


def _create_collection(client: Any, name: str, dim: int, metric: str) -> None:
    """langchain-milvus's layout (metadata keys as scalar fields, AUTOINDEX, Session) with a
    VARCHAR primary key the benchmark assigns, so upserts address rows without auto-id."""
    if client.has_collection(name):
        client.drop_collection(name)
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field(PK, DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field(TEXT_FIELD, DataType.VARCHAR, max_length=65_535)
    schema.add_field(VECTOR, DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field("id", DataType.VARCHAR, max_length=65_535)
    schema.add_field("score", DataType.DOUBLE)
    schema.add_field("category", DataType.VARCHAR, max_length=65_535)
    index = client.prepare_index_params()
    index.add_index(field_name=VECTOR, index_type="AUTOINDEX", metric_type=metric, params={})
    client.create_collection(name, schema=schema, index_params=index, consistency_level="Session")
    client.load_collection(name)


def _rows(pks: Sequence[str], docs: Sequence[Document], vectors: Sequence[Any]) -> list[Any]:
    return [{PK: pk, TEXT_FIELD: doc.page_content, VECTOR: vector,
             **{key: doc.metadata[key] for key in META_FIELDS}}
            for pk, doc, vector in zip(pks, docs, vectors, strict=True)]  # fmt: skip


def _to_document(hit: Any) -> Document:
    entity = hit["entity"]
    return Document(
        id=str(hit[PK] if PK in hit else hit["id"]),  # 2.3 servers key hits by "id"
        page_content=entity[TEXT_FIELD],
        metadata={key: entity[key] for key in META_FIELDS},
    )


def _run_ceiling(
    ctx: BenchContext, workload: str, n: int, name: str, *, fresh: bool
) -> tuple[Timed, int]:
    client = milvus_client(ctx.uri, ctx.token)
    try:
        if fresh:
            _create_collection(client, name, ctx.dim, ctx.ceiling_metric)
            docs = [seed_document()] if workload == "add" else ctx.prefill_docs
            pks = ["seed"] if workload == "add" else [f"p{i}" for i in range(len(docs))]
            for start in range(0, len(docs), INSERT_CHUNK):
                chunk = docs[start : start + INSERT_CHUNK]
                vectors = ctx.embeddings.embed_documents([d.page_content for d in chunk])
                client.insert(name, _rows(pks[start : start + INSERT_CHUNK], chunk, vectors))
        rows = ctx.count(name)
        _ceiling_operation(ctx, client, "mmr" if workload == "mmr" else "search", 1, name)()
        ctx.embeddings.reset()
        return time_batch(_ceiling_operation(ctx, client, workload, n, name)), rows
    finally:
        client.close()


def _ceiling_operation(
    ctx: BenchContext, client: Any, workload: str, n: int, name: str
) -> Callable[[], list[Any]]:
    emb, cfg = ctx.embeddings, ctx.config
    search_params = {"metric_type": ctx.ceiling_metric, "params": {}}

    def search(limit: int, vector_out: bool) -> tuple[list[Any], Any]:
        vectors = emb.embed_documents(ctx.queries(n))  # the N texts, duplicates included
        fields = [TEXT_FIELD, *META_FIELDS, *([VECTOR] if vector_out else [])]
        hits = client.search(name, data=vectors, limit=limit, output_fields=fields,
                             search_params=search_params, anns_field=VECTOR)  # fmt: skip
        return vectors, hits

    def add() -> list[Any]:
        docs = ctx.add_docs[:n]
        vectors = emb.embed_documents([d.page_content for d in docs])
        result = client.insert(name, _rows([f"a{i}" for i in range(n)], docs, vectors))
        return [[pk] for pk in result["ids"]]

    def similarity() -> list[Any]:
        return [[_to_document(h) for h in row] for row in search(cfg.k, False)[1]]

    def mmr() -> list[Any]:
        out = []
        for query, row in zip(*search(cfg.fetch_k, True), strict=True):
            candidates = list(row)
            picked = maximal_marginal_relevance(
                np.asarray(query, dtype=np.float32),
                [list(h["entity"][VECTOR]) for h in candidates],
                lambda_mult=cfg.lambda_mult,
                k=cfg.k,
            )
            out.append([_to_document(candidates[j]) for j in picked])
        return out

    def delete() -> list[Any]:
        client.delete(name, filter=key_filter([doc_key(i) for i in range(n)]))
        return [True] * n

    def upsert() -> list[Any]:
        docs = [updated_document(d) for d in ctx.prefill_docs[:n]]
        vectors = emb.embed_documents([d.page_content for d in docs])
        client.upsert(name, _rows([f"p{i}" for i in range(n)], docs, vectors))
        return [None] * n

    operations = {"add": add, "search": similarity, "mmr": mmr, "delete": delete,
                  "upsert": upsert}  # fmt: skip
    return operations[workload]
