"""Unit tests for the sans-I/O plans (`_collection`, `_batch_plans`, `_operations`), driven by
a fake driver."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from layouts import planned
from pymilvus import DataType

from langchain_milvus_ext._batch_plans import (
    delete_batch_plan,
    search_batch_plan,
    send_rows_plan,
    store_rows_plan,
    write_batch_plan,
)
from langchain_milvus_ext._collection import CollectionState
from langchain_milvus_ext._operations import (
    add_plan,
    delete_plan,
    get_by_ids_plan,
    retrieve_plan,
    search_plan,
)
from langchain_milvus_ext._schema import CreateOptions, search_params_for
from langchain_milvus_ext._steps import (
    Call,
    Delete,
    Describe,
    Embed,
    Search,
    SearchItem,
    SearchKey,
    Write,
    WriteKey,
)

DIM = 3


CREATE_OPTIONS = CreateOptions(consistency_level="Session")


def missing_state() -> CollectionState:
    """A store whose collection does not exist (and has not been looked up yet)."""
    return CollectionState("docs", planned(), CREATE_OPTIONS)


def existing_state(**layout: Any) -> CollectionState:
    """A store whose collection layout is already known (no lookup steps)."""
    known = replace(planned(), dim=DIM, exists=True, **layout)
    return CollectionState("docs", known, CREATE_OPTIONS)


def description(dim: int = DIM) -> dict[str, Any]:
    return {
        "collection_name": "docs",
        "auto_id": False,
        "enable_dynamic_field": False,
        "fields": [
            {"name": "pk", "type": DataType.VARCHAR, "is_primary": True,
             "params": {"max_length": 512}},
            {"name": "text", "type": DataType.VARCHAR, "params": {"max_length": 65535}},
            {"name": "vector", "type": DataType.FLOAT_VECTOR, "params": {"dim": dim}},
            {"name": "metadata", "type": DataType.JSON, "params": {}},
        ],
    }


def fake_vector(text: str) -> list[float]:
    return [float(len(text)), 1.0, 0.0]


class Seq:
    """Answers given in turn, one per occurrence of the step."""

    def __init__(self, *values: Any) -> None:
        self.values = list(values)


def _state_asked(plan: Any) -> CollectionState:
    """The state a plan that yielded `Describe` works on (a real driver has its own): the
    `state` of the innermost generator, `layout_plan(state)` or a wrapper such as
    `confine_plan`."""
    while plan.gi_yieldfrom is not None:
        plan = plan.gi_yieldfrom
    state: CollectionState = plan.gi_frame.f_locals["state"]
    return state


class FakeDriver:
    """Answers steps from canned responses and records every step.

    `responses` maps a `Call` method name (or a step class name such as "Search") to a value,
    a `Seq` of values (answered in turn), a callable taking the step, or an exception to throw
    into the plan.
    """

    def __init__(self, responses: dict[str, Any] | None = None) -> None:
        self.responses = dict(responses or {})
        self.steps: list[Any] = []

    def answer(self, step: Any) -> Any:
        if isinstance(step, Call):
            name = step.method
        else:
            name = type(step).__name__
        if name not in self.responses:
            return self.default(step)
        value = self.responses[name]
        if isinstance(value, Seq):
            value = value.values.pop(0)
        if callable(value):
            value = value(step)
        return value

    def default(self, step: Any) -> Any:
        if isinstance(step, Embed):
            return [fake_vector(t) for t in step.texts]
        if isinstance(step, Write):
            return [row["pk"] for row in step.rows]
        if isinstance(step, Delete):
            return None
        if isinstance(step, Call) and step.method == "get_server_version":
            return "v2.5.0"
        raise AssertionError(f"unexpected step {step!r}")

    def run(self, plan: Any) -> Any:
        try:
            step = next(plan)
            while True:
                if isinstance(step, Describe):  # the drivers run the layout read in place
                    step = plan.send(self.run(_state_asked(plan).describe_plan()))
                    continue
                self.steps.append(step)
                result = self.answer(step)
                if isinstance(result, BaseException):
                    step = plan.throw(result)
                else:
                    step = plan.send(result)
        except StopIteration as stop:
            return stop.value

    def methods(self) -> list[str]:
        return [s.method if isinstance(s, Call) else type(s).__name__ for s in self.steps]


# --------------------------------------------------------------------------- add_plan


def test_add_to_missing_collection_yields_one_write_with_ids_and_texts() -> None:
    driver = FakeDriver({"has_collection": False})
    ids = driver.run(add_plan(missing_state(), ["a", "bb"], [{"k": 1}, {"k": 2}], None))
    assert driver.methods() == ["has_collection", "Write"]
    write = driver.steps[1]
    assert [row["text"] for row in write.rows] == ["a", "bb"]
    assert [row["metadata"] for row in write.rows] == [{"k": 1}, {"k": 2}]
    assert all(isinstance(row["pk"], str) and row["pk"] for row in write.rows)
    assert write.texts == ["a", "bb"] and write.vectors is None
    assert write.key == WriteKey(partition_name=None, timeout=None, fresh_ids=True)
    assert ids == [row["pk"] for row in write.rows]


@pytest.mark.parametrize(("ids", "replace", "fresh"), [
    (None, False, True),  # every id generated: nothing can exist under them
    ([None, None], False, True),
    (["x", None], False, False),  # a caller's id may name an existing row
    (["x", "y"], False, False),
    (None, True, False),  # an upsert
])
def test_a_write_knows_whether_all_its_ids_are_fresh(ids: list[str | None] | None,
                                                     replace: bool, fresh: bool) -> None:
    driver = FakeDriver({"has_collection": False})
    driver.run(add_plan(missing_state(), ["a", "bb"], None, ids, replace=replace))
    assert driver.steps[-1].key.fresh_ids is fresh


@pytest.mark.parametrize(("fresh", "method", "retry_as"),
                         [(True, "insert", "upsert"), (False, "upsert", None)])
def test_rows_with_fresh_ids_are_inserted_and_retried_as_upserts(
        fresh: bool, method: str, retry_as: str | None) -> None:
    layout = existing_state().layout
    rows = [{"pk": "a", "text": "t", "vector": [0.1, 0.2]}]
    plan = send_rows_plan(existing_state(), layout, rows, WriteKey(fresh_ids=fresh))
    step = next(plan)
    assert (step.method, step.retry_as) == (method, retry_as)
    with pytest.raises(StopIteration) as done:
        plan.send({"insert_count": 1} if fresh else None)
    assert done.value.value == ["a"]


def test_add_with_ids_and_vectors() -> None:
    driver = FakeDriver()
    ids = driver.run(add_plan(
        existing_state(), ["a", "b"], None, ["x", "y"], vectors=[[1, 2, 3], [4, 5, 6]],
        timeout=2.0, partition_name="p1",
    ))
    [write] = driver.steps
    assert isinstance(write, Write)
    assert [row["pk"] for row in write.rows] == ["x", "y"]
    assert write.texts is None
    assert write.vectors == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    assert write.key == WriteKey(partition_name="p1", timeout=2.0)
    assert ids == ["x", "y"]


def test_add_returns_string_ids() -> None:
    driver = FakeDriver({"Write": [10, 11]})
    state = existing_state(auto_id=True, pk_is_int=True)
    assert driver.run(add_plan(state, ["a", "b"], None, None)) == ["10", "11"]
    assert "pk" not in driver.steps[0].rows[0]


def test_add_with_wrong_vector_count_raises_before_any_step() -> None:
    driver = FakeDriver()
    with pytest.raises(ValueError, match="got 2 texts but 1 embeddings"):
        driver.run(add_plan(missing_state(), ["a", "b"], None, None, vectors=[[1, 2, 3]]))
    assert driver.steps == []


def test_add_with_bad_metadata_never_writes() -> None:
    driver = FakeDriver({"has_collection": False})
    with pytest.raises(ValueError, match="JSON-serialisable"):
        driver.run(add_plan(missing_state(), ["a"], [{"x": float("nan")}], None))
    assert "Write" not in driver.methods()


def test_add_nothing_writes_nothing() -> None:
    driver = FakeDriver()
    assert driver.run(add_plan(existing_state(), [], None, None)) == []
    assert driver.steps == []


# --------------------------------------------------------------------------- search_plan


def test_search_yields_one_search_with_filter_and_limit() -> None:
    canned = [([{"id": "a", "distance": 0.5}], [1.0, 0.0, 0.0])]
    driver = FakeDriver({"Search": canned})
    result = driver.run(search_plan(
        existing_state(), ["hello"], 3, filter={"genre": "scifi"}, expr="year > 2000",
    ))
    [search] = driver.steps
    assert isinstance(search, Search)
    assert search.items == [SearchItem(text="hello")]
    assert search.key.limit == 3
    assert search.key.expr == '(metadata["genre"] == "scifi") and (year > 2000)'
    assert json.loads(search.key.search_params)["metric_type"] == "L2"
    assert "text" in search.key.output_fields and "metadata" in search.key.output_fields
    assert "vector" not in search.key.output_fields
    assert result == canned


def test_search_vector_queries_and_no_filter() -> None:
    driver = FakeDriver({"Search": [([], [1.0, 2.0, 3.0])]})
    driver.run(search_plan(existing_state(), [[1, 2, 3]], 5, partition_names=["p"]))
    [search] = driver.steps
    assert search.items == [SearchItem(vector=[1.0, 2.0, 3.0])]
    assert search.key.expr is None
    assert search.key.partition_names == ("p",)


@pytest.mark.parametrize("index_type", ["AUTOINDEX", "HNSW"])
def test_search_params_follow_each_calls_k_metric_and_param(index_type: str) -> None:
    """The frozen default params are kept per (metric, index type, k): each call still gets
    its own k's `ef`, its layout's metric, and a caller's `param` wins."""
    for metric in ("L2", "COSINE"):
        state = existing_state(metric=metric, index_type=index_type)
        for k in (3, 100, 3):
            driver = FakeDriver({"Search": [([], [1.0, 2.0, 3.0])]})
            driver.run(search_plan(state, ["q"], k))
            [search] = driver.steps
            want = search_params_for(state.layout, k, None)
            assert json.loads(search.key.search_params) == want
            assert want["metric_type"] == metric
            assert ("ef" in want["params"]) == (index_type == "HNSW")
        driver = FakeDriver({"Search": [([], [1.0, 2.0, 3.0])]})
        driver.run(search_plan(state, ["q"], 3, param={"params": {"ef": 7}}))
        [search] = driver.steps
        assert json.loads(search.key.search_params) == {"metric_type": metric,
                                                        "params": {"ef": 7}}


