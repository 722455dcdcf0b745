"""Batch plans: how one batch of writes, searches or deletes is carried out.

Operation plans (`_operations`) yield `Write`, `Search` and `Delete` steps; the drivers
carry each out with these plans, directly (sync) or once per coalesced batch (async). Batch
plans yield `Embed`, `Call` and, through `layout_plan`, `Describe`.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Sequence
from typing import Any, Literal, TypeVar

import pymilvus
from pymilvus.settings import Config

from langchain_milvus_ext._collection import CollectionState, layout_plan
from langchain_milvus_ext._filters import ids_expr
from langchain_milvus_ext._pymilvus_compat import ROW_TEXT_SCAN, affected, send_whole_texts
from langchain_milvus_ext._rows import PrimaryKey, Row, attach_vectors, check_query_vectors
from langchain_milvus_ext._schema import CollectionLayout
from langchain_milvus_ext._steps import (
    Call,
    DeleteKey,
    Embed,
    Plan,
    SearchItem,
    SearchKey,
    Write,
    WriteKey,
)

H = TypeVar("H", bound=Hashable)
_WHOLE_TEXTS = affected(pymilvus.__version__, ROW_TEXT_SCAN)


def store_rows_plan(
    state: CollectionState, rows: list[Row], vectors: Sequence[Sequence[float]], key: WriteKey,
    *, checked: bool = False,
) -> Plan:
    """Write one batch: attach vectors, ensure the collection, upsert (or insert with auto_id).

    `checked`: the vectors were given and checked by `add_plan` (`Write.vectors`), not
    embedded; they are not converted again. Returns the ids written, in row order.
    """
    if not rows:
        return []
    layout = yield from state.ensure_plan(len(vectors[0]), rows[0])
    rows = attach_vectors(rows, vectors, layout, checked=checked)
    return (yield from send_rows_plan(state, layout, rows, key))


def send_rows_plan(
    state: CollectionState, layout: CollectionLayout, rows: list[Row], key: WriteKey
) -> Plan:
    """Upsert complete rows (insert, for auto_id rows without keys, rows with fresh ids, and
    on Milvus Lite: `CollectionLayout.upserts_merge`);
    returns the ids written. `rows` are the RPC's own copies: their texts and string keys
    may be replaced by equal `WholeText` strings (the ids returned are the plain ones)."""
    pk = layout.pk_field
    server_ids = layout.auto_id and pk not in rows[0]  # auto_id rows without keys
    ids = None if server_ids else [row[pk] for row in rows]
    if _WHOLE_TEXTS:  # see `_pymilvus_compat.WholeText`
        send_whole_texts(rows, (layout.text_field, pk), Config.EncodeProtocol)
    kwargs: dict[str, Any] = {"collection_name": state.name, "data": rows, "timeout": key.timeout}
    if key.partition_name:
        kwargs["partition_name"] = key.partition_name
    if ids is None:  # the server makes the keys
        result = yield Call("insert", kwargs)
        return list(result["ids"])
    if key.fresh_ids:  # no row can have these ids yet
        yield Call("insert", kwargs, retry_as="upsert")
    elif layout.upserts_merge:  # Milvus Lite: its Insert replaces, its Upsert merges
        yield Call("insert", kwargs)
    else:
        yield Call("upsert", kwargs)
    return ids


def write_batch_plan(state: CollectionState, write: Write) -> Plan:
    """Embed (unless vectors are given) then store one batch of rows; returns their ids."""
    vectors = write.vectors
    if vectors is None:
        vectors = yield from embed_plan(write.texts or [], "documents")
    return (yield from store_rows_plan(state, write.rows, vectors, write.key,
                                       checked=write.vectors is not None))


def distinct(keys: Sequence[H]) -> tuple[list[H], list[int]]:
    """The distinct keys in first-seen order, and for each key the position of its entry there."""
    slots: dict[H, int] = {}
    index = [slots.setdefault(key, len(slots)) for key in keys]
    return list(slots), index


def embed_plan(texts: Sequence[str], kind: Literal["documents", "queries"]) -> Plan:
    """One vector per text, in order; each distinct text is embedded once (one request)."""
    unique, index = distinct(texts)
    vectors = yield Embed(unique, kind)
    if len(vectors) != len(unique):
        raise ValueError(f"embedding returned {len(vectors)} vectors for {len(unique)} texts")
    return [vectors[i] for i in index]


def search_batch_plan(state: CollectionState, items: Sequence[SearchItem], key: SearchKey) -> Plan:
    """Embed the text queries of a batch together, then run one search for all of them.

    Equal queries (the same text, or the same vector) are embedded and searched once, like a
    DataLoader's equal keys; they share their hits, which are only read: every caller builds
    its own Documents from them.
    """
    keys: list[str | tuple[float, ...]] = [
        (item.text or "") if item.vector is None else tuple(item.vector) for item in items]
    queries, index = distinct(keys)
    texts = [q for q in queries if isinstance(q, str)]
    embedded = iter((yield from embed_plan(texts, "queries")) if texts else [])
    layout = yield from layout_plan(state)
    vectors = check_query_vectors(
        [next(embedded) if isinstance(q, str) else q for q in queries], layout)
    if not layout.exists:
        return [([], vectors[i]) for i in index]
    kwargs: dict[str, Any] = {
        "collection_name": state.name,
        "data": vectors,
        "limit": key.limit,
        "output_fields": list(key.output_fields),
        "search_params": json.loads(key.search_params),
        "anns_field": layout.vector_field,
        "timeout": key.timeout,
    }
    if key.expr:
        kwargs["filter"] = key.expr
    if key.partition_names:
        kwargs["partition_names"] = list(key.partition_names)
    kwargs.update(json.loads(key.extra))
    hits = yield Call("search", kwargs)
    per_query = [[dict(h) for h in query_hits] for query_hits in hits]
    if len(per_query) != len(vectors):
        raise ValueError(f"search answered {len(per_query)} of {len(vectors)} queries")
    return [(per_query[i], vectors[i]) for i in index]


def delete_batch_plan(
    state: CollectionState, key: DeleteKey, items: Sequence[PrimaryKey] | Sequence[str]
) -> Plan:
    """One delete RPC for several deletes: one `field in [...]` of all their values (ids), or
    their expressions ORed.

    Deleting is idempotent, so one delete of the union removes exactly what the separate
    deletes would have removed.
    """
    by_values, field, partition_name, timeout = key
    layout = yield from layout_plan(state)
    unique = list(dict.fromkeys(items))
    if not layout.exists or not unique:
        return None
    kwargs: dict[str, Any] = {"collection_name": state.name, "timeout": timeout}
    if by_values:  # not `delete(ids=...)`: pymilvus pastes string ids between quotes unescaped
        kwargs["filter"] = ids_expr(field or layout.pk_field, unique)
    else:
        kwargs["filter"] = unique[0] if len(unique) == 1 else " or ".join(
            f"({expr})" for expr in unique)
    if partition_name:
        kwargs["partition_name"] = partition_name
    yield Call("delete", kwargs)
    return None
