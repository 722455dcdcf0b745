"""Tenant-scoped views of a store: every read, write and delete confined to one tenant.

`store.for_tenant("acme")` returns a `TenantView` (defined beside the store, in
`vectorstore`): the store's own methods, run through the confinement of their plans that
this module holds (see `_steps`). Each step that reads, writes or deletes rows is
rewritten before any driver sees it:

- every filter sent to Milvus (search, query, delete, each request of a hybrid search)
  becomes `(tenant == "acme") and (caller's condition)`, the tenant condition built by our
  own typed literal rendering; a caller's raw expression must be one closed group
  (`_filters.is_self_contained`), so text such as ``x) or (true`` is refused, not pasted;
- deletes by id (or by one field's values, as coalesced deletes send them) become
  `pk in [...] and tenant == "acme"` expressions: another tenant's ids delete nothing;
- rows written must carry the view's tenant (writes stamp it when the key is missing, and
  refuse another value), and an id already used by another tenant's row is refused instead
  of overwritten;
- any other step (dropping the collection, an unknown client call) is refused.

Confining the plans, not the methods, means every method of the store, sync and async, the
retriever and the helpers built on them (`ingest_documents`) are covered alike, and a method
added later is refused rather than left open.

This is access control inside one application (agent memory, multi-tenant RAG): it stops a
filter, an expression or an id chosen by or for one user from reaching another user's rows.
It is not a security boundary against code holding the store, its client or credentials;
use Milvus RBAC (users, roles, databases) for that.
"""

from __future__ import annotations

import json
import reprlib
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NoReturn, cast

from pymilvus import AnnSearchRequest, DataType

from langchain_milvus_ext._collection import CollectionState
from langchain_milvus_ext._drivers import AsyncDriver, SyncDriver
from langchain_milvus_ext._filters import combine_and, ids_expr, render_literal
from langchain_milvus_ext._rows import Row
from langchain_milvus_ext._schema import CollectionLayout
from langchain_milvus_ext._steps import (
    Call,
    Delete,
    Describe,
    Embed,
    Plan,
    PlanOf,
    R,
    Search,
    Step,
    Write,
)

__all__ = ["TenantScope", "confine_drivers", "confine_plan", "refuse"]

_INT_TYPES = {DataType.INT8: 8, DataType.INT16: 16, DataType.INT32: 32, DataType.INT64: 64}
_SCHEMA_CALLS = frozenset({
    "has_collection", "describe_collection", "list_indexes", "describe_index",
    "load_collection", "create_collection", "alter_collection_properties",
})
"""Client calls that read or create the collection's schema, never rows: passed unchanged."""
_FILTERED_CALLS = frozenset({"search", "query", "delete"})
_WRITE_CALLS = frozenset({"upsert", "insert"})
_FILTER_BYPASSES = frozenset({"ids", "expr", "pks"})
"""Call arguments that would select rows besides `filter`: a confined call never has them."""