def test_search_bad_k_raises_before_any_step() -> None:
    driver = FakeDriver()
    with pytest.raises(ValueError, match="k must be a positive integer"):
        driver.run(search_plan(missing_state(), ["q"], 0))
    assert driver.steps == []


# --------------------------------------------------------------------------- delete_plan


def test_delete_by_ids_only_yields_delete_ids() -> None:
    driver = FakeDriver()
    assert driver.run(delete_plan(existing_state(), ["a", "b", "a"], timeout=1.0)) is True
    assert driver.steps == [Delete(ids=["a", "b"], partition_name=None, timeout=1.0)]


def test_delete_by_ids_and_filter_yields_one_delete_with_both() -> None:
    # pymilvus refuses ids= together with filter=, so the ids become part of the expression.
    driver = FakeDriver()
    driver.run(delete_plan(existing_state(), ["a"], filter={"k": 1}, partition_name="p"))
    assert driver.steps == [Delete(expr='(pk in ["a"]) and (metadata["k"] == 1)',
                                   partition_name="p")]


def test_delete_by_filter_only() -> None:
    driver = FakeDriver()
    driver.run(delete_plan(existing_state(), None, expr="pk like \"x%\""))
    assert driver.steps == [Delete(expr='pk like "x%"')]


def test_delete_batch_ors_expressions_and_dedupes_ids() -> None:
    driver = FakeDriver({"delete": None})
    driver.run(delete_batch_plan(existing_state(), (False, None, None, 2.0),
                                 ["a == 1", "b == 2", "a == 1"]))
    driver.run(delete_batch_plan(existing_state(), (True, None, "p", None), ["x", "y", "x"]))
    assert driver.steps == [
        Call("delete", {"collection_name": "docs", "timeout": 2.0,
                        "filter": "(a == 1) or (b == 2)"}),
        Call("delete", {"collection_name": "docs", "timeout": None,
                        "filter": 'pk in ["x", "y"]', "partition_name": "p"}),
    ]


