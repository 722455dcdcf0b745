"""Operation plans: every store operation, written once, for both drivers to run.

Each yields the steps of `_steps`; it reads the layout with `_collection.layout_plan`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from langchain_core.documents import Document

from langchain_milvus_ext._collection import CollectionState, layout_plan
from langchain_milvus_ext._errors import MilvusConnectionError
from langchain_milvus_ext._filters import combine_and, compile_filter, ids_expr
from langchain_milvus_ext._hybrid import HybridOptions, hybrid_requests
from langchain_milvus_ext._multivector import multi_search_plan, multi_write_plan
from langchain_milvus_ext._results import (
    Scored,
    check_k,
    documents_from_hits,
    documents_from_rows,
    mmr_select,
    order_by_ids,
    to_relevance,
    vectors_from_hits,
)
from langchain_milvus_ext._rows import (
    PrimaryKey,
    build_rows,
    check_query_vector,
    float_vectors,
    id_list,
    no_ids_given,
    normalize_ids,
    resolve_ids,
)
from langchain_milvus_ext._schema import CollectionLayout, freeze, search_params_for
from langchain_milvus_ext._steps import (
    Call,
    Delete,
    Embed,
    Plan,
    PlanOf,
    Search,
    SearchItem,
    SearchKey,
    SearchResult,
    Write,
    WriteKey,
)

FilterArg = Mapping[str, Any] | str | None


def filter_expr(layout: CollectionLayout, filter: FilterArg, expr: str | None) -> str | None:
    """The Milvus expression for a dict/str `filter` and a raw `expr`, ANDed together."""
    if filter is None and expr is None:  # most searches
        return None
    if expr is not None and not isinstance(expr, str):
        raise ValueError(f"expr must be a string expression, got {type(expr).__name__}")
    if filter is not None and not isinstance(filter, (str, Mapping)):
        raise ValueError(f"filter must be a dict or a string, got {type(filter).__name__}")
    return combine_and(compile_filter(filter, layout.resolve_key), expr)


def add_plan(
    state: CollectionState,
    texts: Iterable[str],
    metadatas: Sequence[dict[str, Any]] | None,
    ids: Sequence[Any] | None,
    *,
    vectors: Sequence[Sequence[float]] | None = None,
    timeout: float | None = None,
    partition_name: str | None = None,
    replace: bool = False,
) -> PlanOf[list[str]]:
    """Validate, then write texts (embedded) or texts with given vectors; returns str ids.

    `replace` marks an upsert: on an auto_id collection the given keys replace those rows.
    """
    ids = id_list(ids) if ids is not None else None
    texts = list(texts)  # the plan's own copy (the batch embeds them later)
    if vectors is not None and len(vectors) != len(texts):
        raise ValueError(f"got {len(texts)} texts but {len(vectors)} embeddings")
    try:
        layout = yield from layout_plan(state)
    except MilvusConnectionError as error:
        raise error.nothing_written(ids, len(texts)) from error
    keys = resolve_ids(len(texts), ids, layout, replace=replace)
    rows = build_rows(texts, metadatas, keys, layout)
    if vectors is not None:  # dimension and finiteness, before anything is sent; once
        vectors = float_vectors(vectors, layout)
        if len({len(v) for v in vectors}) > 1:
            raise ValueError("embeddings have different dimensions")
    if not rows:
        return []
    fresh = keys is not None and not replace and no_ids_given(ids, len(texts))
    key = WriteKey(partition_name=partition_name, timeout=timeout, fresh_ids=fresh)
    if layout.vectors:  # several vector fields: embedded per model, not coalesced
        if vectors is not None:
            raise ValueError("add_embeddings needs a store with one vector field; this one has "
                             f"{[vf.name for vf in layout.vectors]}")
        written = yield from multi_write_plan(state, layout, rows, texts, key)
        return [str(i) for i in written]
    written = yield Write(
        rows=rows,
        texts=None if vectors is not None else texts,
        vectors=vectors,  # checked float lists (see store_rows_plan's `checked`)
        key=key,
    )
    return [str(i) for i in written]


def search_plan(
    state: CollectionState,
    queries: Sequence[str | Sequence[float]],
    k: int,
    *,
    filter: FilterArg = None,
    expr: str | None = None,
    param: Mapping[str, Any] | None = None,
    timeout: float | None = None,
    partition_names: Sequence[str] | None = None,
    with_vectors: bool = False,
    output_fields: Sequence[str] | None = None,
    extra: Mapping[str, Any] | None = None,
    ranking: Mapping[str, Any] | None = None,
    fanout: int | None = None,
) -> PlanOf[list[SearchResult]]:
    """Search several queries (texts or vectors) at once; returns a SearchResult per query.

    `output_fields` limits the metadata fields returned; `extra` holds other pymilvus search
    arguments (`group_by_field`, `consistency_level`, ...), passed through unchanged.
    """
    check_k(k)
    if ranking:
        raise ValueError("reranker / ranker_type / ranker_params fuse several vector fields; "
                         "this store has one")
    if not queries:
        return []
    layout = yield from layout_plan(state)
    items = [
        SearchItem(text=q) if isinstance(q, str) else SearchItem(vector=[float(x) for x in q])
        for q in queries
    ]
    key = SearchKey(
        limit=k,
        expr=filter_expr(layout, filter, expr),
        output_fields=_output_fields(layout, output_fields, with_vectors),
        search_params=_frozen_search_params(layout, k, param),
        partition_names=tuple(partition_names) if partition_names else None,
        timeout=timeout,
        extra=freeze(dict(extra)) if extra else "{}",
    )
    results: list[SearchResult] = yield Search(items=items, key=key)
    return results


_DEFAULT_PARAMS: dict[tuple[str, str, int], str] = {}
"""Frozen default search params by (metric, index type, k): built once, not per search."""


def _frozen_search_params(layout: CollectionLayout, k: int, param: Mapping[str, Any] | None,
                          ) -> str:
    if param:
        return freeze(search_params_for(layout, k, param))
    key = (layout.metric, layout.index_type, k)
    frozen = _DEFAULT_PARAMS.get(key)
    if frozen is None:
        frozen = freeze(search_params_for(layout, k, None))
        if len(_DEFAULT_PARAMS) < 256:  # a few metrics and k values in practice
            _DEFAULT_PARAMS[key] = frozen
    return frozen


def _output_fields(
    layout: CollectionLayout, chosen: Sequence[str] | None, with_vector: bool
) -> tuple[str, ...]:
    """The fields a search asks for: all metadata, or the text and the caller's `chosen`."""
    if chosen is None:
        if not with_vector:
            return layout.document_fields
        return tuple(layout.output_fields(with_vector=True))
    if isinstance(chosen, str) or not all(isinstance(name, str) for name in chosen):
        raise ValueError(f"output_fields must be a list of field names, got {chosen!r}")
    fields = list(dict.fromkeys([layout.text_field, *chosen]))
    if with_vector and layout.vector_field not in fields:
        fields.append(layout.vector_field)
    return tuple(fields)


