"""Milvus Lite: when to flush the rows written, so that reads stop rescanning them.

Milvus Lite keeps the rows written since its last flush in a memtable, and flushes it on its
own only at 128 MiB. Every search, and every query or delete with a filter, rebuilds its
candidates from the memtable row by row in Python, vectors included; flushed rows are read
from columnar segments instead. On this machine (1,000 rows, pymilvus `MilvusClient`):

| dim | search, not flushed | search, flushed | flush (1,000 rows) | empty flush |
|---|---|---|---|---|
| 128 | 16.2 ms | 2.7 ms | 109 ms | 3.5 ms |
| 768 | 73.6 ms | 2.4 ms | 254 ms | 5.7 ms |

A filtered query or delete gains as much (dim 768: 84 ms against 6 ms); lookups by primary
key cost the same either way. A flush pays off after a few reads of many rows, or many reads
of a few, and never for writes nobody reads: `LiteSealing` flushes before a read once the
reads since the last flush have scanned about as many rows as a flush costs (the rule of
ski rental: never pay more than twice the better choice in hindsight). Milvus servers search
growing segments natively and rate-limit flushes: there, nothing here runs.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Mapping
from typing import Any

from langchain_milvus_ext._clients import lite_file_of
from langchain_milvus_ext._steps import Call

FLUSH_COST_ROWS = 512
"""A flush's fixed cost, counted in unflushed rows scanned by reads (3.5-5.7 ms above)."""
FLUSH_COST_PER_ROW = 4
"""A flush's cost per row flushed, counted in rows scanned (109 / 16.2 and 254 / 73.6 above:
6.7 and 3.5)."""

_SCANS = frozenset({"search", "hybrid_search", "query"})


def reads_unflushed_rows(step: Call) -> bool:
    """Whether Milvus Lite scans its unflushed rows for `step`: a search, a query, or a
    delete by filter (a delete by primary keys looks them up)."""
    return step.method in _SCANS or (step.method == "delete" and bool(step.kwargs.get("filter")))


def rows_written(step: Call) -> int:
    """The rows an `insert` or `upsert` call writes (0 for other calls)."""
    if step.method not in ("insert", "upsert"):
        return 0
    data = step.kwargs.get("data")
    return len(data) if isinstance(data, list) else 1


class LiteSealing:
    """When to flush one Milvus Lite collection: shared by every store of this process on it
    (`sealing_for`), sync and async, every thread and loop.

    Rows written before this process's first store on the collection are unknown: the first
    read flushes them (a flush with nothing to write costs one round trip), unless a store of
    this process created or dropped the collection before.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._unflushed: int | None = None  # None: unknown
        self._scanned = 0  # unflushed rows scanned by the reads since the last flush

    def done(self, step: Call) -> None:
        """Take in a successful call: count the rows it wrote. After dropping the collection,
        nothing is left unflushed; after creating it (the store found it missing), nothing
        was, if nothing was counted (stores racing to create it all succeed, after some of
        them may have written)."""
        if step.method in ("create_collection", "drop_collection"):
            with self._lock:
                if step.method == "drop_collection" or self._unflushed is None:
                    self._unflushed, self._scanned = 0, 0
            return
        rows = rows_written(step)
        if rows:
            with self._lock:
                if self._unflushed is not None:
                    self._unflushed += rows

    def flush_due(self, step: Call) -> bool:
        """Whether to flush before `step`; if so, the rows written so far count as flushed
        (one caller flushes: concurrent readers go on reading)."""
        if not reads_unflushed_rows(step):
            return False
        with self._lock:
            unflushed = self._unflushed
            if unflushed == 0:
                return False
            if unflushed is not None:
                self._scanned += unflushed
                if self._scanned < FLUSH_COST_ROWS + FLUSH_COST_PER_ROW * unflushed:
                    return False
            self._unflushed, self._scanned = 0, 0
            return True


_SHARED: weakref.WeakValueDictionary[tuple[str, str], LiteSealing] = (
    weakref.WeakValueDictionary())
_SHARED_LOCK = threading.Lock()


def sealing_for(connection_args: Mapping[str, Any], collection_name: str) -> LiteSealing | None:
    """The sealing of `collection_name` in the Milvus Lite file the connection opens, shared
    with the other stores of this process on it; None for a server."""
    path = lite_file_of(connection_args)
    if path is None:
        return None
    key = (os.path.abspath(path), collection_name)
    with _SHARED_LOCK:
        sealing = _SHARED.get(key)
        if sealing is None:
            sealing = _SHARED[key] = LiteSealing()
        return sealing
