"""A collection written by langchain-milvus (scalar metadata columns) opened by our store."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_milvus import Milvus as LangchainMilvus

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
