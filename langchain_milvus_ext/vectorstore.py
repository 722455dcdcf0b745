"""`MilvusVectorStore`: a drop-in replacement for langchain-milvus's `Milvus` vector store.

Each method is a thin shell: it checks its arguments (`_arguments`), builds a plan
(`_operations`) and runs it with `_run` (the sync driver) or `_arun` (the async driver) of
`StoreShell` (`_shell`). The store inherits its reads (`ReadMethods`, `_read_methods`) and its
writes (`WriteMethods`, `_write_methods`); here are its constructor, resources and tenant views
(`TenantView`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any, NoReturn

from langchain_core.embeddings import Embeddings
from pymilvus import MilvusClient
from typing_extensions import Self

from langchain_milvus_ext import _operations as ops
from langchain_milvus_ext._arguments import (
    batching_from_args,
    check_store_args,
    store_vectors,
)
from langchain_milvus_ext._batching import Batching
from langchain_milvus_ext._clients import ClientRegistry
from langchain_milvus_ext._coalescer import CoalescerLimits
from langchain_milvus_ext._collection import CollectionState
from langchain_milvus_ext._drivers import AsyncDriver, DriverOptions, SyncDriver
from langchain_milvus_ext._hybrid import check_full_text_support
from langchain_milvus_ext._read_methods import ReadMethods
from langchain_milvus_ext._retry import RetryPolicy
from langchain_milvus_ext._schema import CreateOptions, field_names, layout_for
from langchain_milvus_ext._sealing import sealing_for
from langchain_milvus_ext._steps import Call, Plan
from langchain_milvus_ext._write_methods import WriteMethods
from langchain_milvus_ext.tenants import TenantScope, confine_drivers, refuse

DEFAULT_CONNECTION = {"uri": "./milvus_langchain.db"}
"""Embedded Milvus Lite in a local file: no server needed."""


# Both groups subclass langchain-milvus's `Milvus` (through `StoreShell`), so their methods
# override the parent's and mypy checks each override against it.
class MilvusVectorStore(ReadMethods, WriteMethods):
    """A LangChain vector store on Milvus: Lite, standalone, cluster or Zilliz Cloud.

    Same constructor and methods as `langchain_milvus.Milvus`, sync and async, plus
    `get_by_ids`, dict filters, batch search and coalescing of concurrent async calls.

    Metadata layouts are langchain-milvus's, chosen by the same arguments. By default metadata
    keys live in Milvus's dynamic field: raw expressions name them directly (`year > 2020`),
    documents with different keys and types share a collection and come back exactly as stored.
    `metadata_field="metadata"` keeps the whole dict in one JSON field; `enable_dynamic_field=
    False` makes one scalar column per key of the first document (later unknown keys are a
    ValueError, where langchain-milvus drops them); `metadata_schema` adds typed columns.

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
        collection_properties: Properties set on a newly created collection, e.g.
            `{"collection.ttl.seconds": 86400}`.
        connection_args: pymilvus client arguments: `uri` (a local `.db` file for Milvus Lite,
            `http://host:19530` for a server, a Zilliz Cloud endpoint), `token`, `user`,
            `password`, `db_name`. Defaults to the Milvus Lite file `./milvus_langchain.db`.
        consistency_level: Consistency of a newly created collection.
        index_params: Vector index, e.g. `{"index_type": "HNSW", "metric_type": "COSINE",
            "params": {"M": 16}}`; default AUTOINDEX with L2, as langchain-milvus (raw scores
            are then distances, lower = closer).
        search_params: Default search params (`{"params": {"ef": 64}}`).
        drop_old: Drop an existing collection of that name first.
        auto_id: Let the server assign INT64 primary keys (ids cannot then be chosen).
        primary_field: Primary-key field name.
        text_field: Text field name.
        vector_field: Vector field name.
        enable_dynamic_field: True or not given: metadata keys in Milvus's dynamic field.
            False: one scalar column per metadata key of the first document written.
        metadata_field: Keep the whole metadata dict in one JSON field of this name.
        partition_key_field: A metadata key also stored as a partition-key column, for
            multi-tenancy (one tenant per key value).
        num_partitions: Partitions of a partition-key collection.
        partition_names: Partitions searched by default.
        replica_number: Accepted for compatibility.
        timeout: Default timeout of each call in seconds; a per-call `timeout=` wins.
        num_shards: Accepted for compatibility.
        vector_schema: Not supported (custom vector types such as FLOAT16_VECTOR): a
            ValueError.
        metadata_schema: Typed columns for chosen metadata keys, e.g. `{"year": {"dtype":
            DataType.INT64}, "tags": {"dtype": DataType.ARRAY, "element_type":
            DataType.VARCHAR, "max_capacity": 16, "max_length": 64}}` (indexable).
        builtin_function: A pymilvus BM25 `Function` or langchain-milvus's
            `BM25BuiltInFunction`, with `vector_field` naming its sparse output field (as
            langchain-milvus's hybrid set-up).
        batching: How work is batched and coalesced (`Batching`: batch size, coalescing,
            query-embedding batching, coalescer limits).
        batch_size: Shorthand for `Batching(batch_size=...)` (only without `batching`).
        coalesce: Shorthand for `Batching(coalesce=...)` (only without `batching`).
        coalesce_limits: Shorthand for `Batching(limits=...)` (only without `batching`).
        batch_query_embeddings: Shorthand for `Batching(batch_query_embeddings=...)` (only
            without `batching`).
        retry: Retries of transient failures (default: 3 tries, jittered backoff).
        full_text_search: Add a sparse field filled by Milvus's built-in BM25 function on
            the text field, for `hybrid_search` (Milvus >= 2.5 or Milvus Lite >= 3.0).
        sparse_field: Name of that sparse field.
    """

    def __init__(
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
        enable_dynamic_field: bool | None = None,
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
        batching: Batching | None = None,
        full_text_search: bool = False,
        sparse_field: str = "sparse",
    ) -> None:
        # The parent's __init__ is not called: it opens both clients, binds the async one to
        # whatever loop exists and loads the collection. Everything here is lazy.
        models, vectors, vector_field, index_params = store_vectors(
            embedding_function, builtin_function, vector_field, index_params, text_field,
            vector_schema=vector_schema, full_text_search=full_text_search)
        batching = batching_from_args(batching, batch_size=batch_size, coalesce=coalesce,
                                      coalesce_limits=coalesce_limits,
                                      batch_query_embeddings=batch_query_embeddings)
        check_store_args(collection_name=collection_name)
        self.embedding_func = embedding_function
        self._embedding = models[0] if len(models) == 1 else models
        self.builtin_func = builtin_function
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
        self._primary_field = primary_field
        self._text_field = text_field
        self._vector_field = [vf.name for vf in vectors] if vectors else vector_field
        self._vector_fields_from_embedding = [vf.name for vf in vectors if vf.model is not None]
        self._vector_fields_from_function = [vf.name for vf in vectors if vf.model is None]
        self._partition_key_field = partition_key_field
        self._connection_args = dict(connection_args or DEFAULT_CONNECTION)
        planned = layout_for(
            primary_field=primary_field, text_field=text_field, vector_field=vector_field,
            metadata_field=metadata_field, enable_dynamic_field=enable_dynamic_field,
            auto_id=auto_id, index_params=index_params, partition_key_field=partition_key_field,
            sparse_field=sparse_field if full_text_search else None,
            metadata_schema=metadata_schema, vectors=vectors,
        )
        if vectors and search_params is None:  # per field, as langchain-milvus fills them in
            self.search_params = [vf.search_params() for vf in vectors]
        self._metadata_field = planned.metadata_field
        self.enable_dynamic_field = planned.dynamic
        uri = str(self._connection_args.get("uri", ""))
        sealing = (sealing_for(self._connection_args, collection_name) if batching.lite_flush
                   else None)
        self._state = CollectionState(collection_name, planned, CreateOptions(
            index_params=index_params,
            partition_key_field=partition_key_field,
            num_partitions=num_partitions,
            consistency_level=consistency_level,
            description=collection_description,
            properties=collection_properties,
        ), sealing)
        self._clients = ClientRegistry(self._connection_args)
        # The parent's `col` view (kept for compatibility) caches by these; no I/O here.
        self.alias = uri
        self._col_cache = None
        self._cache_key = None
        options = DriverOptions(batching=batching, retry=retry or RetryPolicy())
        self._sync = SyncDriver(self._state, self._clients, self._embedding, options)
        self._async = AsyncDriver(self._state, self._clients, self._embedding, options)
        if full_text_search or vectors:
            # Through the driver: a server still starting up is retried like any call.
            version = str(self._sync.call(Call("get_server_version", {})))
            if full_text_search or any(vf.kind == "bm25" for vf in vectors):
                check_full_text_support(version, uri)
            else:
                check_full_text_support(version, uri, server_min=(2, 4), feature=(
                    "several vector fields (sparse vectors, hybrid search)"))
        if drop_old:
            self.drop()

    # -- properties and resources ---------------------------------------------------------

    @property
    def embeddings(self) -> Embeddings | None:
        """The embedding model (the first dense one of a multi-vector store)."""
        if isinstance(self._embedding, Embeddings):
            return self._embedding
        return next((m for m in self._embedding if isinstance(m, Embeddings)), None)

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
    def fields(self) -> list[str]:
        """The collection's field names (read back, else as planned), as langchain-milvus."""
        return field_names(self._state.layout)

    @fields.setter
    def fields(self, value: list[str]) -> None:
        raise AttributeError("fields is read from the collection's schema and cannot be set")

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

    def stats(self) -> dict[str, Any]:
        """Counters of this store since it was created (sync and async, every event loop).

        Returns:
            `embedding_requests` (requests sent to the embedding models), `retries`,
            `calls` (client calls by method), and `batches`: per coalesced operation
            (`write`, `search`, `delete`), the batches sent, the items in them, and the
            failed batches split to isolate a caller's bad input.

        Example:
            ```python
            await asyncio.gather(*(store.aadd_texts([t]) for t in texts))
            store.stats()["batches"]["write"]  # {'batches': 1, 'items': 100, 'splits': 0}
            ```
        """
        sync, async_ = self._sync.stats, self._async.stats
        return {
            "embedding_requests": sync.embedding_requests + async_.embedding_requests,
            "retries": sync.retries + async_.retries,
            "calls": dict(sync.calls + async_.calls),
            "batches": {name: {"batches": b.batches, "items": b.items, "splits": b.splits}
                        for name, b in self._async.batches.items()},
        }

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
        self._run(ops.drop_plan(self._state))

    async def adrop(self) -> None:
        """Drop the collection (async)."""
        await self._arun(ops.drop_plan(self._state))

    # -- tenant views ---------------------------------------------------------------------

    def for_tenant(self, tenant: str | int, *, field: str | None = None) -> TenantView:
        """A view of this store confined to one tenant (see `TenantView`).

        Example:
            ```python
            store = MilvusVectorStore(embeddings, partition_key_field="tenant")
            acme = store.for_tenant("acme")   # searches, gets, deletes: acme's rows only
            ```
        """
        return TenantView(self, tenant, field=field)

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


class TenantView(MilvusVectorStore):
    """A store confined to one tenant: made by `MilvusVectorStore.for_tenant`.

    Every method of the store works on the view, sync and async (searches, MMR, hybrid
    search, `get_by_ids`, `search_by_metadata`, `get_pks`, deletes, writes, `as_retriever`),
    and sees, changes and deletes this tenant's rows only, whatever filter, expression or ids
    it is given: another tenant's id is not found and not deleted. Writes stamp the tenant
    into metadata that lacks it; metadata naming another tenant, or an id already used by
    another tenant's row, is a `ValueError` before anything is written. Dropping the
    collection and the raw `client` / `aclient` are refused. The view shares the store's
    connection, coalescers and collection: closing a view does nothing, close the store.

    The tenant column must be a non-nullable scalar column: the partition key
    (`partition_key_field`, recommended: Milvus then searches that tenant's partition only)
    or a VARCHAR / integer `metadata_schema` column.

    Access control within one application, not a substitute for Milvus RBAC.

    Example:
        ```python
        store = MilvusVectorStore(embeddings, connection_args={"uri": "./rag.db"},
                                  partition_key_field="tenant")
        acme = store.for_tenant("acme")
        acme.add_texts(["acme's handbook"])           # stored with tenant "acme"
        acme.similarity_search("handbook", filter='tenant == "bob"')  # [] : never bob's
        acme.as_retriever(search_kwargs={"k": 4})     # a retriever of acme's rows
        ```

    Attributes:
        store: The store this view confines.
        tenant: The tenant value.
        tenant_field: The tenant column.
    """

    def __init__(self, store: MilvusVectorStore, tenant: str | int, *,
                 field: str | None = None) -> None:
        if isinstance(store, TenantView):
            raise ValueError("this is already a tenant view; call for_tenant on the store")
        field = field if field is not None else store._partition_key_field
        if not field:
            raise ValueError(
                "for_tenant needs a tenant column: create the store with "
                "partition_key_field='tenant' (or pass field= naming a VARCHAR or integer "
                "metadata_schema column)")
        scope = TenantScope(field, tenant)
        scope.condition(store._state.layout)  # a clear error now, not at the first call
        # The store's state, clients and settings, shared (no new connection); only the
        # drivers differ: they confine each plan before running it.
        self.__dict__.update(store.__dict__)
        self.store = store
        self.tenant = tenant
        self.tenant_field = field
        self._scope = scope
        self._sync, self._async = confine_drivers(store._sync, store._async, scope)

    def _add_plan(self, texts: Iterable[str], metadatas: Sequence[dict[str, Any]] | None,
                  ids: Sequence[Any] | None, timeout: float | None,
                  embeddings: Sequence[Sequence[float]] | None = None,
                  partition_name: str | None = None, replace: bool = False) -> Plan:
        texts = list(texts)
        stamped = self._scope.stamp(metadatas, len(texts))
        return super()._add_plan(texts, stamped, ids, timeout, embeddings,
                                 partition_name=partition_name, replace=replace)

    def for_tenant(self, tenant: str | int, *, field: str | None = None) -> TenantView:
        """This view for its own tenant; another tenant is a ValueError (ask the store)."""
        if self._scope.owns(tenant) and field in (None, self.tenant_field):
            return self
        raise ValueError("a tenant view cannot switch tenants; call for_tenant on the store")

    @property
    def client(self) -> NoReturn:
        """Refused: the raw client is not confined to the tenant."""
        refuse("client")

    @property
    def aclient(self) -> NoReturn:
        """Refused: the raw client is not confined to the tenant."""
        refuse("aclient")

    @property
    def col(self) -> NoReturn:
        """Refused: the raw collection is not confined to the tenant."""
        refuse("col")

    @col.setter
    def col(self, value: Any) -> None:
        refuse("col")

    def drop(self) -> NoReturn:
        """Refused: dropping would delete every tenant's rows."""
        refuse(Call("drop_collection"))

    async def adrop(self) -> NoReturn:
        """Refused: dropping would delete every tenant's rows."""
        refuse(Call("drop_collection"))

    def close(self) -> None:
        """Do nothing: the view shares the store's connection; close the store."""

    async def aclose(self) -> None:
        """Do nothing: the view shares the store's connection; close the store."""

    @classmethod
    def from_texts(cls, *args: Any, **kwargs: Any) -> NoReturn:
        """Refused: make a store, then a view with `store.for_tenant(...)`."""
        raise TypeError("use MilvusVectorStore.from_texts(...).for_tenant(tenant)")

    @classmethod
    async def afrom_texts(cls, *args: Any, **kwargs: Any) -> NoReturn:
        """Refused: make a store, then a view with `store.for_tenant(...)`."""
        raise TypeError("use MilvusVectorStore.afrom_texts(...).for_tenant(tenant)")
