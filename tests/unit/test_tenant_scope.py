"""Unit tests of tenant confinement (`tenants`): every row-touching step of a plan, confined."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from layouts import planned
from pymilvus import AnnSearchRequest, DataType
from test_plans import CREATE_OPTIONS, FakeDriver

from langchain_milvus_ext._collection import CollectionState
from langchain_milvus_ext._filters import is_self_contained
from langchain_milvus_ext._operations import (
    add_plan,
    delete_plan,
    get_by_ids_plan,
    query_plan,
    search_plan,
)
from langchain_milvus_ext._steps import (
    Call,
    Delete,
    Plan,
    Search,
    Write,
    WriteKey,
)
from langchain_milvus_ext.tenants import TenantScope, confine_plan

ACME = TenantScope("tenant", "acme")
TENANT = 'tenant == "acme"'

# Raw expressions that try to leave their parentheses: refused before any step is sent.
ESCAPES = [
    "x) or (true",
    '1 == 1) or (tenant == "bob"',
    'tenant == "bob")) or ((1 == 1',
    "') or (1 == 1",
    'pk in ["a"]] or true or [pk',
    "(tenant == 'bob'",
    'tenant == "bob\\") or (true',
]
# Closed expressions: sent, but only ANDed with the tenant condition.
CLOSED = [
    'tenant == "bob"',
    'tenant != "acme"',
    '(tenant == "acme") or (tenant == "bob")',
    'pk != ""',
    "1 == 1",
    'tenant in ["acme", "bob"]',
    'not (tenant == "acme")',
    'text like "%"',
    'tenant == "x\\") or (true"',
    '") or (tenant != "',  # one string literal, as a whole
    '"] or true or metadata["x',
]


def state(**layout: Any) -> CollectionState:
    known = replace(planned(partition_key_field="tenant"), dim=3, exists=True, **layout)
    return CollectionState("docs", known, CREATE_OPTIONS)


STATE = state()


def run(plan: Plan, responses: dict[str, Any] | None = None) -> tuple[Any, FakeDriver]:
    driver = FakeDriver(responses)
    return driver.run(confine_plan(plan, ACME, STATE)), driver


def search_expr(**options: Any) -> str:
    _, driver = run(search_plan(STATE, ["q"], 3, **options), {"Search": lambda s: [([], [])]})
    (step,) = [s for s in driver.steps if isinstance(s, Search)]
    assert step.key.expr is not None
    return step.key.expr


def test_search_without_a_filter_gets_the_tenant_condition() -> None:
    assert search_expr() == TENANT


def test_dict_filters_are_anded_with_the_tenant() -> None:
    assert search_expr(filter={"tenant": "bob"}) == f'({TENANT}) and (tenant == "bob")'


@pytest.mark.parametrize("expr", CLOSED)
def test_closed_expressions_are_anded_with_the_tenant(expr: str) -> None:
    assert search_expr(expr=expr) == f"({TENANT}) and ({expr})"
    assert search_expr(filter=expr) == f"({TENANT}) and ({expr})"


@pytest.mark.parametrize("expr", ESCAPES)
def test_expressions_that_could_escape_are_refused(expr: str) -> None:
    for options in ({"expr": expr}, {"filter": expr}, {"filter": {"n": 1}, "expr": expr}):
        driver = FakeDriver()
        with pytest.raises(ValueError, match="not one closed expression"):
            driver.run(confine_plan(search_plan(STATE, ["q"], 3, **options), ACME, STATE))
        assert not any(isinstance(s, Search) for s in driver.steps)


def test_hostile_tenant_values_stay_one_literal() -> None:
    scope = TenantScope("tenant", '"] or true or tenant == "bob')
    assert scope.condition(STATE.layout) == 'tenant == "\\"] or true or tenant == \\"bob"'


def test_delete_by_ids_becomes_an_expression_with_the_tenant() -> None:
    _, driver = run(delete_plan(STATE, ["bob0", 'x"] or true or ["']))
    (step,) = [s for s in driver.steps if isinstance(s, Delete)]
    assert step.ids is None
    assert step.expr == f'({TENANT}) and (pk in ["bob0", "x\\"] or true or [\\""])'


def test_equality_deletes_keep_the_tenant() -> None:
    _, driver = run(delete_plan(STATE, None, filter={"tenant": "bob"}))
    (step,) = [s for s in driver.steps if isinstance(s, Delete)]
    assert step.ids is None and step.field is None
    assert step.expr == f'({TENANT}) and (tenant in ["bob"])'


def test_delete_by_expression_keeps_the_tenant() -> None:
    _, driver = run(delete_plan(STATE, None, expr='tenant == "bob" or true'))
    (step,) = [s for s in driver.steps if isinstance(s, Delete)]
    assert step.expr == f'({TENANT}) and (tenant == "bob" or true)'


def test_get_by_ids_queries_the_tenant_only() -> None:
    _, driver = run(get_by_ids_plan(STATE, ["bob0"]), {"query": []})
    (call,) = driver.steps
    assert call.kwargs["filter"] == f'({TENANT}) and (pk in ["bob0"])'


def test_queries_without_a_filter_are_confined() -> None:
    _, driver = run(query_plan(STATE, None, pks_only=True), {"query": []})
    (call,) = driver.steps
    assert call.kwargs["filter"].startswith(f"({TENANT}) and (")


def test_writes_of_another_tenant_are_refused_before_anything_is_sent() -> None:
    rows = [{"pk": "a", "text": "t", "tenant": "bob", "metadata": {"tenant": "bob"}}]
    plan = yield_write(rows)
    driver = FakeDriver()
    with pytest.raises(ValueError, match="writes tenant 'acme' only"):
        driver.run(confine_plan(plan, ACME, STATE))
    assert driver.steps == []


def yield_write(rows: list[dict[str, Any]]) -> Plan:
    return (yield Write(rows=rows, texts=["t"] * len(rows), vectors=None, key=WriteKey()))


def test_ids_of_another_tenant_are_not_overwritten() -> None:
    plan = add_plan(STATE, ["t"], ACME.stamp(None, 1), ["bob0"])
    driver = FakeDriver({"query": [{"pk": "bob0"}]})
    with pytest.raises(ValueError, match="used by another tenant"):
        driver.run(confine_plan(plan, ACME, STATE))
    (check,) = driver.steps
    assert check.kwargs["filter"] == '(pk in ["bob0"]) and (tenant != "acme")'
    assert not any(isinstance(s, Write) for s in driver.steps)


def test_own_ids_are_written() -> None:
    plan = add_plan(STATE, ["t"], ACME.stamp([{"n": 1}], 1), ["a0"])
    result, driver = run(plan, {"query": []})
    assert result == ["a0"]
    write = driver.steps[-1]
    assert isinstance(write, Write) and write.rows[0]["tenant"] == "acme"


def test_stamp_sets_a_missing_tenant_and_refuses_another() -> None:
    assert ACME.stamp([{"n": 1}, None, {"tenant": "acme"}], 3) == [
        {"n": 1, "tenant": "acme"}, {"tenant": "acme"}, {"tenant": "acme"}]
    for other in ("bob", "ACME", 1, ["acme"]):
        with pytest.raises(ValueError, match=r"metadatas\[0\]\['tenant'\]"):
            ACME.stamp([{"tenant": other}], 1)


def test_hybrid_requests_are_rebuilt_with_the_tenant() -> None:
    def plan() -> Plan:
        request = AnnSearchRequest(data=[[0.0, 1.0, 0.0]], anns_field="vector", param={},
                                   limit=3, expr='tenant == "bob"')
        return (yield Call("hybrid_search", {"collection_name": "docs", "reqs": [request]}))

    _, driver = run(plan(), {"hybrid_search": [[]]})
    (call,) = driver.steps
    assert [r.expr for r in call.kwargs["reqs"]] == [f'({TENANT}) and (tenant == "bob")']


@pytest.mark.parametrize("step", [
    Call("drop_collection", {"collection_name": "docs"}),
    Call("get", {"collection_name": "docs", "ids": ["bob0"]}),
    Call("query", {"collection_name": "docs", "ids": ["bob0"]}),
    Call("delete", {"collection_name": "docs", "ids": ["bob0"]}),
])
def test_other_steps_are_refused(step: Call) -> None:
    def plan() -> Plan:
        return (yield step)

    driver = FakeDriver()
    with pytest.raises(ValueError, match="tenant view"):
        driver.run(confine_plan(plan(), ACME, STATE))
    assert driver.steps == []


def test_the_tenant_column_must_exist_and_fit() -> None:
    with pytest.raises(ValueError, match="not a scalar column"):
        TenantScope("owner", "acme").condition(STATE.layout)
    with pytest.raises(ValueError, match="non-empty string"):
        TenantScope("tenant", 7).condition(STATE.layout)
    ints = replace(STATE.layout, scalar_fields={"tenant": DataType.INT64})
    assert TenantScope("tenant", 7).condition(ints) == "tenant == 7"
    for bad in ("7", True, 2**63):
        with pytest.raises(ValueError, match="integer tenant"):
            TenantScope("tenant", bad).condition(ints)
    floats = replace(STATE.layout, scalar_fields={"tenant": DataType.DOUBLE})
    with pytest.raises(ValueError, match="VARCHAR or an integer"):
        TenantScope("tenant", 1).condition(floats)


def test_a_step_failure_is_thrown_back_into_the_plan() -> None:
    def plan() -> Plan:
        try:
            yield Call("query", {"collection_name": "docs", "filter": ""})
        except RuntimeError as error:
            return f"caught {error}"
        return "no error"

    result, _ = run(plan(), {"query": RuntimeError("boom")})
    assert result == "caught boom"


@pytest.mark.parametrize("expr", CLOSED)
def test_the_tenant_comes_first_and_a_cut_caller_part_never_parses(expr: str) -> None:
    confined = ACME.confine(STATE.layout, expr)
    head = f"({TENANT}) and ("
    assert confined.startswith(head)
    # A server reading the expression only up to some character (a NUL, a length limit)
    # gets the tenant condition whole, then an unclosed group: a parse error, not a leak.
    for cut in range(len(head), len(confined)):
        assert not is_self_contained(confined[:cut])
