"""Plans for stores with several vector fields (see `_vectors`): written once for both shells.

These calls are not coalesced (each embedding model is asked separately and a search is a
`hybrid_search` of one request per field), so they go straight through to the client.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_milvus_ext._batch_plans import send_rows_plan
from langchain_milvus_ext._collection import CollectionState
from langchain_milvus_ext._rows import Row, all_finite
from langchain_milvus_ext._schema import CollectionLayout
from langchain_milvus_ext._steps import Call, Embed, Plan, WriteKey
from langchain_milvus_ext._vectors import VectorField, ranker_for, sub_requests


def _dense(values: Any, where: str) -> list[float]:
    vector = list(map(float, values))
    if not vector or not all_finite(vector):
        raise ValueError(f"{where} is empty or contains NaN or infinity")
    return vector


def _sparse(values: Any, where: str) -> dict[int, float]:
    if not isinstance(values, Mapping):
        raise ValueError(f"{where} must be a sparse vector (a dict index -> weight)")
    out = {int(i): float(w) for i, w in values.items()}
    if not all(math.isfinite(w) for w in out.values()):
        raise ValueError(f"{where} contains NaN or infinity")
    return out


def _checked(vf: VectorField, vectors: Sequence[Any], count: int, what: str) -> list[Any]:
    if len(vectors) != count:
        raise ValueError(f"embedding model {vf.model} returned {len(vectors)} vectors for "
                         f"{count} {what}")
    check = _dense if vf.kind == "dense" else _sparse
    vectors = [check(v, f"{vf.name} vector [{i}]") for i, v in enumerate(vectors)]
    if vf.kind == "dense" and len({len(v) for v in vectors}) > 1:
        raise ValueError(f"{vf.name}: the embedding model returned vectors of different sizes")
    return vectors


def multi_write_plan(
    state: CollectionState, layout: CollectionLayout, rows: list[Row], texts: list[str],
    key: WriteKey,
) -> Plan:
    """Embed the texts with every model, create the collection if needed, write the rows."""
    filled: dict[str, list[Any]] = {}
    for vf in layout.vectors:
        if vf.model is not None:
            vectors = yield Embed(texts, "documents", model=vf.model)
            filled[vf.name] = _checked(vf, vectors, len(texts), "texts")
    dims = {name: len(v[0]) for name, v in filled.items()
            if v and next(f for f in layout.vectors if f.name == name).kind == "dense"}
    layout = yield from state.ensure_plan(dims, rows[0])
    complete = [{**row, **{name: vectors[i] for name, vectors in filled.items()}}
                for i, row in enumerate(rows)]
    return (yield from send_rows_plan(state, layout, complete, key))


def multi_search_plan(
    state: CollectionState,
    layout: CollectionLayout,
    query: Any,
    k: int,
    *,
    expr: str | None,
    param: Any,
    output_fields: list[str],
    ranking: Mapping[str, Any],
    fetch_k: int | None,
    timeout: float | None,
    partition_names: Sequence[str] | None,
    extra: Mapping[str, Any],
) -> Plan:
    """Search every vector field and fuse the results; returns one query's hits."""
    if not isinstance(query, str):
        raise ValueError("a store with several vector fields searches by text: the query "
                         "vector would not fit every field")
    data: list[Any] = []
    for vf in layout.vectors:
        if vf.model is None:
            data.append(query)  # BM25: the server tokenises the text
        else:
            vectors = yield Embed([query], "queries", model=vf.model)
            data.append(_checked(vf, vectors, 1, "queries")[0])
    params = _search_params(layout.vectors, param)
    common: dict[str, Any] = {"collection_name": state.name, "limit": k,
                              "output_fields": output_fields, "timeout": timeout, **extra}
    if partition_names:
        common["partition_names"] = list(partition_names)
    if len(layout.vectors) == 1:
        if any(ranking.values()):
            raise ValueError("a ranker fuses several vector fields; this store has one")
        vf = layout.vectors[0]
        hits = yield Call("search", {**common, "data": data, "anns_field": vf.name,
                                     "search_params": params[0],
                                     **({"filter": expr} if expr else {})})
        return [dict(h) for h in hits[0]]
    # Candidates per field: fusing too few (limit 1: each field its own top hit) picks by ties.
    requests = sub_requests(layout.vectors, data, params, max(k, fetch_k or max(4, 2 * k)), expr)
    ranker = ranker_for(len(layout.vectors), **ranking)
    hits = yield Call("hybrid_search", {**common, "reqs": requests, "ranker": ranker})
    return [dict(h) for h in hits[0]]


def _search_params(fields: Sequence[VectorField], param: Any) -> list[dict[str, Any]]:
    if param is None:
        return [vf.search_params() for vf in fields]
    given = list(param) if isinstance(param, (list, tuple)) else [param]
    if len(given) != len(fields):
        raise ValueError(f"param: got {len(given)} search params for the {len(fields)} vector "
                         f"fields {[vf.name for vf in fields]}")
    return [{"metric_type": vf.metric, **dict(p)} for vf, p in zip(fields, given, strict=True)]
