"""When a store flushes a Milvus Lite collection (`_sealing`): pure, no server."""

from __future__ import annotations

import threading
from typing import Literal

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_milvus_ext import Batching, MilvusVectorStore
from langchain_milvus_ext._sealing import (
    FLUSH_COST_PER_ROW,
    FLUSH_COST_ROWS,
    LiteSealing,
    reads_unflushed_rows,
    rows_written,
    sealing_for,
)
from langchain_milvus_ext._steps import Call

SEARCH = Call("search", {"collection_name": "c"})


def insert(rows: int, method: Literal["insert", "upsert"] = "insert") -> Call:
    return Call(method, {"collection_name": "c", "data": [{"pk": i} for i in range(rows)]})


def reads_until_flush(sealing: LiteSealing, limit: int = 100_000) -> int:
    """How many reads run before (and including) the one that flushes first."""
    for n in range(1, limit + 1):
        if sealing.flush_due(SEARCH):
            return n
    raise AssertionError(f"no flush in {limit} reads")


def known(rows: int) -> LiteSealing:
    """A sealing whose collection was flushed, then had `rows` rows written."""
    sealing = LiteSealing()
    assert sealing.flush_due(SEARCH)  # unknown rows: the first read flushes
    sealing.done(insert(rows))
    return sealing


def test_which_calls_scan_unflushed_rows() -> None:
    assert reads_unflushed_rows(SEARCH)
    assert reads_unflushed_rows(Call("hybrid_search", {}))
    assert reads_unflushed_rows(Call("query", {"filter": 'id == "a"'}))
    assert reads_unflushed_rows(Call("delete", {"filter": 'id == "a"'}))
    assert not reads_unflushed_rows(Call("delete", {"ids": ["a"]}))  # a primary-key lookup
    assert not reads_unflushed_rows(Call("insert", {"data": []}))
    assert not reads_unflushed_rows(Call("flush", {}))


def test_rows_written_counts_inserts_and_upserts_only() -> None:
    assert rows_written(insert(3)) == 3
    assert rows_written(insert(2, "upsert")) == 2
    assert rows_written(Call("insert", {"data": {"pk": 1}})) == 1  # one row, not a list
    assert rows_written(Call("delete", {"ids": [1, 2]})) == 0


def test_the_first_read_flushes_rows_of_unknown_age_then_reads_wait_for_their_cost() -> None:
    sealing = LiteSealing()
    sealing.done(insert(5))  # still unknown: rows may have been written before this process
    assert sealing.flush_due(SEARCH)
    assert not any(sealing.flush_due(SEARCH) for _ in range(10_000))  # nothing unflushed
    assert not sealing.flush_due(Call("flush", {}))


@pytest.mark.parametrize("rows", [1, 10, 1000, 50_000])
def test_a_flush_comes_once_reads_scanned_as_many_rows_as_it_costs(rows: int) -> None:
    cost = FLUSH_COST_ROWS + FLUSH_COST_PER_ROW * rows
    expected = -(-cost // rows)  # the first read at which the scanned rows reach the cost
    sealing = known(rows)
    assert reads_until_flush(sealing) == expected
    sealing.done(insert(rows))  # counting starts again from the flush
    assert reads_until_flush(sealing) == expected


@pytest.mark.parametrize("method", ["create_collection", "drop_collection"])
def test_creating_or_dropping_the_collection_makes_its_unflushed_rows_known(
        method: str) -> None:
    sealing = LiteSealing()
    sealing.done(Call(method, {"collection_name": "c"}))  # type: ignore[arg-type]
    assert not sealing.flush_due(SEARCH)
    sealing.done(insert(1000))
    assert reads_until_flush(sealing) == -(-(FLUSH_COST_ROWS + FLUSH_COST_PER_ROW * 1000) // 1000)
    sealing.done(insert(1000))
    sealing.done(Call(method, {"collection_name": "c"}))  # type: ignore[arg-type]
    if method == "drop_collection":  # its rows are gone
        assert not any(sealing.flush_due(SEARCH) for _ in range(10_000))
    else:  # a racing store created it after these rows were written: they still count
        assert reads_until_flush(sealing) == -(-(FLUSH_COST_ROWS + FLUSH_COST_PER_ROW * 1000)
                                               // 1000)


def test_writes_between_reads_add_up() -> None:
    sealing = known(100)
    assert not sealing.flush_due(SEARCH)  # 100 scanned
    sealing.done(insert(900))
    reads = reads_until_flush(sealing)  # 1,000 unflushed from now on: 100 + 1,000 * reads
    assert reads == -(-(FLUSH_COST_ROWS + FLUSH_COST_PER_ROW * 1000 - 100) // 1000)


def test_concurrent_readers_flush_once() -> None:
    sealing = known(1000)
    for _ in range(reads_until_flush(known(1000)) - 1):
        assert not sealing.flush_due(SEARCH)
    due: list[bool] = []
    barrier = threading.Barrier(8)

    def read() -> None:
        barrier.wait()
        due.append(sealing.flush_due(SEARCH))

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(due) == [False] * 7 + [True]


def test_stores_of_one_lite_collection_share_their_sealing(tmp_path: object) -> None:
    path = f"{tmp_path}/a.db"
    first = sealing_for({"uri": path}, "docs")
    assert first is not None
    assert sealing_for({"uri": path}, "docs") is first
    assert sealing_for({"uri": f"{tmp_path}/./a.db"}, "docs") is first  # the same file
    assert sealing_for({"uri": path}, "other") is not first
    # Servers flush themselves: an address, or no uri at all (pymilvus's default server).
    assert sealing_for({"uri": "http://localhost:19530"}, "docs") is None
    assert sealing_for({"uri": "https://x.zillizcloud.com", "token": "t"}, "docs") is None
    assert sealing_for({"host": "127.0.0.1", "port": "19530"}, "docs") is None


@pytest.mark.parametrize("args", [{"host": "127.0.0.1", "port": "19530"},
                                  {"uri": "http://127.0.0.1:19530"}])
def test_a_store_on_a_server_never_flushes(args: dict[str, str]) -> None:
    store = MilvusVectorStore(DeterministicFakeEmbedding(size=4), connection_args=args)
    assert store._state.sealing is None  # the constructor does no I/O


def test_a_store_on_a_lite_file_shares_its_collection_sealing(tmp_path: object) -> None:
    args = {"uri": f"{tmp_path}/b.db"}
    store = MilvusVectorStore(DeterministicFakeEmbedding(size=4), connection_args=args)
    assert store._state.sealing is sealing_for(args, store.collection_name) is not None
    off = MilvusVectorStore(DeterministicFakeEmbedding(size=4), connection_args=args,
                            batching=Batching(lite_flush=False))
    assert off._state.sealing is None
