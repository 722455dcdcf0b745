"""A plain search goes out directly and its hits are read column by column (`_direct_search`,
`_hits`): on every backend and layout, the stores find what pymilvus's `search` finds, sync
and async, and searches with pass-through arguments still go through pymilvus."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from pymilvus import MilvusClient

from langchain_milvus_ext import Batching, MilvusVectorStore, _direct_search

pytestmark = [pytest.mark.lite, pytest.mark.server, pytest.mark.timeout(600)]

EMBEDDINGS = DeterministicFakeEmbedding(size=16)
LAYOUTS: dict[str, dict[str, Any]] = {
    "dynamic": {},
    "json metadata": {"metadata_field": "metadata"},
    "columns, int keys": {"enable_dynamic_field": False, "auto_id": True},
}
DOCS = [Document(page_content=f"text {i}",
                 metadata={"source": f"s{i % 3}", "page": i, "score": i / 4, "odd": i % 2 == 1})
        for i in range(40)]


@pytest.fixture()
def direct_sends(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    sent: list[str] = []
    send, asend = _direct_search.send, _direct_search.asend

    def counted(client: Any, kwargs: Any) -> Any:
        sent.append("sync")
        return send(client, kwargs)

    async def acounted(client: Any, kwargs: Any) -> Any:
        sent.append("async")
        return await asend(client, kwargs)

    monkeypatch.setattr(_direct_search, "send", counted)
    monkeypatch.setattr(_direct_search, "asend", acounted)
    yield sent


def _same(found: list[Any], expected: list[Any]) -> bool:
    """The same Documents in the same order, and the same scores up to float32 rounding (Milvus
    Lite computes a distance on flushed rows with other float operations than on unflushed
    ones, and the stores share the flushes of their collection)."""
    def split(results: list[Any]) -> tuple[list[Any], list[float]]:
        docs = [[r[0] if isinstance(r, tuple) else r for r in result] for result in results]
        scores = [r[1] for result in results for r in result if isinstance(r, tuple)]
        return docs, scores

    (docs, scores), (want_docs, want_scores) = split(found), split(expected)
    return docs == want_docs and scores == pytest.approx(want_scores, rel=1e-5, abs=1e-6)


def _searches(store: MilvusVectorStore, by_name: bool) -> list[Any]:
    vector = EMBEDDINGS.embed_query("text 3")
    found = [
        store.similarity_search_with_score("text 7", k=4),
        store.similarity_search("text 8", k=3, filter={"source": "s1"}),
        store.similarity_search_by_vector(vector, k=5, filter={"page": {"$gt": 30}}),
        store.max_marginal_relevance_search("text 9", k=3, fetch_k=10),
        store.similarity_search_with_relevance_scores("nothing like it", k=2),
    ]
    if by_name:  # a metadata key asked for by name (not inside one JSON field)
        found.append(store.similarity_search("text 1", k=3, output_fields=["source"]))
    return found


async def _asearches(store: MilvusVectorStore) -> list[Any]:
    texts = [f"text {i}" for i in range(12)]
    found = await asyncio.gather(*(store.asimilarity_search_with_score(t, k=3) for t in texts))
    mmr = await store.amax_marginal_relevance_search("text 9", k=3, fetch_k=10)
    return [*found, mmr]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_direct_searches_find_what_pymilvus_finds(backend_uri: str, layout: str,
                                                  direct_sends: list[str]) -> None:
    name = f"direct_{uuid.uuid4().hex[:10]}"

    def store(direct: bool) -> MilvusVectorStore:
        return MilvusVectorStore(EMBEDDINGS, collection_name=name,
                                 connection_args={"uri": backend_uri},
                                 batching=Batching(direct_search=direct), **LAYOUTS[layout])

    with store(True) as direct, store(False) as through_pymilvus:
        direct.add_documents(DOCS)
        # Read right after the write: the request carries the session's guarantee timestamp,
        # so a server searches every row just written.
        assert len(direct.similarity_search("text 39", k=40)) == len(DOCS)
        assert direct.similarity_search("text 39", k=1)[0].page_content == "text 39"
        direct_sends.clear()
        by_name = "metadata_field" not in LAYOUTS[layout]
        expected = _searches(through_pymilvus, by_name)
        assert direct_sends == []
        assert _same(_searches(direct, by_name), expected)
        assert direct_sends == ["sync"] * len(expected)
        assert expected[0][0][0].page_content == "text 7"
        assert expected[0][0][0].metadata == DOCS[7].metadata
        assert {d.metadata["source"] for d in expected[1]} == {"s1"}

        direct_sends.clear()

        async def both() -> tuple[list[Any], list[Any]]:
            found = await _asearches(direct), await _asearches(through_pymilvus)
            await direct.aclose()
            await through_pymilvus.aclose()
            return found

        found_directly, expected = asyncio.run(both())
        assert _same(found_directly, expected)
        assert direct_sends == ["async", "async"]  # 12 coalesced searches and the MMR
    MilvusClient(uri=backend_uri).drop_collection(name)


def test_pass_through_arguments_go_through_pymilvus(lite_uri: str,
                                                    direct_sends: list[str]) -> None:
    with MilvusVectorStore(EMBEDDINGS, collection_name="pass", connection_args={"uri": lite_uri},
                           auto_id=True) as store:
        store.add_documents(DOCS[:10])
        found = store.similarity_search("text 2", k=2, consistency_level="Strong")
        assert found[0].page_content == "text 2"
        assert direct_sends == []
        store.similarity_search("text 2", k=2)
        assert direct_sends == ["sync"]


def test_answers_left_to_pymilvus_give_the_same_documents(lite_uri: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    with MilvusVectorStore(EMBEDDINGS, collection_name="fallback",
                           connection_args={"uri": lite_uri}) as store:
        store.add_documents(DOCS[:10])
        read_by_us = store.similarity_search_with_score("text 4", k=3)
        monkeypatch.setattr(_direct_search, "read_hits", lambda data: None)  # as for an array
        assert store.similarity_search_with_score("text 4", k=3) == read_by_us
        assert read_by_us[0][0].metadata == DOCS[4].metadata