def test_delete_batch_by_ids_escapes_them_in_its_own_expression() -> None:
    # pymilvus's delete(ids=...) pastes string ids between quotes without escaping them.
    driver = FakeDriver({"delete": None})
    driver.run(delete_batch_plan(existing_state(), (True, None, None, None), ['x\\"y', "it's\n"]))
    [call] = driver.steps
    assert call.kwargs["filter"] == 'pk in ["x\\\\\\"y", "it\'s\\n"]'
    assert "ids" not in call.kwargs


def test_equality_deletes_become_values_of_one_field() -> None:
    dynamic = existing_state(metadata_field=None, dynamic=True)
    driver = FakeDriver({"delete": None})
    driver.run(delete_plan(dynamic, None, filter={"id": "doc_1"}))
    driver.run(delete_plan(dynamic, None, filter={"id": {"$in": ["a", 2]}}, timeout=1.0))
    driver.run(delete_plan(dynamic, None, expr="id == 'doc_2'"))
    driver.run(delete_plan(dynamic, None, expr='pk == "x"'))
    assert driver.steps == [
        Delete(ids=["doc_1"], field="id"), Delete(ids=["a", 2], field="id", timeout=1.0),
        Delete(ids=["doc_2"], field="id"), Delete(ids=["x"], field="pk"),
    ]
    driver.run(delete_batch_plan(dynamic, driver.steps[0].key, ["doc_1", "doc_2", "doc_1"]))
    assert driver.steps[-1] == Call("delete", {"collection_name": "docs", "timeout": None,
                                               "filter": 'id in ["doc_1", "doc_2"]'})


