"""`MilvusRetriever`: the store as a LangChain retriever, with nq-batched `batch`/`abatch`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig
from pydantic import ConfigDict, Field, field_validator

from langchain_milvus_ext._hybrid import HybridOptions
from langchain_milvus_ext._operations import retrieve_plan
from langchain_milvus_ext._plans import PlanOf
from langchain_milvus_ext.vectorstore import MilvusVectorStore

SearchType = Literal["similarity", "mmr", "similarity_score_threshold", "hybrid"]
_PER_CALL = (
    "k", "filter", "fetch_k", "lambda_mult", "score_threshold", "expr", "param", "timeout",
    "partition_names",
)


class MilvusRetriever(BaseRetriever):
    """Retrieve documents from a `MilvusVectorStore`.

    Example:
        ```python
        retriever = MilvusRetriever(vectorstore=store, k=4, filter={"lang": "en"})
        retriever.invoke("what is milvus?")
        retriever.invoke("what is milvus?", k=2, filter={"lang": "de"})
        retriever.batch(["q1", "q2", "q3"])  # one search with nq=3
        ```

    Attributes:
        vectorstore: The store to search.
        k: Number of documents to return.
        search_type: "similarity", "mmr", "similarity_score_threshold" or "hybrid" (dense +
            BM25 full-text; the store needs `full_text_search=True`).
        filter: A dict filter (or expression string) applied to every search.
        fetch_k: MMR candidates.
        lambda_mult: MMR diversity (1 = relevance only, 0 = diversity only).
        score_threshold: Minimum relevance score in [0, 1] for "similarity_score_threshold".
        ranker: Fusion of "hybrid" search: "rrf" or "weighted".
        weights: (dense, full-text) weights of the "weighted" ranker.
        search_kwargs: Extra search arguments (`expr`, `param`, `partition_names`).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    vectorstore: MilvusVectorStore
    k: int = 4
    search_type: SearchType = "similarity"
    filter: Mapping[str, Any] | str | None = None
    fetch_k: int = 20
    lambda_mult: float = 0.5
    score_threshold: float | None = None
    ranker: Literal["rrf", "weighted"] = "rrf"
    weights: tuple[float, float] = (0.5, 0.5)
    search_kwargs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("k", "fetch_k")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value <= 0:
            raise ValueError(f"must be a positive integer, got {value}")
        return value

    def _plan(self, query: str, overrides: Mapping[str, Any]) -> PlanOf[list[Document]]:
        unknown = set(overrides) - set(_PER_CALL)
        if unknown:
            raise TypeError(f"unexpected retriever arguments: {sorted(unknown)}")
        o: dict[str, Any] = {
            "k": self.k, "filter": self.filter, "fetch_k": self.fetch_k,
            "lambda_mult": self.lambda_mult, "score_threshold": self.score_threshold,
            **self.search_kwargs, **overrides,
        }
        store = self.vectorstore
        search = store.search_options(
            o.pop("param", None), o.pop("expr", None), o.pop("timeout", None),
            o.pop("filter"), {"partition_names": o.pop("partition_names", None)})
        hybrid = HybridOptions(self.ranker, self.weights, fetch_k=o["fetch_k"])
        return retrieve_plan(store._state, query, self.search_type, hybrid=hybrid, **o, **search)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        return self.vectorstore._sync.run(self._plan(query, kwargs))

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        return await self.vectorstore._async.run(self._plan(query, kwargs))

    def _batchable(self, inputs: list[str], kwargs: Mapping[str, Any]) -> bool:
        return self.search_type == "similarity" and not kwargs and len(inputs) > 1 and all(
            isinstance(q, str) for q in inputs)

    def batch(
        self, inputs: list[str], config: RunnableConfig | list[RunnableConfig] | None = None,
        *, return_exceptions: bool = False, **kwargs: Any,
    ) -> list[list[Document]]:
        """Retrieve for many queries; "similarity" retrievers send one nq-batched search."""
        if not self._batchable(inputs, kwargs):
            return super().batch(inputs, config, return_exceptions=return_exceptions, **kwargs)
        return self.vectorstore.similarity_search_batch(
            inputs, self.k, filter=self.filter, **self.search_kwargs)

    async def abatch(
        self, inputs: list[str], config: RunnableConfig | list[RunnableConfig] | None = None,
        *, return_exceptions: bool = False, **kwargs: Any,
    ) -> list[list[Document]]:
        """Async `batch`."""
        if not self._batchable(inputs, kwargs):
            return await super().abatch(
                inputs, config, return_exceptions=return_exceptions, **kwargs)
        return await self.vectorstore.asimilarity_search_batch(
            inputs, self.k, filter=self.filter, **self.search_kwargs)
