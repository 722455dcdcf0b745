"""`TenantView`: a `MilvusVectorStore` confined to one tenant, made by `for_tenant`.

The view is the store with confined drivers; the confinement of each plan is in `tenants`.
`langchain_milvus_ext.vectorstore` imports this module at its end and re-exports the class.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

from langchain_milvus_ext._steps import Call, Plan
from langchain_milvus_ext.tenants import TenantScope, confine_drivers, refuse
from langchain_milvus_ext.vectorstore import MilvusVectorStore


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