@pytest.mark.parametrize(("filter", "expr"), [
    ({"id": 1.5}, None), ({"id": True}, None), ({"a": 1, "b": 2}, None),
    ({"id": {"$ne": 1}}, None), ({"a.b": 1}, None), ({"like": "x"}, None),
    (None, "id == 'a' or id == 'b'"), (None, 'id == "a\\"b"'), (None, "id > 3"),
    (None, "vector == 'x'"),
])
def test_other_conditions_stay_expressions(filter: Any, expr: str | None) -> None:
    driver = FakeDriver()
    driver.run(delete_plan(existing_state(metadata_field=None, dynamic=True), None,
                           filter=filter, expr=expr))
    [step] = driver.steps
    assert isinstance(step, Delete) and step.ids is None and step.expr


def test_json_metadata_paths_stay_expressions() -> None:
    # Milvus Lite refuses `metadata["id"] in [...]`, so these are ORed instead.
    driver = FakeDriver()
    driver.run(delete_plan(existing_state(), None, filter={"id": "a"}))
    assert driver.steps == [Delete(expr='metadata["id"] == "a"')]


def test_delete_everything_is_refused() -> None:
    driver = FakeDriver()
    with pytest.raises(ValueError, match="refusing to delete everything"):
        driver.run(delete_plan(existing_state(), None))
    assert driver.steps == []


def test_delete_empty_ids_raises_on_a_known_collection() -> None:
    driver = FakeDriver()
    with pytest.raises(ValueError, match="ids is an empty list"):
        driver.run(delete_plan(existing_state(), []))
    assert driver.steps == []


def test_delete_empty_ids_raises_before_any_step() -> None:
    """An argument error needs no round trip: nothing should be asked of the server first."""
    driver = FakeDriver({
        "has_collection": True, "describe_collection": description(), "list_indexes": [],
        "load_collection": None,
    })
    with pytest.raises(ValueError, match="ids is an empty list"):
        driver.run(delete_plan(missing_state(), []))
    assert driver.steps == []


def test_delete_on_missing_collection_only_looks_it_up() -> None:
    driver = FakeDriver({"has_collection": False})
    assert driver.run(delete_plan(missing_state(), ["a"])) is True
    assert driver.methods() == ["has_collection"]