def scored_plan(state: CollectionState, queries: Sequence[str | Sequence[float]], k: int,
                *, relevance: bool = False, **options: Any) -> PlanOf[list[list[Scored]]]:
    """(Document, score) lists per query: raw distances, or relevance scores in [0, 1]."""
    layout = yield from layout_plan(state)
    if layout.vectors:
        if relevance:
            raise ValueError("relevance scores need one vector field (fused scores of several "
                             "fields have no common scale); use similarity_search_with_score")
        return (yield from _multi_scored_plan(state, layout, queries, k, **options))
    results = yield from search_plan(state, queries, k, **options)
    scored = [documents_from_hits(hits, state.layout) for hits, _ in results]
    if relevance:
        scored = [to_relevance(s, state.layout.metric) for s in scored]
    return scored


def _multi_scored_plan(
    state: CollectionState, layout: CollectionLayout, queries: Sequence[str | Sequence[float]],
    k: int, *, filter: FilterArg = None, expr: str | None = None,
    param: Any = None, timeout: float | None = None,
    partition_names: Sequence[str] | None = None, output_fields: Sequence[str] | None = None,
    extra: Mapping[str, Any] | None = None, ranking: Mapping[str, Any] | None = None,
    fanout: int | None = None,
) -> PlanOf[list[list[Scored]]]:
    check_k(k)
    if not layout.exists:
        return [[] for _ in queries]
    condition = filter_expr(layout, filter, expr)
    scored = []
    for query in queries:
        hits = yield from multi_search_plan(
            state, layout, query, k, expr=condition, param=param,
            output_fields=list(_output_fields(layout, output_fields, False)),
            ranking=ranking or {},
            fetch_k=fanout, timeout=timeout, partition_names=partition_names,
            extra=extra or {})
        scored.append(documents_from_hits(hits, layout))
    return scored


def one_query_plan(state: CollectionState, query: str | Sequence[float], k: int,
                   **options: Any) -> PlanOf[list[Scored]]:
    """(Document, score) pairs for a single query."""
    scored = yield from scored_plan(state, [query], k, **options)
    return scored[0]


