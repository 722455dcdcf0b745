"""Data safety on real Milvus (a Lite file and a `milvus-lite server`): ids given as a bare string,
ids with characters an expression must escape, and the rows that really remain afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_milvus_ext import MilvusVectorStore

pytestmark = [pytest.mark.timeout(300)]

EMBEDDINGS = DeterministicFakeEmbedding(size=8)
TARGETS = [pytest.param("lite_uri", marks=pytest.mark.lite),
           pytest.param("lite_server_uri", marks=pytest.mark.server)]


@pytest.fixture(params=TARGETS)
def store(request: pytest.FixtureRequest) -> Iterator[MilvusVectorStore]:
    """A store on a fresh collection of a Lite file or of the session's milvus-lite server."""
    uri = request.getfixturevalue(request.param)
    store = MilvusVectorStore(EMBEDDINGS, collection_name=f"c_{uuid.uuid4().hex[:12]}",
                              connection_args={"uri": uri}, consistency_level="Strong")
    yield store
    store.drop()
    store.close()


def all_ids(store: MilvusVectorStore) -> set[str]:
    return {str(pk) for pk in store.get_pks('pk != ""')}


# --------------------------------------------------------------------------- item 1: bare string


async def test_a_bare_string_as_ids_deletes_nothing(store: MilvusVectorStore) -> None:
    chars = ["d", "o", "c", "-", "1"]
    store.add_texts([f"text {c}" for c in chars], ids=chars)
    store.add_texts(["the real one"], ids=["doc-1"])
    before = all_ids(store)
    with pytest.raises(ValueError, match="ids must be a list of ids"):
        store.delete("doc-1")
    with pytest.raises(ValueError, match="ids must be a list of ids"):
        await store.adelete("doc-1")
    with pytest.raises(ValueError, match="ids must be a list of ids"):
        store.delete(b"doc-1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ids must be a list of ids"):
        store.get_by_ids("doc-1")
    with pytest.raises(ValueError, match="ids must be a list of ids"):
        await store.aget_by_ids("doc-1")
    with pytest.raises(ValueError, match="ids must be a list of ids"):
        store.upsert("ab", [Document("x"), Document("y")])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ids must be a list of ids"):
        await store.aadd_texts(["x", "y"], ids="ab")  # type: ignore[arg-type]
    assert all_ids(store) == before
    assert [d.page_content for d in store.get_by_ids(["doc-1", "d"])] == ["the real one",
                                                                         "text d"]
