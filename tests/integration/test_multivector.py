"""Several vector fields, as langchain-milvus sets them up: dense models, sparse models, BM25
functions, rankers; sync and async on Milvus Lite and a `milvus-lite server`; Milvus 2.3.5
refuses them with its version named."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.embeddings import Embeddings
from langchain_milvus.function import BM25BuiltInFunction
from langchain_milvus.utils.sparse import BaseSparseEmbedding
from pymilvus import Function, FunctionType, RRFRanker, WeightedRanker

from langchain_milvus_ext import Milvus

TEXTS = ["apple pie recipe", "banana bread", "cherry tart", "apple cider"]


class Constant(Embeddings):
    """Document i embeds to [i]*4; every query to [query_value]*4 (closest: that document)."""

    def __init__(self, query_value: float) -> None:
        self.query_value = query_value

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [[float(i)] * 4 for i in range(len(texts))]

    def embed_query(self, text: str) -> list[float]:
        return [self.query_value] * 4


class WordHash(BaseSparseEmbedding):
    """A toy sparse model: one dimension per word."""

    def embed_query(self, query: str) -> dict[int, float]:
        return {hash(word) % 10_000: 1.0 for word in query.split()}

    def embed_documents(self, texts: list[str]) -> list[dict[int, float]]:
        return [self.embed_query(t) for t in texts]


def weighted(first: float, second: float) -> Function:
    return Function(name=f"w_{uuid.uuid4().hex[:6]}", function_type=FunctionType.RERANK,
                    input_field_names=[], params={"reranker": "weighted",
                                                  "weights": [first, second]})


@pytest.fixture(params=[pytest.param("file", marks=pytest.mark.lite),
                        pytest.param("lite_server", marks=pytest.mark.server)])
def uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "file":
        return str(tmp_path / "multi.db")
    return str(request.getfixturevalue("lite_server_uri"))


@pytest.fixture()
def make(uri: str) -> Iterator[Any]:
    stores: list[Milvus] = []

    def factory(**kwargs: Any) -> Milvus:
        store = Milvus(connection_args={"uri": uri}, consistency_level="Strong",
                       collection_name=f"m_{uuid.uuid4().hex[:10]}", **kwargs)
        stores.append(store)
        return store

    yield factory
    for store in stores:
        store.drop()
        store.close()


async def test_two_dense_models_with_their_own_indexes_and_rankers(make: Any) -> None:
    store = make(embedding_function=[Constant(0.0), Constant(3.0)],
                 vector_field=["first", "second"],
                 index_params=[{"metric_type": "L2", "index_type": "FLAT"},
                               {"metric_type": "IP", "index_type": "AUTOINDEX"}])
    store.add_texts(TEXTS, [{"n": i} for i in range(4)])
    assert store.fields == ["pk", "text", "first", "second"]
    metrics = {name: store.client.describe_index(store.collection_name, name)["metric_type"]
               for name in ("first", "second")}
    assert metrics == {"first": "L2", "second": "IP"}
    assert [p["metric_type"] for p in store.search_params] == ["L2", "IP"]
    only_first = store.similarity_search("q", k=1, reranker=weighted(1.0, 0.0))
    assert only_first[0].page_content == TEXTS[0] and only_first[0].metadata == {"n": 0}
    # IP with the constant query: the largest document vector wins on the second field
    only_second = await store.asimilarity_search("q", k=1, ranker_type="weighted",
                                                 ranker_params={"weights": [0.0, 1.0]})
    assert only_second[0].page_content == TEXTS[3]
    assert len(store.similarity_search("q", k=4, ranker_type="rrf", ranker_params={"k": 5})) == 4
    assert len(store.similarity_search("q", k=2, reranker=RRFRanker())) == 2
    filtered = store.similarity_search("q", k=4, reranker=WeightedRanker(1.0, 0.0),
                                       expr="n >= 2")
    assert [d.metadata["n"] for d in filtered] == [2, 3]
    with pytest.raises(ValueError, match="ranker_type"):
        store.similarity_search("q", ranker_type="rrff")
    with pytest.raises(ValueError, match="one vector field"):
        store.max_marginal_relevance_search("q")
    with pytest.raises(ValueError, match="one vector field"):
        store.similarity_search_with_relevance_scores("q")


async def test_bm25_alone_and_beside_a_dense_field(make: Any) -> None:
    bm25_only = make(embedding_function=[], builtin_function=BM25BuiltInFunction(),
                     vector_field="sparse", auto_id=True)
    bm25_only.add_texts(TEXTS, [{"n": i} for i in range(4)])
    assert bm25_only.fields == ["pk", "text", "sparse"]
    assert {d.page_content for d in bm25_only.similarity_search("apple", k=2)} == {
        TEXTS[0], TEXTS[3]}
    hybrid = make(embedding_function=Constant(1.0),
                  builtin_function=[BM25BuiltInFunction(
                      input_field_names="body", output_field_names="words",
                      analyzer_params={"tokenizer": "standard", "filter": ["lowercase"]})],
                  text_field="body", vector_field=["dense", "words"],
                  index_params=[{"metric_type": "COSINE", "index_type": "HNSW"},
                                {"metric_type": "BM25", "index_type": "AUTOINDEX"}])
    ids = await hybrid.aadd_texts(TEXTS)
    assert hybrid.fields == ["pk", "body", "dense", "words"]
    body = next(f for f in hybrid.client.describe_collection(hybrid.collection_name)["fields"]
                if f["name"] == "body")
    assert "lowercase" in str(body["params"])  # the analyzer parameters reached the text field
    top = hybrid.similarity_search("cherry", k=1, reranker=weighted(0.0, 1.0))
    assert top[0].page_content == TEXTS[2]
    assert [d.id for d in await hybrid.aget_by_ids(ids[:2])] == ids[:2]
    assert hybrid.delete(ids=ids[:1]) and len(hybrid.similarity_search("apple", k=4)) == 3


def test_sparse_embedding_model(make: Any) -> None:
    store = make(embedding_function=WordHash(), vector_field="sparse_vector")
    store.add_texts(TEXTS)
    assert store.similarity_search("banana", k=1)[0].page_content == TEXTS[1]


@pytest.mark.server
def test_milvus_23_names_its_version(milvus235_uri: str) -> None:
    args: dict[str, Any] = {"connection_args": {"uri": milvus235_uri}}
    with pytest.raises(ValueError, match=r"Milvus >= 2\.5.*v2\.3"):
        Milvus(embedding_function=Constant(0.0), builtin_function=BM25BuiltInFunction(),
               vector_field="sparse", **args)
    with pytest.raises(ValueError, match=r"Milvus >= 2\.4.*v2\.3"):
        Milvus(embedding_function=[Constant(0.0), Constant(1.0)], **args)
