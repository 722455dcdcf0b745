"""Caller isolation under coalescing, end to end (issue 10): one bad caller fails alone.

On a Lite file and on a `milvus-lite server`: concurrent deletes with one malformed raw
expression, concurrent adds with one poison row. Checks what the server holds afterwards,
which callers raised and what their errors name.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_milvus_ext import MilvusVectorStore

pytestmark = [pytest.mark.timeout(180)]

POISONS: dict[str, dict[str, Any]] = {
    "lone-surrogate": {"author": "x\ud800"},
    "nested-surrogate": {"author": "a", "tags": [{"k\udfff": 1}]},
    "int-beyond-int64": {"author": "a", "n": 2**64},
    "int-partition-key": {"author": 7},  # the collection's VARCHAR partition key
}


@pytest.fixture()
def store(backend_uri: str) -> Iterator[MilvusVectorStore]:
    store = MilvusVectorStore(DeterministicFakeEmbedding(size=8),
                              connection_args={"uri": backend_uri},
                              collection_name=f"iso_{uuid.uuid4().hex[:10]}",
                              partition_key_field="author", consistency_level="Strong")
    store.add_texts(["seed"], [{"author": "seed"}], ids=["seed"])
    yield store
    store.drop()
    store.close()


def _pks(store: MilvusVectorStore) -> set[str]:
    return {str(pk) for pk in store.get_pks('pk != ""')}


async def test_one_malformed_delete_expression_fails_alone(store: MilvusVectorStore) -> None:
    ids = [f"doc_{i}" for i in range(10)]
    store.add_texts(ids, [{"author": "a"}] * 10, ids=ids)
    exprs = [f"pk == '{i}'" for i in ids]
    exprs[3] = "pk == = 'doc_3'"
    outcomes = await asyncio.gather(*(store.adelete(expr=e) for e in exprs),
                                    return_exceptions=True)
    failed = [i for i, o in enumerate(outcomes) if isinstance(o, BaseException)]
    assert failed == [3]
    assert all(o is True for i, o in enumerate(outcomes) if i != 3)
    text = str(outcomes[3])
    assert exprs[3] in text or "doc_3" in text
    assert not any(f"'{i}'" in text for j, i in enumerate(ids) if j != 3)  # no other caller's
    assert _pks(store) == {"seed", "doc_3"}


async def test_unbalanced_expression_cannot_merge_into_a_delete_all(
        store: MilvusVectorStore) -> None:
    ids = [f"doc_{i}" for i in range(4)]
    store.add_texts(ids, [{"author": "a"}] * 4, ids=ids)
    # Alone this is malformed; ORed with its neighbours it would read "... or (pk != 'x') ...".
    exprs = ["pk == 'doc_0'", "pk == 'x') or (pk != 'x'", "pk == 'doc_2'"]
    outcomes = await asyncio.gather(*(store.adelete(expr=e) for e in exprs),
                                    return_exceptions=True)
    assert [isinstance(o, BaseException) for o in outcomes] == [False, True, False]
    assert _pks(store) == {"seed", "doc_1", "doc_3"}


@pytest.mark.parametrize("poison", list(POISONS))
async def test_one_poison_row_fails_alone_async(store: MilvusVectorStore, poison: str) -> None:
    docs = [Document(page_content=f"t{i}", metadata={"author": "a", "i": i}, id=f"n{i}")
            for i in range(21)]
    docs[5] = Document(page_content="bad", metadata=POISONS[poison], id="n5")
    outcomes = await asyncio.gather(*(store.aadd_documents([d]) for d in docs),
                                    return_exceptions=True)
    failed = [i for i, o in enumerate(outcomes) if isinstance(o, BaseException)]
    assert failed == [5]
    assert isinstance(outcomes[5], ValueError)
    assert "metadatas[0][" in str(outcomes[5])  # the caller's own argument, located
    assert [o for i, o in enumerate(outcomes) if i != 5] == [
        [f"n{i}"] for i in range(21) if i != 5]
    assert _pks(store) == {"seed"} | {f"n{i}" for i in range(21) if i != 5}


@pytest.mark.parametrize("poison", list(POISONS))
def test_poison_rows_are_rejected_before_writing_sync(store: MilvusVectorStore,
                                                      poison: str) -> None:
    metadatas = [{"author": "a"}] * 3 + [POISONS[poison]]
    with pytest.raises(ValueError, match=r"metadatas\[3\]\["):
        store.add_texts(["a", "b", "c", "d"], metadatas, ids=["a", "b", "c", "d"])
    assert _pks(store) == {"seed"}


class RecordingEmbeddings(DeterministicFakeEmbedding):
    """Fake embeddings that record every text they embed."""

    embedded: list[str] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.embedded.extend(texts)
        return super().embed_documents(texts)


@pytest.mark.parametrize("auto_id", [False, True], ids=["upsert", "auto-id-insert"])
async def test_a_row_only_the_server_rejects_fails_alone_and_nothing_is_doubled(
        backend_uri: str, auto_id: bool) -> None:
    # The partition key's VARCHAR limit (512 bytes) is checked by the server only: the batch is
    # rejected as a whole, then split; the 20 good rows are written exactly once, and no text
    # is embedded twice for the split.
    embeddings = RecordingEmbeddings(size=8, embedded=[])
    store = MilvusVectorStore(embeddings, connection_args={"uri": backend_uri},
                              collection_name=f"iso_{uuid.uuid4().hex[:10]}", auto_id=auto_id,
                              partition_key_field="author", consistency_level="Strong")
    try:
        store.add_texts(["seed"], [{"author": "seed"}])
        authors = [f"good{i}" for i in range(21)]
        authors[9] = "x" * 600
        ids = None if auto_id else [[f"n{i}"] for i in range(21)]
        outcomes = await asyncio.gather(*(
            store.aadd_texts([f"t{i}"], [{"author": a}], ids=ids[i] if ids else None)
            for i, a in enumerate(authors)), return_exceptions=True)
        assert [i for i, o in enumerate(outcomes) if isinstance(o, BaseException)] == [9]
        assert not any(f"good{i}" in str(outcomes[9]) for i in range(21))
        assert sorted(embeddings.embedded) == sorted(["seed"] + [f"t{i}" for i in range(21)])
        hits = store.search_by_metadata({"author": {"$like": "good%"}}, limit=100)
        assert sorted(d.metadata["author"] for d in hits) == sorted(
            a for i, a in enumerate(authors) if i != 9)
        assert sorted(d.id for d in hits) == sorted(
            str(o[0]) for i, o in enumerate(outcomes) if i != 9 and isinstance(o, list))
    finally:
        store.drop()
        store.close()


async def test_an_expression_cannot_escape_the_ids_it_is_combined_with(
        store: MilvusVectorStore) -> None:
    store.add_texts(["a", "b"], [{"author": "a"}] * 2, ids=["a", "b"])
    with pytest.raises(ValueError, match="not one closed expression"):
        await store.adelete(["a"], expr="author == 'a') or (pk != ''")
    with pytest.raises(ValueError, match="not one closed expression"):
        store.delete(["a"], expr="author == 'a') or (pk != ''")
    assert _pks(store) == {"seed", "a", "b"}