def mmr_plan(
    state: CollectionState,
    query: str | Sequence[float],
    k: int,
    fetch_k: int,
    lambda_mult: float,
    **options: Any,
) -> PlanOf[list[Scored]]:
    """Maximal marginal relevance: one search that also returns the candidates' vectors."""
    check_k(k)
    check_k(fetch_k, "fetch_k")
    if not 0.0 <= lambda_mult <= 1.0:
        raise ValueError(f"lambda_mult must be in [0, 1], got {lambda_mult}")
    if state.planned.vectors:
        raise ValueError("max marginal relevance needs one vector field; this store has "
                         f"{[vf.name for vf in state.planned.vectors]}")
    results = yield from search_plan(
        state, [query], max(k, fetch_k), with_vectors=True, **options
    )
    hits, query_vector = results[0]
    scored: list[Scored] = documents_from_hits(hits, state.layout)
    return mmr_select(query_vector, scored, vectors_from_hits(hits, state.layout), k, lambda_mult)


def hybrid_plan(
    state: CollectionState,
    query: str,
    k: int,
    *,
    hybrid: HybridOptions,
    filter: FilterArg = None,
    expr: str | None = None,
    param: Mapping[str, Any] | None = None,
    timeout: float | None = None,
    partition_names: Sequence[str] | None = None,
    output_fields: Sequence[str] | None = None,
    extra: Mapping[str, Any] | None = None,
    ranking: Mapping[str, Any] | None = None,
    fanout: int | None = None,
) -> PlanOf[list[Scored]]:
    """Dense + BM25 full-text search fused by the ranker; (Document, fused score) pairs."""
    check_k(k)
    if ranking:
        raise ValueError("hybrid_search takes ranker= and weights=, not reranker/ranker_type")
    layout = yield from layout_plan(state)
    if not layout.exists:
        return []
    vectors = yield Embed([query], "queries")
    limit = max(k, hybrid.fetch_k or 2 * k)
    requests = hybrid_requests(
        layout, query, check_query_vector(vectors[0], layout), k,
        filter_expr(layout, filter, expr), hybrid, search_params_for(layout, limit, param),
    )
    kwargs: dict[str, Any] = {
        "collection_name": state.name, "reqs": requests, "ranker": hybrid.ranker_object(),
        "limit": k, "output_fields": list(_output_fields(layout, output_fields, False)),
        "timeout": timeout, **(extra or {}),
    }
    if partition_names:
        kwargs["partition_names"] = list(partition_names)
    hits = yield Call("hybrid_search", kwargs)
    return documents_from_hits(hits[0], layout)


_RAW_EQUALITY = re.compile(
    r"""\s*([A-Za-z_][A-Za-z0-9_]*)\s*==\s*(?:"([^"\\\n\r]*)"|'([^'\\\n\r]*)'|(-?\d{1,18}))\s*""")


def equality_of(
    layout: CollectionLayout, filter: FilterArg, expr: str | None
) -> tuple[str, list[str | int]] | None:
    """(field, values) when a delete's condition is `field == value` or `field in [...]` on a
    field that takes `in`: a scalar column, the primary key or text, or a top-level key of the
    dynamic field; else None. Only str and int values qualify.

    Recognised: a dict filter with one key (`{"id": "doc_1"}`, `{"id": {"$in": [...]}}`), or a
    raw expression of exactly the form `id == 'doc_1'` / `id == "doc_1"` / `n == 3`.
    """
    if filter is not None and expr is not None:
        return None
    if isinstance(filter, Mapping) and len(filter) == 1:
        ((key, value),) = filter.items()
        if not isinstance(key, str) or key.startswith("$"):
            return None
        if isinstance(value, Mapping):
            if len(value) != 1:
                return None
            ((op, arg),) = value.items()
            values = [arg] if op == "$eq" else list(arg) if op == "$in" and isinstance(
                arg, (list, tuple)) and arg else None
        else:
            values = [value]
        if values is None or not all(_plain(v) for v in values):
            return None
        ref = layout.resolve_key(key)
        return (ref.expr, values) if ref.takes_in or not ref.is_json_path else None
    raw = expr if filter is None else filter if isinstance(filter, str) else None
    match = _RAW_EQUALITY.fullmatch(raw) if raw is not None else None
    if match is None:
        return None
    key, double, single, number = match.groups()
    columns = {layout.pk_field, layout.text_field, *layout.scalar_fields}
    if key not in columns and not (layout.dynamic and key not in layout.reserved_keys
                                   and layout.resolve_key(key).takes_in):
        return None
    if number is not None:
        return key, [int(number)]
    return key, [double if double is not None else single]


def _plain(value: Any) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool)


