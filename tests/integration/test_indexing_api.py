"""LangChain's indexing API (`index` / `aindex` with a record manager) on embedded Milvus Lite."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.indexing import InMemoryRecordManager, aindex, index

from langchain_milvus_ext import MilvusVectorStore

pytestmark = pytest.mark.lite

Cleanup = Literal["incremental", "full"]


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[MilvusVectorStore]:
    s = MilvusVectorStore(DeterministicFakeEmbedding(size=16),
                          connection_args={"uri": str(tmp_path / "idx.db")},
                          consistency_level="Strong")
    try:
        yield s
    finally:
        s.close()


def _manager() -> InMemoryRecordManager:
    manager = InMemoryRecordManager(namespace=f"milvus/{uuid.uuid4().hex}")
    manager.create_schema()
    return manager


def _docs() -> list[Document]:
    return [Document(page_content=f"document number {i}", metadata={"source": f"s{i}.txt"})
            for i in range(5)]


def _texts(store: MilvusVectorStore) -> list[str]:
    pks = [str(pk) for pk in store.get_pks("pk != ''")]
    return sorted(d.page_content for d in store.get_by_ids(pks))


@pytest.mark.parametrize("cleanup", ["incremental", "full"])
def test_index_skips_replaces_and_deletes(store: MilvusVectorStore, cleanup: Cleanup) -> None:
    manager, docs = _manager(), _docs()
    kwargs = {"cleanup": cleanup, "source_id_key": "source", "key_encoder": "sha256"}

    first = index(docs, manager, store, **kwargs)  # type: ignore[arg-type]
    assert first == {"num_added": 5, "num_updated": 0, "num_skipped": 0, "num_deleted": 0}
    ids = manager.list_keys()
    assert len(ids) == 5
    assert sorted(d.page_content for d in store.get_by_ids(ids)) == _texts(store)
    assert len(_texts(store)) == 5

    second = index(docs, manager, store, **kwargs)  # type: ignore[arg-type]
    assert second == {"num_added": 0, "num_updated": 0, "num_skipped": 5, "num_deleted": 0}
    assert len(_texts(store)) == 5

    changed = [*docs[:2], Document(page_content="document number 2, edited",
                                   metadata={"source": "s2.txt"}), *docs[3:]]
    third = index(changed, manager, store, **kwargs)  # type: ignore[arg-type]
    assert third == {"num_added": 1, "num_updated": 0, "num_skipped": 4, "num_deleted": 1}
    texts = _texts(store)
    assert "document number 2, edited" in texts and "document number 2" not in texts
    assert len(texts) == 5
    new_ids = manager.list_keys()
    assert sorted(d.page_content for d in store.get_by_ids(new_ids)) == texts
    assert set(ids) - set(new_ids) and store.get_by_ids(sorted(set(ids) - set(new_ids))) == []

    fourth = index(changed[:3], manager, store, **kwargs)  # type: ignore[arg-type]
    if cleanup == "full":  # documents no longer given are deleted
        assert fourth == {"num_added": 0, "num_updated": 0, "num_skipped": 3, "num_deleted": 2}
        assert len(_texts(store)) == 3
    else:  # incremental cleanup only touches the sources it saw
        assert fourth == {"num_added": 0, "num_updated": 0, "num_skipped": 3, "num_deleted": 0}
        assert len(_texts(store)) == 5


def test_index_incremental_source_shrinks(store: MilvusVectorStore) -> None:
    manager = _manager()
    chunks = [Document(page_content=f"chunk {i} of book", metadata={"source": "book"})
              for i in range(4)]
    index(chunks, manager, store, cleanup="incremental", source_id_key="source",
          key_encoder="sha256")
    result = index(chunks[:2], manager, store, cleanup="incremental", source_id_key="source",
                   key_encoder="sha256")
    assert result == {"num_added": 0, "num_updated": 0, "num_skipped": 2, "num_deleted": 2}
    assert _texts(store) == ["chunk 0 of book", "chunk 1 of book"]


def test_index_without_cleanup_dedupes(store: MilvusVectorStore) -> None:
    manager, docs = _manager(), _docs()
    index(docs + docs, manager, store, cleanup=None, key_encoder="sha256")
    result = index(docs, manager, store, cleanup=None, key_encoder="sha256")
    assert result["num_skipped"] == 5
    assert len(_texts(store)) == 5


@pytest.mark.parametrize("cleanup", ["incremental", "full"])
async def test_aindex_skips_replaces_and_deletes(
    store: MilvusVectorStore, cleanup: Cleanup
) -> None:
    manager, docs = _manager(), _docs()
    kwargs = {"cleanup": cleanup, "source_id_key": "source", "key_encoder": "sha256"}

    first = await aindex(docs, manager, store, **kwargs)  # type: ignore[arg-type]
    assert first == {"num_added": 5, "num_updated": 0, "num_skipped": 0, "num_deleted": 0}
    ids = await manager.alist_keys()
    assert len(await store.aget_by_ids(ids)) == 5

    second = await aindex(docs, manager, store, **kwargs)  # type: ignore[arg-type]
    assert second == {"num_added": 0, "num_updated": 0, "num_skipped": 5, "num_deleted": 0}

    changed = [*docs[:4], Document(page_content="document number 4, edited",
                                   metadata={"source": "s4.txt"})]
    third = await aindex(changed, manager, store, **kwargs)  # type: ignore[arg-type]
    assert third == {"num_added": 1, "num_updated": 0, "num_skipped": 4, "num_deleted": 1}
    new_ids = await manager.alist_keys()
    got = sorted(d.page_content for d in await store.aget_by_ids(new_ids))
    assert got == sorted(d.page_content for d in changed)
    assert len(await store.aget_pks("pk != ''")) == 5

    fourth = await aindex(changed[1:], manager, store, **kwargs)  # type: ignore[arg-type]
    expected_deleted = 1 if cleanup == "full" else 0
    assert fourth["num_deleted"] == expected_deleted
    assert len(await store.aget_pks("pk != ''")) == 5 - expected_deleted
    await store.aclose()
