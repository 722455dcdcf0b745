"""Compiled filters against embedded Milvus Lite: hostile values, every operator, delete."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymilvus import DataType, MilvusClient

from langchain_milvus_ext._filters import (
    FieldRef,
    compile_filter,
    ids_expr,
    json_path_ref,
    validate_key,
)

pytestmark = pytest.mark.lite

COLLECTION = "filters"
SCALAR_FIELDS = {"pk", "category", "year"}

LONG = "x" * 15_000 + '" or 1==1 or "' + "y" * 15_000
HOSTILE: list[str] = [
    "'",
    '"',
    "\\",
    "\\\\",
    '\\"',
    '\\\\"',
    '" or 1==1 or "',
    "' or 1==1 or '",
    '"] or true or metadata["x',
    '") or (1 == 1) or ("',
    "\n",
    "\r\n",
    "\r",
    "\\n",
    "\t",
    "a\tb",
    "’",
    "’“”",
    "“quoted”",
    "😀",
    "\u2028",
    "\x07\x1b\x7f",
    "\x00",  # NUL: accepted and stored verbatim by Milvus Lite 3.2.2
    "a\x00b",
    "",
    " ",
    "%",
    "_",
    "a%b",
    "a_b",
    "ab",
    LONG,
    LONG[:-1] + "z",
]

# Rows for the operator tests. `kind` tags them so hostile rows never leak into expectations.
OP_ROWS: dict[str, dict[str, Any]] = {
    "o0": {"n": 0, "tag": "red", "flag": True, "opt": 1, "nested": {"k": "a"}},
    "o1": {"n": 1, "tag": "green", "flag": False},
    "o2": {"n": 2, "tag": "blue", "flag": True, "opt": 2, "nested": {"k": "b"}},
    "o3": {"n": 3, "tag": "red", "flag": False},
    "o4": {"n": 4.5, "tag": "redish"},
}
OP_SCALARS = {
    "o0": ("alpha", 1990),
    "o1": ("beta", 2000),
    "o2": ("gamma", 2010),
    "o3": ("alpha", 2020),
    "o4": ("delta", 2024),
}


def resolve(key: str) -> FieldRef:
    """Scalar fields by name; any other key is a path into the `metadata` JSON field."""
    parts = validate_key(key)
    if key in SCALAR_FIELDS:
        return FieldRef(key, is_json_path=False)
    return FieldRef(json_path_ref("metadata", parts), is_json_path=True)


def hostile_rows() -> list[dict[str, Any]]:
    rows = []
    for i, value in enumerate(HOSTILE):
        for copy in range(2):  # two rows per value: "exactly the matching rows", not one
            rows.append(
                {
                    "pk": f"h{i}_{copy}",
                    "text": value,
                    "vector": [1.0, 0.5, 0.25, float(i % 7 + 1)],
                    "metadata": {"kind": "hostile", "s": value},
                    "category": value,
                    "year": i,
                }
            )
    return rows


def op_rows() -> list[dict[str, Any]]:
    return [
        {
            "pk": pk,
            "text": pk,
            "vector": [0.1, 1.0, float(j + 1), 0.5],
            "metadata": {"kind": "op", **meta},
            "category": OP_SCALARS[pk][0],
            "year": OP_SCALARS[pk][1],
        }
        for j, (pk, meta) in enumerate(OP_ROWS.items())
    ]


def create_collection(client: MilvusClient, name: str) -> None:
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=65_535)
    schema.add_field("text", DataType.VARCHAR, max_length=65_535)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=4)
    schema.add_field("metadata", DataType.JSON)
    schema.add_field("category", DataType.VARCHAR, max_length=65_535)
    schema.add_field("year", DataType.INT64)
    index_params = client.prepare_index_params()
    index_params.add_index("vector", index_type="AUTOINDEX", metric_type="COSINE")
    client.create_collection(
        name, schema=schema, index_params=index_params, consistency_level="Strong"
    )


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusClient]:
    path: Path = tmp_path_factory.mktemp("filters_lite") / "f.db"
    milvus = MilvusClient(uri=str(path))
    create_collection(milvus, COLLECTION)
    milvus.insert(COLLECTION, hostile_rows() + op_rows())
    yield milvus
    milvus.close()


def pks(client: MilvusClient, filter: Any, collection: str = COLLECTION) -> set[str]:
    expr = compile_filter(filter, resolve)
    assert expr is not None
    rows = client.query(collection, filter=expr, output_fields=["pk"], limit=16_384)
    return {row["pk"] for row in rows}


def all_pks(client: MilvusClient, collection: str = COLLECTION) -> set[str]:
    rows = client.query(collection, filter='pk != ""', output_fields=["pk"], limit=16_384)
    return {row["pk"] for row in rows}


def hostile_pks(value: str) -> set[str]:
    return {f"h{i}_{c}" for i, v in enumerate(HOSTILE) for c in range(2) if v == value}


def test_values_round_trip_unchanged(client: MilvusClient) -> None:
    rows = client.query(
        COLLECTION, filter='pk like "h%"', output_fields=["pk", "metadata", "category"]
    )
    assert len(rows) == 2 * len(HOSTILE)
    for row in rows:
        expected = HOSTILE[int(row["pk"][1:].split("_")[0])]
        assert row["metadata"]["s"] == expected
        assert row["category"] == expected


@pytest.mark.parametrize("index", range(len(HOSTILE)))
def test_hostile_equality_json_and_scalar(client: MilvusClient, index: int) -> None:
    value = HOSTILE[index]
    expected = hostile_pks(value)
    assert len(expected) == 2
    assert pks(client, {"s": value}) == expected
    assert pks(client, {"category": value}) == expected
    assert pks(client, {"s": {"$eq": value}, "category": value}) == expected


def test_hostile_in_nin(client: MilvusClient) -> None:
    chosen = ['"', "\\", '" or 1==1 or "', "\r\n", "’“”", "\x00"]
    expected = set().union(*(hostile_pks(v) for v in chosen))
    assert pks(client, {"s": {"$in": chosen}}) == expected
    assert pks(client, {"category": {"$in": chosen}}) == expected
    hostile_all = {pk for pk in all_pks(client) if pk.startswith("h")}
    assert pks(client, {"kind": "hostile", "s": {"$nin": chosen}}) == hostile_all - expected
    assert pks(client, {"kind": "hostile", "category": {"$nin": chosen}}) == hostile_all - expected


def test_hostile_not(client: MilvusClient) -> None:
    hostile_all = {pk for pk in all_pks(client) if pk.startswith("h")}
    value = '"] or true or metadata["x'
    assert pks(client, {"kind": "hostile", "$not": {"s": value}}) == hostile_all - hostile_pks(
        value
    )


def test_hostile_search(client: MilvusClient) -> None:
    expr = compile_filter({"s": '" or 1==1 or "'}, resolve)
    hits = client.search(
        COLLECTION, data=[[1.0, 0.5, 0.25, 1.0]], filter=expr, limit=10, output_fields=["pk"]
    )
    assert {hit["entity"]["pk"] for hit in hits[0]} == hostile_pks('" or 1==1 or "')


def test_like(client: MilvusClient) -> None:
    starts_a = {f"h{i}_{c}" for i, v in enumerate(HOSTILE) for c in range(2) if v.startswith("a")}
    assert pks(client, {"s": {"$like": "a%"}}) == starts_a
    assert pks(client, {"category": {"$like": "a%"}}) == starts_a | {"o0", "o3"}
    # `_` is a one-character wildcard (it matches "a%b", "a_b", "a\tb", "a\x00b" alike).
    one_char = {v for v in HOSTILE if len(v) == 3 and v[0] == "a" and v[2] == "b"}
    assert len(one_char) == 4
    assert pks(client, {"s": {"$like": "a_b"}}) == set().union(*map(hostile_pks, one_char))
    assert pks(client, {"tag": {"$like": "red%"}}) == {"o0", "o3", "o4"}
    assert pks(client, {"tag": {"$like": "red"}}) == {"o0", "o3"}


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ({"n": 1}, {"o1"}),
        ({"n": {"$eq": 4.5}}, {"o4"}),
        ({"n": {"$ne": 1}, "kind": "op"}, {"o0", "o2", "o3", "o4"}),
        ({"n": {"$lt": 2}}, {"o0", "o1"}),
        ({"n": {"$lte": 2}}, {"o0", "o1", "o2"}),
        ({"n": {"$gt": 2}}, {"o3", "o4"}),
        ({"n": {"$gte": 2, "$lt": 4}}, {"o2", "o3"}),
        ({"n": {"$gt": 1.5}}, {"o2", "o3", "o4"}),
        ({"year": {"$gte": 2010}, "kind": "op"}, {"o2", "o3", "o4"}),
        ({"year": {"$lt": 2000}, "kind": "op"}, {"o0"}),
        ({"flag": True}, {"o0", "o2"}),
        ({"flag": False}, {"o1", "o3"}),
        ({"tag": {"$in": ["red", "blue"]}}, {"o0", "o2", "o3"}),
        ({"tag": {"$nin": ["red", "blue"]}, "kind": "op"}, {"o1", "o4"}),
        ({"n": {"$in": [0, 4.5]}}, {"o0", "o4"}),
        ({"category": {"$in": ["alpha", "delta"]}}, {"o0", "o3", "o4"}),
        ({"category": {"$nin": ["alpha", "delta"]}, "kind": "op"}, {"o1", "o2"}),
        ({"year": {"$in": [1990, 2024]}}, {"o0", "o4"}),
        ({"year": {"$nin": [1990, 2024]}, "kind": "op"}, {"o1", "o2", "o3"}),
        ({"nested.k": "b"}, {"o2"}),
        ({"opt": {"$exists": True}}, {"o0", "o2"}),
        ({"opt": {"$exists": False}, "kind": "op"}, {"o1", "o3", "o4"}),
        ({"nested.k": {"$exists": True}}, {"o0", "o2"}),
        ({"$and": [{"tag": "red"}, {"year": {"$gt": 2000}}]}, {"o3"}),
        ({"$or": [{"tag": "green"}, {"n": {"$gt": 4}}]}, {"o1", "o4"}),
        ({"$not": {"tag": "red"}, "kind": "op"}, {"o1", "o2", "o4"}),
        ({"$not": {"category": {"$in": ["alpha", "beta"]}}, "kind": "op"}, {"o2", "o4"}),
        ({"$or": [{"opt": {"$exists": True}}, {"category": "delta"}]}, {"o0", "o2", "o4"}),
        (
            {
                "$or": [
                    {"$and": [{"category": "alpha"}, {"year": {"$lt": 2000}}]},
                    {"$not": {"n": {"$lt": 4}}},
                ],
                "kind": "op",
            },
            {"o0", "o4"},
        ),
        ({"tag": {"$in": []}}, set()),
        ({"category": {"$in": []}}, set()),
        ({"tag": {"$nin": []}, "kind": "op"}, set(OP_ROWS)),
        ({"category": {"$nin": []}, "kind": "op"}, set(OP_ROWS)),
        ({"$not": {"tag": {"$in": []}}, "kind": "op"}, set(OP_ROWS)),
        # Documented Milvus Lite semantics: a missing JSON key is unknown for != and not.
        ({"opt": {"$ne": 1}, "kind": "op"}, {"o2"}),
        ({"$not": {"opt": 1}, "kind": "op"}, {"o2"}),
    ],
)
def test_operators(client: MilvusClient, filter: dict[str, Any], expected: set[str]) -> None:
    assert pks(client, filter) == expected


def test_empty_nin_on_json_path_matches_every_row(client: MilvusClient) -> None:
    assert pks(client, {"nope": {"$nin": []}}) == all_pks(client)
    assert pks(client, {"nope": {"$in": []}}) == set()


def test_ids_expr(client: MilvusClient) -> None:
    rows = client.query(COLLECTION, filter=ids_expr("pk", ["o1", "o3", 'x"y']), output_fields=[])
    assert {row["pk"] for row in rows} == {"o1", "o3"}


def test_delete_with_hostile_filters(client: MilvusClient) -> None:
    name = "filters_delete"
    create_collection(client, name)
    try:
        client.insert(name, hostile_rows())
        remaining = all_pks(client, name)
        assert len(remaining) == 2 * len(HOSTILE)
        for i, value in enumerate(HOSTILE):
            key = "s" if i % 2 else "category"  # alternate JSON path and scalar field
            expr = compile_filter({key: value}, resolve)
            assert expr is not None
            client.delete(name, filter=expr)
            remaining -= hostile_pks(value)
            assert all_pks(client, name) == remaining, value
        assert remaining == set()
    finally:
        client.drop_collection(name)
