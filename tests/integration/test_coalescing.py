"""Counts of embedding requests and Milvus RPCs when many async calls run at once (Lite)."""

from __future__ import annotations

import asyncio
import math
import threading
from pathlib import Path
from typing import Any

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_milvus_ext import (
    Batching,
    MilvusVectorStore,
    WriteError,
    _direct_search,
    _packed_writes,
)
from langchain_milvus_ext._batching import WRITE_PIECE_ROWS

pytestmark = [pytest.mark.lite, pytest.mark.timeout(120)]


class CountingEmbeddings(DeterministicFakeEmbedding):
    """Fake embeddings that count requests (one per embed_* call)."""

    requests: int = 0
    on_documents: Any = None  # called with the request number, before embedding

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.requests += 1
        if self.on_documents is not None:
            self.on_documents(self.requests)
        return super().embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        self.requests += 1
        return super().embed_query(text)


def _store(tmp_path: Path, **kwargs: Any) -> tuple[MilvusVectorStore, CountingEmbeddings]:
    embeddings = CountingEmbeddings(size=32)
    store = MilvusVectorStore(embeddings, connection_args={"uri": str(tmp_path / "c.db")},
                              consistency_level="Strong", **kwargs)
    store.add_texts(["warm-up"], ids=["warm"])  # the collection exists before counting
    embeddings.requests = 0
    store._async.stats.calls.clear()
    return store, embeddings


BOTH_WRITE_PATHS = pytest.mark.parametrize("packed", [True, False],
                                           ids=["packed-write", "pymilvus-write"])
"""Writes go out as our packed requests (`_packed_writes`) or through the client's methods."""


def _write_store(tmp_path: Path, packed: bool, batch_size: int = 1000,
                 ) -> tuple[MilvusVectorStore, CountingEmbeddings]:
    return _store(tmp_path, batching=Batching(batch_size=batch_size, pack_writes=packed))


def _write_rpc(store: MilvusVectorStore, packed: bool, is_async: bool) -> tuple[Any, str]:
    """Where a test replaces the store's write RPC: our packed send, or the client's `insert`
    (on Milvus Lite, where these tests run, writes of given ids are inserts too:
    `CollectionLayout.upserts_merge`)."""
    if packed:
        return _packed_writes, "asend" if is_async else "send"
    return store.aclient if is_async else store.client, "insert"


@pytest.mark.parametrize("n", [10, 1000])
async def test_concurrent_adds_share_requests_and_rpcs(tmp_path: Path, n: int) -> None:
    store, embeddings = _store(tmp_path)
    ids = await asyncio.gather(*(
        store.aadd_texts([f"text {i}"], [{"i": i}], ids=[f"id{i}"]) for i in range(n)))
    assert ids == [[f"id{i}"] for i in range(n)]  # each caller gets exactly its own id
    assert embeddings.requests <= math.ceil(n / 64) + 2
    calls = store._async.stats.calls  # Milvus Lite: upserts go as inserts (upserts_merge)
    # pieces of WRITE_PIECE_ROWS rows, so that packing one overlaps the server writing another
    assert calls["upsert"] + calls["insert"] <= math.ceil(n / WRITE_PIECE_ROWS) + 1
    assert len(store.get_pks({"i": {"$gte": 0}})) == n


async def test_concurrent_searches_are_one_nq_search(tmp_path: Path) -> None:
    store, embeddings = _store(tmp_path)
    store.add_texts([f"doc {i}" for i in range(200)], ids=[f"d{i}" for i in range(200)])
    embeddings.requests = 0
    results = await asyncio.gather(*(store.asimilarity_search(f"doc {i}", k=3)
                                     for i in range(200)))
    assert [r[0].id for r in results] == [f"d{i}" for i in range(200)]  # right caller, order
    assert embeddings.requests <= math.ceil(200 / 64) + 2
    assert store._async.stats.calls["search"] == 1


