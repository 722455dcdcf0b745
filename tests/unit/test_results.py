"""Unit tests for `langchain_milvus_ext._results` (pure, no server)."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from langchain_core.documents import Document
from pymilvus import DataType

from langchain_milvus_ext._results import (
    check_k,
    document_from_entity,
    documents_from_hits,
    documents_from_rows,
    mmr_select,
    order_by_ids,
    relevance_fn,
    to_relevance,
    vectors_from_hits,
)
from langchain_milvus_ext._schema import CollectionLayout

JSON_META = CollectionLayout(dim=2, exists=True)
DYNAMIC = CollectionLayout(metadata_field=None, dynamic=True, dim=2, exists=True)
COLUMNS = CollectionLayout(
    metadata_field=None,
    dim=2,
    scalar_fields={"source": DataType.VARCHAR, "page": DataType.INT64},
    pk_is_int=True,
    exists=True,
)
PARTITIONED = replace(JSON_META, scalar_fields={"tenant": DataType.VARCHAR})

similarities = st.floats(-1.0, 1.0, allow_nan=False)
distances = st.floats(0.0, 1e12, allow_nan=False)


# --------------------------------------------------------------------------- document_from_entity


def test_id_is_the_string_primary_key_and_not_metadata() -> None:
    entity = {"pk": 42, "text": "hello", "vector": [1.0, 0.0], "metadata": {"a": 1}}
    doc = document_from_entity(42, entity, JSON_META)
    assert doc.id == "42"
    assert doc.page_content == "hello"
    assert doc.metadata == {"a": 1}


def test_json_metadata_is_copied_not_aliased() -> None:
    stored = {"a": 1}
    doc = document_from_entity("x", {"text": "t", "metadata": stored}, JSON_META)
    doc.metadata["b"] = 2
    assert stored == {"a": 1}


def test_nested_metadata_is_copied_so_documents_never_share_it() -> None:
    stored = {"tags": ["a"], "source": {"page": 1}, "n": 1}
    entity = {"text": "t", "metadata": stored}
    first = document_from_entity("x", entity, JSON_META)
    second = document_from_entity("x", entity, JSON_META)
    first.metadata["tags"].append("b")
    first.metadata["source"]["page"] = 2
    assert second.metadata == {"tags": ["a"], "source": {"page": 1}, "n": 1}
    assert stored == {"tags": ["a"], "source": {"page": 1}, "n": 1}


def test_dynamic_meta_is_merged_into_metadata() -> None:
    entity = {"pk": "x", "text": "t", "genre": "scifi", "$meta": {"year": 2001}}
    doc = document_from_entity("x", entity, DYNAMIC)
    assert doc.metadata == {"genre": "scifi", "year": 2001}
    assert "$meta" not in doc.metadata


def test_dynamic_entity_fields_that_are_not_metadata_stay_out() -> None:
    """An MMR hit also carries the vector; none of the store's own fields is metadata, and
    nested values are the Document's own."""
    tags = ["a"]
    entity = {"pk": "x", "text": "t", "vector": [1.0, 0.0], "tags": tags, "$meta": {"y": 1}}
    doc = document_from_entity("x", entity, DYNAMIC)
    assert doc.metadata == {"tags": ["a"], "y": 1}
    doc.metadata["tags"].append("b")
    assert tags == ["a"]


def test_scalar_columns_become_metadata() -> None:
    entity = {"pk": 7, "text": "t", "source": "a.pdf", "page": 3}
    doc = document_from_entity(7, entity, COLUMNS)
    assert doc.id == "7"
    assert doc.metadata == {"source": "a.pdf", "page": 3}


def test_partition_column_does_not_override_the_json_value() -> None:
    entity = {"text": "t", "tenant": "column", "metadata": {"tenant": "json", "k": 1}}
    doc = document_from_entity("x", entity, PARTITIONED)
    assert doc.metadata == {"tenant": "json", "k": 1}
    entity = {"text": "t", "tenant": "column", "metadata": {"k": 1}}
    assert document_from_entity("x", entity, PARTITIONED).metadata == {"k": 1, "tenant": "column"}


