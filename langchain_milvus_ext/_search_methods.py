"""The search half of `MilvusVectorStore`: similarity, relevance, batch and MMR searches.

Each method is a thin shell: it builds a plan (`_operations`) and runs it with the sync or
the async driver.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from langchain_core.documents import Document
from langchain_milvus import Milvus as _LangchainMilvus

from langchain_milvus_ext import _operations as ops
from langchain_milvus_ext._collection import CollectionState
from langchain_milvus_ext._drivers import AsyncDriver, SyncDriver
from langchain_milvus_ext._hybrid import HybridOptions
from langchain_milvus_ext._operations import FilterArg
from langchain_milvus_ext._results import Scored, relevance_fn
from langchain_milvus_ext._steps import Plan, PlanOf

SEARCH_PASSTHROUGH = frozenset({
    "group_by_field", "group_size", "strict_group_size", "consistency_level", "round_decimal",
    "offset", "ignore_growing", "guarantee_timestamp", "graceful_time", "travel_timestamp",
})
"""`MilvusClient.search` arguments forwarded unchanged (langchain-milvus passes **kwargs on)."""
_RANKING = frozenset({"reranker", "ranker_type", "ranker_params"})
_SEARCH_OWN = frozenset({"partition_names", "fetch_k", "score_threshold", "output_fields",
                         *_RANKING})


class SearchMethods(_LangchainMilvus):
    """Search methods of the store (its state is set up by `MilvusVectorStore.__init__`)."""

    _state: CollectionState
    _sync: SyncDriver
    _async: AsyncDriver

    def _timeout(self, timeout: float | None) -> float | None:
        return timeout if timeout is not None else self.timeout

    def search_options(self, param: dict[str, Any] | None, expr: str | None,
                        timeout: float | None, filter: FilterArg,
                        kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Search options of one call, with the store's defaults filled in.

        pymilvus search arguments that langchain-milvus passes through (`group_by_field`,
        `consistency_level`, `output_fields`, ...) are passed through too; any other name is a
        TypeError, so a misspelt argument is never silently ignored.
        """
        unknown = set(kwargs) - SEARCH_PASSTHROUGH - _SEARCH_OWN
        if unknown:
            raise TypeError(
                f"unexpected search arguments: {sorted(unknown)} (accepted: "
                f"{sorted(SEARCH_PASSTHROUGH | _SEARCH_OWN)})"
            )
        extra = {name: kwargs[name] for name in SEARCH_PASSTHROUGH if name in kwargs}
        ranking = {name: kwargs[name] for name in _RANKING if kwargs.get(name) is not None}
        return {
            "ranking": ranking, "fanout": kwargs.get("fetch_k"),
            "filter": filter, "expr": expr, "param": param or self.search_params,
            "timeout": self._timeout(timeout),
            "partition_names": kwargs.get("partition_names") or self.partition_names,
            "output_fields": kwargs.get("output_fields"),
            "extra": extra,
        }

    # -- searches -------------------------------------------------------------------------

    def similarity_search(  # type: ignore[override]
        self, query: str, k: int = 4, param: dict[str, Any] | None = None,
        expr: str | None = None, timeout: float | None = None, *,
        filter: FilterArg = None, **kwargs: Any,
    ) -> list[Document]:
        """The `k` documents closest to `query`, optionally filtered.

        Args:
            query: Text to embed and search for.
            k: Number of results (positive).
            param: Search params for this call (default: the store's).
            expr: A raw Milvus boolean expression (ANDed with `filter`).
            timeout: Seconds for this call (default: the store's).
            filter: A dict in the filter language (`{"year": {"$gte": 2020}}`) or an
                expression string.
            **kwargs: `partition_names`.
        """
        return ops.documents_of(self.similarity_search_with_score(
            query, k, param, expr, timeout, filter=filter, **kwargs))

    async def asimilarity_search(  # type: ignore[override]
        self, query: str, k: int = 4, param: dict[str, Any] | None = None,
        expr: str | None = None, timeout: float | None = None, *,
        filter: FilterArg = None, **kwargs: Any,
    ) -> list[Document]:
        """Async `similarity_search`; concurrent calls share embedding and search RPCs."""
        return ops.documents_of(await self.asimilarity_search_with_score(
            query, k, param, expr, timeout, filter=filter, **kwargs))

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, param: dict[str, Any] | None = None,
        expr: str | None = None, timeout: float | None = None, *,
        filter: FilterArg = None, **kwargs: Any,
    ) -> list[Document]:
        """The `k` documents closest to a vector."""
        return ops.documents_of(self.similarity_search_with_score_by_vector(
            embedding, k, param, expr, timeout, filter=filter, **kwargs))

    async def asimilarity_search_by_vector(
        self, embedding: list[float], k: int = 4, param: dict[str, Any] | None = None,
        expr: str | None = None, timeout: float | None = None, *,
        filter: FilterArg = None, **kwargs: Any,
    ) -> list[Document]:
        """Async `similarity_search_by_vector`."""
        return ops.documents_of(await self.asimilarity_search_with_score_by_vector(
            embedding, k, param, expr, timeout, filter=filter, **kwargs))

    def similarity_search_with_score(  # type: ignore[override]
        self, query: str, k: int = 4, param: dict[str, Any] | None = None,
        expr: str | None = None, timeout: float | None = None, *,
        filter: FilterArg = None, **kwargs: Any,
    ) -> list[Scored]:
        """(Document, raw score) pairs: distance for L2, similarity for COSINE and IP."""
        options = self.search_options(param, expr, timeout, filter, kwargs)
        return self._sync.run(ops.one_query_plan(self._state, query, k, **options))

    async def asimilarity_search_with_score(  # type: ignore[override]
        self, query: str, k: int = 4, param: dict[str, Any] | None = None,
        expr: str | None = None, timeout: float | None = None, *,
        filter: FilterArg = None, **kwargs: Any,
    ) -> list[Scored]:
        """Async `similarity_search_with_score`."""
        options = self.search_options(param, expr, timeout, filter, kwargs)
        return await self._async.run(ops.one_query_plan(self._state, query, k, **options))

    def similarity_search_with_score_by_vector(  # type: ignore[override]
        self, embedding: list[float], k: int = 4, param: dict[str, Any] | None = None,
        expr: str | None = None, timeout: float | None = None, *,
        filter: FilterArg = None, **kwargs: Any,
    ) -> list[Scored]:
        """(Document, raw score) pairs for a query vector."""
        options = self.search_options(param, expr, timeout, filter, kwargs)
        return self._sync.run(ops.one_query_plan(self._state, embedding, k, **options))

    async def asimilarity_search_with_score_by_vector(  # type: ignore[override]
        self, embedding: list[float], k: int = 4, param: dict[str, Any] | None = None,
        expr: str | None = None, timeout: float | None = None, *,
        filter: FilterArg = None, **kwargs: Any,
    ) -> list[Scored]:
        """Async `similarity_search_with_score_by_vector`."""
        options = self.search_options(param, expr, timeout, filter, kwargs)
        return await self._async.run(ops.one_query_plan(self._state, embedding, k, **options))

    def _relevance_plan(self, query: str, k: int, kwargs: dict[str, Any]) -> Plan:
        options = self.search_options(kwargs.pop("param", None), kwargs.pop("expr", None),
                                       kwargs.pop("timeout", None), kwargs.pop("filter", None),
                                       kwargs)
        return ops.one_query_plan(self._state, query, k, relevance=True, **options)

    def _similarity_search_with_relevance_scores(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[Scored]:
        kwargs.pop("score_threshold", None)
        return self._sync.run(self._relevance_plan(query, k, kwargs))

    async def _asimilarity_search_with_relevance_scores(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[Scored]:
        kwargs.pop("score_threshold", None)
        return await self._async.run(self._relevance_plan(query, k, kwargs))

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        return relevance_fn(self._state.layout.metric)

    def similarity_search_batch(
        self, queries: Sequence[str], k: int = 4, *, filter: FilterArg = None,
        expr: str | None = None, param: dict[str, Any] | None = None,
        timeout: float | None = None, **kwargs: Any,
    ) -> list[list[Document]]:
        """Search many queries with one nq-batched search (and one embedding request)."""
        options = self.search_options(param, expr, timeout, filter, kwargs)
        scored = self._sync.run(ops.scored_plan(self._state, list(queries), k, **options))
        return [ops.documents_of(s) for s in scored]

    async def asimilarity_search_batch(
        self, queries: Sequence[str], k: int = 4, *, filter: FilterArg = None,
        expr: str | None = None, param: dict[str, Any] | None = None,
        timeout: float | None = None, **kwargs: Any,
    ) -> list[list[Document]]:
        """Async `similarity_search_batch`."""
        options = self.search_options(param, expr, timeout, filter, kwargs)
        scored = await self._async.run(ops.scored_plan(self._state, list(queries), k, **options))
        return [ops.documents_of(s) for s in scored]

    def max_marginal_relevance_search(
        self, query: str, k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5,
        param: dict[str, Any] | None = None, expr: str | None = None,
        timeout: float | None = None, *, filter: FilterArg = None, **kwargs: Any,
    ) -> list[Document]:
        """Diverse results: `fetch_k` candidates (with vectors, one search), `k` picked by MMR."""
        options = self.search_options(param, expr, timeout, filter, kwargs)
        return ops.documents_of(self._sync.run(
            ops.mmr_plan(self._state, query, k, fetch_k, lambda_mult, **options)))

    async def amax_marginal_relevance_search(
        self, query: str, k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5,
        param: dict[str, Any] | None = None, expr: str | None = None,
        timeout: float | None = None, *, filter: FilterArg = None, **kwargs: Any,
    ) -> list[Document]:
        """Async `max_marginal_relevance_search`."""
        options = self.search_options(param, expr, timeout, filter, kwargs)
        return ops.documents_of(await self._async.run(
            ops.mmr_plan(self._state, query, k, fetch_k, lambda_mult, **options)))

    def max_marginal_relevance_search_by_vector(  # type: ignore[override]
        self, embedding: list[float], k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5,
        param: dict[str, Any] | None = None, expr: str | None = None,
        timeout: float | None = None, *, filter: FilterArg = None, **kwargs: Any,
    ) -> list[Document]:
        """MMR for a query vector."""
        options = self.search_options(param, expr, timeout, filter, kwargs)
        return ops.documents_of(self._sync.run(
            ops.mmr_plan(self._state, embedding, k, fetch_k, lambda_mult, **options)))

    async def amax_marginal_relevance_search_by_vector(  # type: ignore[override]
        self, embedding: list[float], k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5,
        param: dict[str, Any] | None = None, expr: str | None = None,
        timeout: float | None = None, *, filter: FilterArg = None, **kwargs: Any,
    ) -> list[Document]:
        """Async `max_marginal_relevance_search_by_vector`."""
        options = self.search_options(param, expr, timeout, filter, kwargs)
        return ops.documents_of(await self._async.run(
            ops.mmr_plan(self._state, embedding, k, fetch_k, lambda_mult, **options)))

    def hybrid_search_with_score(
        self, query: str, k: int = 4, *, filter: FilterArg = None, expr: str | None = None,
        ranker: Literal["rrf", "weighted"] = "rrf", weights: tuple[float, float] = (0.5, 0.5),
        rrf_k: int = 60, fetch_k: int | None = None, param: dict[str, Any] | None = None,
        timeout: float | None = None, **kwargs: Any,
    ) -> list[Scored]:
        """Dense + BM25 full-text search fused by RRF or weights (needs full_text_search=True).

        Args:
            query: The query text (embedded for the dense part, tokenised for BM25).
            k: Number of results.
            filter: Dict filter or expression applied to both sub-searches.
            expr: Raw Milvus expression (ANDed with `filter`).
            ranker: "rrf" or "weighted".
            weights: (dense, full-text) weights for the weighted ranker.
            rrf_k: The RRF constant.
            fetch_k: Candidates per sub-search (default 2 * k).
            param: Dense search params.
            timeout: Seconds for this call.
            **kwargs: `partition_names`.

        Returns:
            (Document, fused score) pairs, best first.
        """
        return self._sync.run(self._hybrid_plan(
            query, k, filter, expr, HybridOptions(ranker, weights, rrf_k, fetch_k),
            param, timeout, kwargs))

    async def ahybrid_search_with_score(
        self, query: str, k: int = 4, *, filter: FilterArg = None, expr: str | None = None,
        ranker: Literal["rrf", "weighted"] = "rrf", weights: tuple[float, float] = (0.5, 0.5),
        rrf_k: int = 60, fetch_k: int | None = None, param: dict[str, Any] | None = None,
        timeout: float | None = None, **kwargs: Any,
    ) -> list[Scored]:
        """Async `hybrid_search_with_score`."""
        return await self._async.run(self._hybrid_plan(
            query, k, filter, expr, HybridOptions(ranker, weights, rrf_k, fetch_k),
            param, timeout, kwargs))

    def _hybrid_plan(self, query: str, k: int, filter: FilterArg, expr: str | None,
                     hybrid: HybridOptions, param: dict[str, Any] | None,
                     timeout: float | None, kwargs: Mapping[str, Any]) -> PlanOf[list[Scored]]:
        options = self.search_options(param, expr, timeout, filter, kwargs)
        return ops.hybrid_plan(self._state, query, k, hybrid=hybrid, **options)

    def hybrid_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        """Documents of `hybrid_search_with_score`."""
        return ops.documents_of(self.hybrid_search_with_score(query, k, **kwargs))

    async def ahybrid_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        """Async `hybrid_search`."""
        return ops.documents_of(await self.ahybrid_search_with_score(query, k, **kwargs))
