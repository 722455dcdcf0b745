"""Unit tests for `langchain_milvus_ext._rows` (pure, no server)."""

from __future__ import annotations

import copy
import math
import re
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from langchain_core.documents import Document
from pymilvus import DataType

from langchain_milvus_ext._rows import (
    attach_vectors,
    build_rows,
    check_query_vector,
    check_query_vectors,
    estimate_row_bytes,
    normalize_ids,
    resolve_ids,
    split_documents,
)
from langchain_milvus_ext._schema import JSON_MAX_BYTES, CollectionLayout

STR_PK = CollectionLayout(dim=3, exists=True)  # VARCHAR pk, JSON `metadata` field
INT_PK = replace(STR_PK, pk_is_int=True)
AUTO = replace(STR_PK, pk_is_int=True, auto_id=True)
DYNAMIC = CollectionLayout(metadata_field=None, dynamic=True, dim=3, exists=True)
COLUMNS = CollectionLayout(  # langchain-milvus style: one scalar column per metadata key
    metadata_field=None,
    dynamic=False,
    dim=3,
    scalar_fields={"source": DataType.VARCHAR, "page": DataType.INT64},
    exists=True,
)
PARTITIONED = replace(STR_PK, scalar_fields={"tenant": DataType.VARCHAR})

str_ids = st.text(min_size=1, max_size=40).filter(lambda s: len(s.encode("utf-8")) <= 512)


# --------------------------------------------------------------------------- normalize_ids


def test_string_ids_pass_through_unchanged() -> None:
    assert normalize_ids(["a", "b-2", "é"], STR_PK) == ["a", "b-2", "é"]


def test_int_primary_key_accepts_ints_and_digit_strings() -> None:
    out = normalize_ids([1, "2", " 3 ", "-4"], INT_PK)
    assert out == [1, 2, 3, -4]
    assert all(type(i) is int for i in out)


def test_numpy_scalars_become_python_values() -> None:
    out = normalize_ids([np.int64(5), np.int32(6)], INT_PK)
    assert out == [5, 6]
    assert all(type(i) is int for i in out)
    assert normalize_ids([np.str_("x")], STR_PK) == ["x"]


@pytest.mark.parametrize("bad", [True, False, np.bool_(True)])
def test_bool_is_rejected_for_int_primary_key(bad: Any) -> None:
    with pytest.raises(ValueError, match="bool"):
        normalize_ids([bad], INT_PK)


@pytest.mark.parametrize("bad", [1.0, "1.5", "abc", "", None, np.float64(2.0)])
def test_non_integer_ids_are_rejected_for_int_primary_key(bad: Any) -> None:
    with pytest.raises(ValueError, match=r"ids\[0\].*INT64"):
        normalize_ids([bad], INT_PK)


@pytest.mark.parametrize("bad", [1, True, None, b"a", np.int64(3)])
def test_non_string_ids_are_rejected_for_varchar_primary_key(bad: Any) -> None:
    with pytest.raises(ValueError, match=r"ids\[0\]: expected a string id"):
        normalize_ids([bad], STR_PK)


def test_empty_string_id_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"ids\[1\].*non-empty"):
        normalize_ids(["a", ""], STR_PK)


def test_id_length_is_checked_in_utf8_bytes() -> None:
    layout = replace(STR_PK, pk_max_length=10)
    assert normalize_ids(["é" * 5], layout) == ["é" * 5]  # 10 bytes: at the limit
    with pytest.raises(ValueError, match=r"ids\[0\]: id is 12 bytes.*max_length of 10"):
        normalize_ids(["é" * 6], layout)  # 6 characters but 12 bytes


def test_duplicates_are_rejected_and_named() -> None:
    with pytest.raises(ValueError, match=r"contains duplicates: \['a'\]"):
        normalize_ids(["a", "b", "a"], STR_PK)


def test_duplicates_are_detected_after_conversion() -> None:
    with pytest.raises(ValueError, match="duplicates"):
        normalize_ids([7, "7"], INT_PK)


def test_empty_list_is_fine() -> None:
    assert normalize_ids([], STR_PK) == []