# --------------------------------------------------------------------------- get_by_ids_plan


def test_get_by_ids_on_missing_collection_returns_empty_after_lookup() -> None:
    driver = FakeDriver({"has_collection": False})
    assert driver.run(get_by_ids_plan(missing_state(), ["a", "b"])) == []
    assert driver.steps == [Call("has_collection", {"collection_name": "docs"})]


def test_get_by_ids_orders_results_and_drops_missing() -> None:
    rows = [
        {"pk": "b", "text": "B", "metadata": {"n": 2}},
        {"pk": "a", "text": "A", "metadata": {"n": 1}},
    ]
    driver = FakeDriver({"query": rows})
    docs = driver.run(get_by_ids_plan(existing_state(), ["a", "zz", "b", "a"]))
    [call] = driver.steps
    assert call.method == "query"  # not get(ids=...), which does not escape string ids
    assert call.kwargs["filter"] == 'pk in ["a", "zz", "b"]'
    assert [(d.id, d.page_content, d.metadata) for d in docs] == [
        ("a", "A", {"n": 1}), ("b", "B", {"n": 2}),
    ]


# --------------------------------------------------------------------------- CollectionState


def test_ensure_creates_then_describes_and_adopts_the_layout() -> None:
    index = {"field_name": "vector", "metric_type": "L2", "index_type": "HNSW"}
    driver = FakeDriver({
        "has_collection": Seq(False, True),
        "create_collection": None,
        "describe_collection": description(dim=8),
        "list_indexes": ["vector_idx"],
        "describe_index": index,
        "load_collection": None,
    })
    state = missing_state()
    layout = driver.run(state.ensure_plan(8))
    assert driver.methods() == [
        "has_collection", "create_collection", "has_collection", "describe_collection",
        "list_indexes", "describe_index", "load_collection", "get_server_version",
    ]
    create = driver.steps[1]
    assert create.kwargs["collection_name"] == "docs"
    vector = next(f for f in create.kwargs["schema"].to_dict()["fields"] if f["name"] == "vector")
    assert vector["params"]["dim"] == 8
    assert layout.exists and layout.dim == 8 and layout.metric == "L2"
    assert layout.index_type == "HNSW"
    assert state.layout is layout


@pytest.mark.parametrize(("version", "merges"), [
    ("milvus_lite-3.2.2", True),  # Milvus Lite 3: its Upsert merges into the old row
    ("v2.3.5-lite", False),  # PyPI's milvus 2.3.5 is a Milvus build
    ("v2.5.4", False),
])
def test_a_write_of_existing_ids_is_an_upsert_except_on_milvus_lite(
        version: str, merges: bool) -> None:
    driver = FakeDriver({
        "has_collection": True, "describe_collection": description(dim=8),
        "list_indexes": ["vector_idx"], "describe_index": {"field_name": "vector"},
        "load_collection": None, "get_server_version": version, "insert": None, "upsert": None,
    })
    state = missing_state()
    layout = driver.run(state.describe_plan())
    assert layout.upserts_merge is merges
    driver.steps.clear()
    key = WriteKey(fresh_ids=False)
    driver.run(store_rows_plan(state, [{"pk": "a", "text": "t"}], [[0.5] * 8], key))
    [call] = driver.steps
    assert (call.method, call.retry_as) == (("insert", None) if merges else ("upsert", None))


def test_ensure_on_known_collection_makes_no_calls() -> None:
    state = existing_state()
    driver = FakeDriver()
    assert driver.run(state.ensure_plan(DIM)) is state.layout
    assert driver.steps == []


def test_ensure_tolerates_a_racing_creator() -> None:
    index = {"field_name": "vector", "metric_type": "L2", "index_type": "AUTOINDEX"}
    driver = FakeDriver({
        "has_collection": Seq(False, True, True),
        "create_collection": RuntimeError("collection already exists"),
        "describe_collection": description(),
        "list_indexes": ["vector_idx"],
        "describe_index": index,
        "load_collection": None,
    })
    layout = driver.run(missing_state().ensure_plan(DIM))
    assert layout.exists and layout.dim == DIM
    assert "create_index" not in driver.methods()


