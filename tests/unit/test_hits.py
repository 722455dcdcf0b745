"""`_hits.read_hits`: the hits pymilvus's `SearchResult` gives, read column by column."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pymilvus import DataType
from pymilvus.client.search_result import SearchResult
from pymilvus.grpc_gen import schema_pb2

from langchain_milvus_ext._hits import read_hits

TOPKS = [3, 1, 0, 2]  # queries with fewer hits than the limit, and one with none
ROWS = sum(TOPKS)


def _result(*fields: schema_pb2.FieldData, int_pk: bool = False, pk_name: str = "pk",
            output_fields: list[str] | None = None) -> schema_pb2.SearchResultData:
    data = schema_pb2.SearchResultData(num_queries=len(TOPKS), top_k=3, topks=TOPKS,
                                       scores=[0.5 - i / 16 for i in range(ROWS)],
                                       primary_field_name=pk_name)
    if int_pk:
        data.ids.int_id.data.extend(range(100, 100 + ROWS))
    else:
        data.ids.str_id.data.extend(f"id{i}" for i in range(ROWS))
    data.fields_data.extend(fields)
    names = [f.field_name for f in fields]
    data.output_fields.extend(names if output_fields is None else output_fields)
    return data


def _scalar(name: str, dtype: DataType, attr: str, values: list[Any]) -> schema_pb2.FieldData:
    field = schema_pb2.FieldData(field_name=name, type=dtype)
    getattr(field.scalars, attr).data.extend(values)
    return field


def _json(name: str, values: list[Any], dynamic: bool = False) -> schema_pb2.FieldData:
    field = schema_pb2.FieldData(field_name=name, type=DataType.JSON, is_dynamic=dynamic)
    field.scalars.json_data.data.extend(json.dumps(v).encode() for v in values)
    return field


def _vectors(name: str, dim: int) -> schema_pb2.FieldData:
    field = schema_pb2.FieldData(field_name=name, type=DataType.FLOAT_VECTOR)
    field.vectors.dim = dim
    field.vectors.float_vector.data.extend(i / 4 for i in range(ROWS * dim))
    return field


def _pymilvus(data: schema_pb2.SearchResultData) -> list[list[dict[str, Any]]]:
    return [[dict(hit) for hit in query] for query in SearchResult(data, -1)]


def _same_as_pymilvus(data: schema_pb2.SearchResultData) -> list[list[dict[str, Any]]]:
    ours, theirs = read_hits(data), _pymilvus(data)
    assert ours == theirs
    assert ours is not None
    assert [[list(h) + list(h["entity"]) for h in q] for q in ours] == [
        [list(h) + list(h["entity"]) for h in q] for q in theirs]  # key order too
    return ours


def test_typed_columns_and_a_json_metadata_field() -> None:
    hits = _same_as_pymilvus(_result(
        _scalar("text", DataType.VARCHAR, "string_data", [f"t{i}" for i in range(ROWS)]),
        _json("metadata", [{"a": i, "nested": {"b": [i]}} for i in range(ROWS)]),
        _scalar("page", DataType.INT64, "long_data", list(range(ROWS))),
        _scalar("rank", DataType.INT32, "int_data", list(range(ROWS))),
        _scalar("score", DataType.DOUBLE, "double_data", [i / 3 for i in range(ROWS)]),
        _scalar("weight", DataType.FLOAT, "float_data", [i / 3 for i in range(ROWS)]),
        _scalar("ok", DataType.BOOL, "bool_data", [i % 2 == 0 for i in range(ROWS)]),
    ))
    assert [len(q) for q in hits] == TOPKS
    assert hits[1][0]["pk"] == "id3" and hits[1][0]["entity"]["metadata"] == {
        "a": 3, "nested": {"b": [3]}}


def test_dynamic_field_spreads_into_the_entity() -> None:
    _same_as_pymilvus(_result(
        _scalar("text", DataType.VARCHAR, "string_data", [f"t{i}" for i in range(ROWS)]),
        _json("$meta", [{"source": f"s{i}", "page": i} for i in range(ROWS)], dynamic=True),
    ))


def test_dynamic_keys_asked_for_by_name_are_the_only_ones_kept() -> None:
    hits = _same_as_pymilvus(_result(
        _json("$meta", [{"source": f"s{i}", "page": i} for i in range(ROWS)], dynamic=True),
        output_fields=["source"],
    ))
    assert hits[0][0]["entity"] == {"source": "s0"}


def test_vectors_int_keys_and_the_default_key_name() -> None:
    hits = _same_as_pymilvus(_result(_vectors("vector", 3), int_pk=True, pk_name=""))
    assert hits[0][1] == {"id": 101, "distance": pytest.approx(0.5 - 1 / 16),
                          "entity": {"vector": [0.75, 1.0, 1.25]}}


def test_no_hits_at_all() -> None:
    data = schema_pb2.SearchResultData(num_queries=2, top_k=3, topks=[0, 0])
    assert read_hits(data) == _pymilvus(data) == [[], []]


def _nullable() -> schema_pb2.SearchResultData:
    field = _scalar("page", DataType.INT64, "long_data", list(range(ROWS)))
    field.valid_data.extend([i % 2 == 0 for i in range(ROWS)])
    return _result(field)


def _array() -> schema_pb2.SearchResultData:
    field = schema_pb2.FieldData(field_name="tags", type=DataType.ARRAY)
    for i in range(ROWS):
        field.scalars.array_data.data.add().long_data.data.extend([i])
    return _result(field)


def _short() -> schema_pb2.SearchResultData:
    return _result(_scalar("text", DataType.VARCHAR, "string_data", ["only one"]))


def _offsets() -> schema_pb2.SearchResultData:
    data = _result()
    data.element_indices.data.extend(range(ROWS))
    return data


@pytest.mark.parametrize("data", [_nullable, _array, _short, _offsets])
def test_what_only_pymilvus_reads_is_left_to_it(data: Any) -> None:
    assert read_hits(data()) is None