def test_argument_name_appears_in_messages() -> None:
    with pytest.raises(ValueError, match=r"keys\[1\]"):
        normalize_ids(["a", 5], STR_PK, argument="keys")


def test_int_ids_outside_int64_are_rejected() -> None:
    """Milvus INT64 keys cannot hold these; the check belongs before anything is written."""
    with pytest.raises(ValueError):
        normalize_ids([2**63], INT_PK)
    with pytest.raises(ValueError):
        normalize_ids([str(-(2**63) - 1)], INT_PK)


@given(st.lists(str_ids, unique=True, max_size=20))
def test_unique_valid_string_ids_round_trip(ids: list[str]) -> None:
    assert normalize_ids(ids, STR_PK) == ids


@given(st.lists(st.integers(-(2**63), 2**63 - 1), unique=True, max_size=20))
def test_rendered_int_ids_parse_back(ids: list[int]) -> None:
    assert normalize_ids([str(i) for i in ids], INT_PK) == ids


# --------------------------------------------------------------------------- resolve_ids


def test_given_ids_are_checked_and_converted() -> None:
    assert resolve_ids(2, ["1", 2], INT_PK) == [1, 2]
    with pytest.raises(ValueError, match="duplicates"):
        resolve_ids(2, ["a", "a"], STR_PK)


def test_generated_string_ids_are_unique_uuid_hex() -> None:
    ids = resolve_ids(50, None, STR_PK)
    assert ids is not None and len(ids) == 50 and len(set(ids)) == 50
    for i in ids:
        assert isinstance(i, str)
        int(i, 16)
        assert len(i) == 32


def test_generated_int_ids_fit_a_non_negative_int64() -> None:
    ids = resolve_ids(50, None, INT_PK)
    assert ids is not None and len(set(ids)) == 50
    assert all(isinstance(i, int) and 0 <= i < 2**63 for i in ids)


def test_auto_id_without_ids_lets_the_server_assign() -> None:
    assert resolve_ids(3, None, AUTO) is None
    assert resolve_ids(3, [None, None, None], AUTO) is None


def test_auto_id_with_ids_is_an_error() -> None:
    with pytest.raises(ValueError, match="auto_id=True"):
        resolve_ids(2, [1, 2], AUTO)


def test_count_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="got 3 texts but 2 ids"):
        resolve_ids(3, ["a", "b"], STR_PK)


def test_partial_none_ids_are_filled_with_fresh_ids() -> None:
    ids = resolve_ids(3, ["a", None, "c"], STR_PK)
    assert ids is not None
    assert ids[0] == "a" and ids[2] == "c"
    assert isinstance(ids[1], str) and ids[1] not in ("a", "c") and len(ids[1]) == 32


def test_all_none_ids_are_generated() -> None:
    ids = resolve_ids(2, [None, None], STR_PK)
    assert ids is not None and len(ids) == 2 and None not in ids


# --------------------------------------------------------------------------- split_documents


def test_split_documents_uses_document_ids() -> None:
    docs = [Document("a", metadata={"k": 1}, id="x"), Document("b", id="y")]
    texts, metas, ids = split_documents(docs, None)
    assert texts == ["a", "b"]
    assert metas == [{"k": 1}, {}]
    assert ids == ["x", "y"]


def test_explicit_ids_win_over_document_ids() -> None:
    docs = [Document("a", id="x"), Document("b", id="y")]
    assert split_documents(docs, ["1", "2"])[2] == ["1", "2"]


def test_mixed_document_ids_leave_none_for_generation() -> None:
    docs = [Document("a", id="x"), Document("b")]
    assert split_documents(docs, None)[2] == ["x", None]


def test_no_ids_anywhere_gives_none() -> None:
    assert split_documents([Document("a"), Document("b")], None)[2] is None