def test_a_collection_found_without_its_vector_index_is_indexed_before_it_is_loaded() -> None:
    """Another caller has created the collection but not yet its index (or it was made
    without one): loading it now fails with "index not found", so the plan makes the index
    the store would have made (as langchain-milvus does), then loads."""
    index = {"field_name": "vector", "metric_type": "L2", "index_type": "AUTOINDEX"}
    driver = FakeDriver({
        "has_collection": True,
        "describe_collection": description(),
        "list_indexes": Seq([], ["vector"]),
        "create_index": None,
        "describe_index": index,
        "load_collection": None,
    })
    layout = driver.run(missing_state().describe_plan())
    assert driver.methods() == [
        "has_collection", "describe_collection", "list_indexes", "create_index",
        "list_indexes", "describe_index", "load_collection", "get_server_version",
    ]
    created = driver.steps[3].kwargs["index_params"]
    assert [(i.field_name, i.get_index_configs()["metric_type"]) for i in created] == [
        ("vector", "L2")]
    assert layout.exists and layout.metric == "L2"


def test_an_index_made_meanwhile_by_the_racing_creator_is_used() -> None:
    """Our create_index loses to the creator's (other parameters): its index is read back."""
    index = {"field_name": "vector", "metric_type": "IP", "index_type": "HNSW"}
    driver = FakeDriver({
        "has_collection": True,
        "describe_collection": description(),
        "list_indexes": Seq([], ["vector"]),
        "create_index": RuntimeError("at most one distinct index is allowed per field"),
        "describe_index": index,
        "load_collection": None,
    })
    layout = driver.run(missing_state().describe_plan())
    assert layout.metric == "IP" and layout.index_type == "HNSW"


def test_a_failed_index_creation_with_no_index_after_it_is_raised() -> None:
    driver = FakeDriver({
        "has_collection": True,
        "describe_collection": description(),
        "list_indexes": [],
        "create_index": RuntimeError("index type not supported"),
    })
    with pytest.raises(RuntimeError, match="index type not supported"):
        driver.run(missing_state().describe_plan())
    assert "load_collection" not in driver.methods()


def test_ensure_reraises_a_failed_create() -> None:
    driver = FakeDriver({
        "has_collection": Seq(False, False),
        "create_collection": RuntimeError("bad schema"),
    })
    with pytest.raises(RuntimeError, match="bad schema"):
        driver.run(missing_state().ensure_plan(DIM))


def test_store_rows_upserts_with_vectors() -> None:
    driver = FakeDriver({"upsert": {"upsert_count": 1}})
    ids = driver.run(store_rows_plan(
        existing_state(), [{"pk": "a", "text": "t"}], [[1, 2, 3]], WriteKey("p", 3.0)
    ))
    [call] = driver.steps
    assert call.method == "upsert"
    assert call.kwargs["data"] == [{"pk": "a", "text": "t", "vector": [1.0, 2.0, 3.0]}]
    assert call.kwargs["partition_name"] == "p" and call.kwargs["timeout"] == 3.0
    assert ids == ["a"]


def test_store_rows_inserts_for_auto_id() -> None:
    driver = FakeDriver({"insert": {"ids": [101, 102]}})
    state = existing_state(auto_id=True, pk_is_int=True)
    ids = driver.run(store_rows_plan(state, [{"text": "a"}, {"text": "b"}], [[1, 2, 3]] * 2,
                                     WriteKey()))
    assert driver.methods() == ["insert"]
    assert ids == [101, 102]


# --------------------------------------------------------------------------- search_batch_plan


KEY = SearchKey(limit=2, expr='metadata["k"] == 1', output_fields=("text", "metadata"),
                search_params=json.dumps({"metric_type": "COSINE", "params": {}}))


