"""Operations written once, as plans that yield the I/O they need (the sans-I/O pattern).

A plan is a generator: it yields a step (`Call`, `Embed`, `Write`, `Search`, `Delete`,
`Describe`),
receives the step's result back, and finally returns its own result. The sync shell runs plans
with `MilvusClient` and the embeddings' sync methods; the async shell with `AsyncMilvusClient`,
the embeddings' async methods and the coalescers. The logic itself exists only here.

Two levels:
- *operation* plans (in the store) yield `Describe` (via `layout_plan`), `Write`, `Search`,
  `Delete` and plain `Call`s;
- *batch* plans (here) say how one batch of writes or searches is carried out, yielding only
  `Embed` and `Call`. The drivers run batch plans directly (sync) or per coalesced batch (async).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Generator, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from langchain_milvus_ext._filters import ids_expr
from langchain_milvus_ext._rows import PrimaryKey, Row, attach_vectors, check_query_vector
from langchain_milvus_ext._schema import (
    CollectionLayout,
    create_collection_args,
    layout_from_description,
    vector_index_params,
    with_inferred_columns,
)


@dataclass(frozen=True)
class Call:
    """One client method call; MilvusClient and AsyncMilvusClient take the same arguments."""

    method: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Embed:
    """Embed texts as documents or as queries; the result is one vector per text."""

    texts: list[str]
    kind: Literal["documents", "queries"] = "documents"
    model: int = 0  # which of the store's embedding models (several in multi-vector stores)


@dataclass(frozen=True)
class WriteKey:
    """Writes with equal keys may share one RPC."""

    partition_name: str | None = None
    timeout: float | None = None


@dataclass(frozen=True)
class Write:
    """Write rows with the given vectors, or with vectors embedded from `texts`.

    Given `vectors` are float lists already checked (`_rows.float_vectors`): not again.
    The result is the ids written, in row order.
    """

    rows: list[Row]
    texts: list[str] | None
    vectors: list[list[float]] | None
    key: WriteKey


@dataclass(frozen=True)
class SearchKey:
    """Searches with equal keys may share one nq-batched search."""

    limit: int
    expr: str | None
    output_fields: tuple[str, ...]
    search_params: str  # frozen JSON of the search params
    partition_names: tuple[str, ...] | None = None
    timeout: float | None = None
    extra: str = "{}"  # frozen JSON of other pymilvus search arguments (group_by_field, ...)


@dataclass(frozen=True)
class SearchItem:
    """One query: a text to embed or a vector."""

    text: str | None = None
    vector: list[float] | None = None


@dataclass(frozen=True)
class Search:
    """Search several queries; the result is a list of (hits, query vector), one per item."""

    items: list[SearchItem]
    key: SearchKey


@dataclass(frozen=True)
class Delete:
    """Delete rows whose `field` has one of the values `ids` (by default the primary key), or
    the rows matching a boolean expression (`expr`): one of them.

    Deletes by values of one field share one `field in [...]`; expressions are ORed.
    """

    ids: list[Any] | None = None
    expr: str | None = None
    partition_name: str | None = None
    timeout: float | None = None
    field: str | None = None

    @property
    def key(self) -> DeleteKey:
        """Deletes with equal keys may share one RPC."""
        return (self.ids is not None, self.field, self.partition_name, self.timeout)

    @property
    def items(self) -> list[Any]:
        """What this delete contributes to a shared one: its values, or its one expression."""
        return self.ids if self.ids is not None else [self.expr or ""]


DeleteKey = tuple[bool, str | None, str | None, float | None]
"""(by values, the field of the values (None: the primary key), partition name, timeout)."""


@dataclass(frozen=True)
class Describe:
    """The collection's layout, read from the server once (see `layout_plan`)."""

    state: CollectionState


Step = Call | Embed | Write | Search | Delete | Describe
R = TypeVar("R")
H = TypeVar("H", bound=Hashable)
PlanOf = Generator[Step, Any, R]
"""A plan whose result is R."""
Plan = PlanOf[Any]
SearchResult = tuple[list[dict[str, Any]], list[float]]


