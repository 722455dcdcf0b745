"""On a Milvus Lite file, stores flush the rows they wrote once reads have paid for it
(`_sealing`): what the reads find does not change, and the rows land in Lite's data files.

Lite keeps unflushed rows in a memtable that every search and filtered query rescans in
Python; flushed rows sit in columnar data files (`collections/<name>/partitions/*/data/*.parquet`
in milvus-lite 3), which this test reads to see what the server holds.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_milvus_ext import Batching, MilvusVectorStore
from langchain_milvus_ext._sealing import FLUSH_COST_PER_ROW, FLUSH_COST_ROWS

pytestmark = [pytest.mark.lite, pytest.mark.timeout(300)]

ROWS = 600
EMBEDDINGS = DeterministicFakeEmbedding(size=16)


def docs(n: int, start: int = 0) -> list[Document]:
    return [Document(page_content=f"text {i}", metadata={"n": i}) for i in range(start, start + n)]


def rows_in_data_files(uri: str, collection: str) -> int:
    files = (Path(uri) / "collections" / collection / "partitions").glob("*/data/*.parquet")
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def reads_to_flush(rows: int) -> int:
    """The reads after a write of `rows` rows up to the one that flushes first."""
    return -(-(FLUSH_COST_ROWS + FLUSH_COST_PER_ROW * rows) // rows)


def store(uri: str, **kwargs: object) -> MilvusVectorStore:
    return MilvusVectorStore(EMBEDDINGS, collection_name=f"c_{uuid.uuid4().hex[:10]}",
                             connection_args={"uri": uri}, auto_id=True, **kwargs)  # type: ignore[arg-type]


def test_sync_reads_flush_once_they_paid_for_it_and_find_the_same(lite_uri: str) -> None:
    with store(lite_uri) as s:
        ids = s.add_documents(docs(ROWS))  # creates the collection: nothing was unflushed
        found = [s.similarity_search_with_score("text 7", k=3)
                 for _ in range(reads_to_flush(ROWS) - 1)]
        assert s._sync.stats.calls["flush"] == 0
        assert rows_in_data_files(lite_uri, s.collection_name) == 0
        found.append(s.similarity_search_with_score("text 7", k=3))
        assert s._sync.stats.calls["flush"] == 1
        assert rows_in_data_files(lite_uri, s.collection_name) == ROWS
        assert all(f == found[0] for f in found) and found[0][0][0].page_content == "text 7"
        # Flushed rows are read, deleted and replaced by their ids as before.
        assert [d.page_content for d in s.get_by_ids(ids[:2])] == ["text 0", "text 1"]
        s.delete(filter={"n": 7})
        s.delete(ids=[ids[8]])
        s.upsert(ids=[ids[9]], documents=[Document(page_content="nine", metadata={"n": 9})])
        s.add_documents(docs(1, start=ROWS))  # written after the flush: read from the memtable
        assert s.client.query(s.collection_name, filter="", output_fields=["count(*)"])[0][
            "count(*)"] == ROWS - 1
        texts = [d.page_content for d in s.similarity_search("text 7", k=ROWS)]
        assert "text 7" not in texts and "text 8" not in texts and "text 9" not in texts
        assert texts.count("nine") == 1 and f"text {ROWS}" in texts


def test_async_reads_flush_and_find_the_same(lite_uri: str) -> None:
    with store(lite_uri) as s:
        ids = s.add_documents(docs(ROWS))

        async def reads() -> list[list[str]]:
            out = []
            for _ in range(reads_to_flush(ROWS)):  # each gather: one batch or more
                got = await asyncio.gather(*(s.asimilarity_search(f"text {i}", k=1)
                                             for i in range(4)))
                out.append([d[0].page_content for d in got])
            await s.adelete(filter={"n": 3})
            assert await s.aget_by_ids([ids[3]]) == []
            await s.aclose()
            return out

        found = asyncio.run(reads())
        assert found == [["text 0", "text 1", "text 2", "text 3"]] * len(found)
        assert s._async.stats.calls["flush"] == 1
        assert rows_in_data_files(lite_uri, s.collection_name) == ROWS


def test_stores_of_one_collection_share_what_is_unflushed(lite_uri: str) -> None:
    with store(lite_uri) as writer:
        writer.add_documents(docs(ROWS))
        with MilvusVectorStore(EMBEDDINGS, collection_name=writer.collection_name,
                               connection_args={"uri": lite_uri}) as reader:
            for _ in range(reads_to_flush(ROWS) - 1):  # it knows the writer's rows are recent
                reader.similarity_search("text 1", k=1)
            assert reader._sync.stats.calls["flush"] == 0
            reader.similarity_search("text 1", k=1)
            assert reader._sync.stats.calls["flush"] == 1
        assert rows_in_data_files(lite_uri, writer.collection_name) == ROWS


def test_rows_of_unknown_age_are_flushed_by_the_first_read(lite_uri: str) -> None:
    with store(lite_uri, batching=Batching(lite_flush=False)) as writer:
        writer.add_documents(docs(ROWS))  # counted by nobody
        with MilvusVectorStore(EMBEDDINGS, collection_name=writer.collection_name,
                               connection_args={"uri": lite_uri}) as reader:
            reader.similarity_search("text 1", k=1)
            assert reader._sync.stats.calls["flush"] == 1
            assert rows_in_data_files(lite_uri, writer.collection_name) == ROWS


def test_lite_flush_false_never_flushes(lite_uri: str) -> None:
    with store(lite_uri, batching=Batching(lite_flush=False)) as s:
        s.add_documents(docs(ROWS))
        for _ in range(3 * reads_to_flush(ROWS)):
            s.similarity_search("text 1", k=1)
        assert s._sync.stats.calls["flush"] == 0
        assert rows_in_data_files(lite_uri, s.collection_name) == 0
