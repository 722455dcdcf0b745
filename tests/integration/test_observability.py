"""What a user can see of the store's work: `store.stats()` counters and the DEBUG log."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_milvus_ext import MilvusVectorStore

pytestmark = pytest.mark.lite


async def test_stats_and_one_log_line_per_batch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    store = MilvusVectorStore(DeterministicFakeEmbedding(size=8),
                              connection_args={"uri": str(tmp_path / "o.db")})
    store.add_texts(["seed"], [{"n": -1}], ids=["seed"])
    assert store.stats()["embedding_requests"] == 1
    caplog.set_level(logging.DEBUG, logger="langchain_milvus_ext")
    texts = [f"secret text {i}" for i in range(20)]
    await asyncio.gather(*(store.aadd_texts([t], [{"n": i, "who": "secret-value"}])
                           for i, t in enumerate(texts)))
    await asyncio.gather(*(store.asimilarity_search(t, k=1) for t in texts[:5]))
    await asyncio.gather(*(store.adelete(filter={"n": i}) for i in range(3)))
    stats = store.stats()
    assert stats["embedding_requests"] == 3  # the seed, one for 20 adds, one for 5 searches
    assert stats["batches"]["write"] == {"batches": 1, "items": 20, "splits": 0}
    assert stats["batches"]["search"] == {"batches": 1, "items": 5, "splits": 0}
    assert stats["batches"]["delete"] == {"batches": 1, "items": 3, "splits": 0}
    # the seed (its id given: an upsert, which Milvus Lite gets as an insert; see
    # `CollectionLayout.upserts_merge`), the 20 adds (ids generated: one insert)
    assert "upsert" not in stats["calls"] and stats["calls"]["insert"] == 2
    assert stats["retries"] == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "langchain_milvus_ext"]
    assert any(line.startswith("write batch ok: 20 callers, 20 items") for line in lines)
    assert any(line.startswith("search batch ok: 5 callers") for line in lines)
    assert not any("secret" in line for line in lines)  # sizes and times, never user data
    await store.aclose()
