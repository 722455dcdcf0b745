"""Store contenders: N single calls, as a sync loop or an ``asyncio.gather`` of N tasks.

Fairness rules, the same for every store contender:

* A fresh collection per case (``drop_old=True``, ``auto_id=True`` like the tutorial), created
  *before* timing: langchain-milvus only creates its collection on the first insert, so the add
  workload first writes one seed document (untimed; counted in the expected row count) and the
  other workloads write the ``prefill`` documents with one ``add_documents`` call (untimed).
* One warm-up read before timing (an MMR search for the MMR workload, else a similarity search;
  the async variant inside the timed event loop for async contenders), so connection set-up,
  collection loading and first-use costs are not measured.
* The embedding request counter is reset after the warm-up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from langchain_core.vectorstores import VectorStore

from .checks import CheckFailure, CollectionView
from .contenders import Contender, StoreProfile
from .context import BenchContext
from .data import doc_key, seed_document, updated_document
from .timing import Timed, time_gather, time_sync

SyncCall = Callable[[], Any]
AsyncCall = Callable[[], Awaitable[Any]]
WARM_UP_QUERY = "warm-up query"


def store_view(profile: StoreProfile, name: str) -> CollectionView:
    return CollectionView(name=name, key_filter=profile.key_filter, text_field=profile.text_field)


def _setup(
    ctx: BenchContext, store: VectorStore, workload: str, name: str
) -> tuple[list[Any], int]:
    """Create and fill the collection, untimed. Returns the pre-fill ids and the row count."""
    if workload == "add":
        store.add_documents([seed_document()])
        rows = ctx.count(name)
        if rows != 1:
            raise CheckFailure(f"set-up: seed document gave {rows} rows, expected 1")
        return [], rows
    ids = list(store.add_documents(ctx.prefill_docs))
    rows = ctx.count(name)
    if rows != len(ctx.prefill_docs) or len(ids) != rows:
        raise CheckFailure(
            f"set-up: pre-fill of {len(ctx.prefill_docs)} gave {rows} rows and {len(ids)} ids"
        )
    return ids, rows


_METHODS = {
    "add": "add_documents",
    "search": "similarity_search",
    "mmr": "max_marginal_relevance_search",
    "delete": "delete",
    "upsert": "upsert",
}


def _calls(
    ctx: BenchContext,
    store: VectorStore,
    profile: StoreProfile,
    workload: str,
    n: int,
    ids: list[Any],
    prefix: str,
) -> list[Any]:
    """The N single calls of a workload, bound to the sync ("") or async ("a") methods."""
    if workload not in _METHODS:
        raise ValueError(f"unknown workload {workload!r}")
    method: Any = getattr(store, prefix + _METHODS[workload])
    k, cfg = ctx.config.k, ctx.config
    if workload == "add":
        return [partial(method, [d]) for d in ctx.add_docs[:n]]
    if workload == "search":
        return [partial(method, query, k=k) for query in ctx.queries(n)]
    if workload == "mmr":
        return [
            partial(method, query, k=k, fetch_k=cfg.fetch_k, lambda_mult=cfg.lambda_mult)
            for query in ctx.queries(n)
        ]
    if workload == "delete":
        return [partial(method, **profile.delete_kwargs(doc_key(i))) for i in range(n)]
    return [
        partial(method, ids=[ids[i]], documents=[updated_document(ctx.prefill_docs[i])])
        for i in range(n)
    ]


def sync_calls(
    ctx: BenchContext, store: VectorStore, profile: StoreProfile, workload: str, n: int,
    ids: list[Any],
) -> list[SyncCall]:
    """The N single calls of a workload, sync API."""
    return _calls(ctx, store, profile, workload, n, ids, "")


def async_calls(
    ctx: BenchContext, store: VectorStore, profile: StoreProfile, workload: str, n: int,
    ids: list[Any],
) -> list[AsyncCall]:
    """The N single calls of a workload, async API."""
    return _calls(ctx, store, profile, workload, n, ids, "a")


def close_store(store: VectorStore) -> None:
    """Release the store's sync client (``close()`` if it has one, else langchain-milvus's)."""
    close = getattr(store, "close", None)
    if callable(close):
        close()
        return
    client = getattr(store, "_milvus_client", None)
    if client is not None:
        client.close()


async def aclose_store(store: VectorStore) -> None:
    """Release the store's async client for the running loop."""
    aclose = getattr(store, "aclose", None)
    if callable(aclose):
        await aclose()
        return
    aclient = getattr(store, "_async_milvus_client", None)
    if aclient is not None:
        await aclient.close()


def _warm_up(store: VectorStore, workload: str) -> None:
    """One untimed read of the kind the workload uses (first-use costs stay out of timing)."""
    if workload == "mmr":
        store.max_marginal_relevance_search(WARM_UP_QUERY, k=1, fetch_k=2)
    else:
        store.similarity_search(WARM_UP_QUERY, k=1)


async def _awarm_up(store: VectorStore, workload: str) -> None:
    if workload == "mmr":
        await store.amax_marginal_relevance_search(WARM_UP_QUERY, k=1, fetch_k=2)
    else:
        await store.asimilarity_search(WARM_UP_QUERY, k=1)


async def _run_async(
    ctx: BenchContext, store: VectorStore, workload: str, calls: list[AsyncCall]
) -> Timed:
    try:
        await _awarm_up(store, workload)
        ctx.embeddings.reset()
        return await time_gather(calls)
    finally:
        await aclose_store(store)


def run_store_case(
    ctx: BenchContext, contender: Contender, workload: str, n: int, name: str
) -> tuple[Timed, int, CollectionView]:
    """Build the store on ``name``, set it up, time the workload; returns timing and rows before.

    Async contenders run the warm-up and the timed gather in one ``asyncio.run`` (a fresh
    event loop per case, as a script using the tutorial's pattern would).
    """
    profile = contender.profile
    assert profile is not None
    store = profile.factory(
        ctx.uri, ctx.token, name, ctx.embeddings, index_params=ctx.store_index_params
    )
    try:
        ids, rows_before = _setup(ctx, store, workload, name)
        if contender.mode == "sync":
            calls = sync_calls(ctx, store, profile, workload, n, ids)
            _warm_up(store, workload)
            ctx.embeddings.reset()
            timed = time_sync(calls)
        else:
            acalls = async_calls(ctx, store, profile, workload, n, ids)
            timed = asyncio.run(_run_async(ctx, store, workload, acalls))
    finally:
        close_store(store)
    return timed, rows_before, store_view(profile, name)
