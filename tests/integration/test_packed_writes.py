"""Writes of the plain layouts are packed by the store (`_packing`) and sent on the client's
connection; every row reads back and deletes by its id, and other layouts still go through
pymilvus. An upsert replaces the whole document, on either path. On Lite, the milvus-lite
server and Milvus 2.3.5."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from pymilvus import DataType

from langchain_milvus_ext import Batching, MilvusVectorStore

pytestmark = [pytest.mark.timeout(180)]
METADATA = [
    {"source": "a.txt", "page": 1, "score": 0.25, "ok": True, "tags": ["x", "y"],
     "nested": {"k": [1, {"deep": None}]}},
    {"source": "b.txt", "page": 2**40, "score": -1.5, "ok": False, "tags": [],
     "nested": {}},
    {"source": "Grüße 日本", "page": 3, "score": 1e-9, "ok": True, "tags": ["z"],
     "nested": {"k": []}},
]
TEXTS = ["short", "a longer text " * 50, "ünïcödé ✓ text"]


def _store(uri: str, **kwargs: Any) -> MilvusVectorStore:
    return MilvusVectorStore(DeterministicFakeEmbedding(size=8), connection_args={"uri": uri},
                             collection_name=f"packed_{uuid.uuid4().hex[:10]}",
                             consistency_level="Strong", **kwargs)


@pytest.fixture()
def pymilvus_writes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The `insert` / `upsert` calls that reach pymilvus's clients (their row packing)."""
    from pymilvus import AsyncMilvusClient, MilvusClient

    seen: list[str] = []
    for cls in (MilvusClient, AsyncMilvusClient):
        for method in ("insert", "upsert"):
            original = getattr(cls, method)

            def spy(*args: Any, _original: Any = original, _name: str = method,
                    **kwargs: Any) -> Any:
                seen.append(_name)
                return _original(*args, **kwargs)

            monkeypatch.setattr(cls, method, spy)
    yield seen


def _docs(prefix: str) -> list[Document]:
    return [Document(page_content=t, metadata=m, id=f"{prefix}{i}")
            for i, (t, m) in enumerate(zip(TEXTS, METADATA, strict=True))]


def _same(found: list[Document], expected: list[Document]) -> None:
    by_id = {d.id: d for d in found}
    assert sorted(by_id) == sorted(d.id for d in expected)
    for doc in expected:
        assert by_id[doc.id].page_content == doc.page_content
        assert by_id[doc.id].metadata == doc.metadata


async def test_plain_layout_writes_are_packed_and_read_back(
        backend_uri: str, pymilvus_writes: list[str]) -> None:
    store = _store(backend_uri)
    try:
        store.add_documents(_docs("s"))  # creates the collection: sync insert/upsert packed
        await asyncio.gather(*(store.aadd_documents([d]) for d in _docs("a")))
        # (the same keys: Milvus Lite 3.2.2 keeps an upserted row's old dynamic keys)
        replaced = [Document("replaced", metadata={**METADATA[0], "page": 7}, id="s0"),
                    Document("async replaced", metadata={**METADATA[0], "page": 8}, id="a0")]
        store.upsert(documents=replaced[:1])
        await store.aupsert(documents=replaced[1:])
        fresh = await store.aadd_texts(["no id given"], [{"v": 4}])  # fresh ids: an insert
        expected = _docs("s")[1:] + _docs("a")[1:] + replaced + [
            Document("no id given", metadata={"v": 4}, id=fresh[0])]
        _same(store.get_by_ids([d.id or "" for d in expected]), expected)
        assert sorted(store.get_pks({"source": "b.txt"})) == ["a1", "s1"]
        assert pymilvus_writes == []  # none went through pymilvus's row packing
        store.delete(ids=[d.id or "" for d in expected])
        assert store.get_by_ids([d.id or "" for d in expected]) == []
    finally:
        store.drop()
        store.close()


