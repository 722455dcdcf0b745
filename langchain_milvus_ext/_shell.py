"""`StoreShell`: what the method groups of `MilvusVectorStore` build on.

The store's methods are thin shells (see `vectorstore`): each builds a plan (`_operations`)
and runs it with `_run` (the sync driver) or `_arun` (the async driver), both here. The reads
(`_read_methods`) and the writes (`_write_methods`) subclass this class, and the store both.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING

from langchain_milvus import Milvus as _LangchainMilvus

from langchain_milvus_ext._steps import PlanOf, R

if TYPE_CHECKING:
    from langchain_milvus_ext._collection import CollectionState
    from langchain_milvus_ext._drivers import AsyncDriver, SyncDriver


class StoreShell(_LangchainMilvus):
    """The collection state and the two entry points that run plans (a base class of
    `MilvusVectorStore`, never used alone; `MilvusVectorStore.__init__` sets the attributes).

    A subclass of langchain-milvus's `Milvus`, so that the method groups built on it override
    the parent's methods, and mypy checks each override against the parent's signature.

    Attributes:
        _state: The collection's name, layout and creation options.
        _sync: The sync driver (a tenant view's confines each plan first).
        _async: The async driver, coalescing concurrent calls.
    """

    _state: CollectionState
    _sync: SyncDriver
    _async: AsyncDriver

    def _run(self, plan: PlanOf[R]) -> R:
        """Run a plan with the sync driver (a tenant view's confines it first)."""
        return self._sync.run(plan)

    def _arun(self, plan: PlanOf[R]) -> Awaitable[R]:
        """Run a plan in the running loop with the async driver (coalescing); await the result.

        Call it from a coroutine; bad input raises here (see `AsyncDriver.run`)."""
        return self._async.run(plan)

    def _timeout(self, timeout: float | None) -> float | None:
        return timeout if timeout is not None else self.timeout
