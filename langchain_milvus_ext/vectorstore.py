"""`MilvusVectorStore`: a drop-in replacement for langchain-milvus's `Milvus` vector store."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from pymilvus import MilvusClient
from typing_extensions import Self

from langchain_milvus_ext import _operations as ops
from langchain_milvus_ext._clients import ClientRegistry
from langchain_milvus_ext._coalescer import CoalescerLimits
from langchain_milvus_ext._drivers import AsyncDriver, DriverOptions, SyncDriver
from langchain_milvus_ext._hybrid import check_full_text_support
from langchain_milvus_ext._operations import FilterArg
from langchain_milvus_ext._plans import CollectionState, Plan
from langchain_milvus_ext._retry import RetryPolicy
from langchain_milvus_ext._rows import split_documents
from langchain_milvus_ext._schema import plan_layout
from langchain_milvus_ext._search_methods import SearchMethods

if TYPE_CHECKING:
    from langchain_milvus_ext.retriever import MilvusRetriever

DEFAULT_CONNECTION = {"uri": "./milvus_langchain.db"}
"""Embedded Milvus Lite in a local file: no server needed."""


def _bm25_output_field(function: Any) -> str:
    """The sparse field of a langchain-milvus `BM25BuiltInFunction` (the parent's hybrid API)."""
    outputs = getattr(function, "output_field_names", None)
    kind = str(getattr(getattr(function, "function", None), "type", ""))
    if not outputs or len(outputs) != 1 or "BM25" not in (type(function).__name__ + kind):
        raise ValueError("builtin_function: only one BM25BuiltInFunction is supported")
    return str(outputs[0])


_RETRIEVER_FIELDS = ("k", "filter", "fetch_k", "lambda_mult", "score_threshold")


class MilvusVectorStore(SearchMethods):
    """A LangChain vector store on Milvus: Lite, standalone, cluster or Zilliz Cloud.

    Same constructor and methods as `langchain_milvus.Milvus`, sync and async, plus
    `get_by_ids`, dict filters, batch search and coalescing of concurrent async calls.

    Metadata is stored in one JSON field (`metadata_field`, default "metadata"), so documents
    with different metadata keys and types share a collection and come back exactly as
    stored; `enable_dynamic_field=True` stores metadata keys as Milvus dynamic fields instead.

    Close the store with `close()` / `aclose()` or use it as a (async) context manager; a
    closed store raises `StoreClosedError` on every later call.

    Example:
        ```python
        from langchain_core.embeddings import DeterministicFakeEmbedding
        from langchain_milvus_ext import MilvusVectorStore

        store = MilvusVectorStore(
            embedding_function=DeterministicFakeEmbedding(size=128),
            connection_args={"uri": "./rag.db"},  # or {"uri": "http://host:19530", "token": ...}
        )
        store.add_texts(["Milvus is a vector database"], metadatas=[{"topic": "db"}])
        store.similarity_search("vector database", k=1, filter={"topic": "db"})
        ```

    Args:
        embedding_function: The LangChain `Embeddings` model.
        collection_name: Collection to use (created on the first write if missing).
        collection_description: Description of a newly created collection.
        collection_properties: Accepted for compatibility; not applied.
        connection_args: pymilvus client arguments: `uri` (a local `.db` file for Milvus Lite,
            `http://host:19530` for a server, a Zilliz Cloud endpoint), `token`, `user`,
            `password`, `db_name`. Defaults to the Milvus Lite file `./milvus_langchain.db`.
        consistency_level: Consistency of a newly created collection.
        index_params: Vector index, e.g. `{"index_type": "HNSW", "metric_type": "COSINE",
            "params": {"M": 16}}`; default AUTOINDEX with COSINE.
        search_params: Default search params (`{"params": {"ef": 64}}`).
        drop_old: Drop an existing collection of that name first.
        auto_id: Let the server assign INT64 primary keys (ids cannot then be chosen).
        primary_field: Primary-key field name.
        text_field: Text field name.
        vector_field: Vector field name.
        enable_dynamic_field: Keep metadata keys in Milvus dynamic fields.
        metadata_field: Name of the JSON metadata field (default "metadata").
        partition_key_field: A metadata key also stored as a partition-key column, for
            multi-tenancy (one tenant per key value).
        num_partitions: Partitions of a partition-key collection.
        partition_names: Partitions searched by default.
        replica_number: Accepted for compatibility.
        timeout: Default timeout of each call in seconds; a per-call `timeout=` wins.
        num_shards: Accepted for compatibility.
        vector_schema: Not supported (single dense vector field only).
        metadata_schema: Accepted for compatibility; metadata is JSON.
        builtin_function: Not supported yet (hybrid/BM25 search).
        batch_size: Rows per write RPC and items per coalesced async batch.
        coalesce: Merge concurrent async calls into shared embedding requests and RPCs.
        coalesce_limits: Bounds of the coalescer (batch size/bytes, batches in flight, wait).
        batch_query_embeddings: Let several queries share one `embed_documents` request.
        retry: Retries of transient failures (default: 3 tries, jittered backoff).
        full_text_search: Add a sparse field filled by Milvus's built-in BM25 function on
            the text field, for `hybrid_search` (Milvus >= 2.5 or Milvus Lite >= 3.0).
        sparse_field: Name of that sparse field.
    """

    def __init__(  # noqa: PLR0913
        self,
        embedding_function: Embeddings,
        collection_name: str = "LangChainCollection",
        collection_description: str = "",
        collection_properties: dict[str, Any] | None = None,
        connection_args: dict[str, Any] | None = None,
        consistency_level: str = "Session",
        index_params: dict[str, Any] | None = None,
        search_params: dict[str, Any] | None = None,
        drop_old: bool | None = False,
        auto_id: bool = False,
        *,
        primary_field: str = "pk",
        text_field: str = "text",
        vector_field: str = "vector",
        enable_dynamic_field: bool = False,
        metadata_field: str | None = None,
        partition_key_field: str | None = None,
        num_partitions: int | None = None,
        partition_names: list[str] | None = None,
        replica_number: int = 1,
        timeout: float | None = None,
        num_shards: int | None = None,
        vector_schema: Any = None,
        metadata_schema: Any = None,
        builtin_function: Any = None,
        batch_size: int = 1000,
        coalesce: bool = True,
        coalesce_limits: CoalescerLimits | None = None,
        batch_query_embeddings: bool = True,
        retry: RetryPolicy | None = None,
        full_text_search: bool = False,
        sparse_field: str = "sparse",
    ) -> None:
        # The parent's __init__ is not called: it opens both clients, binds the async one to
        # whatever loop exists and loads the collection. Everything here is lazy.
        if embedding_function is None or isinstance(embedding_function, list):
            raise ValueError("embedding_function must be one LangChain Embeddings model")
        if vector_schema is not None:
            raise ValueError("vector_schema is not supported: the store has one dense vector field")
        if builtin_function is not None:
            full_text_search, sparse_field = True, _bm25_output_field(builtin_function)
        if not isinstance(vector_field, str):
            raise ValueError("vector_field must be one field name (multi-vector unsupported)")
        if index_params is not None and not isinstance(index_params, Mapping):
            raise ValueError("index_params must be one dict")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if not isinstance(collection_name, str) or not collection_name:
            raise ValueError(f"collection_name must be a non-empty string, got {collection_name!r}")
        self.embedding_func = embedding_function
        self._embedding: Embeddings = embedding_function
        self.builtin_func = None
        self.collection_name = collection_name
        self.collection_description = collection_description
        self.collection_properties = collection_properties
        self.index_params = index_params
        self.search_params = search_params
        self.consistency_level = consistency_level
        self.auto_id = auto_id
        self.timeout = timeout
        self.partition_names = partition_names
        self.replica_number = replica_number
        self.num_shards = num_shards
        self.num_partitions = num_partitions
        self.metadata_schema = metadata_schema
        self.enable_dynamic_field = enable_dynamic_field
        self._primary_field = primary_field
        self._text_field = text_field
        self._vector_field = [vector_field]
        self._partition_key_field = partition_key_field
        self._connection_args = dict(connection_args or DEFAULT_CONNECTION)
        planned = plan_layout(
            primary_field=primary_field, text_field=text_field, vector_field=vector_field,
            metadata_field=metadata_field, enable_dynamic_field=enable_dynamic_field,
            auto_id=auto_id, index_params=index_params, partition_key_field=partition_key_field,
            sparse_field=sparse_field if full_text_search else None,
        )
        self._metadata_field = planned.metadata_field
        self._state = CollectionState(collection_name, planned, {
            "index_params": index_params,
            "partition_key_field": partition_key_field,
            "num_partitions": num_partitions,
            "consistency_level": consistency_level,
            "description": collection_description,
        })
        self._clients = ClientRegistry(self._connection_args)
        # The parent's `col` view (kept for compatibility) caches by these; no I/O here.
        self.alias = str(self._connection_args.get("uri", ""))
        self._col_cache = None
        self._cache_key = None
        options = DriverOptions(
            batch_size=batch_size, coalesce=coalesce,
            limits=coalesce_limits or CoalescerLimits(max_batch_items=batch_size),
            batch_query_embeddings=batch_query_embeddings,
            retry=retry or RetryPolicy(),
        )
        self._sync = SyncDriver(self._state, self._clients, embedding_function, options)
        self._async = AsyncDriver(self._state, self._clients, embedding_function, options)
        if full_text_search:
            uri = str(self._connection_args.get("uri", ""))
            check_full_text_support(str(self.client.get_server_version()), uri)
        if drop_old:
            self.drop()

    # -- properties and resources ---------------------------------------------------------

    @property
    def embeddings(self) -> Embeddings:
        """The embedding model."""
        return self._embedding

    @property
    def client(self) -> MilvusClient:
        """The sync pymilvus client (created on first use)."""
        return self._clients.sync()

    @property
    def aclient(self) -> Any:
        """The running event loop's async pymilvus client (call from a coroutine)."""
        self._clients.check_open()
        return self._async.sessions.get().client

    @property
    def vector_fields(self) -> list[str]:
        """The vector field, as a list (parent compatibility)."""
        return [self._state.layout.vector_field]

    @property
    def metric(self) -> str:
        """The collection's metric (read from the server once the collection exists)."""
        return self._state.layout.metric

    @property
    def is_closed(self) -> bool:
        """Whether the store was closed (`close()`, `aclose()` or the end of a `with` block)."""
        return self._clients.is_closed

    def close(self) -> None:
        """Close the store: release the clients; async sessions of running loops are dropped.

        A closed store stays closed: every later call (reads, writes, `client`, `with`)
        raises `StoreClosedError` (a `RuntimeError`) instead of opening new clients.
        Closing again does nothing.
        """
        self._sync.close()
        self._async.forget_sessions()
        self._clients.close()

    async def aclose(self) -> None:
        """Close the store from a coroutine: refuse new calls, let the calls already queued
        in this loop's batches finish, close this loop's client, then `close()`.

        Later calls raise `StoreClosedError`, as after `close()`.
        """
        self._clients.begin_close()
        await self._async.aclose()
        self.close()

    def __enter__(self) -> Self:
        self._clients.check_open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        self._clients.check_open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    def drop(self) -> None:
        """Drop the collection (it is created again by the next write)."""
        self._sync.run(ops.drop_plan(self._state))

    async def adrop(self) -> None:
        """Drop the collection (async)."""
        await self._async.run(ops.drop_plan(self._state))

    # -- writes ---------------------------------------------------------------------------

    def _add_plan(self, texts: Iterable[str], metadatas: Sequence[dict[str, Any]] | None,
                  ids: Sequence[Any] | None, timeout: float | None,
                  embeddings: Sequence[Sequence[float]] | None = None,
                  partition_name: str | None = None) -> Plan:
        return ops.add_plan(self._state, list(texts), metadatas, ids, vectors=embeddings,
                            timeout=self._timeout(timeout), partition_name=partition_name)

    def add_texts(
        self, texts: Iterable[str], metadatas: list[dict[str, Any]] | None = None,
        timeout: float | None = None, batch_size: int | None = None, *,
        ids: list[str] | None = None, partition_name: str | None = None, **kwargs: Any,
    ) -> list[str]:
        """Embed and write texts; an id that exists is replaced (Milvus upsert).

        Returns:
            The ids written (given ones, or generated uuid4 hex strings).

        Raises:
            ValueError: bad input, before anything is written.
            WriteError: some batches failed; it lists the ids not written.
        """
        return self._sync.run(self._add_plan(texts, metadatas, ids, timeout,
                                             partition_name=partition_name))

    async def aadd_texts(
        self, texts: Iterable[str], metadatas: list[dict[str, Any]] | None = None,
        timeout: float | None = None, batch_size: int | None = None, *,
        ids: list[str] | None = None, partition_name: str | None = None, **kwargs: Any,
    ) -> list[str]:
        """Async `add_texts`; concurrent calls share embedding requests and upserts."""
        return await self._async.run(self._add_plan(texts, metadatas, ids, timeout,
                                                    partition_name=partition_name))

    def add_embeddings(  # type: ignore[override]
        self, texts: list[str], embeddings: list[list[float]],
        metadatas: list[dict[str, Any]] | None = None, timeout: float | None = None,
        batch_size: int | None = None, *, ids: list[str] | None = None, **kwargs: Any,
    ) -> list[str]:
        """Write texts with precomputed vectors."""
        return self._sync.run(self._add_plan(texts, metadatas, ids, timeout, embeddings))

    async def aadd_embeddings(  # type: ignore[override]
        self, texts: list[str], embeddings: list[list[float]],
        metadatas: list[dict[str, Any]] | None = None, timeout: float | None = None,
        batch_size: int | None = None, *, ids: list[str] | None = None, **kwargs: Any,
    ) -> list[str]:
        """Async `add_embeddings`."""
        return await self._async.run(self._add_plan(texts, metadatas, ids, timeout, embeddings))

    def add_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """Write documents; `ids=` or each `Document.id` chooses the primary key."""
        texts, metadatas, ids = split_documents(documents, kwargs.pop("ids", None))
        return self.add_texts(texts, metadatas, ids=ids, **kwargs)

    async def aadd_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """Async `add_documents`."""
        texts, metadatas, ids = split_documents(documents, kwargs.pop("ids", None))
        return await self.aadd_texts(texts, metadatas, ids=ids, **kwargs)

    def upsert(  # type: ignore[override]
        self, ids: list[str] | None = None, documents: list[Document] | None = None,
        batch_size: int | None = None, timeout: float | None = None, **kwargs: Any,
    ) -> list[str]:
        """Insert or replace documents by id (`ids`, else `Document.id`, else new ids)."""
        if documents is None:
            raise ValueError("upsert needs documents")
        return self.add_documents(documents, ids=ids, timeout=timeout)

    async def aupsert(  # type: ignore[override]
        self, ids: list[str] | None = None, documents: list[Document] | None = None,
        batch_size: int | None = None, timeout: float | None = None, **kwargs: Any,
    ) -> list[str]:
        """Async `upsert`."""
        if documents is None:
            raise ValueError("upsert needs documents")
        return await self.aadd_documents(documents, ids=ids, timeout=timeout)

    def delete(  # type: ignore[override]
        self, ids: list[str] | None = None, expr: str | None = None, *,
        filter: FilterArg = None, timeout: float | None = None, **kwargs: Any,
    ) -> bool:
        """Delete by ids, by filter/expr, or rows matching both; server errors are raised."""
        return self._sync.run(ops.delete_plan(
            self._state, ids, filter=filter, expr=expr, timeout=self._timeout(timeout),
            partition_name=kwargs.get("partition_name")))

    async def adelete(
        self, ids: list[str] | None = None, expr: str | None = None, *,
        filter: FilterArg = None, timeout: float | None = None, **kwargs: Any,
    ) -> bool:
        """Async `delete`; concurrent deletes by id share one RPC."""
        return await self._async.run(ops.delete_plan(
            self._state, ids, filter=filter, expr=expr, timeout=self._timeout(timeout),
            partition_name=kwargs.get("partition_name")))

    # -- reads ----------------------------------------------------------------------------

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Documents with these ids, in the order given; missing ids are skipped."""
        return self._sync.run(ops.get_by_ids_plan(self._state, ids))

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Async `get_by_ids`."""
        return await self._async.run(ops.get_by_ids_plan(self._state, ids))

    def search_by_metadata(
        self, expr: FilterArg, fields: list[str] | None = None, limit: int = 10, *,
        offset: int = 0, timeout: float | None = None,
    ) -> list[Document]:
        """Documents matching a filter dict or expression, without a vector search."""
        return self._sync.run(ops.query_plan(self._state, expr, fields=fields, limit=limit,
                                             offset=offset, timeout=self._timeout(timeout)))

    async def asearch_by_metadata(
        self, expr: FilterArg, fields: list[str] | None = None, limit: int = 10, *,
        offset: int = 0, timeout: float | None = None,
    ) -> list[Document]:
        """Async `search_by_metadata`."""
        return await self._async.run(ops.query_plan(
            self._state, expr, fields=fields, limit=limit, offset=offset,
            timeout=self._timeout(timeout)))

    def get_pks(  # type: ignore[override]
        self, expr: FilterArg, *, limit: int | None = None, timeout: float | None = None,
        **kwargs: Any,
    ) -> list[str | int]:
        """Primary keys matching a filter dict or expression, in the collection's key type."""
        return self._sync.run(ops.query_plan(self._state, expr, limit=limit, pks_only=True,
                                             timeout=self._timeout(timeout)))

    async def aget_pks(  # type: ignore[override]
        self, expr: FilterArg, *, limit: int | None = None, timeout: float | None = None,
        **kwargs: Any,
    ) -> list[str | int]:
        """Async `get_pks`."""
        return await self._async.run(ops.query_plan(
            self._state, expr, limit=limit, pks_only=True, timeout=self._timeout(timeout)))

    def as_retriever(self, **kwargs: Any) -> MilvusRetriever:  # type: ignore[override]
        """A `MilvusRetriever` over this store (accepts LangChain's `search_kwargs` style).

        Example:
            ```python
            store.as_retriever(search_type="mmr", search_kwargs={"k": 4, "fetch_k": 20})
            ```
        """
        from langchain_milvus_ext.retriever import MilvusRetriever

        search_kwargs = dict(kwargs.pop("search_kwargs", None) or {})
        own = {name: search_kwargs.pop(name) for name in _RETRIEVER_FIELDS if name in search_kwargs}
        return MilvusRetriever(vectorstore=self, search_kwargs=search_kwargs, **own, **kwargs)

    # -- constructors ---------------------------------------------------------------------

    @classmethod
    def from_texts(  # type: ignore[override]
        cls, texts: list[str], embedding: Embeddings, metadatas: list[dict[str, Any]] | None = None,
        collection_name: str = "LangChainCollection", connection_args: dict[str, Any] | None = None,
        consistency_level: str = "Session", index_params: dict[str, Any] | None = None,
        search_params: dict[str, Any] | None = None, drop_old: bool = False, *,
        ids: list[str] | None = None, auto_id: bool = False, **kwargs: Any,
    ) -> Self:
        """Create a store and add `texts` to it."""
        store = cls(embedding, collection_name=collection_name, connection_args=connection_args,
                    consistency_level=consistency_level, index_params=index_params,
                    search_params=search_params, auto_id=auto_id, **kwargs)
        if drop_old:
            store.drop()
        if texts:
            store.add_texts(texts, metadatas, ids=ids)
        return store

    @classmethod
    async def afrom_texts(  # type: ignore[override]
        cls, texts: list[str], embedding: Embeddings, metadatas: list[dict[str, Any]] | None = None,
        collection_name: str = "LangChainCollection", connection_args: dict[str, Any] | None = None,
        consistency_level: str = "Session", index_params: dict[str, Any] | None = None,
        search_params: dict[str, Any] | None = None, drop_old: bool = False, *,
        ids: list[str] | None = None, auto_id: bool = False, **kwargs: Any,
    ) -> Self:
        """Async `from_texts`."""
        store = cls(embedding, collection_name=collection_name, connection_args=connection_args,
                    consistency_level=consistency_level, index_params=index_params,
                    search_params=search_params, auto_id=auto_id, **kwargs)
        if drop_old:
            await store.adrop()
        if texts:
            await store.aadd_texts(texts, metadatas, ids=ids)
        return store


Milvus = MilvusVectorStore
"""Alias, so switching from langchain-milvus is one changed import."""
