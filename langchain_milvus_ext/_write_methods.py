"""`WriteMethods`: the methods of `MilvusVectorStore` that write or delete, which it inherits.

`add_texts`, `add_embeddings`, `add_documents`, `upsert` and `delete`, sync and async. Each is
a thin shell, as the store's other methods: it checks its arguments, builds a plan
(`_operations`) and runs it with `_run` (sync) or `_arun` (async) of `StoreShell`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from langchain_core.documents import Document

from langchain_milvus_ext import _operations as ops
from langchain_milvus_ext._arguments import WRITE_ARGS, check_kwargs
from langchain_milvus_ext._operations import FilterArg
from langchain_milvus_ext._rows import split_documents
from langchain_milvus_ext._shell import StoreShell
from langchain_milvus_ext._steps import Plan


class WriteMethods(StoreShell):
    """The writes and deletes of `MilvusVectorStore` (a base class of it, never used alone)."""

    def _add_plan(self, texts: Iterable[str], metadatas: Sequence[dict[str, Any]] | None,
                  ids: Sequence[Any] | None, timeout: float | None,
                  embeddings: Sequence[Sequence[float]] | None = None,
                  partition_name: str | None = None, replace: bool = False) -> Plan:
        return ops.add_plan(self._state, texts, metadatas, ids, vectors=embeddings,
                            timeout=self._timeout(timeout), partition_name=partition_name,
                            replace=replace)

    def _upsert_plan(self, ids: Sequence[Any] | None, documents: list[Document] | None,
                     timeout: float | None, kwargs: dict[str, Any]) -> Plan:
        if documents is None:
            raise ValueError("upsert needs documents")
        check_kwargs("upsert", kwargs, WRITE_ARGS)
        texts, metadatas, keys = split_documents(documents, ids)
        return self._add_plan(texts, metadatas, keys, timeout, replace=True,
                              partition_name=kwargs.get("partition_name"))

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
            TypeError: an unknown keyword argument.
        """
        check_kwargs("add_texts", kwargs, frozenset())
        return self._run(self._add_plan(texts, metadatas, ids, timeout,
                                        partition_name=partition_name))

    async def aadd_texts(
        self, texts: Iterable[str], metadatas: list[dict[str, Any]] | None = None,
        timeout: float | None = None, batch_size: int | None = None, *,
        ids: list[str] | None = None, partition_name: str | None = None, **kwargs: Any,
    ) -> list[str]:
        """Async `add_texts`; concurrent calls share embedding requests and upserts."""
        check_kwargs("aadd_texts", kwargs, frozenset())
        return await self._arun(self._add_plan(texts, metadatas, ids, timeout,
                                              partition_name=partition_name))

    def add_embeddings(  # type: ignore[override]
        self, texts: list[str], embeddings: list[list[float]],
        metadatas: list[dict[str, Any]] | None = None, timeout: float | None = None,
        batch_size: int | None = None, *, ids: list[str] | None = None, **kwargs: Any,
    ) -> list[str]:
        """Write texts with precomputed vectors."""
        check_kwargs("add_embeddings", kwargs, WRITE_ARGS)
        return self._run(self._add_plan(texts, metadatas, ids, timeout, embeddings,
                                        partition_name=kwargs.get("partition_name")))

    async def aadd_embeddings(  # type: ignore[override]
        self, texts: list[str], embeddings: list[list[float]],
        metadatas: list[dict[str, Any]] | None = None, timeout: float | None = None,
        batch_size: int | None = None, *, ids: list[str] | None = None, **kwargs: Any,
    ) -> list[str]:
        """Async `add_embeddings`."""
        check_kwargs("aadd_embeddings", kwargs, WRITE_ARGS)
        return await self._arun(self._add_plan(
            texts, metadatas, ids, timeout, embeddings,
            partition_name=kwargs.get("partition_name")))

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
        """Insert or replace documents by id (`ids`, else `Document.id`, else new ids).

        On an `auto_id=True` collection, `ids` (e.g. from `get_pks`) name the rows replaced.
        """
        return self._run(self._upsert_plan(ids, documents, timeout, kwargs))

    async def aupsert(  # type: ignore[override]
        self, ids: list[str] | None = None, documents: list[Document] | None = None,
        batch_size: int | None = None, timeout: float | None = None, **kwargs: Any,
    ) -> list[str]:
        """Async `upsert`."""
        return await self._arun(self._upsert_plan(ids, documents, timeout, kwargs))

    def delete(  # type: ignore[override]
        self, ids: list[str] | None = None, expr: str | None = None, *,
        filter: FilterArg = None, timeout: float | None = None, **kwargs: Any,
    ) -> bool:
        """Delete by ids, by filter/expr, or rows matching both; server errors are raised."""
        check_kwargs("delete", kwargs, WRITE_ARGS)
        return self._run(ops.delete_plan(
            self._state, ids, filter=filter, expr=expr, timeout=self._timeout(timeout),
            partition_name=kwargs.get("partition_name")))

    async def adelete(
        self, ids: list[str] | None = None, expr: str | None = None, *,
        filter: FilterArg = None, timeout: float | None = None, **kwargs: Any,
    ) -> bool:
        """Async `delete`; concurrent deletes by id share one RPC."""
        check_kwargs("adelete", kwargs, WRITE_ARGS)
        return await self._arun(ops.delete_plan(
            self._state, ids, filter=filter, expr=expr, timeout=self._timeout(timeout),
            partition_name=kwargs.get("partition_name")))