@pytest.mark.parametrize("layout", [STR_PK, DYNAMIC, COLUMNS], ids=["json", "dynamic", "columns"])
def test_rows_never_share_document_metadata(layout: CollectionLayout) -> None:
    # split_documents hands the documents' metadata on uncopied; build_rows copies it, so
    # nothing done to a row (or to the values in it) reaches the caller's document.
    doc = Document("a", metadata={"source": "s", "page": 1} if layout is COLUMNS
                   else {"k": 1, "nested": {"x": [1]}})
    before = copy.deepcopy(doc.metadata)
    texts, metas, _ = split_documents([doc], None)
    row = build_rows(texts, metas, ["i1"], layout)[0]
    for value in row.values():
        if isinstance(value, dict):
            value["k"] = 2
            value.get("nested", {}).get("x", []).append(2)
    row["k"] = 2
    assert doc.metadata == before


# --------------------------------------------------------------------------- build_rows


def test_rows_carry_text_id_and_json_metadata() -> None:
    rows = build_rows(["a", "b"], [{"k": 1}, {}], ["i1", "i2"], STR_PK)
    assert rows == [
        {"text": "a", "pk": "i1", "metadata": {"k": 1}},
        {"text": "b", "pk": "i2", "metadata": {}},
    ]


def test_rows_without_ids_have_no_primary_key() -> None:
    rows = build_rows(["a"], None, None, AUTO)
    assert rows == [{"text": "a", "metadata": {}}]


def test_metadata_is_copied_as_json() -> None:
    meta = {"nested": {"x": [1, 2]}, "t": (1, 2)}
    rows = build_rows(["a"], [meta], ["i"], STR_PK)
    meta["nested"]["x"].append(3)
    assert rows[0]["metadata"] == {"nested": {"x": [1, 2]}, "t": [1, 2]}


def test_metadata_length_mismatch() -> None:
    with pytest.raises(ValueError, match="got 2 texts but 1 metadatas"):
        build_rows(["a", "b"], [{}], None, STR_PK)


def test_ids_length_mismatch() -> None:
    with pytest.raises(ValueError, match="got 2 texts but 3 ids"):
        build_rows(["a", "b"], None, ["1", "2", "3"], STR_PK)


@pytest.mark.parametrize("bad", [None, 3, b"bytes", ["x"]])
def test_non_string_text_is_rejected(bad: Any) -> None:
    with pytest.raises(ValueError, match=rf"texts\[1\] is {type(bad).__name__}, expected str"):
        build_rows(["ok", bad], None, None, STR_PK)


def test_text_limit_counts_utf8_bytes_and_names_the_index() -> None:
    layout = replace(STR_PK, text_max_length=10)
    assert build_rows(["€" * 3], None, None, layout)[0]["text"] == "€" * 3  # 9 bytes
    with pytest.raises(ValueError, match=r"texts\[1\] is 12 bytes.*max_length of 10"):
        build_rows(["ok", "€" * 4], None, None, layout)  # 4 characters, 12 bytes


@pytest.mark.parametrize("bad", [["a"], "a=1", 3])
def test_metadata_must_be_a_dict(bad: Any) -> None:
    with pytest.raises(ValueError, match=r"metadatas\[0\] must be a dict"):
        build_rows(["a"], [bad], None, STR_PK)


def test_none_metadata_is_empty() -> None:
    assert build_rows(["a"], [None], None, STR_PK)[0]["metadata"] == {}  # type: ignore[list-item]


def test_non_string_metadata_keys_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"metadatas\[0\] has non-string keys \[1\]"):
        build_rows(["a"], [{1: "x"}], None, STR_PK)


@pytest.mark.parametrize(
    "bad", [{"x": math.nan}, {"x": math.inf}, {"x": {1, 2}}, {"x": object()}, {"x": b"b"}]
)
@pytest.mark.parametrize("layout", [STR_PK, DYNAMIC], ids=["json", "dynamic"])
def test_metadata_must_be_json_serialisable(bad: dict[str, Any], layout: Any) -> None:
    with pytest.raises(ValueError, match=r"metadatas\[0\] is not JSON-serialisable"):
        build_rows(["a"], [bad], None, layout)


def test_json_metadata_size_limit() -> None:
    with pytest.raises(ValueError, match=f"over {JSON_MAX_BYTES} bytes"):
        build_rows(["a"], [{"x": "y" * JSON_MAX_BYTES}], None, STR_PK)


