"""Column-packed write requests equal the ones pymilvus builds, for every layout packed; rows
that do not fit a layout exactly are left to pymilvus."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pymilvus import DataType
from pymilvus.client.prepare import Prepare

from langchain_milvus_ext._packing import pack_rows, wire_format
from langchain_milvus_ext._pymilvus_compat import WholeText

DIM = 4


def _field(name: str, dtype: DataType, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": dtype, "params": {}, **extra}


TYPED_COLUMNS = {  # langchain-milvus's layout: a scalar column per metadata key
    "source": DataType.VARCHAR, "page": DataType.INT64, "score": DataType.DOUBLE,
    "ok": DataType.BOOL, "rank": DataType.INT32, "level": DataType.INT16, "flag": DataType.INT8,
    "weight": DataType.FLOAT,
}


def _description(*, int_pk: bool = False, auto_id: bool = False, dynamic: bool = True,
                 metadata_field: bool = False, typed: bool = False) -> dict[str, Any]:
    pk = (_field("pk", DataType.INT64, is_primary=True, auto_id=auto_id) if int_pk else
          _field("pk", DataType.VARCHAR, is_primary=True, auto_id=auto_id,
                 params={"max_length": 64}))
    fields = [pk, _field("text", DataType.VARCHAR, params={"max_length": 200}),
              _field("vector", DataType.FLOAT_VECTOR, params={"dim": DIM})]
    if metadata_field:
        fields.append(_field("metadata", DataType.JSON))
    if typed:
        fields += [_field(name, dtype, params={"max_length": 20} if name == "source" else {})
                   for name, dtype in TYPED_COLUMNS.items()]
    return {"fields": fields, "enable_dynamic_field": dynamic, "auto_id": auto_id}


def _rows(n: int = 5, *, int_pk: bool = False, with_pk: bool = True,
          metadata_field: bool = False, typed: bool = False) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        row: dict[str, Any] = {"text": WholeText(f"document {i} " * 3) if i % 2 else f"doc {i}",
                               "vector": [0.5 * i, 1.0, -2.25, float(i)]}
        if with_pk:
            row["pk"] = 10**12 + i if int_pk else f"id-{i}"
        meta = {"source": f"s{i}", "page": i, "score": 0.5 + i, "tags": ["a", "b"],
                "nested": {"k": [1, {"x": None}]}, "ok": i % 2 == 0}
        if typed:  # every integer width at its bounds, an int in the DOUBLE column
            meta = {"source": f"s{i}", "page": -(2**63) if i == 1 else i,
                    "score": 3 if i == 2 else 0.1 + i, "ok": i % 2 == 0,
                    "rank": 2**31 - 1 if i == 3 else -i, "level": -(2**15) if i == 4 else i,
                    "flag": 127 if i == 0 else -i, "weight": 0.1 * i}
        if metadata_field:
            row["metadata"] = meta
        else:
            row.update(meta)
        rows.append(row)
    return rows


def _pymilvus(method: str, description: dict[str, Any], rows: list[dict[str, Any]]) -> Any:
    fields, dynamic = description["fields"], description["enable_dynamic_field"]
    if method == "insert":
        return Prepare.row_insert_param("c", rows, "p", fields, [], enable_dynamic=dynamic)
    return Prepare.row_upsert_param("c", rows, "p", fields, [], enable_dynamic=dynamic)


LAYOUTS = {
    "dynamic, varchar pk": ({}, {}),
    "dynamic, int64 pk": ({"int_pk": True}, {"int_pk": True}),
    "json metadata field": ({"dynamic": False, "metadata_field": True},
                            {"metadata_field": True}),
    "json field and dynamic": ({"metadata_field": True}, {"metadata_field": True}),
    "auto_id, no keys": ({"int_pk": True, "auto_id": True}, {"with_pk": False}),
    "auto_id, keys given": ({"int_pk": True, "auto_id": True}, {"int_pk": True}),
    "typed metadata columns": ({"dynamic": False, "typed": True}, {"typed": True}),
    "typed columns and dynamic": ({"typed": True}, {"typed": True}),
}


@pytest.mark.parametrize(("layout", "method"), [
    (layout, method) for layout in LAYOUTS for method in ("insert", "upsert")
    if not (method == "upsert" and "with_pk" in LAYOUTS[layout][1])  # upserts name their rows
])
def test_packed_request_equals_pymilvus_request(layout: str, method: str) -> None:
    described, shaped = LAYOUTS[layout]
    description, rows = _description(**described), _rows(**shaped)
    wire = wire_format(description)
    assert wire is not None
    packed = pack_rows(wire, method, "c", rows, "p")  # type: ignore[arg-type]
    assert packed is not None
    expected = _pymilvus(method, description, rows)
    assert packed.SerializeToString(deterministic=True) == expected.SerializeToString(
        deterministic=True)
    assert packed.num_rows == len(rows)


@pytest.mark.parametrize("field", [
    _field("sparse", DataType.SPARSE_FLOAT_VECTOR),
    _field("title", DataType.VARCHAR, params={"max_length": 9}, nullable=True),
    _field("year", DataType.INT64, default_value=2024),
    _field("tags", DataType.ARRAY, element_type=DataType.VARCHAR),
    _field("other", DataType.FLOAT_VECTOR, params={"dim": 2}),
])
def test_layouts_with_other_fields_are_left_to_pymilvus(field: dict[str, Any]) -> None:
    description = _description()
    description["fields"].append(field)
    assert wire_format(description) is None


def test_layouts_with_functions_are_left_to_pymilvus() -> None:
    description = _description()
    description["functions"] = [{"name": "bm25", "type": 1}]
    assert wire_format(description) is None


def _set(rows: list[dict[str, Any]], key: str, value: Any) -> list[dict[str, Any]]:
    rows[2][key] = value
    return rows


@pytest.mark.parametrize(("described", "rows"), [
    ({}, _set(_rows(), "text", "x" * 201)),  # over max_length
    ({}, _set(_rows(), "text", b"bytes")),
    ({}, _set(_rows(), "text", None)),
    ({}, _set(_rows(), "vector", [1.0, 2.0])),  # another dim
    ({}, _set(_rows(), "vector", np.ones(DIM, dtype=np.float32))),
    ({}, _set(_rows(), "vector", [1.0, "2", 3.0, 4.0])),
    ({}, _set(_rows(), "extra", np.int64(3))),  # numpy in the dynamic field
    ({}, _set(_rows(), "extra", {1: "int key"})),
    ({}, _set(_rows(), "$meta", {})),
    ({}, [{k: v for k, v in row.items() if k != "text"} for row in _rows()]),  # missing
    ({"int_pk": True}, _set(_rows(int_pk=True), "pk", 2**63)),
    ({"int_pk": True}, _set(_rows(int_pk=True), "pk", True)),
    ({"int_pk": True, "auto_id": True},  # a key on a later row only
     _set(_rows(with_pk=False), "pk", 7)),
    ({"dynamic": False, "metadata_field": True},
     _set(_rows(metadata_field=True), "unknown", 1)),  # no dynamic field to take it
    ({"dynamic": False, "metadata_field": True},
     _set(_rows(metadata_field=True), "metadata", '{"a": 1}')),
    ({"typed": True}, _set(_rows(typed=True), "flag", 128)),  # out of each column's range
    ({"typed": True}, _set(_rows(typed=True), "level", 2**15)),
    ({"typed": True}, _set(_rows(typed=True), "rank", -(2**31) - 1)),
    ({"typed": True}, _set(_rows(typed=True), "page", 2**63)),
    ({"typed": True}, _set(_rows(typed=True), "ok", 1)),  # not of the column's type
    ({"typed": True}, _set(_rows(typed=True), "rank", True)),
    ({"typed": True}, _set(_rows(typed=True), "score", True)),
    ({"typed": True}, _set(_rows(typed=True), "score", "0.5")),
    ({"typed": True}, _set(_rows(typed=True), "weight", np.float32(0.5))),
    ({"typed": True}, _set(_rows(typed=True), "source", 7)),
])
def test_rows_that_do_not_fit_exactly_are_left_to_pymilvus(
        described: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    wire = wire_format(_description(**described))
    assert wire is not None
    assert pack_rows(wire, "insert", "c", rows) is None
    assert pack_rows(wire, "upsert", "c", rows) is None


def test_no_rows_no_request() -> None:
    wire = wire_format(_description())
    assert wire is not None
    assert pack_rows(wire, "insert", "c", []) is None
