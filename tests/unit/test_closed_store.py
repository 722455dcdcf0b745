"""Unit tests: a closed store raises `StoreClosedError` on every call and never reopens itself.

The store points at a Lite file that is never created: the refusal needs no I/O at all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_milvus_ext import MilvusVectorStore, StoreClosedError

SYNC_CALLS: dict[str, Callable[[MilvusVectorStore], Any]] = {
    "add_texts": lambda s: s.add_texts(["t"], ids=["a"]),
    "add_documents": lambda s: s.add_documents([Document("t")]),
    "upsert": lambda s: s.upsert(["a"], [Document("t")]),
    "delete": lambda s: s.delete(["a"]),
    "get_by_ids": lambda s: s.get_by_ids(["a"]),
    "get_by_ids([])": lambda s: s.get_by_ids([]),
    "similarity_search": lambda s: s.similarity_search("q"),
    "max_marginal_relevance_search": lambda s: s.max_marginal_relevance_search("q"),
    "search_by_metadata": lambda s: s.search_by_metadata({"k": 1}),
    "get_pks": lambda s: s.get_pks({"k": 1}),
    "drop": lambda s: s.drop(),
    "client": lambda s: s.client,
    "retriever.invoke": lambda s: s.as_retriever().invoke("q"),
    "with": lambda s: s.__enter__(),
}
ASYNC_CALLS: dict[str, Callable[[MilvusVectorStore], Awaitable[Any]]] = {
    "aadd_texts": lambda s: s.aadd_texts(["t"], ids=["a"]),
    "aupsert": lambda s: s.aupsert(["a"], [Document("t")]),
    "adelete": lambda s: s.adelete(["a"]),
    "aget_by_ids": lambda s: s.aget_by_ids(["a"]),
    "asimilarity_search": lambda s: s.asimilarity_search("q"),
    "asearch_by_metadata": lambda s: s.asearch_by_metadata({"k": 1}),
    "adrop": lambda s: s.adrop(),
    "retriever.ainvoke": lambda s: s.as_retriever().ainvoke("q"),
    "async with": lambda s: s.__aenter__(),
}


def _store(tmp_path: Path) -> MilvusVectorStore:
    return MilvusVectorStore(DeterministicFakeEmbedding(size=8),
                             connection_args={"uri": str(tmp_path / "never.db")})


@pytest.mark.parametrize("name", list(SYNC_CALLS))
def test_sync_calls_on_a_closed_store_raise(tmp_path: Path, name: str) -> None:
    store = _store(tmp_path)
    with store:
        pass
    assert store.is_closed
    with pytest.raises(StoreClosedError, match="Cannot use the vector store: it has been closed"):
        SYNC_CALLS[name](store)
    assert store._clients._sync is None
    assert not (tmp_path / "never.db").exists()  # nothing was (re)opened


@pytest.mark.parametrize("name", list(ASYNC_CALLS))
async def test_async_calls_on_a_closed_store_raise(tmp_path: Path, name: str) -> None:
    store = _store(tmp_path)
    async with store:
        pass
    with pytest.raises(StoreClosedError, match="has been closed"):
        await ASYNC_CALLS[name](store)
    with pytest.raises(StoreClosedError):
        store.aclient  # noqa: B018
    assert len(store._async.sessions) == 0
    assert not (tmp_path / "never.db").exists()


async def test_close_is_idempotent_and_the_error_is_a_runtime_error(tmp_path: Path) -> None:
    store = _store(tmp_path)
    assert not store.is_closed
    store.close()
    store.close()
    await store.aclose()
    assert store.is_closed
    with pytest.raises(RuntimeError):
        store.similarity_search("q")