@pytest.mark.parametrize("key", ["pk", "text", "vector", "$meta"])
def test_reserved_keys_are_rejected_in_dynamic_mode(key: str) -> None:
    with pytest.raises(ValueError, match=rf"reserved key\(s\) \['{re.escape(key)}'\]"):
        build_rows(["a"], [{key: 1}], ["i"], DYNAMIC)


def test_dynamic_mode_puts_metadata_keys_at_top_level() -> None:
    rows = build_rows(["a"], [{"genre": "x", "n": 2}], ["i"], DYNAMIC)
    assert rows == [{"text": "a", "pk": "i", "genre": "x", "n": 2}]


def test_reserved_keys_stay_inside_json_in_metadata_field_mode() -> None:
    meta = {"pk": "other", "text": "t", "vector": [1], "metadata": 5}
    rows = build_rows(["a"], [meta], ["i"], STR_PK)
    assert rows[0]["pk"] == "i"
    assert rows[0]["text"] == "a"
    assert "vector" not in rows[0]
    assert rows[0]["metadata"] == meta


def test_partition_key_column_is_copied_from_metadata() -> None:
    rows = build_rows(["a"], [{"tenant": "acme", "k": 1}], ["i"], PARTITIONED)
    assert rows[0]["tenant"] == "acme"
    assert rows[0]["metadata"] == {"tenant": "acme", "k": 1}
    assert "k" not in rows[0]


def test_column_mode_accepts_known_columns_only() -> None:
    rows = build_rows(["a"], [{"source": "s", "page": 3}], ["i"], COLUMNS)
    assert rows == [{"text": "a", "pk": "i", "source": "s", "page": 3}]
    with pytest.raises(ValueError, match=r"keys \['author'\] that are not fields"):
        build_rows(["a"], [{"source": "s", "author": "x"}], ["i"], COLUMNS)


# --------------------------------------------------------------------------- attach_vectors


def test_attach_vectors_adds_float_lists_without_mutating_rows() -> None:
    rows = [{"text": "a"}, {"text": "b"}]
    out = attach_vectors(rows, [np.array([1, 2, 3]), [0.5, 0.5, 0.5]], STR_PK)
    assert out == [
        {"text": "a", "vector": [1.0, 2.0, 3.0]},
        {"text": "b", "vector": [0.5, 0.5, 0.5]},
    ]
    assert all(type(x) is float for x in out[0]["vector"])
    assert rows == [{"text": "a"}, {"text": "b"}]


def test_attach_vectors_count_mismatch() -> None:
    with pytest.raises(ValueError, match="embedding returned 1 vectors for 2 texts"):
        attach_vectors([{}, {}], [[1.0, 2.0, 3.0]], STR_PK)


def test_attach_vectors_dimension_mismatch() -> None:
    with pytest.raises(ValueError, match=r"embeddings\[1\] has dimension 2.*has 3"):
        attach_vectors([{}, {}], [[1.0, 2.0, 3.0], [1.0, 2.0]], STR_PK)


def test_attach_vectors_any_dimension_while_unknown() -> None:
    layout = replace(STR_PK, dim=None)
    assert attach_vectors([{}], [[1.0] * 7], layout)[0]["vector"] == [1.0] * 7


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_attach_vectors_rejects_non_finite(bad: float) -> None:
    with pytest.raises(ValueError, match=r"embeddings\[0\] contains NaN or infinity"):
        attach_vectors([{}], [[1.0, bad, 0.0]], STR_PK)


# --------------------------------------------------------------------------- check_query_vector


def test_check_query_vector_converts_to_floats() -> None:
    out = check_query_vector(np.array([1, 2, 3], dtype=np.float32), STR_PK)
    assert out == [1.0, 2.0, 3.0]
    assert all(type(x) is float for x in out)


def test_check_query_vector_dimension() -> None:
    with pytest.raises(ValueError, match="query embedding has dimension 2.*has 3"):
        check_query_vector([1.0, 2.0], STR_PK)
    assert check_query_vector([1.0, 2.0], replace(STR_PK, dim=None)) == [1.0, 2.0]