def test_search_batch_embeds_only_text_items_and_keeps_vectors() -> None:
    items = [SearchItem(text="a"), SearchItem(vector=[9.0, 9.0, 9.0]), SearchItem(text="ccc")]
    hits = [[{"id": "x", "distance": 0.1}], [], [{"id": "y", "distance": 0.2}]]
    driver = FakeDriver({"search": hits})
    result = driver.run(search_batch_plan(existing_state(), items, KEY))
    assert driver.methods() == ["Embed", "search"]
    embed, search = driver.steps
    assert embed == Embed(["a", "ccc"], "queries")
    expected = [fake_vector("a"), [9.0, 9.0, 9.0], fake_vector("ccc")]
    assert search.kwargs["data"] == expected
    assert search.kwargs["limit"] == 2
    assert search.kwargs["filter"] == 'metadata["k"] == 1'
    assert search.kwargs["anns_field"] == "vector"
    assert search.kwargs["search_params"] == {"metric_type": "COSINE", "params": {}}
    assert [vector for _, vector in result] == expected
    assert [[h["id"] for h in per_query] for per_query, _ in result] == [["x"], [], ["y"]]


def test_search_batch_sends_each_distinct_query_once_and_fans_results_out() -> None:
    items = [SearchItem(text="a"), SearchItem(text="bb"), SearchItem(text="a"),
             SearchItem(vector=[9.0, 9.0, 9.0]), SearchItem(vector=[9.0, 9.0, 9.0])]
    hits = [[{"id": "x", "distance": 0.1}], [{"id": "y", "distance": 0.2}],
            [{"id": "z", "distance": 0.3}]]
    driver = FakeDriver({"search": hits})
    result = driver.run(search_batch_plan(existing_state(), items, KEY))
    embed, search = driver.steps
    assert embed == Embed(["a", "bb"], "queries")
    assert search.kwargs["data"] == [fake_vector("a"), fake_vector("bb"), [9.0, 9.0, 9.0]]
    assert [[h["id"] for h in per_query] for per_query, _ in result] == [
        ["x"], ["y"], ["x"], ["z"], ["z"]]
    assert [vector for _, vector in result] == [
        fake_vector("a"), fake_vector("bb"), fake_vector("a"), [9.0] * 3, [9.0] * 3]


def test_search_batch_rejects_a_short_answer() -> None:
    driver = FakeDriver({"search": [[]]})
    items = [SearchItem(text="a"), SearchItem(text="b")]
    with pytest.raises(ValueError, match="1 of 2 queries"):
        driver.run(search_batch_plan(existing_state(), items, KEY))


def test_search_batch_rejects_a_short_embedding() -> None:
    driver = FakeDriver({"Embed": [[1.0, 0.0, 0.0]]})
    items = [SearchItem(text="a"), SearchItem(text="b")]
    with pytest.raises(ValueError, match="1 vectors for 2 texts"):
        driver.run(search_batch_plan(existing_state(), items, KEY))
    assert "search" not in driver.methods()


def test_write_batch_embeds_each_distinct_text_once() -> None:
    driver = FakeDriver({"upsert": {"upsert_count": 3}})
    rows = [{"pk": "1", "text": "same"}, {"pk": "2", "text": "other"}, {"pk": "3", "text": "same"}]
    write = Write(rows=rows, texts=["same", "other", "same"], vectors=None, key=WriteKey())
    ids = driver.run(write_batch_plan(existing_state(), write))
    embed, upsert = driver.steps
    assert embed == Embed(["same", "other"], "documents")
    assert [row["vector"] for row in upsert.kwargs["data"]] == [
        fake_vector("same"), fake_vector("other"), fake_vector("same")]
    assert upsert.kwargs["data"][0]["vector"] is not upsert.kwargs["data"][2]["vector"]
    assert ids == ["1", "2", "3"]


def test_search_batch_of_vectors_embeds_nothing() -> None:
    driver = FakeDriver({"search": [[]]})
    driver.run(search_batch_plan(existing_state(), [SearchItem(vector=[1.0, 0.0, 0.0])], KEY))
    assert driver.methods() == ["search"]


def test_search_batch_on_missing_collection_returns_empty_hits() -> None:
    driver = FakeDriver({"has_collection": False})
    result = driver.run(search_batch_plan(missing_state(), [SearchItem(text="q")], KEY))
    assert driver.methods() == ["Embed", "has_collection"]
    assert result == [([], fake_vector("q"))]


