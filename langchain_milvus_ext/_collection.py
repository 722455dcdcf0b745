"""The store's collection: its state, and the plans that read its layout or create it.

Plans reach the layout one way: `layout_plan`, which yields `Describe` until the collection
is known to exist; the drivers answer it with `describe_plan` (the async one shares a read
among concurrent callers). Writes that may have to create the collection go through
`ensure_plan`, the one place where a collection is created.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from langchain_milvus_ext._rows import Row
from langchain_milvus_ext._schema import (
    CollectionLayout,
    CreateOptions,
    create_collection_args,
    layout_from_description,
    vector_index_params,
    with_inferred_columns,
)
from langchain_milvus_ext._sealing import LiteSealing
from langchain_milvus_ext._steps import Call, Describe, Plan, PlanOf


class CollectionState:
    """The store's collection: its name, creation options and current layout.

    Shared by the sync and async shells and by every loop; the layout only ever moves from
    planned to read-from-the-server, and assigning it is atomic. `sealing`: when the drivers
    flush a Milvus Lite collection (`_sealing`); None on a server.
    """

    def __init__(
        self,
        name: str,
        planned: CollectionLayout,
        create_options: CreateOptions | None = None,
        sealing: LiteSealing | None = None,
    ) -> None:
        self.name = name
        self.planned = planned
        self.layout = planned
        self.create_options = create_options or CreateOptions()
        self.sealing = sealing
        self._lock = threading.Lock()
        self.create_lock = threading.Lock()

    def adopt(self, description: dict[str, Any], index: dict[str, Any] | None,
              server_version: str = "") -> None:
        """Take the layout of the existing collection (on a server of `server_version`)."""
        with self._lock:
            self.layout = layout_from_description(self.planned, description, index,
                                                  server_version)

    def forget(self) -> None:
        """Back to the planned layout (after the collection was dropped)."""
        with self._lock:
            self.layout = self.planned

    def describe_plan(self) -> Plan:
        """Read the collection's layout if it exists; returns the layout (exists or not)."""
        if self.layout.exists:
            return self.layout
        if not (yield Call("has_collection", {"collection_name": self.name})):
            return self.layout
        description = yield Call("describe_collection", {"collection_name": self.name})
        found = layout_from_description(self.planned, description, None)
        indexes = yield from self._indexes_plan()
        missing = vector_index_params(found, self.create_options.index_params,
                                      skip={index.get("field_name") for index in indexes})
        if len(missing):
            # Created without an index on a vector field, or being created right now by
            # another caller that has not made its index yet (loading would fail with "index
            # not found"). Make the index the store would have made, as langchain-milvus does.
            try:
                yield Call("create_index", {"collection_name": self.name,
                                            "index_params": missing})
            except Exception:
                indexes = yield from self._indexes_plan()
                if not any(index.get("field_name") == found.vector_field for index in indexes):
                    raise
            else:
                indexes = yield from self._indexes_plan()
        yield Call("load_collection", {"collection_name": self.name})
        vector_index = next(
            (index for index in indexes if index.get("field_name") == found.vector_field), None)
        version = yield Call("get_server_version", {})  # Milvus Lite upserts differently
        self.adopt(description, vector_index, str(version))
        return self.layout

    def _indexes_plan(self) -> Plan:
        """The description of every index of the collection."""
        names = yield Call("list_indexes", {"collection_name": self.name})
        indexes = []
        for index_name in names or []:
            index = yield Call(
                "describe_index", {"collection_name": self.name, "index_name": index_name}
            )
            if index:
                indexes.append(dict(index))
        return indexes

    def ensure_plan(self, dim: int | Mapping[str, int], first_row: Row | None = None) -> Plan:
        """Make sure the collection exists (creating it for vectors of `dim`); returns layout.

        With `enable_dynamic_field=False`, the first row written decides the metadata columns.
        """
        layout = yield from layout_plan(self)
        if layout.exists:
            return layout
        planned = with_inferred_columns(self.planned, first_row or {})
        args = create_collection_args(planned, dim, self.create_options)
        properties = self.create_options.properties
        try:
            yield Call("create_collection", {"collection_name": self.name, **args})
        except Exception:
            # Another store, thread or loop may have created it meanwhile.
            if not (yield Call("has_collection", {"collection_name": self.name})):
                raise
        else:
            if properties:  # e.g. {"collection.ttl.seconds": 3600}, as langchain-milvus applies
                yield Call("alter_collection_properties",
                           {"collection_name": self.name, "properties": dict(properties)})
        self.layout = self.planned  # re-read below even if a racing creator won
        # Read here, not through `Describe`: a read shared with callers that started before
        # the collection was created could still answer "missing".
        return (yield from self.describe_plan())


def layout_plan(state: CollectionState) -> PlanOf[CollectionLayout]:
    """The layout an operation works with: cached once the collection exists.

    While it does not exist, the drivers read it; the async one shares one read among all
    the calls of a loop that ask at once, so they reach the coalescers together.
    """
    if state.layout.exists:
        return state.layout
    layout: CollectionLayout = yield Describe()
    return layout
