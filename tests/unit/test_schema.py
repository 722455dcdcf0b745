"""Unit tests for `langchain_milvus_ext._schema` (pure, no server)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from layouts import planned
from pymilvus import DataType

from langchain_milvus_ext import _schema as schema_module
from langchain_milvus_ext._filters import FieldRef
from langchain_milvus_ext._schema import (
    DEFAULT_PK_MAX_LENGTH,
    DEFAULT_TEXT_MAX_LENGTH,
    CollectionLayout,
    CreateOptions,
    create_collection_args,
    freeze,
    layout_from_description,
    search_params_for,
    with_inferred_columns,
)


def field(name: str, dtype: DataType, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": dtype, "params": extra.pop("params", {}), **extra}


def langchain_milvus_description(**overrides: Any) -> dict[str, Any]:
    """What describe_collection returns for a collection langchain-milvus created."""
    description: dict[str, Any] = {
        "collection_name": "lc",
        "auto_id": True,
        "enable_dynamic_field": False,
        "fields": [
            field("pk", DataType.INT64, is_primary=True, auto_id=True),
            field("text", DataType.VARCHAR, params={"max_length": 4096}),
            field("vector", DataType.FLOAT_VECTOR, params={"dim": 8}),
            field("source", DataType.VARCHAR, params={"max_length": 256}),
            field("page", DataType.INT64),
        ],
    }
    description.update(overrides)
    return description


# --------------------------------------------------------------------------- layout_for


def test_default_plan() -> None:
    layout = planned()
    assert layout.metric == "L2"  # langchain-milvus's default metric
    assert layout.metadata_field == "metadata"
    assert not layout.dynamic and not layout.exists
    assert layout.dim is None
    assert layout.pk_is_int is False and layout.auto_id is False
    assert layout.index_type == "AUTOINDEX"
    assert dict(layout.scalar_fields) == {}


@pytest.mark.parametrize(
    ("given_metric", "metric"), [("ip", "IP"), ("L2", "L2"), ("Cosine", "COSINE")]
)
def test_metric_is_normalised(given_metric: str, metric: str) -> None:
    layout = planned(index_params={"metric_type": given_metric, "index_type": "hnsw"})
    assert layout.metric == metric
    assert layout.index_type == "HNSW"


@pytest.mark.parametrize("metric", ["HAMMING", "JACCARD", "BM25", "euclid"])
def test_unsupported_metric_is_rejected(metric: str) -> None:
    with pytest.raises(ValueError, match="metric_type"):
        planned(index_params={"metric_type": metric})


@pytest.mark.parametrize("name", ["primary_field", "text_field", "vector_field"])
@pytest.mark.parametrize("bad", ["", None, 3])
def test_field_names_must_be_non_empty_strings(name: str, bad: Any) -> None:
    with pytest.raises(ValueError, match=name):
        planned(**{name: bad})


def test_dynamic_mode_has_no_metadata_field() -> None:
    layout = planned(enable_dynamic_field=True, metadata_field=None)
    assert layout.dynamic is True
    assert layout.metadata_field is None


def test_default_layout_is_the_dynamic_field() -> None:
    layout = planned(enable_dynamic_field=None, metadata_field=None)
    assert layout.dynamic and layout.metadata_field is None and not layout.infer_columns


def test_disabled_dynamic_field_infers_columns_from_the_first_document() -> None:
    layout = planned(enable_dynamic_field=False, metadata_field=None)
    assert not layout.dynamic and layout.metadata_field is None and layout.infer_columns
    first = with_inferred_columns(layout, {"id": 1, "s": "a", "f": 0.5, "b": True, "l": [1]})
    assert dict(first.scalar_fields) == {
        "id": DataType.INT64, "s": DataType.VARCHAR, "f": DataType.DOUBLE,
        "b": DataType.BOOL, "l": DataType.JSON,
    }
    assert not first.infer_columns


def test_dynamic_field_wins_over_metadata_field_as_in_langchain_milvus() -> None:
    layout = planned(enable_dynamic_field=True, metadata_field="meta")
    assert layout.dynamic is True
    assert layout.metadata_field is None


def test_metadata_schema_declares_typed_columns() -> None:
    layout = planned(metadata_field=None, enable_dynamic_field=None, metadata_schema={
        "tags": {"dtype": DataType.ARRAY, "element_type": DataType.INT64, "max_capacity": 8},
        "year": {"dtype": DataType.INT64, "kwargs": {"nullable": True}},
    })
    assert dict(layout.scalar_fields) == {"tags": DataType.ARRAY, "year": DataType.INT64}
    assert layout.column_args["tags"] == {"element_type": DataType.INT64, "max_capacity": 8}
    assert layout.column_args["year"] == {"nullable": True}
    args = create_collection_args(layout, 4, CreateOptions(consistency_level="Strong"))
    fields = _fields(args)
    assert fields["tags"]["type"] == DataType.ARRAY
    assert fields["tags"]["params"]["max_capacity"] == 8


@pytest.mark.parametrize("bad", [{"year": DataType.INT64}, {"year": {"type": "int"}},
                                 {"pk": {"dtype": DataType.INT64}},
                                 {"v": {"dtype": DataType.FLOAT_VECTOR}}, ["year"]])
def test_bad_metadata_schema_is_a_clear_error(bad: Any) -> None:
    with pytest.raises(ValueError, match="metadata_schema"):
        planned(metadata_schema=bad)


def test_custom_metadata_field_name() -> None:
    assert planned(metadata_field="props").metadata_field == "props"


def test_partition_key_is_a_varchar_column() -> None:
    layout = planned(partition_key_field="tenant")
    assert dict(layout.scalar_fields) == {"tenant": DataType.VARCHAR}


def test_auto_id_means_int_primary_key() -> None:
    layout = planned(auto_id=True)
    assert layout.auto_id and layout.pk_is_int


def test_reserved_keys_and_output_fields() -> None:
    layout = planned(partition_key_field="tenant")
    assert layout.reserved_keys == {"pk", "text", "vector", "metadata", "$meta"}
    assert layout.output_fields() == ["text", "tenant", "metadata"]
    assert layout.output_fields(with_vector=True)[-1] == "vector"
    dynamic = planned(enable_dynamic_field=True, metadata_field=None)
    assert dynamic.output_fields() == ["text", "$meta"]


# --------------------------------------------------------------------------- create_collection_args


def _fields(args: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in args["schema"].to_dict()["fields"]}


def _indexes(args: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {i.field_name: i.to_dict() for i in args["index_params"]}


def test_create_collection_args_default_schema() -> None:
    args = create_collection_args(planned(), 16, CreateOptions(consistency_level="Session"))
    fields = _fields(args)
    assert list(fields) == ["pk", "text", "vector", "metadata"]
    assert fields["pk"]["type"] == DataType.VARCHAR and fields["pk"]["is_primary"]
    assert fields["pk"]["params"]["max_length"] == DEFAULT_PK_MAX_LENGTH
    assert fields["text"]["type"] == DataType.VARCHAR
    assert fields["text"]["params"]["max_length"] == DEFAULT_TEXT_MAX_LENGTH
    assert fields["vector"]["type"] == DataType.FLOAT_VECTOR
    assert fields["vector"]["params"]["dim"] == 16
    assert fields["metadata"]["type"] == DataType.JSON
    assert args["schema"].to_dict()["enable_dynamic_field"] is False
    assert _indexes(args)["vector"]["metric_type"] == "L2"
    assert args["consistency_level"] == "Session"
    assert "num_partitions" not in args


def test_create_collection_args_auto_id_dynamic_partitioned() -> None:
    index_params = {"metric_type": "ip", "index_type": "HNSW", "params": {"M": 16}}
    layout = planned(
        auto_id=True, enable_dynamic_field=True, index_params=index_params,
        partition_key_field="tenant", metadata_field=None,
    )
    args = create_collection_args(layout, 4, CreateOptions(
        index_params=index_params, partition_key_field="tenant", num_partitions=8,
        consistency_level="Strong",
    ))
    schema = args["schema"].to_dict()
    fields = _fields(args)
    assert schema["enable_dynamic_field"] is True
    assert fields["pk"]["type"] == DataType.INT64 and fields["pk"]["auto_id"] is True
    assert "metadata" not in fields
    assert fields["tenant"]["type"] == DataType.VARCHAR and fields["tenant"]["is_partition_key"]
    index = _indexes(args)["vector"]
    assert index["metric_type"] == "IP"
    assert index["index_type"] == "HNSW"
    assert index["M"] == 16
    assert args["num_partitions"] == 8


# ----------------------------------------------------------------------- layout_from_description


def test_langchain_milvus_collection_is_read_back() -> None:
    index = {"field_name": "vector", "metric_type": "L2", "index_type": "HNSW"}
    layout = layout_from_description(planned(), langchain_milvus_description(), index)
    assert layout.exists
    assert layout.pk_field == "pk" and layout.pk_is_int and layout.auto_id
    assert layout.dim == 8
    assert layout.text_max_length == 4096
    assert layout.metric == "L2" and layout.index_type == "HNSW"
    assert layout.metadata_field is None  # the planned JSON field does not exist there
    assert dict(layout.scalar_fields) == {"source": DataType.VARCHAR, "page": DataType.INT64}


def test_json_metadata_field_is_detected() -> None:
    description = {
        "auto_id": False,
        "enable_dynamic_field": False,
        "fields": [
            field("id", DataType.VARCHAR, is_primary=True, params={"max_length": 100}),
            field("text", DataType.VARCHAR, params={"max_length": 65535}),
            field("vector", DataType.FLOAT_VECTOR, params={"dim": "3"}),
            field("metadata", DataType.JSON),
            field("tenant", DataType.VARCHAR, params={"max_length": 64}),
        ],
    }
    layout = layout_from_description(planned(), description, None)
    assert layout.pk_field == "id" and not layout.pk_is_int and not layout.auto_id
    assert layout.pk_max_length == 100
    assert layout.dim == 3
    assert layout.metadata_field == "metadata"
    assert dict(layout.scalar_fields) == {"tenant": DataType.VARCHAR}
    assert layout.metric == "L2"  # no index description: keep the planned metric


def test_dynamic_flag_is_read() -> None:
    layout = layout_from_description(
        planned(), langchain_milvus_description(enable_dynamic_field=True), None
    )
    assert layout.dynamic is True


def test_vector_field_found_by_type_when_names_differ() -> None:
    description = langchain_milvus_description()
    description["fields"][2] = field("embedding", DataType.FLOAT_VECTOR, params={"dim": 5})
    layout = layout_from_description(planned(), description, None)
    assert layout.vector_field == "embedding" and layout.dim == 5


def test_missing_vector_field() -> None:
    description = langchain_milvus_description()
    del description["fields"][2]
    with pytest.raises(ValueError, match="no float vector field named 'vector'"):
        layout_from_description(planned(), description, None)


def test_vector_field_of_another_type() -> None:
    description = langchain_milvus_description()
    description["fields"][2] = field("vector", DataType.BINARY_VECTOR, params={"dim": 8})
    with pytest.raises(ValueError, match="no float vector field"):
        layout_from_description(planned(), description, None)


def test_missing_text_field() -> None:
    description = langchain_milvus_description()
    del description["fields"][1]
    with pytest.raises(ValueError, match="no VARCHAR text field named 'text'"):
        layout_from_description(planned(), description, None)


def test_missing_primary_key() -> None:
    description = langchain_milvus_description()
    description["fields"][0] = field("pk", DataType.INT64)
    with pytest.raises(ValueError, match="no primary key"):
        layout_from_description(planned(), description, None)


# --------------------------------------------------------------------------- resolve_key


def test_keys_resolve_into_the_json_metadata_field() -> None:
    resolve = planned().resolve_key
    assert resolve("a") == FieldRef('metadata["a"]', is_json_path=True)
    assert resolve("a.b") == FieldRef('metadata["a"]["b"]', is_json_path=True)
    assert resolve("pk") == FieldRef('metadata["pk"]', is_json_path=True)


def test_keys_resolve_to_scalar_columns() -> None:
    layout = CollectionLayout(
        metadata_field=None,
        scalar_fields={"source": DataType.VARCHAR, "extra": DataType.JSON},
    )
    resolve = layout.resolve_key
    assert resolve("source") == FieldRef("source", is_json_path=False)
    assert resolve("extra.x.y") == FieldRef('extra["x"]["y"]', is_json_path=True)
    with pytest.raises(ValueError, match="not a JSON field"):
        resolve("source.x")
    with pytest.raises(ValueError, match="not a metadata field"):
        resolve("author")


def test_scalar_column_wins_over_json_metadata() -> None:
    resolve = planned(partition_key_field="tenant").resolve_key
    assert resolve("tenant") == FieldRef("tenant", is_json_path=False)
    assert resolve("other") == FieldRef('metadata["other"]', is_json_path=True)


def test_keys_resolve_into_the_dynamic_field() -> None:
    resolve = planned(enable_dynamic_field=True, metadata_field=None).resolve_key
    assert resolve("genre") == FieldRef("genre", is_json_path=True, takes_in=True)
    assert resolve("a.b") == FieldRef('$meta["a"]["b"]', is_json_path=True)
    for word in ("like", "IN", "exists", "array_contains", "true"):  # grammar words: by path
        assert resolve(word) == FieldRef(f'$meta["{word}"]', is_json_path=True)
    for reserved in ("pk", "text", "vector"):
        with pytest.raises(ValueError, match="reserved"):
            resolve(reserved)


@pytest.mark.parametrize("bad", ["", "1a", "a-b", "a..b", "a.", 'a"]', "a b", "$meta"])
def test_invalid_keys_raise(bad: str) -> None:
    for layout in (planned(), planned(enable_dynamic_field=True, metadata_field=None)):
        with pytest.raises(ValueError):
            layout.resolve_key(bad)


def test_resolve_key_remembers_good_keys_only_and_a_bounded_number(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    layout = planned(enable_dynamic_field=True, metadata_field=None)
    first = layout.resolve_key("genre")
    assert first == layout._resolve("genre") and layout.resolve_key("genre") is first
    for bad in ("pk", "a-b", 3, ["genre"]):  # refused every time, never remembered
        for _ in range(2):
            with pytest.raises(ValueError):
                layout.resolve_key(bad)  # type: ignore[arg-type]
    assert set(layout._resolved_keys) == {"genre"}
    monkeypatch.setattr(schema_module, "_RESOLVED_KEYS_KEPT", 3)
    for i in range(10):
        assert layout.resolve_key(f"k{i}") == FieldRef(f"k{i}", is_json_path=True, takes_in=True)
    assert len(layout._resolved_keys) == 3
    other = planned(enable_dynamic_field=True, metadata_field=None)  # each has its own
    assert other.resolve_key("genre") == first and set(other._resolved_keys) == {"genre"}


# --------------------------------------------------------------------------- search_params_for


HNSW = replace(planned(index_params={"index_type": "HNSW"}), dim=4, exists=True)


def test_default_search_params_without_hnsw() -> None:
    assert search_params_for(planned(), 10, None) == {"metric_type": "L2", "params": {}}


@given(st.integers(1, 16_384))
def test_hnsw_ef_is_at_least_the_limit(limit: int) -> None:
    params = search_params_for(HNSW, limit, None)
    assert params["metric_type"] == "L2"
    assert params["params"]["ef"] >= limit
    assert params["params"]["ef"] >= 64


def test_user_params_are_kept_and_metric_filled() -> None:
    user = {"params": {"nprobe": 16}}
    params = search_params_for(replace(HNSW, metric="L2"), 10, user)
    assert params == {"params": {"nprobe": 16}, "metric_type": "L2"}
    assert user == {"params": {"nprobe": 16}}  # not mutated
    assert search_params_for(HNSW, 10, {"metric_type": "IP"})["metric_type"] == "IP"


# --------------------------------------------------------------------------- freeze


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=10,
)


@given(st.dictionaries(st.text(), json_values))
def test_freeze_ignores_key_order(value: dict[str, Any]) -> None:
    reordered = dict(reversed(list(value.items())))
    assert freeze(value) == freeze(reordered)
    assert json.loads(freeze(value)) == value


def test_freeze_distinguishes_values_and_renders_others() -> None:
    assert freeze({"a": 1}) != freeze({"a": 2})
    assert freeze({"a": 1}) != freeze({"a": "1"})
    assert isinstance(freeze({"x": object()}), str)
    hash(freeze({"b": [1, {"c": 2}]}))


def test_metadata_schema_cannot_name_any_vector_field() -> None:
    """In a multi-vector store every vector field (not only the first) and the BM25 sparse
    field are taken: a metadata column of that name would clash when the collection is made."""
    from langchain_milvus_ext._vectors import VectorField

    index = {"index_type": "FLAT", "metric_type": "L2", "params": {}}
    vectors = (VectorField("dense", "dense", 0, index), VectorField("dense2", "dense", 1, index))
    for key in ("dense2", "sparse"):
        with pytest.raises(ValueError, match=f"metadata_schema key '{key}'"):
            planned(vectors=vectors, sparse_field="sparse",
                    metadata_schema={key: {"dtype": DataType.INT64}})