def test_auto_id_rows_get_the_servers_ids(backend_uri: str, pymilvus_writes: list[str]) -> None:
    store = _store(backend_uri, auto_id=True)
    try:
        ids = store.add_texts(TEXTS, METADATA)
        assert len(set(ids)) == 3
        _same(store.get_by_ids(ids), [Document(t, metadata=m, id=i)
                                      for t, m, i in zip(TEXTS, METADATA, ids, strict=True)])
        assert pymilvus_writes == []
    finally:
        store.drop()
        store.close()


TYPED_COLUMNS = {  # langchain-milvus's layout: a typed column per metadata key
    "source": {"dtype": DataType.VARCHAR, "max_length": 100}, "page": {"dtype": DataType.INT64},
    "score": {"dtype": DataType.DOUBLE}, "ok": {"dtype": DataType.BOOL},
}


async def test_typed_metadata_columns_are_packed_and_read_back(
        backend_uri: str, pymilvus_writes: list[str]) -> None:
    store = _store(backend_uri, metadata_schema=TYPED_COLUMNS)  # tags, nested: dynamic field
    try:
        store.add_documents(_docs("s"))
        await asyncio.gather(*(store.aadd_documents([d]) for d in _docs("a")))
        replaced = Document("replaced", metadata={**METADATA[1], "score": 2}, id="a1")
        await store.aupsert(documents=[replaced])  # an int in the DOUBLE column
        expected = _docs("s") + _docs("a")
        expected[4] = Document("replaced", metadata={**METADATA[1], "score": 2.0}, id="a1")
        _same(store.get_by_ids([f"{p}{i}" for p in "sa" for i in range(3)]), expected)
        assert sorted(store.get_pks("ok == false and page > 2")) == ["a1", "s1"]
        assert store.get_pks("score < 0") == ["s1"]  # a1's score is 2.0 now
        assert pymilvus_writes == []
    finally:
        store.drop()
        store.close()


@pytest.mark.parametrize("kwargs", [
    {"metadata_schema": {"tags": {"dtype": DataType.ARRAY, "element_type": DataType.VARCHAR,
                                  "max_capacity": 8, "max_length": 8}}},  # not packed
    {"batching": Batching(pack_writes=False)},
], ids=["array-column", "pack_writes-off"])
async def test_other_writes_go_through_pymilvus(backend_uri: str, kwargs: dict[str, Any],
                                                pymilvus_writes: list[str]) -> None:
    store = _store(backend_uri, **kwargs)
    try:
        store.add_documents(_docs("s"))
        await asyncio.gather(*(store.aadd_documents([d]) for d in _docs("a")))
        _same(store.get_by_ids([f"{p}{i}" for p in "sa" for i in range(3)]),
              _docs("s") + _docs("a"))
        assert pymilvus_writes and set(pymilvus_writes) <= {"insert", "upsert"}
    finally:
        store.drop()
        store.close()


@pytest.mark.parametrize("packed", [True, False], ids=["packed-write", "pymilvus-write"])
async def test_an_upsert_replaces_the_whole_document(backend_uri: str, packed: bool) -> None:
    """Milvus Lite's Upsert merges the new row into the old one: a metadata key the new
    document no longer has would survive (`CollectionLayout.upserts_merge`)."""
    store = _store(backend_uri, batching=Batching(pack_writes=packed))
    try:
        store.add_documents([Document("v1", metadata={"draft": True, "a": 1}, id=f"d{i}")
                             for i in range(2)])
        store.upsert(documents=[Document("v2", metadata={"b": 2}, id="d0")])
        await store.aupsert(documents=[Document("v2", metadata={"b": 2}, id="d1")])
        found = store.get_by_ids(["d0", "d1"])
        assert [(d.page_content, d.metadata) for d in found] == [("v2", {"b": 2})] * 2
        assert store.get_pks({"draft": True}) == []
    finally:
        store.drop()
        store.close()