def test_missing_or_non_string_text_gives_empty_page_content() -> None:
    assert document_from_entity("x", {}, JSON_META).page_content == ""
    assert document_from_entity("x", {"text": None}, JSON_META).page_content == ""


def test_primary_key_column_under_another_name_is_skipped() -> None:
    layout = replace(JSON_META, pk_field="doc_id")
    doc = document_from_entity("k", {"doc_id": "k", "text": "t", "metadata": {}}, layout)
    assert doc.metadata == {}


# --------------------------------------------------------------------------- hits and rows


def test_hits_keyed_by_primary_key_field() -> None:
    hits = [
        {"pk": "a", "distance": 0.9, "entity": {"text": "A", "metadata": {"n": 1}}},
        {"pk": "b", "distance": 0.5, "entity": {"text": "B", "metadata": {}}},
    ]
    out = documents_from_hits(hits, JSON_META)
    assert [(d.id, d.page_content, d.metadata, s) for d, s in out] == [
        ("a", "A", {"n": 1}, 0.9),
        ("b", "B", {}, 0.5),
    ]


def test_hits_keyed_by_id() -> None:
    hits = [{"id": 5, "distance": 1, "entity": {"text": "A", "source": "s", "page": 1}}]
    [(doc, score)] = documents_from_hits(hits, COLUMNS)
    assert doc.id == "5"
    assert doc.metadata == {"source": "s", "page": 1}
    assert score == 1.0 and isinstance(score, float)


def test_hit_without_entity() -> None:
    [(doc, _)] = documents_from_hits([{"id": "a", "distance": 0.1}], JSON_META)
    assert doc.id == "a" and doc.page_content == "" and doc.metadata == {}


def test_vectors_from_hits() -> None:
    hits = [{"id": "a", "distance": 0, "entity": {"vector": (1.0, 2.0)}}, {"id": "b"}]
    assert vectors_from_hits(hits, JSON_META) == [[1.0, 2.0], []]


def test_documents_from_rows_use_primary_key_column() -> None:
    rows = [{"pk": 1, "text": "t", "source": "s", "page": 2}]
    [doc] = documents_from_rows(rows, COLUMNS)
    assert doc.id == "1" and doc.metadata == {"source": "s", "page": 2}


def test_order_by_ids_follows_request_and_drops_missing() -> None:
    docs = [Document("b", id="b"), Document("a", id="a"), Document("c", id="c")]
    assert [d.id for d in order_by_ids(docs, ["c", "x", "a"])] == ["c", "a"]
    assert order_by_ids(docs, []) == []


# --------------------------------------------------------------------------- relevance


@pytest.mark.parametrize("metric", ["COSINE", "cosine", "IP"])
def test_similarity_endpoints(metric: str) -> None:
    fn = relevance_fn(metric)
    assert fn(1.0) == 1.0
    assert fn(-1.0) == 0.0
    assert fn(0.0) == 0.5


def test_ip_is_clipped() -> None:
    fn = relevance_fn("IP")
    assert fn(7.5) == 1.0
    assert fn(-3.0) == 0.0


def test_l2_endpoints() -> None:
    fn = relevance_fn("L2")
    assert fn(0.0) == 1.0
    assert fn(2.0) == 0.5  # squared distance of orthogonal unit vectors
    assert fn(4.0) == 0.0  # opposite unit vectors
    assert fn(1e300) == 0.0


def test_orthogonal_unit_vectors_score_one_half_under_every_metric() -> None:
    # langchain-milvus's contract (its relevance test): L2 d = 2, IP and COSINE s = 0.
    assert relevance_fn("L2")(2.0) == relevance_fn("IP")(0.0) == relevance_fn("COSINE")(0.0)
    assert relevance_fn("L2")(2.0) == 0.5


@pytest.mark.parametrize("metric", ["HAMMING", "JACCARD", "BM25", ""])
def test_unsupported_metric(metric: str) -> None:
    with pytest.raises(ValueError, match="no relevance score function"):
        relevance_fn(metric)