def test_search_batch_checks_query_dimension() -> None:
    driver = FakeDriver()
    with pytest.raises(ValueError, match="dimension 2"):
        driver.run(search_batch_plan(existing_state(), [SearchItem(vector=[1.0, 0.0])], KEY))
    assert "search" not in driver.methods()


# --------------------------------------------------------------------------- retrieve_plan


def _search_result(distances: list[float]) -> list[Any]:
    hits = [
        {"id": f"d{n}", "distance": d, "entity": {"text": f"doc {n}", "metadata": {}}}
        for n, d in enumerate(distances)
    ]
    return [(hits, [1.0, 0.0, 0.0])]


def test_retrieve_with_score_threshold_keeps_relevant_documents() -> None:
    # COSINE relevance (s + 1) / 2: 0.9 -> 0.95, 0.7 -> 0.85, 0.5 -> 0.75
    driver = FakeDriver({"Search": _search_result([0.9, 0.7, 0.5])})
    docs = driver.run(retrieve_plan(
        existing_state(metric="COSINE"), "q", "similarity_score_threshold", 3,
        fetch_k=20, lambda_mult=0.5, score_threshold=0.8,
    ))
    assert [d.id for d in docs] == ["d0", "d1"]


def test_retrieve_with_score_threshold_on_l2() -> None:
    # L2 relevance 1 - d / 4: 0 -> 1.0, 2 -> 0.5, 3 -> 0.25
    driver = FakeDriver({"Search": _search_result([0.0, 2.0, 3.0])})
    docs = driver.run(retrieve_plan(
        existing_state(metric="L2"), "q", "similarity_score_threshold", 3,
        fetch_k=20, lambda_mult=0.5, score_threshold=0.5,
    ))
    assert [d.id for d in docs] == ["d0", "d1"]


def test_retrieve_similarity_keeps_all_hits() -> None:
    driver = FakeDriver({"Search": _search_result([0.9, -0.9])})
    docs = driver.run(retrieve_plan(
        existing_state(), "q", "similarity", 2, fetch_k=20, lambda_mult=0.5,
        score_threshold=None,
    ))
    assert [d.id for d in docs] == ["d0", "d1"]


def test_retrieve_threshold_requires_a_threshold() -> None:
    driver = FakeDriver()
    with pytest.raises(ValueError, match="needs score_threshold"):
        driver.run(retrieve_plan(
            existing_state(), "q", "similarity_score_threshold", 3, fetch_k=20,
            lambda_mult=0.5, score_threshold=None,
        ))
    assert driver.steps == []


def test_retrieve_unknown_search_type() -> None:
    driver = FakeDriver()
    with pytest.raises(ValueError, match="unknown search_type 'bogus'"):
        driver.run(retrieve_plan(
            existing_state(), "q", "bogus", 3, fetch_k=20, lambda_mult=0.5,
            score_threshold=None,
        ))
    assert driver.steps == []


def test_ids_written_are_plain_strings_whatever_is_sent() -> None:
    # The RPC's rows may carry WholeText keys and texts; callers get plain str ids.
    layout = existing_state().layout
    rows = [{"pk": "a" * 32, "text": "t" * 100, "vector": [0.1, 0.2]}]
    plan = send_rows_plan(existing_state(), layout, rows, WriteKey(fresh_ids=True))
    next(plan)
    with pytest.raises(StopIteration) as done:
        plan.send({"insert_count": 1})
    assert done.value.value == ["a" * 32] and type(done.value.value[0]) is str


def test_search_options_of_a_call_without_kwargs_match_the_general_path() -> None:
    """Most calls pass no extra keyword arguments and take a shortcut; it must give the same
    options as the general path, and its shared empty mappings must not be writable."""
    from langchain_milvus_ext._arguments import search_options

    common: dict[str, Any] = {"param": {"ef": 10}, "expr": "a > 1", "timeout": 3.0,
                              "filter": {"x": 1}, "partition_names": ["p"]}
    fast = search_options({}, **common)
    general = search_options({"partition_names": None, "fetch_k": None}, **common)
    assert fast == general
    with pytest.raises(TypeError):
        fast["extra"]["consistency_level"] = "Strong"
    with pytest.raises(TypeError):
        fast["ranking"]["reranker"] = object()
