"""A collection written by langchain-milvus (scalar metadata columns) opened by our store."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_milvus import Milvus as LangchainMilvus
from pymilvus import DataType

from langchain_milvus_ext import MilvusVectorStore

pytestmark = pytest.mark.lite


def test_open_search_filter_and_write_a_langchain_milvus_collection(tmp_path: Path) -> None:
    uri = str(tmp_path / "old.db")
    embeddings = DeterministicFakeEmbedding(size=16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        old = LangchainMilvus(embeddings, connection_args={"uri": uri}, collection_name="old",
                              auto_id=True)
        old.add_texts(["alpha", "beta", "gamma"],
                      [{"topic": "a", "n": 1}, {"topic": "b", "n": 2}, {"topic": "a", "n": 3}])
    store = MilvusVectorStore(embeddings, connection_args={"uri": uri}, collection_name="old")
    top = store.similarity_search("alpha", k=1)[0]
    assert top.page_content == "alpha" and top.metadata == {"topic": "a", "n": 1}
    assert "pk" not in top.metadata and top.id is not None
    assert {d.page_content for d in store.similarity_search("x", k=3, filter={"topic": "a"})} == {
        "alpha", "gamma"}
    scored = store.similarity_search_with_relevance_scores("alpha", k=3)
    assert store.metric == "L2" and scored[0][1] == pytest.approx(1.0)
    assert all(0.0 <= s <= 1.0 for _, s in scored)
    (new_id,) = store.add_texts(["delta"], [{"topic": "d", "n": 4}])  # server-assigned id
    assert store.get_by_ids([new_id])[0].metadata == {"topic": "d", "n": 4}
    with pytest.raises(ValueError, match="not fields of this collection"):
        store.add_texts(["epsilon"], [{"topic": "e", "unknown": 1}])


LAYOUTS = {
    "columns": {},
    "dynamic": {"enable_dynamic_field": True},
    "json": {"metadata_field": "metadata"},
    "schema": {"metadata_schema": {"n": {"dtype": DataType.INT64}}},
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_langchain_milvus_layout_opens_with_default_arguments(
    tmp_path: Path, layout: str,
) -> None:
    uri = str(tmp_path / "theirs.db")
    embeddings = DeterministicFakeEmbedding(size=16)
    metadatas = [{"topic": "a", "n": 1}, {"topic": "b", "n": 2}, {"topic": "a", "n": 3}]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = LangchainMilvus(embeddings, connection_args={"uri": uri}, collection_name="t",
                                 **LAYOUTS[layout])
        theirs.add_texts(["alpha", "beta", "gamma"], metadatas)
    store = MilvusVectorStore(embeddings, connection_args={"uri": uri}, collection_name="t")
    top = store.similarity_search("alpha", k=1)[0]
    assert top.page_content == "alpha" and top.metadata == metadatas[0]
    assert {d.page_content for d in store.similarity_search("x", k=3, filter={"topic": "a"})} == {
        "alpha", "gamma"}
    assert len(store.get_pks({"n": {"$gte": 2}})) == 2
    raw = 'metadata["n"] >= 2' if layout == "json" else "n >= 2"
    assert len(store.search_by_metadata(raw)) == 2
    (new_id,) = store.add_texts(["delta"], [{"topic": "d", "n": 4}])
    assert store.get_by_ids([new_id])[0].metadata == {"topic": "d", "n": 4}
    assert store.delete(filter={"topic": "d"}) and store.get_by_ids([new_id]) == []


def test_our_default_collection_opens_in_langchain_milvus(tmp_path: Path) -> None:
    uri = str(tmp_path / "ours.db")
    embeddings = DeterministicFakeEmbedding(size=16)
    ours = MilvusVectorStore(embeddings, connection_args={"uri": uri}, collection_name="o",
                             auto_id=True)
    ours.add_texts(["alpha", "beta"], [{"topic": "a", "tags": ["x"]}, {"topic": "b"}])
    ours.close()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = LangchainMilvus(embeddings, connection_args={"uri": uri}, collection_name="o",
                                 enable_dynamic_field=True, auto_id=True)
        top = theirs.similarity_search("alpha", k=1, expr="topic == 'a'")[0]
        theirs.add_texts(["gamma"], [{"topic": "c"}])
    assert top.page_content == "alpha" and top.metadata["tags"] == ["x"]
    reopened = MilvusVectorStore(embeddings, connection_args={"uri": uri}, collection_name="o")
    assert [d.page_content for d in reopened.search_by_metadata({"topic": "c"})] == ["gamma"]