@dataclass(frozen=True)
class TenantScope:
    """One tenant: the scalar column holding the tenant and the value of this tenant.

    Pure: builds the tenant condition, confines expressions, stamps and checks rows.

    Attributes:
        field: The tenant column (the partition key, or a `metadata_schema` column).
        value: The tenant (a string for a VARCHAR column, an int for an integer column).
    """

    field: str
    value: str | int

    def condition(self, layout: CollectionLayout) -> str:
        """`field == value`, typed for the column and escaped by `render_literal`.

        Raises:
            ValueError: The collection has no such scalar column, the column is neither
                VARCHAR nor an integer type, or the value does not fit it.
        """
        dtype = layout.scalar_fields.get(self.field)
        if dtype is None:
            raise ValueError(
                f"tenant field {self.field!r} is not a scalar column of this collection "
                f"(its columns: {sorted(layout.scalar_fields)}): create the store with "
                f"partition_key_field={self.field!r}")
        if layout.column_args.get(self.field, {}).get("nullable"):
            raise ValueError(f"tenant field {self.field!r} is nullable: rows without a tenant "
                             "would belong to no view; use a non-nullable column")
        value = self.value
        if dtype == DataType.VARCHAR:
            if not isinstance(value, str) or not value:
                raise ValueError(f"the VARCHAR tenant field {self.field!r} needs a non-empty "
                                 f"string tenant, got {_short(value)}")
        elif dtype in _INT_TYPES:
            bits = _INT_TYPES[dtype]
            if isinstance(value, bool) or not isinstance(value, int) or not (
                    -(2 ** (bits - 1)) <= value < 2 ** (bits - 1)):
                raise ValueError(f"the {dtype.name} tenant field {self.field!r} needs an "
                                 f"integer tenant in its range, got {_short(value)}")
        else:
            raise ValueError(f"tenant field {self.field!r} is {dtype.name}: a tenant column "
                             "must be VARCHAR or an integer type")
        return f"{self.field} == {render_literal(value)}"

    def confine(self, layout: CollectionLayout, expr: str | None) -> str:
        """`(tenant condition) and (expr)`; a raw `expr` that is not one closed group is refused.

        The tenant condition comes first: no text of the caller's precedes it, and cutting
        the caller's part short anywhere leaves an open parenthesis (a parse error).

        Raises:
            ValueError: `expr` could escape its parentheses (unbalanced brackets or quotes).
        """
        confined = combine_and(self.condition(layout), expr)
        assert confined is not None  # the condition is never blank
        return confined

    def owns(self, value: Any) -> bool:
        """Whether a stored tenant value is this tenant's (same type, same value)."""
        return type(value) is type(self.value) and value == self.value

    def stamp(self, metadatas: Sequence[Any] | None, count: int) -> list[Any]:
        """Each metadata dict with the tenant set where it is missing (copies, not changed).

        Raises:
            ValueError: A metadata dict names another tenant.
        """
        if metadatas is None:
            return [{self.field: self.value} for _ in range(count)]
        stamped: list[Any] = []
        for position, metadata in enumerate(metadatas):
            if metadata is None:
                metadata = {}
            if not isinstance(metadata, Mapping):
                stamped.append(metadata)  # build_rows names the error
                continue
            given = metadata.get(self.field)
            if given is not None and not self.owns(given):
                raise ValueError(
                    f"metadatas[{position}][{self.field!r}] is {_short(given)}, but this view "
                    f"writes tenant {_short(self.value)} only (nothing was written)")
            stamped.append({**metadata, self.field: self.value})
        return stamped

    def check_rows(self, rows: Iterable[Row]) -> None:
        """Refuse rows that do not carry this tenant (they were not stamped by the view)."""
        for position, row in enumerate(rows):
            if not self.owns(row.get(self.field)):
                raise ValueError(
                    f"row {position} has tenant {_short(row.get(self.field))}, but this view "
                    f"writes tenant {_short(self.value)} only (nothing was written)")


def confine_plan(plan: PlanOf[R], scope: TenantScope, state: CollectionState) -> PlanOf[R]:
    """Run `plan` with each of its steps confined to `scope` (see the module docstring).

    A step's failure is thrown back into `plan`, as the drivers do; a refused step is raised
    to the caller and `plan` is closed.
    """
    reply: Any = None
    error: Exception | None = None
    while True:
        try:
            step = plan.send(reply) if error is None else plan.throw(error)
        except StopIteration as stop:
            return cast(R, stop.value)
        reply, error = None, None
        try:
            confined = yield from _confine_step(step, scope, state)
        except BaseException:
            plan.close()
            raise
        try:
            reply = yield confined
        except GeneratorExit:
            plan.close()
            raise
        except Exception as caught:
            error = caught


def _confine_step(step: Step, scope: TenantScope, state: CollectionState) -> Plan:
    """The step to send instead of `step` (it may first yield the id-ownership check)."""
    if isinstance(step, Describe | Embed):
        return step
    layout = state.layout
    if isinstance(step, Search):
        _refuse_bypasses(step.key.extra, "search")
        return replace(step, key=step.key._replace(expr=scope.confine(layout, step.key.expr)))
    if isinstance(step, Delete):
        if step.ids is not None:
            rows = ids_expr(step.field or layout.pk_field, step.ids)
            return Delete(expr=scope.confine(layout, rows), partition_name=step.partition_name,
                          timeout=step.timeout)
        return replace(step, expr=scope.confine(layout, step.expr))
    if isinstance(step, Write):
        scope.check_rows(step.rows)
        yield from _check_ids_plan(step.rows, scope, state)
        return step
    if isinstance(step, Call):
        return (yield from _confine_call(step, scope, state))
    return refuse(step)


