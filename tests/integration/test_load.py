"""Load: 10,000 concurrent single-document async adds, then 10,000 concurrent searches, on the
session's `milvus-lite server` and Milvus 2.3.5 standalone.

Checks correct per-caller results, no deadlock (a generous `asyncio.wait_for` bound), bounded
client memory (peak RSS growth of this process, sampled in a background thread) and that the
coalescer merged the calls into few embedding requests. Figures are printed (`pytest -s`) and
recorded as properties of the test (the `report_figures` fixture).
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import math
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import psutil
import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_milvus_ext import MilvusVectorStore

pytestmark = [pytest.mark.slow, pytest.mark.server, pytest.mark.timeout(900),
              pytest.mark.usefixtures("quiet_pymilvus")]

N = 10_000
BOUND_S = 300.0  # generous: a deadlock, not slowness, is what this catches
RSS_GROWTH_LIMIT = int(1.5 * 2**30)
SERVERS = ["lite_server_uri", "milvus235_uri"]


class CountingEmbeddings(DeterministicFakeEmbedding):
    """Deterministic fake embeddings that count requests, sync and async (one per call).

    The async methods compute in the loop, not via the base class's executor hop to the sync
    methods, so each request is counted exactly once.
    """

    requests: int = 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.requests += 1
        return super().embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        self.requests += 1
        return super().embed_query(text)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        self.requests += 1
        return DeterministicFakeEmbedding.embed_documents(self, texts)

    async def aembed_query(self, text: str) -> list[float]:
        self.requests += 1
        return DeterministicFakeEmbedding.embed_query(self, text)


def _release_free_memory() -> None:
    """Collect garbage and hand free heap pages back to the OS (glibc; best effort)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakRss:
    """Samples this process's RSS every few ms in a thread; `growth` is peak minus baseline."""

    def __init__(self, interval: float = 0.005) -> None:
        _release_free_memory()  # else memory freed by earlier tests hides this test's growth
        self._process = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self.baseline = self.peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            self._stop.wait(self._interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


def _same_vector_groups(texts: dict[str, str]) -> dict[str, set[str]]:
    """Id -> ids whose text embeds to the very same vector. DeterministicFakeEmbedding seeds
    by sha256(text) % 10**8, so distinct texts can collide (e.g. "text 1002"/"text 3114")."""
    by_seed: dict[int, set[str]] = defaultdict(set)
    for doc_id, text in texts.items():
        by_seed[DeterministicFakeEmbedding._get_seed(text)].add(doc_id)
    return {doc_id: by_seed[DeterministicFakeEmbedding._get_seed(t)]
            for doc_id, t in texts.items()}


def _store(uri: str, embeddings: CountingEmbeddings, **kwargs: Any) -> MilvusVectorStore:
    return MilvusVectorStore(
        embeddings, collection_name=f"load_{uuid.uuid4().hex[:12]}",
        connection_args={"uri": uri}, consistency_level="Strong", **kwargs)


@pytest.mark.parametrize("server", SERVERS)
async def test_ten_thousand_concurrent_adds_then_searches(
    server: str, request: pytest.FixtureRequest,
    report_figures: Callable[[str, dict[str, object]], None],
) -> None:
    uri = request.getfixturevalue(server)
    embeddings = CountingEmbeddings(size=16)
    store = _store(uri, embeddings)
    # The collection exists before counting (as in test_coalescing); first use of a new
    # collection under load is test_first_use_of_new_collection_coalesces below.
    store.add_texts(["warm-up"], [{"i": -1}], ids=["warm-up"])
    embeddings.requests = 0
    store._async.stats.calls.clear()
    bound = math.ceil(N / 64) + 2
    texts = {f"doc-{i}": f"text {i}" for i in range(N)}
    groups = _same_vector_groups({"warm-up": "warm-up", **texts})
    figures: dict[str, object] = {"server": server, "n": N}
    try:
        with PeakRss() as rss:
            started = time.monotonic()
            added = await asyncio.wait_for(asyncio.gather(*(
                store.aadd_texts([text], [{"i": i}], ids=[doc_id])
                for i, (doc_id, text) in enumerate(texts.items())
            )), BOUND_S)
            figures["adds_s"] = round(time.monotonic() - started, 2)
            add_requests = embeddings.requests
            figures["add_embedding_requests"] = add_requests
            calls = store._async.stats.calls
            figures["write_rpcs"] = calls["upsert"] + calls["insert"]
            assert added == [[doc_id] for doc_id in texts], "an add returned other ids"
            assert add_requests <= bound, f"{add_requests} embedding requests for {N} adds"

            started = time.monotonic()
            results = await asyncio.wait_for(asyncio.gather(*(
                store.asimilarity_search(text, k=3) for text in texts.values()
            )), BOUND_S)
            figures["searches_s"] = round(time.monotonic() - started, 2)
            search_requests = embeddings.requests - add_requests
            figures["search_embedding_requests"] = search_requests
            figures["search_rpcs"] = store._async.stats.calls["search"]
        figures["rss_baseline_mib"] = round(rss.baseline / 2**20, 1)
        figures["rss_peak_growth_mib"] = round(rss.growth / 2**20, 1)
        figures["retries"] = store._async.stats.retries

        wrong = []
        for (doc_id, text), docs in zip(texts.items(), results, strict=True):
            hits = [d.id for d in docs]
            top_ok = bool(docs) and docs[0].id in groups[doc_id]
            if not top_ok or doc_id not in hits or docs[hits.index(doc_id)].page_content != text:
                wrong.append((doc_id, hits))
        figures["searches_wrong"] = len(wrong)
        figures["same_vector_pairs"] = sum(len(g) > 1 for g in groups.values()) // 2
        assert all(len(docs) == 3 for docs in results), "a search returned fewer than k hits"
        assert not wrong, f"searches whose top hit is not the queried text: {wrong[:5]}"
        assert search_requests <= bound, f"{search_requests} embedding requests for {N} searches"
        assert rss.growth < RSS_GROWTH_LIMIT, f"peak RSS grew by {rss.growth / 2**20:.0f} MiB"
        assert len(store.get_pks({"i": {"$gte": 0}}, limit=16_384)) == N
    finally:
        report_figures(f"load: {server}", figures)
        store.drop()
        await store.aclose()


@pytest.mark.parametrize("server", SERVERS)
async def test_first_use_of_new_collection_coalesces(
    server: str, request: pytest.FixtureRequest,
    report_figures: Callable[[str, dict[str, object]], None],
) -> None:
    """Concurrent adds on a store whose collection does not exist yet must coalesce too.

    Smaller than the test above: without single-flight collection discovery every call runs
    its own has_collection/describe/list_indexes/describe_index/load_collection first and
    reaches the coalescer alone (time grows superlinearly: 10,000 calls take > 300 s).
    """
    uri = request.getfixturevalue(server)
    n = 1_000
    embeddings = CountingEmbeddings(size=16)
    store = _store(uri, embeddings)
    figures: dict[str, object] = {"server": server, "n": n}
    try:
        started = time.monotonic()
        added = await asyncio.wait_for(asyncio.gather(*(
            store.aadd_texts([f"text {i}"], [{"i": i}], ids=[f"doc-{i}"]) for i in range(n)
        )), BOUND_S)
        calls = store._async.stats.calls
        figures |= {
            "adds_s": round(time.monotonic() - started, 2),
            "embedding_requests": embeddings.requests,
            "write_rpcs": calls["upsert"] + calls["insert"],
            "has_collection_rpcs": calls["has_collection"],
            "load_collection_rpcs": calls["load_collection"],
        }
        assert added == [[f"doc-{i}"] for i in range(n)]
        assert len(store.get_pks({"i": {"$gte": 0}}, limit=16_384)) == n
        assert embeddings.requests <= math.ceil(n / 64) + 2, (
            f"{embeddings.requests} embedding requests for {n} concurrent adds to a new "
            f"collection ({calls['upsert'] + calls['insert']} writes, {calls['load_collection']} "
            "load_collection): concurrent first uses each describe the collection themselves")
    finally:
        report_figures(f"load, new collection: {server}", figures)
        store.drop()
        await store.aclose()