class CollectionState:
    """The store's collection: its name, creation options and current layout.

    Shared by the sync and async shells and by every loop; the layout only ever moves from
    planned to read-from-the-server, and assigning it is atomic.
    """

    def __init__(
        self,
        name: str,
        planned: CollectionLayout,
        create_options: dict[str, Any],
    ) -> None:
        self.name = name
        self.planned = planned
        self.layout = planned
        self.create_options = create_options
        self._lock = threading.Lock()
        self.create_lock = threading.Lock()

    def adopt(self, description: dict[str, Any], index: dict[str, Any] | None) -> None:
        """Take the layout of the existing collection."""
        with self._lock:
            self.layout = layout_from_description(self.planned, description, index)

    def forget(self) -> None:
        """Back to the planned layout (after the collection was dropped)."""
        with self._lock:
            self.layout = self.planned

    def describe_plan(self) -> Plan:
        """Read the collection's layout if it exists; returns the layout (exists or not)."""
        if self.layout.exists:
            return self.layout
        if not (yield Call("has_collection", {"collection_name": self.name})):
            return self.layout
        description = yield Call("describe_collection", {"collection_name": self.name})
        found = layout_from_description(self.planned, description, None)
        indexes = yield from self._indexes_plan()
        missing = vector_index_params(found, self.create_options.get("index_params"),
                                      skip={index.get("field_name") for index in indexes})
        if len(missing):
            # Created without an index on a vector field, or being created right now by
            # another caller that has not made its index yet (loading would fail with "index
            # not found"). Make the index the store would have made, as langchain-milvus does.
            try:
                yield Call("create_index", {"collection_name": self.name,
                                            "index_params": missing})
            except Exception:
                indexes = yield from self._indexes_plan()
                if not any(index.get("field_name") == found.vector_field for index in indexes):
                    raise
            else:
                indexes = yield from self._indexes_plan()
        yield Call("load_collection", {"collection_name": self.name})
        vector_index = next(
            (index for index in indexes if index.get("field_name") == found.vector_field), None)
        self.adopt(description, vector_index)
        return self.layout

    def _indexes_plan(self) -> Plan:
        """The description of every index of the collection."""
        names = yield Call("list_indexes", {"collection_name": self.name})
        indexes = []
        for index_name in names or []:
            index = yield Call(
                "describe_index", {"collection_name": self.name, "index_name": index_name}
            )
            if index:
                indexes.append(dict(index))
        return indexes

    def ensure_plan(self, dim: int | Mapping[str, int], first_row: Row | None = None) -> Plan:
        """Make sure the collection exists (creating it for vectors of `dim`); returns layout.

        With `enable_dynamic_field=False`, the first row written decides the metadata columns.
        """
        layout = yield from self.describe_plan()
        if layout.exists:
            return layout
        planned = with_inferred_columns(self.planned, first_row or {})
        options = dict(self.create_options)
        properties = options.pop("properties", None)
        args = create_collection_args(planned, dim, **options)
        try:
            yield Call("create_collection", {"collection_name": self.name, **args})
        except Exception:
            # Another store, thread or loop may have created it meanwhile.
            if not (yield Call("has_collection", {"collection_name": self.name})):
                raise
        else:
            if properties:  # e.g. {"collection.ttl.seconds": 3600}, as langchain-milvus applies
                yield Call("alter_collection_properties",
                           {"collection_name": self.name, "properties": dict(properties)})
        self.layout = self.planned  # re-read below even if a racing creator won
        return (yield from self.describe_plan())


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
    """Upsert complete rows (insert, for auto_id rows without keys); returns the ids written."""
    kwargs: dict[str, Any] = {"collection_name": state.name, "data": rows, "timeout": key.timeout}
    if key.partition_name:
        kwargs["partition_name"] = key.partition_name
    if layout.auto_id and layout.pk_field not in rows[0]:
        result = yield Call("insert", kwargs)
        return list(result["ids"])
    yield Call("upsert", kwargs)
    return [row[layout.pk_field] for row in rows]


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
    layout = yield from state.describe_plan()
    vectors = [check_query_vector(next(embedded) if isinstance(q, str) else q, layout)
               for q in queries]
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


def layout_plan(state: CollectionState) -> PlanOf[CollectionLayout]:
    """The layout an operation works with: cached once the collection exists.

    While it does not exist, the drivers read it; the async one shares one read among all
    the calls of a loop that ask at once, so they reach the coalescers together.
    """
    if state.layout.exists:
        return state.layout
    layout: CollectionLayout = yield Describe(state)
    return layout


def delete_batch_plan(
    state: CollectionState, key: DeleteKey, items: Sequence[PrimaryKey] | Sequence[str]
) -> Plan:
    """One delete RPC for several deletes: one `field in [...]` of all their values (ids), or
    their expressions ORed.

    Deleting is idempotent, so one delete of the union removes exactly what the separate
    deletes would have removed.
    """
    by_values, field, partition_name, timeout = key
    layout = yield from state.describe_plan()
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