def _confine_call(step: Call, scope: TenantScope, state: CollectionState) -> Plan:
    layout = state.layout
    if step.method in _SCHEMA_CALLS:
        return step
    if step.method in _FILTERED_CALLS:
        _refuse_bypasses(step.kwargs, step.method)
        filter = step.kwargs.get("filter") or None
        return Call(step.method, {**step.kwargs, "filter": scope.confine(layout, filter)})
    if step.method == "hybrid_search":
        _refuse_bypasses(step.kwargs, step.method)
        requests = [_confine_request(r, scope, layout) for r in step.kwargs.get("reqs", [])]
        return Call(step.method, {**step.kwargs, "reqs": requests})
    if step.method in _WRITE_CALLS:
        rows = list(step.kwargs.get("data") or [])
        scope.check_rows(rows)
        yield from _check_ids_plan(rows, scope, state)
        return step
    return refuse(step)


def _confine_request(request: Any, scope: TenantScope, layout: CollectionLayout) -> Any:
    """One sub-request of a hybrid search, rebuilt with its expression confined."""
    if not isinstance(request, AnnSearchRequest) or getattr(request, "expr_params", None):
        raise ValueError("a tenant view confines plain AnnSearchRequest objects only")
    return AnnSearchRequest(data=request.data, anns_field=request.anns_field,
                            param=request.param, limit=request.limit,
                            expr=scope.confine(layout, request.expr or None))


def _check_ids_plan(rows: Sequence[Row], scope: TenantScope, state: CollectionState) -> Plan:
    """Refuse a write whose ids name rows of another tenant (an upsert would replace them)."""
    layout = state.layout
    keys = [row[layout.pk_field] for row in rows if layout.pk_field in row]
    if not keys or not layout.exists:
        return None
    others = f"{scope.field} != {render_literal(scope.value)}"
    scope.condition(layout)  # the column and the value's type, checked
    found = yield Call("query", {"collection_name": state.name,
                                 "filter": combine_and(ids_expr(layout.pk_field, keys), others),
                                 "output_fields": [layout.pk_field], "limit": len(keys)})
    if found:
        taken = sorted(str(row[layout.pk_field]) for row in found)
        raise ValueError(f"ids {reprlib.repr(taken)} are used by another tenant's rows; a "
                         "tenant view does not overwrite them (nothing was written)")
    return None


def _refuse_bypasses(kwargs: Mapping[str, Any] | str, method: str) -> None:
    if isinstance(kwargs, str):  # a frozen JSON dict (`SearchKey.extra`)
        kwargs = json.loads(kwargs)
    assert isinstance(kwargs, Mapping)
    bypasses = sorted(_FILTER_BYPASSES & set(kwargs))
    if bypasses:
        raise ValueError(f"a tenant view refuses {method} arguments {bypasses}")


def refuse(step: Any) -> NoReturn:
    """Refuse a plan step, or (a str) an attribute of the store, on a tenant view."""
    what = step if isinstance(step, str) else (
        step.method if isinstance(step, Call) else type(step).__name__)
    raise ValueError(f"a tenant view does not allow {what!r}: it reads, writes and deletes its "
                     "own tenant's rows only")


def _short(value: Any) -> str:
    return reprlib.repr(value)


class _ConfinedSync:
    """The store's sync driver, running every plan confined to one tenant."""

    def __init__(self, driver: SyncDriver, scope: TenantScope) -> None:
        self._driver, self._scope = driver, scope

    def run(self, plan: PlanOf[R]) -> R:
        return self._driver.run(confine_plan(plan, self._scope, self._driver.state))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._driver, name)


class _ConfinedAsync:
    """The store's async driver (and its coalescers), running every plan confined."""

    def __init__(self, driver: AsyncDriver, scope: TenantScope) -> None:
        self._driver, self._scope = driver, scope

    def run(self, plan: PlanOf[R]) -> Awaitable[R]:
        return self._driver.run(confine_plan(plan, self._scope, self._driver.state))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._driver, name)


def confine_drivers(
    sync: SyncDriver, async_: AsyncDriver, scope: TenantScope
) -> tuple[SyncDriver, AsyncDriver]:
    """The store's two drivers, each running every plan confined to `scope`."""
    return (cast(SyncDriver, _ConfinedSync(sync, scope)),
            cast(AsyncDriver, _ConfinedAsync(async_, scope)))