def delete_plan(
    state: CollectionState,
    ids: Sequence[Any] | None,
    *,
    filter: FilterArg = None,
    expr: str | None = None,
    timeout: float | None = None,
    partition_name: str | None = None,
) -> PlanOf[bool]:
    """Delete by ids, by filter, or both (rows matching both); returns True."""
    ids = id_list(ids) if ids is not None else None
    if ids is not None and len(ids) == 0:
        raise ValueError("ids is an empty list: pass the ids to delete, or ids=None with a filter")
    if ids is None and not filter and not expr:
        raise ValueError("delete needs ids, a filter or an expr (refusing to delete everything)")
    layout = yield from layout_plan(state)
    equality = equality_of(layout, filter, expr) if ids is None else None
    if equality is not None:  # concurrent deletes on one key share one `key in [...]`
        if layout.exists:
            field, values = equality
            yield Delete(ids=values, field=field, partition_name=partition_name,
                         timeout=timeout)
        return True
    condition = filter_expr(layout, filter, expr)
    if ids is None and condition is None:
        raise ValueError("delete needs ids, a filter or an expr (refusing to delete everything)")
    keys = normalize_ids(list(dict.fromkeys(ids)), layout) if ids is not None else None
    if not layout.exists:
        return True
    if keys is not None and condition is None:
        yield Delete(ids=keys, partition_name=partition_name, timeout=timeout)
        return True
    if keys is not None:  # pymilvus refuses ids= together with filter=
        condition = combine_and(ids_expr(layout.pk_field, keys), condition)
    yield Delete(expr=condition, partition_name=partition_name, timeout=timeout)
    return True


def get_by_ids_plan(state: CollectionState, ids: Sequence[Any]) -> PlanOf[list[Document]]:
    """Documents for the ids that exist, in the order asked."""
    wanted = list(dict.fromkeys(id_list(ids)))
    layout = yield from layout_plan(state)
    if not wanted or not layout.exists:
        return []
    keys: list[PrimaryKey] = normalize_ids(wanted, layout)
    # Not `get(ids=...)`: pymilvus pastes string ids between quotes without escaping them.
    rows = yield Call("query", {"collection_name": state.name,
                                "filter": ids_expr(layout.pk_field, keys),
                                "output_fields": layout.output_fields()})
    return order_by_ids(documents_from_rows(rows, layout), [str(k) for k in keys])


def query_plan(
    state: CollectionState,
    filter: FilterArg,
    *,
    fields: Sequence[str] | None = None,
    limit: int | None = None,
    offset: int = 0,
    timeout: float | None = None,
    pks_only: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> Plan:
    """Rows matching a filter: Documents, or primary keys in the collection's own type."""
    if limit is not None:
        check_k(limit, "limit")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValueError(f"offset must be a non-negative integer, got {offset!r}")
    layout = yield from layout_plan(state)
    condition = filter_expr(layout, filter, None)
    if condition is None:
        probe = "0" if layout.pk_is_int else '""'  # an always-true test both servers parse
        condition = f"({layout.pk_field} == {probe}) or ({layout.pk_field} != {probe})"
    if not layout.exists:
        return []
    output = [layout.pk_field] if pks_only else list(fields or layout.output_fields())
    kwargs: dict[str, Any] = {"collection_name": state.name, "filter": condition,
                              "output_fields": output, "timeout": timeout, **(extra or {})}
    if limit is not None:
        kwargs["limit"] = limit
        kwargs["offset"] = offset
    rows = yield Call("query", kwargs)
    if pks_only:
        return [row[layout.pk_field] for row in rows]
    return documents_from_rows(rows, layout)


def drop_plan(state: CollectionState) -> PlanOf[None]:
    """Drop the collection if it exists."""
    if (yield Call("has_collection", {"collection_name": state.name})):
        yield Call("drop_collection", {"collection_name": state.name})
    state.forget()
    return None


def documents_of(scored: Sequence[Scored]) -> list[Document]:
    """Drop the scores."""
    return [doc for doc, _ in scored]


def retrieve_plan(
    state: CollectionState,
    query: str,
    search_type: str,
    k: int,
    *,
    fetch_k: int,
    lambda_mult: float,
    score_threshold: float | None,
    hybrid: HybridOptions | None = None,
    **options: Any,
) -> PlanOf[list[Document]]:
    """A retriever's search: similarity, MMR, hybrid, or similarity above a relevance threshold."""
    if search_type == "hybrid":
        scored = yield from hybrid_plan(state, query, k, hybrid=hybrid or HybridOptions(),
                                        **options)
        return documents_of(scored)
    if search_type == "mmr":
        scored = yield from mmr_plan(state, query, k, fetch_k, lambda_mult, **options)
        return documents_of(scored)
    if search_type == "similarity_score_threshold":
        if score_threshold is None:
            raise ValueError("search_type 'similarity_score_threshold' needs score_threshold")
        scored = yield from one_query_plan(state, query, k, relevance=True, **options)
        return [doc for doc, score in scored if score >= score_threshold]
    if search_type != "similarity":
        raise ValueError(f"unknown search_type {search_type!r}")
    scored = yield from one_query_plan(state, query, k, **options)
    return documents_of(scored)
