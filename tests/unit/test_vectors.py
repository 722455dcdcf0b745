"""Unit tests for `langchain_milvus_ext._vectors`: naming, indexes and rankers (pure)."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_milvus.function import BM25BuiltInFunction
from langchain_milvus.utils.sparse import BaseSparseEmbedding
from pymilvus import Function, FunctionType, RRFRanker, WeightedRanker

from langchain_milvus_ext._vectors import ranker_for, vector_fields_for

DENSE = DeterministicFakeEmbedding(size=4)


class Sparse(BaseSparseEmbedding):
    def embed_query(self, query: str) -> dict[int, float]:
        return {len(query): 1.0}

    def embed_documents(self, texts: list[str]) -> list[dict[int, float]]:
        return [self.embed_query(t) for t in texts]


def test_unnamed_models_get_langchain_milvus_names() -> None:
    fields = vector_fields_for([DENSE, DENSE, DENSE], [], "vector", None, "text")
    assert [f.name for f in fields] == ["vector", "vector_2", "vector_3"]
    assert [f.model for f in fields] == [0, 1, 2]
    assert all(f.kind == "dense" and f.metric == "L2" for f in fields)


def test_function_outputs_come_last_and_named_fields_go_to_models() -> None:
    fields = vector_fields_for([DENSE], [BM25BuiltInFunction(output_field_names="sp")],
                                ["dense", "sp"], None, "text")
    assert [(f.name, f.kind, f.model) for f in fields] == [("dense", "dense", 0),
                                                           ("sp", "bm25", None)]
    assert fields[1].metric == "BM25" and fields[1].function is not None
    assert fields[1].text_kwargs["enable_analyzer"] is True


def test_a_name_that_is_a_function_output_does_not_take_a_model() -> None:
    fields = vector_fields_for([DENSE], [BM25BuiltInFunction()], "sparse", None, "text")
    assert [f.name for f in fields] == ["vector_1", "sparse"]


def test_analyzer_parameters_reach_the_text_field() -> None:
    function = BM25BuiltInFunction(analyzer_params={"type": "english"})
    (field,) = vector_fields_for([], [function], "sparse", None, "text")
    assert field.text_kwargs["analyzer_params"] == {"type": "english"}


def test_index_params_align_with_the_fields() -> None:
    fields = vector_fields_for(
        [DENSE, DENSE], [], ["a", "b"],
        [{"metric_type": "COSINE", "index_type": "HNSW", "params": {"M": 8}},
         {"metric_type": "IP"}], "text")
    assert [(f.metric, f.index["index_type"]) for f in fields] == [("COSINE", "HNSW"),
                                                                 ("IP", "AUTOINDEX")]
    assert fields[0].index["params"] == {"M": 8}
    assert fields[0].search_params() == {"metric_type": "COSINE", "params": {"ef": 64}}


def test_sparse_models_get_a_sparse_index() -> None:
    (field,) = vector_fields_for([Sparse()], [], "sparse_vec", None, "text")
    assert field.kind == "sparse" and field.index["index_type"] == "SPARSE_INVERTED_INDEX"


@pytest.mark.parametrize(("args", "match"), [
    (([DENSE], [], ["a", "b"], None), "more than the 1 embedding models"),
    (([DENSE, DENSE], [], ["a", "a"], None), "unique"),
    (([DENSE, DENSE], [], ["a", "b"], [{}, {}, {}]), "index_params"),
    (([DENSE], [BM25BuiltInFunction(input_field_names="body")], ["a"], None), "text field"),
    (([], [], "vector", None), "more than the 0 embedding models"),
])
def test_bad_set_ups_are_clear_errors(args: tuple[Any, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        vector_fields_for(*args, "text")


def test_rankers() -> None:
    assert isinstance(ranker_for(2), WeightedRanker)
    assert isinstance(ranker_for(2, ranker_type="rrf", ranker_params={"k": 10}), RRFRanker)
    function = Function(name="w", function_type=FunctionType.RERANK, input_field_names=[],
                        params={"reranker": "weighted", "weights": [1.0, 0.0]})
    assert ranker_for(2, reranker=function) is function
    with pytest.raises(ValueError, match="ranker_type"):
        ranker_for(2, ranker_type="wieghted")
    with pytest.raises(ValueError, match="weights"):
        ranker_for(3, ranker_type="weighted", ranker_params={"weights": [1.0]})
