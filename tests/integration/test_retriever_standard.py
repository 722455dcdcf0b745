"""LangChain's standard retriever suite on embedded Milvus Lite, plus retriever behaviour."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_tests.integration_tests import RetrieversIntegrationTests

from langchain_milvus_ext import MilvusRetriever, MilvusVectorStore, _direct_search

pytestmark = pytest.mark.lite


def _filled_store(path: Path) -> MilvusVectorStore:
    store = MilvusVectorStore(
        DeterministicFakeEmbedding(size=16),
        connection_args={"uri": str(path)},
        consistency_level="Strong",
    )
    store.add_texts(
        [f"document {i} about {'cats' if i % 2 else 'dogs'}" for i in range(10)],
        [{"animal": "cat" if i % 2 else "dog", "i": i} for i in range(10)],
        ids=[f"d{i}" for i in range(10)],
    )
    return store


class TestMilvusRetrieverStandard(RetrieversIntegrationTests):
    @pytest.fixture(autouse=True)
    def _store(self, tmp_path: Path) -> None:
        self.__class__._shared = _filled_store(tmp_path / "retriever.db")

    @property
    def retriever_constructor(self) -> type[MilvusRetriever]:
        return MilvusRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"vectorstore": self._shared}

    @property
    def retriever_query_example(self) -> str:
        return "document about cats"


@pytest.fixture()
def store(tmp_path: Path) -> MilvusVectorStore:
    return _filled_store(tmp_path / "r.db")


def test_filter_per_retriever_and_per_call(store: MilvusVectorStore) -> None:
    retriever = MilvusRetriever(vectorstore=store, k=10, filter={"animal": "cat"})
    assert {d.metadata["animal"] for d in retriever.invoke("cats")} == {"cat"}
    docs = retriever.invoke("dogs", filter={"animal": "dog"}, k=2)
    assert len(docs) == 2 and {d.metadata["animal"] for d in docs} == {"dog"}


def test_as_retriever_returns_milvus_retriever(store: MilvusVectorStore) -> None:
    retriever = store.as_retriever(search_type="mmr", search_kwargs={"k": 3, "fetch_k": 6})
    assert isinstance(retriever, MilvusRetriever)
    assert retriever.k == 3 and retriever.fetch_k == 6
    docs = retriever.invoke("document 3 about cats")
    assert len(docs) == 3 and len({d.id for d in docs}) == 3


async def test_batch_is_one_nq_search(store: MilvusVectorStore,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    retriever = MilvusRetriever(vectorstore=store, k=2)
    queries = [f"document {i} about dogs" for i in range(0, 10, 2)]
    calls: list[int] = []
    original = _direct_search.send  # where a plain sync search goes out

    def counting(client: Any, kwargs: Any) -> Any:
        calls.append(len(kwargs["data"]))
        return original(client, kwargs)

    monkeypatch.setattr(_direct_search, "send", counting)
    batched = retriever.batch(queries)
    assert calls == [len(queries)]
    assert [docs[0].page_content for docs in batched] == queries
    abatched = await retriever.abatch(queries)
    assert [[d.id for d in docs] for docs in abatched] == [[d.id for d in docs] for docs in batched]


def test_score_threshold_requires_threshold(store: MilvusVectorStore) -> None:
    retriever = MilvusRetriever(vectorstore=store, search_type="similarity_score_threshold")
    with pytest.raises(ValueError, match="score_threshold"):
        retriever.invoke("cats")
    strict = MilvusRetriever(vectorstore=store, search_type="similarity_score_threshold",
                             score_threshold=0.99, k=5)
    docs = strict.invoke("document 1 about cats")
    assert [d.id for d in docs] == ["d1"]
