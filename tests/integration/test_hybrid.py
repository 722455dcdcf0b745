"""Hybrid search (dense + server-side BM25) on Milvus Lite, embedded and over TCP."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_milvus_ext import MilvusRetriever, MilvusVectorStore

TEXTS = [f"{word} number {i}" for i, word in enumerate(
    ["apple", "banana", "cherry", "apple pie", "banana bread", "fox", "dog", "apple juice",
     "grape", "melon", "lemon", "apple tart"])]


def _store(uri: str, **kwargs: object) -> MilvusVectorStore:
    store = MilvusVectorStore(
        DeterministicFakeEmbedding(size=16), connection_args={"uri": uri},
        collection_name="hybrid", consistency_level="Strong", drop_old=True,
        full_text_search=True, **kwargs,  # type: ignore[arg-type]
    )
    store.add_texts(TEXTS, [{"n": i, "fruit": i not in (5, 6)} for i in range(len(TEXTS))],
                    ids=[f"h{i}" for i in range(len(TEXTS))])
    return store


@pytest.fixture()
def store(tmp_path: Path) -> MilvusVectorStore:
    return _store(str(tmp_path / "hybrid.db"))


@pytest.mark.lite
def test_full_text_finds_keyword_and_is_stable(store: MilvusVectorStore) -> None:
    first = store.hybrid_search_with_score("apple", k=4)
    assert {doc.id for doc, _ in first} == {"h0", "h3", "h7", "h11"}
    # Repeated searches must not change the store's state (the parent's list grew per call).
    for _ in range(3):
        assert store.hybrid_search_with_score("apple", k=4) == first
    weighted = store.hybrid_search("apple", k=4, ranker="weighted", weights=(0.0, 1.0))
    assert {doc.id for doc in weighted} == {"h0", "h3", "h7", "h11"}


@pytest.mark.lite
def test_k_larger_than_four_is_not_truncated(store: MilvusVectorStore) -> None:
    assert len(store.hybrid_search("apple banana", k=10)) == 10


@pytest.mark.lite
async def test_async_matches_sync_and_filters(store: MilvusVectorStore) -> None:
    sync = store.hybrid_search("banana", k=5, filter={"n": {"$lt": 5}})
    assert all(doc.metadata["n"] < 5 for doc in sync) and len(sync) == 5
    assert await store.ahybrid_search("banana", k=5, filter={"n": {"$lt": 5}}) == sync


@pytest.mark.lite
async def test_retriever_hybrid(store: MilvusVectorStore) -> None:
    retriever = MilvusRetriever(vectorstore=store, search_type="hybrid", k=3,
                                filter={"fruit": True})
    docs = retriever.invoke("apple")
    assert len(docs) == 3 and all(doc.metadata["fruit"] for doc in docs)
    assert [d.id for d in await retriever.ainvoke("apple")] == [d.id for d in docs]


@pytest.mark.lite
def test_reopened_store_finds_sparse_field(store: MilvusVectorStore, tmp_path: Path) -> None:
    reopened = MilvusVectorStore(DeterministicFakeEmbedding(size=16),
                                 connection_args={"uri": str(tmp_path / "hybrid.db")},
                                 collection_name="hybrid")
    assert {d.id for d in reopened.hybrid_search("apple", k=4)} == {"h0", "h3", "h7", "h11"}


@pytest.mark.lite
def test_hybrid_without_full_text_field_is_a_clear_error(tmp_path: Path) -> None:
    plain = MilvusVectorStore(DeterministicFakeEmbedding(size=16),
                              connection_args={"uri": str(tmp_path / "plain.db")})
    plain.add_texts(["x"])
    with pytest.raises(ValueError, match="full_text_search=True"):
        plain.hybrid_search("x")


@pytest.mark.server
def test_hybrid_on_lite_server(lite_server_uri: str) -> None:
    store = _store(lite_server_uri)
    assert {d.id for d in store.hybrid_search("apple", k=4)} == {"h0", "h3", "h7", "h11"}
    store.drop()


@pytest.mark.server
def test_milvus_23_refuses_full_text_with_version_message(milvus235_uri: str) -> None:
    with pytest.raises(ValueError, match=r"need Milvus >= 2\.5.*2\.3"):
        MilvusVectorStore(DeterministicFakeEmbedding(size=16),
                          connection_args={"uri": milvus235_uri}, full_text_search=True)
