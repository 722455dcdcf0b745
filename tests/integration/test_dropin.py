"""langchain-milvus code runs unchanged on our store: its layouts, raw expressions, defaults,
attributes and per-call arguments, on a Lite file, a `milvus-lite server` and Milvus 2.3.5."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings
from pymilvus import DataType

from langchain_milvus_ext import Milvus

TEXTS = ["foo", "bar", "baz"]


class Directions(Embeddings):
    """Unit vectors: left/right opposite, up/down opposite, the two pairs orthogonal."""

    VECTORS = {"left": [-1.0, 0.0], "right": [1.0, 0.0], "up": [0.0, 1.0], "down": [0.0, -1.0]}

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.VECTORS[t] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.VECTORS[text]


@pytest.fixture(params=[
    pytest.param("file", marks=pytest.mark.lite),
    pytest.param("lite_server", marks=pytest.mark.server),
    pytest.param("milvus235", marks=pytest.mark.server),
])
def uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "file":
        return str(tmp_path / "dropin.db")
    return str(request.getfixturevalue(f"{request.param}_uri"))


@pytest.fixture()
def make(uri: str) -> Iterator[Any]:
    stores: list[Milvus] = []

    def factory(metadatas: list[dict[str, Any]] | None = None, texts: list[str] = TEXTS,
                embedding: Embeddings | None = None, **kwargs: Any) -> Milvus:
        kwargs.setdefault("collection_name", f"c_{uuid.uuid4().hex[:10]}")
        store = Milvus.from_texts(
            texts, embedding or DeterministicFakeEmbedding(size=8), metadatas=metadatas,
            connection_args={"uri": uri}, drop_old=True, consistency_level="Strong", **kwargs)
        stores.append(store)
        return store

    yield factory
    for store in stores:
        store.drop()
        store.close()


def _count(store: Milvus) -> int:
    return len(store.get_pks("pk != ''" if not store._state.layout.pk_is_int else "pk >= 0"))


def test_default_layout_takes_raw_expressions_on_metadata_keys(make: Any) -> None:
    metadatas = [{"id": i, "year": 2019 + i, "tag": f"t'{i}", "flag": i % 2 == 0,
                  "nested": {"a": i}, "array_field": [i, i + 1, i + 2]} for i in range(3)]
    store = make(metadatas)
    assert store.fields == ["pk", "text", "vector"]  # keys live in the dynamic field
    assert len(store.get_pks("id in [1,2]")) == 2
    assert len(store.similarity_search("foo", k=10, expr="year > 2020")) == 1
    assert len(store.similarity_search("foo", k=10, expr="array_field[0] < 2")) == 2
    assert len(store.similarity_search("foo", k=10, expr="ARRAY_CONTAINS(array_field, 3)")) == 2
    assert len(store.search_by_metadata("tag == \"t'1\"")) == 1
    assert len(store.search_by_metadata("flag == true")) == 2
    assert len(store.search_by_metadata('nested["a"] == 2')) == 1
    rows = store.client.query(collection_name=store.collection_name, filter="id in [1]")
    assert rows[0]["id"] == 1 and rows[0]["tag"] == "t'1"  # keys at the top level
    docs = store.search_by_metadata("id == 0")
    assert docs[0].metadata == metadatas[0]  # exactly as stored


def test_documents_with_different_keys_share_the_default_collection(make: Any) -> None:
    store = make([{"id": 0}, {"source": "a.pdf"}, {}])
    new = {"year": 2024, "tags": ["x", "y"], "id": "a string now"}
    (key,) = store.add_texts(["qux"], [new])
    assert store.get_by_ids([key])[0].metadata == new
    assert len(store.search_by_metadata("source == 'a.pdf'")) == 1
    assert store.delete(expr="id == 'a string now'") is True
    assert store.get_by_ids([key]) == []


def test_tutorial_delete_by_expression(make: Any) -> None:
    store = make([{"id": f"doc_{i}"} for i in range(3)])
    store.delete(expr='id == "doc_1"')
    assert sorted(d.metadata["id"] for d in store.similarity_search("foo", k=10)) == [
        "doc_0", "doc_2"]


def test_disabled_dynamic_field_makes_columns_and_refuses_unknown_keys(make: Any) -> None:
    store = make([{"id": i} for i in range(3)], enable_dynamic_field=False)
    assert store.fields == ["pk", "text", "vector", "id"]
    assert len(store.get_pks("id in [1,2]")) == 2
    # langchain-milvus drops `id_new` silently; we refuse the write, and nothing is written.
    with pytest.raises(ValueError, match="id_new"):
        store.add_texts(TEXTS, [{"id": i, "id_new": i} for i in range(3)])
    with pytest.raises(ValueError, match="lacks the key 'id'"):
        store.add_texts(["x"], [{}])
    with pytest.raises(ValueError, match="INT64"):
        store.add_texts(["x"], [{"id": "not an int"}])
    assert _count(store) == 3


def test_metadata_field_layout(make: Any) -> None:
    store = make([{"id": i} for i in range(3)], metadata_field="metadata")
    assert store.fields == ["pk", "text", "vector", "metadata"]
    store.add_texts(TEXTS, [{"id_new": i} for i in range(3)])
    assert len(store.similarity_search("foo", k=10)) == 6
    assert len(store.get_pks('metadata["id"] >= 1')) == 2
    assert len(store.get_pks({"id_new": {"$gte": 1}})) == 2


def test_metadata_schema_makes_typed_columns(make: Any) -> None:
    metadatas = [{"id": i, "array_field": [i, i + 1, i + 2]} for i in range(3)]
    store = make(metadatas, metadata_schema={"array_field": {
        "dtype": DataType.ARRAY, "element_type": DataType.INT64, "max_capacity": 50}})
    assert store.fields == ["pk", "text", "vector", "array_field"]
    assert len(store.similarity_search("foo", k=10, expr="array_field[0] < 2")) == 2
    assert len(store.similarity_search("foo", k=10, expr="ARRAY_CONTAINS(array_field, 3)")) == 2
    assert store.search_by_metadata("id == 2")[0].metadata == metadatas[2]
    with pytest.raises(ValueError, match="array_field"):
        store.add_texts(["x"], [{"id": 9, "array_field": "not a list"}])


def test_partition_key_with_dynamic_field(make: Any) -> None:
    metadatas = [{"id": i, "namespace": f"name_{i}"} for i in range(3)]
    store = make(metadatas, enable_dynamic_field=True, partition_key_field="namespace")
    assert set(store.fields) == {"pk", "text", "vector", "namespace"}
    assert len(store.similarity_search("foo", k=10)) == 3
    assert [d.metadata for d in store.similarity_search("foo", k=10, expr="id == 2")] == [
        metadatas[2]]


def test_default_metric_is_l2_and_scores_are_distances(make: Any) -> None:
    store = make([{"page": i} for i in range(3)])
    scored = store.similarity_search_with_score("foo", k=3)
    assert store.metric == "L2"
    assert scored[0][0].page_content == "foo" and scored[0][1] == pytest.approx(0.0, abs=1e-5)
    assert [s for _, s in scored] == sorted(s for _, s in scored)  # ascending distances


@pytest.mark.parametrize("metric", ["L2", "IP", "COSINE"])
def test_relevance_of_orthogonal_unit_vectors_is_one_half(make: Any, metric: str) -> None:
    store = make(None, texts=["left", "right", "up", "down"], embedding=Directions(),
                 index_params={"metric_type": metric, "index_type": "FLAT", "params": {}})
    scored = store.similarity_search_with_relevance_scores("down", k=4)
    assert scored[0][0].page_content == "down" and scored[0][1] == pytest.approx(1.0)
    assert sorted(round(s, 6) for _, s in scored[1:3]) == [0.5, 0.5]
    assert scored[-1][0].page_content == "up" and scored[-1][1] == pytest.approx(0.0, abs=1e-6)
    retriever = store.as_retriever(search_type="similarity_score_threshold",
                                   search_kwargs={"score_threshold": 0.4999, "k": 4})
    assert len(retriever.invoke("down")) == 3
    assert all(math.isfinite(s) for _, s in scored)


def test_per_call_search_arguments_pass_through(make: Any) -> None:
    store = make([{"group": i % 2, "title": f"t{i}", "other": i} for i in range(3)])
    docs = store.similarity_search("foo", k=3, consistency_level="Strong",
                                   output_fields=["title"])
    assert {tuple(d.metadata) for d in docs} == {("title",)}
    with pytest.raises(TypeError, match="consistancy_level"):
        store.similarity_search("foo", k=3, consistancy_level="Strong")
    with pytest.raises(TypeError, match="partition"):
        store.add_texts(["x"], partition="typo")


def test_collection_properties_are_applied(make: Any) -> None:
    store = make(None, collection_properties={"collection.ttl.seconds": 3600})
    properties = store.client.describe_collection(store.collection_name)["properties"]
    assert str(properties.get("collection.ttl.seconds")) == "3600"


@pytest.mark.lite
def test_auto_id_upsert_replaces_rows_in_place(tmp_path: Path) -> None:
    store = Milvus.from_texts(TEXTS, DeterministicFakeEmbedding(size=8),
                              metadatas=[{"id": i} for i in range(3)],
                              connection_args={"uri": str(tmp_path / "a.db")}, auto_id=True,
                              consistency_level="Strong")
    pks = store.get_pks("id in [1,2]")
    store.upsert(pks, [Document(page_content="test_1", metadata={"id": 1}),
                       Document(page_content="test_2", metadata={"id": 3})])
    rows = store.client.query(collection_name=store.collection_name, filter="id in [1,3]")
    assert sorted(r["id"] for r in rows) == [1, 3]
    assert sorted(r["pk"] for r in rows) == sorted(pks)  # the same keys, replaced in place
    assert len(store.get_pks("id >= 0")) == 3


@pytest.mark.lite
def test_a_json_metadata_collection_of_ours_still_opens(tmp_path: Path) -> None:
    uri = str(tmp_path / "old.db")
    old = Milvus.from_texts(TEXTS, DeterministicFakeEmbedding(size=8),
                            metadatas=[{"n": i} for i in range(3)], connection_args={"uri": uri},
                            metadata_field="metadata", collection_name="old")
    old.close()
    store = Milvus(DeterministicFakeEmbedding(size=8), connection_args={"uri": uri},
                   collection_name="old")
    assert store.search_by_metadata({"n": 1})[0].metadata == {"n": 1}
    (key,) = store.add_texts(["new"], [{"n": 9, "extra": True}])
    assert store.get_by_ids([key])[0].metadata == {"n": 9, "extra": True}


def test_a_collection_made_without_an_index_is_indexed_and_opens(uri: str) -> None:
    """As with langchain-milvus: the store makes the missing vector index and loads it (this
    is also what a second caller sees while a first is creating the collection)."""
    from pymilvus import MilvusClient

    name = f"c_{uuid.uuid4().hex[:10]}"
    client = MilvusClient(uri=uri)
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
    schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("text", DataType.VARCHAR, max_length=256)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=8)
    client.create_collection(name, schema=schema)
    client.insert(name, [{"pk": "a", "text": "foo", "vector": [0.1] * 8, "n": 1}])
    assert client.list_indexes(name) == []
    store = Milvus(DeterministicFakeEmbedding(size=8), connection_args={"uri": uri},
                   collection_name=name, consistency_level="Strong")
    try:
        store.add_texts(["bar"], [{"n": 2}], ids=["b"])
        hits = store.similarity_search("foo", k=2, consistency_level="Strong")
        assert {d.metadata["n"] for d in hits} == {1, 2}
        assert len(client.list_indexes(name)) == 1
        assert store._state.layout.metric == "L2"
    finally:
        store.drop()
        store.close()
        client.close()


async def test_concurrent_first_writes_to_a_new_collection_all_land(uri: str) -> None:
    """Many callers writing to a collection that does not exist yet: one creates it while
    the others find it without its index; every call lands."""
    import asyncio

    store = Milvus(DeterministicFakeEmbedding(size=8), connection_args={"uri": uri},
                   collection_name=f"c_{uuid.uuid4().hex[:10]}", consistency_level="Strong",
                   batch_size=8)
    try:
        calls = [store.aadd_texts([f"t{i}-{j}" for j in range(8)],
                                  ids=[f"d{i}-{j}" for j in range(8)]) for i in range(40)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert [r for r in results if isinstance(r, BaseException)] == []
        assert _count(store) == 320
    finally:
        store.drop()
        store.close()


TUTORIAL = Path(__file__).resolve().parents[2] / "examples" / "async_tutorial.py"


@pytest.mark.parametrize("target", [pytest.param("file", marks=pytest.mark.lite),
                                    pytest.param("milvus235", marks=pytest.mark.server)])
def test_the_async_tutorial_runs_with_one_changed_import(
    target: str, tmp_path: Path, request: pytest.FixtureRequest,
) -> None:
    source = TUTORIAL.read_text()
    assert "from langchain_milvus_ext import Milvus  # was: from langchain_milvus" in source
    uri = (str(tmp_path / "tutorial.db") if target == "file"
           else str(request.getfixturevalue("milvus235_uri")))
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    done = subprocess.run([sys.executable, str(TUTORIAL), uri], capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "all results checked" in done.stdout
