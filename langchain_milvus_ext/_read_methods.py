"""`ReadMethods`: the methods of `MilvusVectorStore` that read, which it inherits.

Similarity search (by text or vector, with raw or relevance scores, batched), max marginal
relevance, hybrid search, `as_retriever`, and the reads without a vector: `get_by_ids`,
`search_by_metadata`, `get_pks`. Each is a thin shell, as the store's other methods: it builds
a plan (`_operations`) and runs it with `_run` (sync) or `_arun` (async) of `StoreShell`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from langchain_core.documents import Document

from langchain_milvus_ext import _operations as ops
from langchain_milvus_ext._arguments import (
    QUERY_ARGS,
    check_kwargs,
    search_options,
    split_search_kwargs,
)
from langchain_milvus_ext._hybrid import HybridOptions
from langchain_milvus_ext._operations import FilterArg
from langchain_milvus_ext._results import Scored, relevance_fn
from langchain_milvus_ext._shell import StoreShell
from langchain_milvus_ext._steps import Plan, PlanOf
from langchain_milvus_ext.retriever import MilvusRetriever


class ReadMethods(StoreShell):
    """The reads of `MilvusVectorStore` (a base class of it, never used alone)."""

    def _search_options(self, param: dict[str, Any] | None, expr: str | None,
                        timeout: float | None, filter: FilterArg,
                        kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Search options of one call, with the store's defaults filled in (see
        `_arguments.search_options`)."""
        return search_options(kwargs, param=param or self.search_params, expr=expr,
                              timeout=self._timeout(timeout), filter=filter,
                              partition_names=self.partition_names)

    def _query_plan(self, query: str | list[float], k: int, param: dict[str, Any] | None,
                    expr: str | None, timeout: float | None, filter: FilterArg,
                    kwargs: Mapping[str, Any], *, relevance: bool = False,
                    ) -> PlanOf[list[Scored]]:
        """The plan of one search call (a text or a vector), shared by its sync and async
        shells."""
        options = self._search_options(param, expr, timeout, filter, kwargs)
        return ops.one_query_plan(self._state, query, k, relevance=relevance, **options)

    def _mmr_query_plan(self, query: str | list[float], k: int, fetch_k: int,
                        lambda_mult: float, param: dict[str, Any] | None, expr: str | None,
                        timeout: float | None, filter: FilterArg,
                        kwargs: Mapping[str, Any]) -> PlanOf[list[Scored]]:
        """The plan of one MMR call (a text or a vector), shared by its sync and async shells."""
        options = self._search_options(param, expr, timeout, filter, kwargs)
        return ops.mmr_plan(self._state, query, k, fetch_k, lambda_mult, **options)

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
        return self._run(self._query_plan(query, k, param, expr, timeout, filter, kwargs))

    async def asimilarity_search_with_score(  # type: ignore[override]
        self, query: str, k: int = 4, param: dict[str, Any] | None = None,
        expr: str | None = None, timeout: float | None = None, *,
        filter: FilterArg = None, **kwargs: Any,
    ) -> list[Scored]:
        """Async `similarity_search_with_score`."""
        return await self._arun(
            self._query_plan(query, k, param, expr, timeout, filter, kwargs))

    def similarity_search_with_score_by_vector(  # type: ignore[override]
        self, embedding: list[float], k: int = 4, param: dict[str, Any] | None = None,
        expr: str | None = None, timeout: float | None = None, *,
        filter: FilterArg = None, **kwargs: Any,
    ) -> list[Scored]:
        """(Document, raw score) pairs for a query vector."""
        return self._run(self._query_plan(embedding, k, param, expr, timeout, filter, kwargs))

    async def asimilarity_search_with_score_by_vector(  # type: ignore[override]
        self, embedding: list[float], k: int = 4, param: dict[str, Any] | None = None,
        expr: str | None = None, timeout: float | None = None, *,
        filter: FilterArg = None, **kwargs: Any,
    ) -> list[Scored]:
        """Async `similarity_search_with_score_by_vector`."""
        return await self._arun(
            self._query_plan(embedding, k, param, expr, timeout, filter, kwargs))

    def _relevance_plan(self, query: str, k: int, kwargs: dict[str, Any]) -> Plan:
        return self._query_plan(query, k, kwargs.pop("param", None), kwargs.pop("expr", None),
                                kwargs.pop("timeout", None), kwargs.pop("filter", None), kwargs,
                                relevance=True)

    def _similarity_search_with_relevance_scores(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[Scored]:
        kwargs.pop("score_threshold", None)
        return self._run(self._relevance_plan(query, k, kwargs))

    async def _asimilarity_search_with_relevance_scores(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[Scored]:
        kwargs.pop("score_threshold", None)
        return await self._arun(self._relevance_plan(query, k, kwargs))

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        return relevance_fn(self._state.layout.metric)

    def similarity_search_batch(
        self, queries: Sequence[str], k: int = 4, *, filter: FilterArg = None,
        expr: str | None = None, param: dict[str, Any] | None = None,
        timeout: float | None = None, **kwargs: Any,
    ) -> list[list[Document]]:
        """Search many queries with one nq-batched search (and one embedding request)."""
        options = self._search_options(param, expr, timeout, filter, kwargs)
        scored = self._run(ops.scored_plan(self._state, list(queries), k, **options))
        return [ops.documents_of(s) for s in scored]

    async def asimilarity_search_batch(
        self, queries: Sequence[str], k: int = 4, *, filter: FilterArg = None,
        expr: str | None = None, param: dict[str, Any] | None = None,
        timeout: float | None = None, **kwargs: Any,
    ) -> list[list[Document]]:
        """Async `similarity_search_batch`."""
        options = self._search_options(param, expr, timeout, filter, kwargs)
        scored = await self._arun(ops.scored_plan(self._state, list(queries), k, **options))
        return [ops.documents_of(s) for s in scored]

    def max_marginal_relevance_search(
        self, query: str, k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5,
        param: dict[str, Any] | None = None, expr: str | None = None,
        timeout: float | None = None, *, filter: FilterArg = None, **kwargs: Any,
    ) -> list[Document]:
        """Diverse results: `fetch_k` candidates (with vectors, one search), `k` picked by MMR."""
        return ops.documents_of(self._run(self._mmr_query_plan(
            query, k, fetch_k, lambda_mult, param, expr, timeout, filter, kwargs)))

    async def amax_marginal_relevance_search(
        self, query: str, k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5,
        param: dict[str, Any] | None = None, expr: str | None = None,
        timeout: float | None = None, *, filter: FilterArg = None, **kwargs: Any,
    ) -> list[Document]:
        """Async `max_marginal_relevance_search`."""
        return ops.documents_of(await self._arun(self._mmr_query_plan(
            query, k, fetch_k, lambda_mult, param, expr, timeout, filter, kwargs)))

    def max_marginal_relevance_search_by_vector(  # type: ignore[override]
        self, embedding: list[float], k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5,
        param: dict[str, Any] | None = None, expr: str | None = None,
        timeout: float | None = None, *, filter: FilterArg = None, **kwargs: Any,
    ) -> list[Document]:
        """MMR for a query vector."""
        return ops.documents_of(self._run(self._mmr_query_plan(
            embedding, k, fetch_k, lambda_mult, param, expr, timeout, filter, kwargs)))

    async def amax_marginal_relevance_search_by_vector(  # type: ignore[override]
        self, embedding: list[float], k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5,
        param: dict[str, Any] | None = None, expr: str | None = None,
        timeout: float | None = None, *, filter: FilterArg = None, **kwargs: Any,
    ) -> list[Document]:
        """Async `max_marginal_relevance_search_by_vector`."""
        return ops.documents_of(await self._arun(self._mmr_query_plan(
            embedding, k, fetch_k, lambda_mult, param, expr, timeout, filter, kwargs)))

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
        return self._run(self._hybrid_plan(
            query, k, filter, expr, HybridOptions(ranker, weights, rrf_k, fetch_k),
            param, timeout, kwargs))

    async def ahybrid_search_with_score(
        self, query: str, k: int = 4, *, filter: FilterArg = None, expr: str | None = None,
        ranker: Literal["rrf", "weighted"] = "rrf", weights: tuple[float, float] = (0.5, 0.5),
        rrf_k: int = 60, fetch_k: int | None = None, param: dict[str, Any] | None = None,
        timeout: float | None = None, **kwargs: Any,
    ) -> list[Scored]:
        """Async `hybrid_search_with_score`."""
        return await self._arun(self._hybrid_plan(
            query, k, filter, expr, HybridOptions(ranker, weights, rrf_k, fetch_k),
            param, timeout, kwargs))

    def _hybrid_plan(self, query: str, k: int, filter: FilterArg, expr: str | None,
                     hybrid: HybridOptions, param: dict[str, Any] | None,
                     timeout: float | None, kwargs: Mapping[str, Any]) -> PlanOf[list[Scored]]:
        options = self._search_options(param, expr, timeout, filter, kwargs)
        return ops.hybrid_plan(self._state, query, k, hybrid=hybrid, **options)

    def hybrid_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        """Documents of `hybrid_search_with_score`."""
        return ops.documents_of(self.hybrid_search_with_score(query, k, **kwargs))

    async def ahybrid_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        """Async `hybrid_search`."""
        return ops.documents_of(await self.ahybrid_search_with_score(query, k, **kwargs))

    def _retrieve_plan(self, query: str, search_type: str, hybrid: HybridOptions,
                       options: Mapping[str, Any]) -> PlanOf[list[Document]]:
        """A retriever's search (see `MilvusRetriever`): `options` are `k`, `fetch_k`,
        `lambda_mult`, `score_threshold`, `filter` and search arguments."""
        o = dict(options)
        search = self._search_options(
            o.pop("param", None), o.pop("expr", None), o.pop("timeout", None),
            o.pop("filter"), {"partition_names": o.pop("partition_names", None)})
        return ops.retrieve_plan(self._state, query, search_type, hybrid=hybrid, **o, **search)

    def as_retriever(self, **kwargs: Any) -> MilvusRetriever:  # type: ignore[override]
        """A `MilvusRetriever` over this store (accepts LangChain's `search_kwargs` style).

        Example:
            ```python
            store.as_retriever(search_type="mmr", search_kwargs={"k": 4, "fetch_k": 20})
            ```
        """
        own, search_kwargs = split_search_kwargs(kwargs.pop("search_kwargs", None))
        return MilvusRetriever(vectorstore=self, search_kwargs=search_kwargs, **own, **kwargs)

    # -- reads without a vector search ----------------------------------------------------

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Documents with these ids, in the order given; missing ids are skipped."""
        return self._run(ops.get_by_ids_plan(self._state, ids))

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Async `get_by_ids`."""
        return await self._arun(ops.get_by_ids_plan(self._state, ids))

    def search_by_metadata(
        self, expr: FilterArg, fields: list[str] | None = None, limit: int = 10, *,
        offset: int = 0, timeout: float | None = None,
    ) -> list[Document]:
        """Documents matching a filter dict or expression, without a vector search."""
        return self._run(ops.query_plan(self._state, expr, fields=fields, limit=limit,
                                        offset=offset, timeout=self._timeout(timeout)))

    async def asearch_by_metadata(
        self, expr: FilterArg, fields: list[str] | None = None, limit: int = 10, *,
        offset: int = 0, timeout: float | None = None,
    ) -> list[Document]:
        """Async `search_by_metadata`."""
        return await self._arun(ops.query_plan(
            self._state, expr, fields=fields, limit=limit, offset=offset,
            timeout=self._timeout(timeout)))

    def get_pks(  # type: ignore[override]
        self, expr: FilterArg, *, limit: int | None = None, timeout: float | None = None,
        **kwargs: Any,
    ) -> list[str | int]:
        """Primary keys matching a filter dict or expression, in the collection's key type.

        `consistency_level` and `partition_names` are passed on to the query, as by
        langchain-milvus; another keyword argument is a TypeError.
        """
        check_kwargs("get_pks", kwargs, QUERY_ARGS)
        return self._run(ops.query_plan(self._state, expr, limit=limit, pks_only=True,
                                        timeout=self._timeout(timeout), extra=kwargs))

    async def aget_pks(  # type: ignore[override]
        self, expr: FilterArg, *, limit: int | None = None, timeout: float | None = None,
        **kwargs: Any,
    ) -> list[str | int]:
        """Async `get_pks`."""
        check_kwargs("aget_pks", kwargs, QUERY_ARGS)
        return await self._arun(ops.query_plan(
            self._state, expr, limit=limit, pks_only=True, timeout=self._timeout(timeout),
            extra=kwargs))