async def test_equal_concurrent_searches_are_searched_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store, embeddings = _store(tmp_path)
    store.add_texts([f"doc {i}" for i in range(50)], [{"tags": [i]} for i in range(50)],
                    ids=[f"d{i}" for i in range(50)])
    embedded: list[str] = []
    original_embed = CountingEmbeddings.embed_documents

    def recording(self: CountingEmbeddings, texts: list[str]) -> list[list[float]]:
        embedded.extend(texts)
        return original_embed(self, texts)

    monkeypatch.setattr(CountingEmbeddings, "embed_documents", recording)
    await store.asimilarity_search("warm-up", k=1)  # this loop's client exists before counting
    sizes: list[int] = []
    original_search = _direct_search.asend  # where a plain async search goes out

    async def counting(client: Any, kwargs: Any) -> Any:
        sizes.append(len(kwargs["data"]))
        return await original_search(client, kwargs)

    monkeypatch.setattr(_direct_search, "asend", counting)
    embedded.clear()
    queries = [f"doc {i % 5}" for i in range(100)]  # 5 distinct texts, each asked 20 times
    results = await asyncio.gather(*(store.asimilarity_search(q, k=2) for q in queries))
    assert sizes == [5]  # one search, nq = distinct queries
    assert sorted(embedded) == [f"doc {i}" for i in range(5)]
    assert [r[0].id for r in results] == [f"d{i % 5}" for i in range(100)]
    assert [[d.id for d in r] for r in results[:5]] == [[d.id for d in r] for r in results[5:10]]
    results[0][0].metadata["tags"].append("mine")  # callers never share a mutable object
    assert results[5][0].metadata == {"tags": [0]}


async def test_different_parameters_are_not_merged(tmp_path: Path) -> None:
    store, _ = _store(tmp_path)
    store.add_texts([f"doc {i}" for i in range(20)], [{"i": i} for i in range(20)])
    low, high = await asyncio.gather(
        store.asimilarity_search("doc 3", k=5, filter={"i": {"$lt": 10}}),
        store.asimilarity_search("doc 3", k=2, filter={"i": {"$gte": 10}}),
    )
    assert len(low) == 5 and all(d.metadata["i"] < 10 for d in low)
    assert len(high) == 2 and all(d.metadata["i"] >= 10 for d in high)
    assert store._async.stats.calls["search"] == 2


async def test_concurrent_deletes_by_id_share_one_rpc(tmp_path: Path) -> None:
    store, _ = _store(tmp_path)
    store.add_texts([f"doc {i}" for i in range(100)], ids=[f"d{i}" for i in range(100)])
    await asyncio.gather(*(store.adelete([f"d{i}"]) for i in range(50)))
    assert store._async.stats.calls["delete"] == 1
    assert sorted(store.get_pks("pk like \"d%\"")) == sorted(f"d{i}" for i in range(50, 100))


