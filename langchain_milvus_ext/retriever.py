"""`MilvusRetriever`: the store as a LangChain retriever, with nq-batched `batch`/`abatch`."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForRetrieverRun,
    CallbackManager,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import get_config_list
from pydantic import ConfigDict, Field, field_validator

from langchain_milvus_ext._hybrid import HybridOptions
from langchain_milvus_ext._steps import PlanOf, R

SearchType = Literal["similarity", "mmr", "similarity_score_threshold", "hybrid"]
_PER_CALL = (
    "k", "filter", "fetch_k", "lambda_mult", "score_threshold", "expr", "param", "timeout",
    "partition_names",
)


@runtime_checkable
class RetrievableStore(Protocol):
    """What a `MilvusRetriever` needs of its store: `MilvusVectorStore` and its tenant views
    have it."""

    def _retrieve_plan(self, query: str, search_type: str, hybrid: HybridOptions,
                       options: Mapping[str, Any]) -> PlanOf[list[Document]]: ...

    def _run(self, plan: PlanOf[R]) -> R: ...

    def _arun(self, plan: PlanOf[R]) -> Awaitable[R]: ...

    def similarity_search_batch(self, queries: Sequence[str], k: int = 4,
                                **kwargs: Any) -> list[list[Document]]: ...

    async def asimilarity_search_batch(self, queries: Sequence[str], k: int = 4,
                                       **kwargs: Any) -> list[list[Document]]: ...


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
        vectorstore: The store to search (a `MilvusVectorStore` or one of its tenant views).
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

    vectorstore: RetrievableStore
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
        options: dict[str, Any] = {
            "k": self.k, "filter": self.filter, "fetch_k": self.fetch_k,
            "lambda_mult": self.lambda_mult, "score_threshold": self.score_threshold,
            **self.search_kwargs, **overrides,
        }
        hybrid = HybridOptions(self.ranker, self.weights, fetch_k=options["fetch_k"])
        return self.vectorstore._retrieve_plan(query, self.search_type, hybrid, options)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        return self.vectorstore._run(self._plan(query, kwargs))

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        return await self.vectorstore._arun(self._plan(query, kwargs))

    def _batchable(self, inputs: list[str], kwargs: Mapping[str, Any]) -> bool:
        return self.search_type == "similarity" and not kwargs and len(inputs) > 1 and all(
            isinstance(q, str) for q in inputs)

    def _callback_args(self, config: RunnableConfig) -> dict[str, Any]:
        """`CallbackManager.configure` arguments for one input's run, as `invoke` builds them."""
        return {
            "inheritable_callbacks": config.get("callbacks"),
            "local_callbacks": None,
            "inheritable_tags": config.get("tags"),
            "local_tags": self.tags,
            "inheritable_metadata": {**(config.get("metadata") or {}), **self._get_ls_params()},
            "local_metadata": self.metadata,
        }

    def _start_args(self, query: str, config: RunnableConfig) -> dict[str, Any]:
        """`on_retriever_start` arguments for one input's run."""
        return {"serialized": None, "query": query,
                "name": config.get("run_name") or self.get_name(),
                "run_id": config.get("run_id")}

    def _search_batch_args(self) -> dict[str, Any]:
        return {"k": self.k, "filter": self.filter, **self.search_kwargs}

    def batch(
        self, inputs: list[str], config: RunnableConfig | list[RunnableConfig] | None = None,
        *, return_exceptions: bool = False, **kwargs: Any,
    ) -> list[list[Document]]:
        """Retrieve for many queries; "similarity" retrievers send one nq-batched search.

        Each input still gets its own retriever run (callbacks, tracing), ended with its own
        documents, or with the search's error; with `return_exceptions=True` the error is
        returned in each input's place instead of raised.
        """
        if not self._batchable(inputs, kwargs):
            return super().batch(inputs, config, return_exceptions=return_exceptions, **kwargs)
        configs = get_config_list(config, len(inputs))
        runs = [
            CallbackManager.configure(**self._callback_args(c)).on_retriever_start(
                **self._start_args(q, c))
            for q, c in zip(inputs, configs, strict=True)
        ]
        try:
            results = self.vectorstore.similarity_search_batch(
                inputs, **self._search_batch_args())
        except Exception as error:
            for run in runs:
                run.on_retriever_error(error)
            if return_exceptions:
                return [error] * len(inputs)  # type: ignore[list-item]
            raise
        for run, documents in zip(runs, results, strict=True):
            run.on_retriever_end(documents)
        return results

    async def abatch(
        self, inputs: list[str], config: RunnableConfig | list[RunnableConfig] | None = None,
        *, return_exceptions: bool = False, **kwargs: Any,
    ) -> list[list[Document]]:
        """Async `batch`: one nq-batched search, one retriever run per input."""
        if not self._batchable(inputs, kwargs):
            return await super().abatch(
                inputs, config, return_exceptions=return_exceptions, **kwargs)
        configs = get_config_list(config, len(inputs))
        runs = [
            await AsyncCallbackManager.configure(**self._callback_args(c)).on_retriever_start(
                **self._start_args(q, c))
            for q, c in zip(inputs, configs, strict=True)
        ]
        try:
            results = await self.vectorstore.asimilarity_search_batch(
                inputs, **self._search_batch_args())
        except Exception as error:
            for run in runs:
                await run.on_retriever_error(error)
            if return_exceptions:
                return [error] * len(inputs)  # type: ignore[list-item]
            raise
        for run, documents in zip(runs, results, strict=True):
            await run.on_retriever_end(documents)
        return results