def test_check_query_vectors_keeps_a_models_float_lists() -> None:
    """A batch of model output (Python or numpy float64 floats) is checked at once and sent
    as it is: pymilvus packs float subclasses, so no value is copied."""
    plain = [[0.5, 1.0, 2.0], [3.0, 4.0, 5.0]]
    numpy_floats = [list(np.array(v, dtype=np.float64)) for v in plain]
    for vectors in (plain, numpy_floats):
        out = check_query_vectors(vectors, STR_PK)
        assert out == plain and all(a is b for a, b in zip(out, vectors, strict=True))


@pytest.mark.parametrize("vectors", [
    [np.array([1, 2, 3], dtype=np.float32), np.array([4, 5, 6], dtype=np.float32)],
    [(1.0, 2.0, 3.0), (4.0, 5.0, 6.0)],
    [[1, 2, 3], [4, 5, 6]],
])
def test_check_query_vectors_converts_anything_else_to_float_lists(vectors: Any) -> None:
    out = check_query_vectors(vectors, STR_PK)
    assert out == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    assert all(type(v) is list and all(type(x) is float for x in v) for v in out)


@pytest.mark.parametrize(("vectors", "message"), [
    ([[1.0, 2.0, 3.0], [1.0, 2.0]], "query embedding has dimension 2.*has 3"),
    ([[1.0, 2.0], [1.0, 2.0]], "query embedding has dimension 2.*has 3"),
    ([[1.0, 2.0, 3.0], [1.0, math.nan, 3.0]], "query embedding contains NaN or infinity"),
    ([[math.inf, 2.0, 3.0], [1.0, 2.0, 3.0]], "query embedding contains NaN or infinity"),
    ([[1.0, 2.0, 3.0], [1.0, None, 3.0]], "float"),
])
def test_check_query_vectors_errors_name_the_problem(vectors: Any, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        check_query_vectors(vectors, STR_PK)


# --------------------------------------------------------------------------- estimate_row_bytes


def test_estimate_grows_with_text_and_vector() -> None:
    small = estimate_row_bytes({"text": "a", "vector": [0.0] * 4})
    longer_text = estimate_row_bytes({"text": "a" * 1000, "vector": [0.0] * 4})
    longer_vector = estimate_row_bytes({"text": "a", "vector": [0.0] * 1000})
    assert small > 0
    assert longer_text - small >= 999
    assert longer_vector - small >= 4 * 996  # at least float32 size per extra component


def test_estimate_grows_with_metadata_keys() -> None:
    assert estimate_row_bytes({"m": {"a": 1, "b": 2}}) > estimate_row_bytes({"m": {"a": 1}})


def test_estimate_counts_large_metadata_values() -> None:
    """The estimate feeds max_batch_bytes, so a 60 kB metadata value must not weigh ~100 B."""
    payload = "x" * 60_000
    assert estimate_row_bytes({"metadata": {"a": payload}}) >= len(payload)


# ------------------------------------------------------------------ values pymilvus rejects


@pytest.mark.parametrize("layout", [STR_PK, DYNAMIC], ids=["json", "dynamic"])
@pytest.mark.parametrize(
    ("meta", "where"),
    [
        ({"author": "x\ud800"}, r"metadatas\[1\]\['author'\]: .*surrogate"),
        ({"a": {"b": ["ok", "\udfff"]}}, r"metadatas\[1\]\['a'\]\['b'\]\[1\]: .*surrogate"),
        ({"a": {"k\ud83d": 1}}, r"metadatas\[1\]\['a'\]: key .*surrogate"),
        ({"n": 2**63}, r"metadatas\[1\]\['n'\]: .*outside the int64 range"),
        ({"n": [1, {"m": -(2**63) - 1}]}, r"metadatas\[1\]\['n'\]\[1\]\['m'\]: .*int64"),
    ],
)
def test_values_pymilvus_rejects_are_caught_and_located(
    meta: dict[str, Any], where: str, layout: CollectionLayout
) -> None:
    with pytest.raises(ValueError, match=where):
        build_rows(["a", "b"], [{}, meta], ["i", "j"], layout)


def test_edge_values_that_pymilvus_accepts_pass() -> None:
    meta = {"lo": -(2**63), "hi": 2**63 - 1, "emoji": "😀 \U0010ffff", "t": True, "k😀": 1}
    assert build_rows(["a"], [meta], ["i"], STR_PK)[0]["metadata"] == meta


@pytest.mark.parametrize(
    ("layout", "meta", "where"),
    [
        (PARTITIONED, {"tenant": 7}, r"metadatas\[0\]\['tenant'\]: .*VARCHAR.*int"),
        (COLUMNS, {"source": "s", "page": "3"}, r"metadatas\[0\]\['page'\]: .*INT64.*str"),
        (COLUMNS, {"source": "s", "page": True}, r"metadatas\[0\]\['page'\]: .*INT64.*bool"),
        (COLUMNS, {"source": "s", "page": 1.5}, r"metadatas\[0\]\['page'\]: .*INT64.*float"),
        (COLUMNS, {"source": ["s"], "page": 1}, r"metadatas\[0\]\['source'\]: .*VARCHAR"),
    ],
)
def test_scalar_field_values_must_have_the_field_type(
    layout: CollectionLayout, meta: dict[str, Any], where: str
) -> None:
    with pytest.raises(ValueError, match=where):
        build_rows(["a"], [meta], ["i"], layout)


def test_scalar_field_ranges_and_numeric_widening() -> None:
    layout = replace(COLUMNS, scalar_fields={"b": DataType.INT8, "f": DataType.FLOAT,
                                             "ok": DataType.BOOL})
    assert build_rows(["a"], [{"b": -128, "f": 2, "ok": False}], ["i"], layout)[0]["f"] == 2
    with pytest.raises(ValueError, match=r"metadatas\[0\]\['b'\]: 128 is outside the INT8"):
        build_rows(["a"], [{"b": 128, "f": 1, "ok": True}], ["i"], layout)
    with pytest.raises(ValueError, match=r"metadatas\[0\]\['ok'\]: .*BOOL.*int"):
        build_rows(["a"], [{"b": 1, "f": 1, "ok": 1}], ["i"], layout)  # every column present


@pytest.mark.parametrize(("meta", "message"), [
    ({"page": 1}, r"metadatas\[1\] lacks the key 'source'"),
    ({"source": "s", "page": 1, "x": 2}, r"metadatas\[1\] has keys \['x'\] that are not fields"),
    ({"source": "s" * 11, "page": 1}, r"metadatas\[1\]\['source'\] is over .*max_length of 10"),
    ({"source": "é" * 6, "page": 1}, r"metadatas\[1\]\['source'\] is over"),  # 12 bytes
    ({"source": "\ud800", "page": 1}, r"metadatas\[1\]\['source'\]: .*surrogate"),
    ({"source": "s", "page": 1, "w": float("nan")}, r"metadatas\[1\] is not JSON-serialisable"),
])
def test_column_errors_name_the_row_and_the_column(meta: dict[str, Any], message: str) -> None:
    layout = replace(COLUMNS, scalar_fields={**COLUMNS.scalar_fields, "w": DataType.DOUBLE},
                     column_args={"source": {"max_length": 10}, "w": {"nullable": True}})
    fine = {"source": "é" * 5, "page": 2, "w": 0.5}  # 10 bytes: at the limit
    assert build_rows(["a"], [fine], ["i"], layout)[0]["source"] == fine["source"]
    with pytest.raises(ValueError, match=message):
        build_rows(["a", "b"], [fine, meta], ["i", "j"], layout)


def test_texts_and_ids_with_lone_surrogates_are_named() -> None:
    with pytest.raises(ValueError, match=r"texts\[1\]: .*surrogate"):
        build_rows(["a", "b\ud800"], None, None, STR_PK)
    with pytest.raises(ValueError, match=r"ids\[0\]: .*surrogate"):
        normalize_ids(["x\udc00"], STR_PK)