@given(similarities, similarities)
def test_cosine_is_monotone_and_bounded(a: float, b: float) -> None:
    fn = relevance_fn("COSINE")
    lo, hi = sorted((a, b))
    assert 0.0 <= fn(lo) <= fn(hi) <= 1.0
    if lo < hi:
        assert fn(lo) < fn(hi) or hi - lo < 1e-15  # strict up to float rounding


@given(st.floats(-1e6, 1e6, allow_nan=False), st.floats(-1e6, 1e6, allow_nan=False))
def test_ip_is_monotone_and_bounded(a: float, b: float) -> None:
    fn = relevance_fn("IP")
    lo, hi = sorted((a, b))
    assert 0.0 <= fn(lo) <= fn(hi) <= 1.0


@given(distances, distances)
def test_l2_is_decreasing_in_distance_and_bounded(a: float, b: float) -> None:
    fn = relevance_fn("L2")
    near, far = sorted((a, b))
    assert 0.0 <= fn(far) <= fn(near) <= 1.0


def test_to_relevance_maps_scores_and_keeps_documents() -> None:
    docs = [Document("a", id="a"), Document("b", id="b")]
    out = to_relevance([(docs[0], 0.8), (docs[1], 3.0)], "L2")
    assert [d for d, _ in out] == docs
    assert [s for _, s in out] == pytest.approx([0.8, 0.25])


@pytest.mark.parametrize("metric", ["COSINE", "IP", "L2"])
def test_to_relevance_rejects_nan_scores(metric: str) -> None:
    """A NaN distance must not become a valid relevance (for L2 it currently becomes 1.0)."""
    with pytest.raises(ValueError, match="non-finite"):
        to_relevance([(Document("a", id="a"), math.nan)], metric)


# --------------------------------------------------------------------------- MMR

QUERY = [1.0, 0.0]
CANDIDATES = [[1.0, 0.0], [0.99, 0.01], [0.7, 0.7], [0.0, 1.0]]


def _scored(n: int) -> list[tuple[Document, float]]:
    return [(Document(str(i), id=str(i)), float(n - i)) for i in range(n)]


def _ids(picks: list[tuple[Document, float]]) -> list[str | None]:
    return [d.id for d, _ in picks]


def test_mmr_lambda_one_keeps_similarity_order() -> None:
    picks = mmr_select(QUERY, _scored(4), CANDIDATES, 4, 1.0)
    assert _ids(picks) == ["0", "1", "2", "3"]


def test_mmr_lambda_zero_picks_diverse_documents() -> None:
    picks = mmr_select(QUERY, _scored(4), CANDIDATES, 2, 0.0)
    assert _ids(picks)[0] == "0"  # the most similar always comes first
    assert _ids(picks)[1] == "3"  # then the one least like it, not the near-duplicate "1"


def test_mmr_keeps_scores_with_their_documents() -> None:
    scored = _scored(4)
    picks = mmr_select(QUERY, scored, CANDIDATES, 3, 0.5)
    assert all(pick in scored for pick in picks)
    assert len({d.id for d, _ in picks}) == 3


def test_mmr_k_larger_than_candidates() -> None:
    assert len(mmr_select(QUERY, _scored(2), CANDIDATES[:2], 10, 0.5)) == 2


def test_mmr_no_candidates() -> None:
    assert mmr_select(QUERY, [], [], 3, 0.5) == []


@pytest.mark.parametrize("bad", [-0.1, 1.01, math.nan])
def test_mmr_bad_lambda(bad: float) -> None:
    with pytest.raises(ValueError, match="lambda_mult must be in"):
        mmr_select(QUERY, _scored(4), CANDIDATES, 2, bad)


# --------------------------------------------------------------------------- check_k


@pytest.mark.parametrize("k", [1, 4, 10_000])
def test_check_k_accepts_positive_ints(k: int) -> None:
    assert check_k(k) == k


@pytest.mark.parametrize("bad", [0, -1, True, 2.0, "3", None])
def test_check_k_rejects_others(bad: Any) -> None:
    with pytest.raises(ValueError, match="fetch_k must be a positive integer"):
        check_k(bad, "fetch_k")
