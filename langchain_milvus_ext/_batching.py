"""How the store batches and coalesces work: the `Batching` options."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

from langchain_milvus_ext._coalescer import CoalescerLimits


@dataclass(frozen=True)
class Batching:
    """How the store batches and coalesces work (the store's `batching=` argument).

    Attributes:
        batch_size: Rows per write RPC (sync) and items per coalesced batch (async; a
            coalesced write goes out in pieces of at most `WRITE_PIECE_ROWS` rows).
        coalesce: Merge concurrent async calls into shared embedding requests and RPCs.
        batch_query_embeddings: Embed several coalesced queries with one
            `aembed_documents` call; set False for models whose query and document
            embeddings differ (then each query is its own `aembed_query`, run concurrently).
        limits: Coalescer bounds (batch items/bytes, batches in flight, wait); by default
            `CoalescerLimits(max_batch_items=batch_size)`, with coalesced writes sent in
            pieces of at most `WRITE_PIECE_ROWS` rows (see `write_limits`).
        pack_writes: Pack the rows of a write column by column (`_packing`, about 5x faster
            than pymilvus's row packing) and send them on the client's connection; False
            sends every write through `MilvusClient.insert` / `upsert` (e.g. for tools that
            wrap those methods). Collections with fields other than VARCHAR, INT64, JSON and
            one float vector are always written through pymilvus.
        direct_search: Send a plain search on the client's connection and read its hits
            column by column (`_direct_search`, `_hits`): the request pymilvus builds, the
            answer read in a third of the time of pymilvus's result objects. False sends every
            search through `MilvusClient.search` / `AsyncMilvusClient.search` (e.g. for tools
            that wrap them); searches with pass-through arguments always go that way.
        lite_flush: On a Milvus Lite file, flush the rows written before a read once the
            reads since the last flush scanned about as many rows as a flush costs: Lite
            rescans unflushed rows in Python on every search and filtered query (1,000 rows
            of dim 768: 74 ms a search, 2.4 ms once flushed; see `_sealing`). No effect on a
            Milvus server.

    Example:
        ```python
        store = MilvusVectorStore(embeddings, batching=Batching(batch_size=256))
        ```
    """

    batch_size: int = 1000
    coalesce: bool = True
    batch_query_embeddings: bool = True
    limits: CoalescerLimits | None = None
    pack_writes: bool = True
    direct_search: bool = True
    lite_flush: bool = True

    def __post_init__(self) -> None:
        size = self.batch_size
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {size!r}")

    @cached_property
    def coalescer_limits(self) -> CoalescerLimits:
        """The coalescer bounds in force (built once, not on every write)."""
        return self.limits or CoalescerLimits(max_batch_items=self.batch_size)

    @cached_property
    def write_limits(self) -> CoalescerLimits:
        """The bounds of the write coalescer: `coalescer_limits`, and unless `limits` was
        given, pieces of at most `WRITE_PIECE_ROWS` rows, so that embedding and packing one
        piece overlaps the server writing the one before (up to `max_in_flight` at once)."""
        limits = self.coalescer_limits
        if self.limits is not None or limits.max_batch_items <= WRITE_PIECE_ROWS:
            return limits
        return replace(limits, max_batch_items=WRITE_PIECE_ROWS)


WRITE_PIECE_ROWS = 512
"""Most rows per coalesced write RPC by default. 1,000 concurrent single-document adds on
Milvus 2.3.5 went out as one 1,000-row insert in 93.5 ms and as four 256-row pieces in 78.7 ms
(the batched ceiling: 80.1 ms). Once writes were packed by the store, two pieces did better than
four (alternated, 12-15 each, median): adds 62.9 / 59.9 ms against 68.8 / 67.4 (one piece: 72.4),
upserts 69.5 against 72.0 (one piece: 80.9); at dim 768, adds 147.9 against 161.1 ms."""