@BOTH_WRITE_PATHS
async def test_failed_batch_fails_each_of_its_callers(tmp_path: Path, packed: bool,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    store, _ = _write_store(tmp_path, packed)
    await store.aadd_texts(["bind loop"], ids=["first"])

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("injected write failure")

    monkeypatch.setattr(*_write_rpc(store, packed, is_async=True), broken)
    outcomes = await asyncio.gather(*(
        store.aadd_texts([f"t{i}"], ids=[f"x{i}"]) for i in range(30)), return_exceptions=True)
    assert all(isinstance(o, WriteError) for o in outcomes)
    assert [o.not_written_ids for o in outcomes if isinstance(o, WriteError)] == [
        [f"x{i}"] for i in range(30)]
    monkeypatch.undo()
    assert store.get_by_ids([f"x{i}" for i in range(30)]) == []  # nothing reported written


async def test_coalescing_can_be_switched_off(tmp_path: Path) -> None:
    store, embeddings = _store(tmp_path, coalesce=False)
    await asyncio.gather(*(store.aadd_texts([f"t{i}"]) for i in range(20)))
    assert embeddings.requests == 20 and store._async.stats.calls["insert"] == 20  # fresh ids


@BOTH_WRITE_PATHS
def test_sync_add_overlaps_embedding_with_writing(tmp_path: Path, packed: bool,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The write of batch 1 waits until batch 2 is being embedded: it deadlocks if serial."""
    store, embeddings = _write_store(tmp_path, packed, batch_size=10)
    second_batch_embedding = threading.Event()
    rpc = _write_rpc(store, packed, is_async=False)  # ids generated: inserted
    original_insert = getattr(*rpc)

    def embedding(request: int) -> None:
        if request == 2:
            second_batch_embedding.set()

    def insert(*args: Any, **kwargs: Any) -> Any:
        if not second_batch_embedding.is_set():
            assert second_batch_embedding.wait(20), "batch 2 was not embedded during write 1"
        return original_insert(*args, **kwargs)

    embeddings.on_documents = embedding
    monkeypatch.setattr(*rpc, insert)
    ids = store.add_texts([f"t{i}" for i in range(30)])
    assert len(ids) == 30 and len(store.get_by_ids(ids)) == 30


@BOTH_WRITE_PATHS
def test_sync_partial_failure_names_ids_not_written(tmp_path: Path, packed: bool,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    store, _ = _write_store(tmp_path, packed, batch_size=2)
    rpc = _write_rpc(store, packed, is_async=False)
    original = getattr(*rpc)
    calls = 0

    def flaky(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ValueError("injected permanent failure")
        return original(*args, **kwargs)

    monkeypatch.setattr(*rpc, flaky)
    with pytest.raises(WriteError) as caught:
        store.add_texts([f"t{i}" for i in range(6)], ids=[f"p{i}" for i in range(6)])
    assert caught.value.written_ids == ["p0", "p1"]
    assert caught.value.not_written_ids == ["p2", "p3", "p4", "p5"]
    monkeypatch.undo()
    assert [d.id for d in store.get_by_ids([f"p{i}" for i in range(6)])] == ["p0", "p1"]


def test_sync_embedding_failure_reports_batches_already_written(tmp_path: Path) -> None:
    store, embeddings = _store(tmp_path, batch_size=2)

    def fail_third(request: int) -> None:
        if request == 3:
            raise RuntimeError("embedding service down")

    embeddings.on_documents = fail_third
    with pytest.raises(WriteError) as caught:
        store.add_texts([f"t{i}" for i in range(6)], ids=[f"q{i}" for i in range(6)])
    assert caught.value.written_ids == ["q0", "q1", "q2", "q3"]
    assert caught.value.not_written_ids == ["q4", "q5"]
    embeddings.on_documents = None
    assert [d.id for d in store.get_by_ids([f"q{i}" for i in range(6)])] == [
        "q0", "q1", "q2", "q3"]


async def test_concurrent_filter_deletes_share_one_rpc(tmp_path: Path) -> None:
    store, _ = _store(tmp_path)
    store.add_texts([f"doc {i}" for i in range(100)], [{"id": f"doc_{i}"} for i in range(100)],
                    ids=[f"d{i}" for i in range(100)])
    await asyncio.gather(*(store.adelete(filter={"id": f"doc_{i}"}) for i in range(40)))
    assert store._async.stats.calls["delete"] == 1
    assert sorted(store.get_pks("pk like \"d%\"")) == sorted(f"d{i}" for i in range(40, 100))


async def test_concurrent_deletes_of_strings_and_numbers_on_one_key_share_one_rpc(
    tmp_path: Path,
) -> None:
    # Merged into one `id in ["doc_0", 1, ...]`, Milvus refused the whole batch (mixed list).
    store, _ = _store(tmp_path)
    values: list[str | int] = [f"doc_{i}" if i % 2 else i for i in range(20)]
    store.add_texts([f"doc {i}" for i in range(20)], [{"id": v} for v in values],
                    ids=[f"d{i}" for i in range(20)])
    await asyncio.gather(*(store.adelete(filter={"id": v}) for v in values[:10]))
    assert store._async.stats.calls["delete"] == 1
    assert sorted(store.get_pks("pk like \"d%\"")) == sorted(f"d{i}" for i in range(10, 20))
