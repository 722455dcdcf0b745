"""Unit tests for `langchain_milvus_ext._filters` (no server)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from langchain_milvus_ext._filters import (
    FieldRef,
    combine_and,
    compile_filter,
    ids_expr,
    is_self_contained,
    json_path_ref,
    render_literal,
    validate_key,
)

SCALAR_FIELDS = {"category", "year"}


def resolve(key: str) -> FieldRef:
    """Scalar fields by name; anything else is a path into the `metadata` JSON field."""
    parts = validate_key(key)
    if key in SCALAR_FIELDS:
        return FieldRef(key, is_json_path=False)
    if parts[0] == "forbidden":
        raise ValueError(f"filter key {key!r} is not a metadata key")
    return FieldRef(json_path_ref("metadata", parts), is_json_path=True)


def c(filter: Any) -> str | None:
    return compile_filter(filter, resolve)


# --------------------------------------------------------------------------- render_literal


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("abc", '"abc"'),
        ("", '""'),
        ('"', '"\\""'),
        ("'", '"\'"'),
        ("\\", '"\\\\"'),
        ('\\"', '"\\\\\\""'),
        ("a\nb", '"a\\nb"'),
        ("a\r\nb", '"a\\r\\nb"'),
        ("a\tb", '"a\\tb"'),
        ("a\x00b", '"a\x00b"'),
        ("a\x07b\x1b\x7f", '"a\x07b\x1b\x7f"'),
        ("’“”", '"’“”"'),
        ("😀", '"😀"'),
        ('" or 1==1 or "', '"\\" or 1==1 or \\""'),
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (-42, "-42"),
        (2**63 - 1, "9223372036854775807"),
        (1.5, "1.5"),
        (-0.25, "-0.25"),
        (1e300, "1e+300"),
        (1e-5, "1e-05"),
    ],
)
def test_render_literal(value: Any, expected: str) -> None:
    assert render_literal(value) == expected


def test_render_literal_bool_is_not_int() -> None:
    assert render_literal(True) != render_literal(1)
    assert render_literal(False) == "false"


def test_render_literal_int_subclass_uses_int_value() -> None:
    class MyInt(int):
        def __str__(self) -> str:
            return "evil"

    assert render_literal(MyInt(3)) == "3"


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_render_literal_rejects_non_finite(value: float) -> None:
    with pytest.raises(ValueError, match="not finite"):
        render_literal(value)


@pytest.mark.parametrize(
    ("value", "type_name"),
    [(None, "NoneType"), ([1], "list"), ({"a": 1}, "dict"), (b"x", "bytes"), (object(), "object")],
)
def test_render_literal_rejects_other_types(value: Any, type_name: str) -> None:
    with pytest.raises(ValueError, match=type_name):
        render_literal(value)


def test_render_literal_rejects_out_of_range_int_and_lone_surrogate() -> None:
    with pytest.raises(ValueError, match="int64"):
        render_literal(2**63)
    with pytest.raises(ValueError, match="UTF-8"):
        render_literal("a\ud800b")


# --------------------------------------------------------------------------- validate_key


def test_validate_key() -> None:
    assert validate_key("a") == ["a"]
    assert validate_key("_a1") == ["_a1"]
    assert validate_key("a.b.c") == ["a", "b", "c"]


@pytest.mark.parametrize(
    "key",
    ["", "1a", "a b", "a-b", "a.", ".a", "a..b", 'a"]', "a[0]", "é", "$a", "a\n", "a or 1"],
)
def test_validate_key_rejects(key: str) -> None:
    with pytest.raises(ValueError, match="invalid filter key") as exc:
        validate_key(key)
    assert repr(key) in str(exc.value)


def test_validate_key_rejects_non_string() -> None:
    with pytest.raises(ValueError, match="must be a string"):
        validate_key(3)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- json_path_ref


def test_json_path_ref() -> None:
    assert json_path_ref("metadata", ["a", "b"]) == 'metadata["a"]["b"]'
    assert json_path_ref("$meta", ["x"]) == '$meta["x"]'
    assert json_path_ref("metadata", []) == "metadata"


def test_json_path_ref_escapes_keys() -> None:
    assert json_path_ref("metadata", ['a"]']) == 'metadata["a\\"]"]'
    assert json_path_ref("metadata", ["a\\", "\n"]) == 'metadata["a\\\\"]["\\n"]'
    with pytest.raises(ValueError):
        json_path_ref("metadata", [1])  # type: ignore[list-item]


# --------------------------------------------------------------------------- combine_and / ids


def test_combine_and() -> None:
    assert combine_and() is None
    assert combine_and(None, "", "  ") is None
    assert combine_and("a == 1") == "a == 1"
    assert combine_and(None, " a == 1 ", None) == "a == 1"
    assert combine_and("a == 1", None, "b == 2 or c == 3") == "(a == 1) and (b == 2 or c == 3)"


def test_ids_expr() -> None:
    assert ids_expr("pk", ["a", "b"]) == 'pk in ["a", "b"]'
    assert ids_expr("pk", [1, 2]) == "pk in [1, 2]"
    assert ids_expr("pk", ('x"y', "a\\b")) == 'pk in ["x\\"y", "a\\\\b"]'
    assert ids_expr("pk", []) == "pk in []"


@pytest.mark.parametrize("ids", ["abc", [True], [1.5], [None], [["a"]]])
def test_ids_expr_rejects(ids: Any) -> None:
    with pytest.raises(ValueError):
        ids_expr("pk", ids)


# --------------------------------------------------------------------------- compile_filter


def test_none_empty_and_raw() -> None:
    assert c(None) is None
    assert c({}) is None
    assert c("") is None
    assert c("   ") is None
    assert c('  category == "x" ') == 'category == "x"'


def test_non_mapping_filter_rejected() -> None:
    with pytest.raises(ValueError, match="list"):
        c([{"a": 1}])


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ({"a": "x"}, 'metadata["a"] == "x"'),
        ({"a": 1}, 'metadata["a"] == 1'),
        ({"a": 1.5}, 'metadata["a"] == 1.5'),
        ({"a": True}, 'metadata["a"] == true'),
        ({"a": {"$eq": False}}, 'metadata["a"] == false'),
        ({"a": {"$ne": "x"}}, 'metadata["a"] != "x"'),
        ({"a": {"$lt": 1}}, 'metadata["a"] < 1'),
        ({"a": {"$lte": 1}}, 'metadata["a"] <= 1'),
        ({"a": {"$gt": 1}}, 'metadata["a"] > 1'),
        ({"a": {"$gte": 1}}, 'metadata["a"] >= 1'),
        ({"a.b": 1}, 'metadata["a"]["b"] == 1'),
        ({"category": "x"}, 'category == "x"'),
        ({"year": {"$gte": 2000}}, "year >= 2000"),
        ({"a": {"$like": "ab%"}}, 'metadata["a"] like "ab%"'),
        ({"category": {"$like": '%"_'}}, 'category like "%\\"_"'),
        ({"a": {"$exists": True}}, 'exists metadata["a"]'),
        ({"a": {"$exists": False}}, 'not (exists metadata["a"])'),
    ],
)
def test_single_operators(filter: dict[str, Any], expected: str) -> None:
    assert c(filter) == expected


def test_in_nin_scalar_field() -> None:
    assert c({"category": {"$in": ["a", "b"]}}) == 'category in ["a", "b"]'
    assert c({"year": {"$nin": (1, 2)}}) == "year not in [1, 2]"
    assert c({"category": {"$in": []}}) == "category in []"
    assert c({"category": {"$nin": []}}) == "category not in []"


def test_in_nin_json_path() -> None:
    assert c({"a": {"$in": [1, "x"]}}) == '(metadata["a"] == 1 or metadata["a"] == "x")'
    assert c({"a": {"$nin": [1, 2]}}) == '(metadata["a"] != 1 and metadata["a"] != 2)'
    assert c({"a": {"$in": [True]}}) == 'metadata["a"] == true'


def test_mixed_kind_lists_on_a_dynamic_key_are_ored() -> None:
    # Milvus refuses `A in ["", 0]` ("list elements must be of compatible types").
    def dynamic(key: str) -> FieldRef:
        return FieldRef(key, is_json_path=True, takes_in=True)

    assert compile_filter({"A": {"$in": ["", 0]}}, dynamic) == '(A == "" or A == 0)'
    assert compile_filter({"A": {"$nin": [True, 1]}}, dynamic) == "(A != true and A != 1)"
    assert compile_filter({"A": {"$in": [1, 2.5]}}, dynamic) == "A in [1, 2.5]"
    assert compile_filter({"A": {"$in": ["a", "b"]}}, dynamic) == 'A in ["a", "b"]'


def test_mixed_kind_lists_on_a_scalar_field_are_refused() -> None:
    with pytest.raises(ValueError, match=r"'category': \$in mixes number and string values"):
        c({"category": {"$in": ["a", 1]}})


def test_ids_expr_gives_each_kind_its_own_list() -> None:
    assert ids_expr("id", ["a", 2, "b"]) == '(id in ["a", "b"]) or (id in [2])'
    assert ids_expr("id", [1, 2]) == "id in [1, 2]"


def test_empty_in_nin_json_path() -> None:
    ref = 'metadata["a"]'
    assert c({"a": {"$in": []}}) == f"((exists {ref}) and (not (exists {ref})))"
    assert c({"a": {"$nin": []}}) == f"((exists {ref}) or (not (exists {ref})))"


def test_several_keys_and_several_operators_are_anded() -> None:
    assert c({"a": 1, "category": "x"}) == '(metadata["a"] == 1) and (category == "x")'
    assert c({"year": {"$gt": 1, "$lt": 5}}) == "(year > 1) and (year < 5)"


def test_logical_operators_and_nesting() -> None:
    assert c({"$and": [{"a": 1}, {"b": 2}]}) == '(metadata["a"] == 1) and (metadata["b"] == 2)'
    assert c({"$or": [{"a": 1}, {"b": 2}]}) == '(metadata["a"] == 1) or (metadata["b"] == 2)'
    assert c({"$or": [{"a": 1}]}) == 'metadata["a"] == 1'
    assert c({"$not": {"a": 1}}) == 'not (metadata["a"] == 1)'
    assert c({"$not": [{"a": 1}, {"b": 2}]}) == (
        'not ((metadata["a"] == 1) and (metadata["b"] == 2))'
    )
    nested = {
        "$or": [
            {"$and": [{"category": "x"}, {"year": {"$lt": 2000}}]},
            {"$not": {"a": {"$in": [1, 2]}}},
        ],
        "b": "y",
    }
    assert c(nested) == (
        '(((category == "x") and (year < 2000)) or '
        '(not ((metadata["a"] == 1 or metadata["a"] == 2)))) and (metadata["b"] == "y")'
    )


def test_exists_is_parenthesised_when_combined() -> None:
    # Milvus 2.3 parses `exists a and b` as `exists (a and b)`.
    assert c({"a": {"$exists": True}, "b": 1}) == (
        '(exists metadata["a"]) and (metadata["b"] == 1)'
    )


@pytest.mark.parametrize(
    "value",
    [
        '" or 1==1 or "',
        '"] or true or metadata["x',
        "' or 1==1 or '",
        '\\" or 1==1 or \\"',
    ],
)
def test_hostile_values_stay_inside_one_literal(value: str) -> None:
    expr = c({"a": value})
    assert expr is not None
    prefix = 'metadata["a"] == '
    assert expr.startswith(prefix)
    literal = expr[len(prefix) :]
    # The literal is a single double-quoted string: every inner quote is escaped.
    assert literal[0] == literal[-1] == '"'
    body, i = literal[1:-1], 0
    while i < len(body):
        if body[i] == "\\":
            assert body[i + 1] in '\\"nrt'
            i += 2
            continue
        assert body[i] != '"'
        i += 1


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("filter", "needle"),
    [
        ({"a": {"$regex": "x"}}, "'$regex'"),
        ({"$foo": [{"a": 1}]}, "'$foo'"),
        ({"a": {"$and": [{"b": 1}]}}, "'$and'"),
        ({"a": {"$in": [1], "$nope": 1}}, "'$nope'"),
    ],
)
def test_unknown_operator(filter: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValueError, match="unknown filter operator") as exc:
        c(filter)
    assert needle in str(exc.value)


@pytest.mark.parametrize("key", ["a b", "1a", 'a"]', "a..b", "a or 1 == 1"])
def test_invalid_key_named(key: str) -> None:
    with pytest.raises(ValueError) as exc:
        c({key: 1})
    assert repr(key) in str(exc.value)


def test_invalid_key_inside_logical() -> None:
    with pytest.raises(ValueError, match="'bad key'"):
        c({"$or": [{"a": 1}, {"bad key": 1}]})


def test_resolver_error_propagates() -> None:
    with pytest.raises(ValueError, match="not a metadata key"):
        c({"forbidden": 1})


@pytest.mark.parametrize(
    ("filter", "needles"),
    [
        ({"a": [1, 2]}, ["'a'", "$eq", "list"]),
        ({"a": {"$gt": {"x": 1}}}, ["'a'", "$gt", "dict"]),
        ({"a": {"$eq": None}}, ["'a'", "NoneType"]),
        ({"a": {"$in": "abc"}}, ["'a'", "$in", "list of values"]),
        ({"a": {"$in": {1, 2}}}, ["'a'", "$in", "set"]),
        ({"a": {"$in": [1, [2]]}}, ["'a'", "$in", "list"]),
        ({"a": {"$nin": [{"x": 1}]}}, ["'a'", "$nin", "dict"]),
        ({"a": {"$lt": math.nan}}, ["'a'", "$lt", "not finite"]),
        ({"a": {"$like": 3}}, ["'a'", "$like", "string"]),
        ({"a": {"$exists": 1}}, ["'a'", "$exists", "True or False"]),
        ({"category": {"$exists": True}}, ["'category'", "$exists", "scalar field"]),
        ({"a": {}}, ["'a'", "empty"]),
        ({"a": {"$gt": 1, "b": 2}}, ["'a'", "operators"]),
        ({"$and": {"a": 1}}, ["$and", "list"]),
        ({"$or": []}, ["$or", "non-empty list"]),
        ({"$or": [1]}, ["$or", "int"]),
        ({"$and": [{}]}, ["empty filter clause"]),
        ({"$not": 1}, ["$not", "int"]),
    ],
)
def test_bad_values(filter: dict[str, Any], needles: list[str]) -> None:
    with pytest.raises(ValueError) as exc:
        c(filter)
    for needle in needles:
        assert needle in str(exc.value)


@pytest.mark.parametrize("expr", [
    "pk == 'a'", "(a > 1) and (b in [1, 2])", "s == 'it\\'s (odd'", 's == "])}"',
    "json_contains(m['k'], 1)", "",
])
def test_self_contained_expressions(expr: str) -> None:
    assert is_self_contained(expr)


@pytest.mark.parametrize("expr", [
    "pk == 'x') or (pk != 'x'", "a > 1)", "(a > 1", "s == 'open", "a in [1, 2)", "a in (1]",
    's == "x\\"',
])
def test_expressions_that_could_merge_into_another_meaning_are_not(expr: str) -> None:
    assert not is_self_contained(expr)


def test_combine_and_refuses_an_expression_that_would_escape_its_parentheses() -> None:
    # Alone the server rejects it; ANDed it would read "(a) and (x == 1) or (pk != '')".
    with pytest.raises(ValueError, match=r"not one closed expression"):
        combine_and("pk in ['a']", "x == 1) or (pk != ''")
    assert combine_and(None, "x == 1) or (y") == "x == 1) or (y"  # alone: the server judges
