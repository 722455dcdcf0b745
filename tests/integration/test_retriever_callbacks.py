"""`MilvusRetriever.batch` / `abatch`: one nq-batched search, yet one retriever run per input
(callbacks, i.e. LangSmith tracing, see every query) and `return_exceptions` honoured."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.runnables import RunnableConfig

from langchain_milvus_ext import MilvusRetriever, MilvusVectorStore

pytestmark = [pytest.mark.lite, pytest.mark.timeout(120)]

QUERIES = ["document 1 about cats", "document 2 about dogs", "document 3 about cats"]


class Counting(BaseCallbackHandler):
    """Records every retriever event: (event, run_id, query or payload, tags, metadata)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, UUID, Any]] = []
        self.starts: dict[UUID, dict[str, Any]] = {}

    def on_retriever_start(self, serialized: Any, query: str, *, run_id: UUID,
                           tags: list[str] | None = None,
                           metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.events.append(("start", run_id, query))
        self.starts[run_id] = {"query": query, "tags": tags or [], "metadata": metadata or {},
                               "name": kwargs.get("name")}

    def on_retriever_end(self, documents: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.events.append(("end", run_id, documents))

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.events.append(("error", run_id, error))

    def count(self, event: str) -> int:
        return sum(1 for e in self.events if e[0] == event)

    def outputs(self) -> dict[str, Any]:
        """Query of each run -> what its end or error event carried."""
        return {self.starts[run_id]["query"]: payload
                for event, run_id, payload in self.events if event != "start"}


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[MilvusVectorStore]:
    store = MilvusVectorStore(DeterministicFakeEmbedding(size=16),
                              connection_args={"uri": str(tmp_path / "cb.db")},
                              consistency_level="Strong")
    store.add_texts([f"document {i} about {'cats' if i % 2 else 'dogs'}" for i in range(10)],
                    ids=[f"d{i}" for i in range(10)])
    yield store
    store.close()


def _check_runs(handler: Counting, results: list[list[Document]]) -> None:
    assert (handler.count("start"), handler.count("end"), handler.count("error")) == (3, 3, 0)
    assert handler.outputs() == dict(zip(QUERIES, results, strict=True))
    assert len({run_id for _, run_id, _ in handler.events}) == 3  # a run of its own each
    assert {s["name"] for s in handler.starts.values()} == {"MilvusRetriever"}


def test_batch_runs_callbacks_per_input_around_one_search(store: MilvusVectorStore) -> None:
    retriever = MilvusRetriever(vectorstore=store, k=2, tags=["own-tag"])
    handler = Counting()
    before = store._sync.stats.calls["search"]
    results = retriever.batch(QUERIES, config={"callbacks": [handler], "tags": ["t"]})
    assert store._sync.stats.calls["search"] - before == 1  # still one nq=3 search
    assert results == [retriever.invoke(q) for q in QUERIES]
    _check_runs(handler, results)
    assert all({"t", "own-tag"} <= set(s["tags"]) for s in handler.starts.values())
    name = retriever._get_ls_params()["ls_retriever_name"]  # what invoke() reports
    assert all(s["metadata"]["ls_retriever_name"] == name for s in handler.starts.values())


async def test_abatch_runs_callbacks_per_input_around_one_search(
    store: MilvusVectorStore,
) -> None:
    retriever = MilvusRetriever(vectorstore=store, k=2)
    handler = Counting()
    results = await retriever.abatch(QUERIES, config={"callbacks": [handler]})
    assert store._async.stats.calls["search"] == 1
    assert results == [await retriever.ainvoke(q) for q in QUERIES]
    _check_runs(handler, results)


def test_batch_with_one_config_per_input(store: MilvusVectorStore) -> None:
    retriever = MilvusRetriever(vectorstore=store, k=1)
    handler = Counting()
    run_ids = [uuid4() for _ in QUERIES]
    configs: list[RunnableConfig] = [
        {"callbacks": [handler], "metadata": {"n": i}, "run_name": f"q{i}", "run_id": run_ids[i]}
        for i in range(3)]
    before = store._sync.stats.calls["search"]
    retriever.batch(QUERIES, configs)
    assert store._sync.stats.calls["search"] - before == 1
    assert [handler.starts[r]["metadata"]["n"] for r in run_ids] == [0, 1, 2]
    assert [handler.starts[r]["name"] for r in run_ids] == ["q0", "q1", "q2"]
    assert handler.count("end") == 3


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_batch_errors_reach_every_run_and_honour_return_exceptions(
    store: MilvusVectorStore, mode: str
) -> None:
    retriever = MilvusRetriever(vectorstore=store, k=2, search_kwargs={"expr": "no_such ==="})

    async def batch(return_exceptions: bool, handler: Counting) -> list[Any]:
        config: RunnableConfig = {"callbacks": [handler]}
        if mode == "sync":
            return retriever.batch(QUERIES, config, return_exceptions=return_exceptions)
        return await retriever.abatch(QUERIES, config, return_exceptions=return_exceptions)

    handler = Counting()
    results = await batch(True, handler)
    assert len(results) == 3 and all(isinstance(r, Exception) for r in results)
    assert (handler.count("start"), handler.count("end"), handler.count("error")) == (3, 0, 3)
    assert handler.outputs() == dict(zip(QUERIES, results, strict=True))

    handler = Counting()
    with pytest.raises(Exception) as info:
        await batch(False, handler)
    assert type(info.value) is type(results[0])
    assert (handler.count("start"), handler.count("end"), handler.count("error")) == (3, 0, 3)
