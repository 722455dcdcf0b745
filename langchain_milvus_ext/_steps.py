"""The steps a plan yields: the I/O it needs, carried out by a driver (see `_drivers`).

A plan is a generator: it yields a step, receives the step's result back, and finally
returns its own result. The sync driver carries the steps out with `MilvusClient` and the
embeddings' sync methods; the async driver with `AsyncMilvusClient`, the embeddings' async
methods and the coalescers. The steps are plain data, so plans are tested without a server.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, TypeVar

from langchain_milvus_ext._rows import Row

ClientMethod = Literal[
    "has_collection", "describe_collection", "create_collection", "alter_collection_properties",
    "drop_collection", "list_indexes", "describe_index", "create_index", "load_collection",
    "insert", "upsert", "delete", "search", "hybrid_search", "query", "get_server_version",
    "flush",
]
"""The MilvusClient methods that plans call."""


@dataclass(frozen=True, slots=True)
class Call:
    """One client method call; MilvusClient and AsyncMilvusClient take the same arguments.

    `retry_as`: the method the retries use, if not `method` (an insert of rows whose ids were
    generated for it is retried as an upsert: a retry after a try that did write them cannot
    write them twice).
    """

    method: ClientMethod
    kwargs: dict[str, Any] = field(default_factory=dict)
    retry_as: ClientMethod | None = None


@dataclass(frozen=True, slots=True)
class Embed:
    """Embed texts as documents or as queries; the result is one vector per text."""

    texts: list[str]
    kind: Literal["documents", "queries"] = "documents"
    model: int = 0  # which of the store's embedding models (several in multi-vector stores)


@dataclass(frozen=True, slots=True)
class WriteKey:
    """Writes with equal keys may share one RPC.

    `fresh_ids`: every row's id was generated for this write, so no row can have it yet: the
    rows are inserted (cheaper than an upsert for the server), and retried as an upsert.
    """

    partition_name: str | None = None
    timeout: float | None = None
    fresh_ids: bool = False


@dataclass(frozen=True, slots=True)
class Write:
    """Write rows with the given vectors, or with vectors embedded from `texts`.

    Given `vectors` are float lists already checked (`_rows.float_vectors`): not again.
    The result is the ids written, in row order.
    """

    rows: list[Row]
    texts: list[str] | None
    vectors: list[list[float]] | None
    key: WriteKey


class SearchKey(NamedTuple):
    """Searches with equal keys may share one nq-batched search (a tuple, so that the
    coalescer hashes and compares it in C for every query queued)."""

    limit: int
    expr: str | None
    output_fields: tuple[str, ...]
    search_params: str  # frozen JSON of the search params
    partition_names: tuple[str, ...] | None = None
    timeout: float | None = None
    extra: str = "{}"  # frozen JSON of other pymilvus search arguments (group_by_field, ...)


@dataclass(frozen=True, slots=True)
class SearchItem:
    """One query: a text to embed or a vector."""

    text: str | None = None
    vector: list[float] | None = None


@dataclass(frozen=True, slots=True)
class Search:
    """Search several queries; the result is a list of (hits, query vector), one per item."""

    items: list[SearchItem]
    key: SearchKey


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class Describe:
    """The layout of the driver's collection: read from the server once it exists.

    Operation and batch plans ask for it with `_collection.layout_plan`; the async driver
    shares one read among all the calls of a loop that ask at once.
    """


Step = Call | Embed | Write | Search | Delete | Describe
R = TypeVar("R")
PlanOf = Generator[Step, Any, R]
"""A plan whose result is R."""
Plan = PlanOf[Any]
SearchResult = tuple[list[dict[str, Any]], list[float]]
