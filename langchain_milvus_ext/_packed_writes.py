"""Sending column-packed writes (`_packing`): the thin I/O part, one function per shell.

A packed request goes out on the client's own connection (its handler and gRPC stub) and is
finished as pymilvus finishes `insert_rows` / `upsert_rows`: the status checked (a
`MilvusException` if it failed) and the collection's last write time recorded in pymilvus's
`ts_utils`, as its own writes record it. Those are pymilvus internals, checked on 3.0.2:
`AVAILABLE` is False, and every write goes through `insert` / `upsert`, under a pymilvus that
lacks one of them (2.6 does).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from pymilvus.settings import Config

from langchain_milvus_ext._packing import Request, WireFormat, pack_rows

try:
    from pymilvus import AsyncMilvusClient, MilvusClient
    from pymilvus.client import ts_utils
    from pymilvus.client.abstract import MutationResult
    from pymilvus.client.call_context import _api_level_md
    from pymilvus.client.utils import check_status
    from pymilvus.grpc_gen import milvus_pb2

    AVAILABLE = (
        len(inspect.signature(ts_utils.update_collection_ts).parameters) == 4
        and all(hasattr(c, "_generate_call_context") and hasattr(c, "_get_connection")
                for c in (MilvusClient, AsyncMilvusClient))
    )
except ImportError:  # pragma: no cover - another pymilvus layout
    AVAILABLE = False


def packed_request(wire: WireFormat | None, method: str,
                   kwargs: Mapping[str, Any]) -> Request | None:
    """The packed request of an `insert` / `upsert` call's rows, or None: the call goes to
    pymilvus as it is (another method or layout, rows that do not fit, another encoding)."""
    if (wire is None or not AVAILABLE or method not in ("insert", "upsert")
            or Config.EncodeProtocol.lower() != "utf-8"):
        return None
    return pack_rows(wire, method, kwargs["collection_name"],  # type: ignore[arg-type]
                     kwargs["data"], kwargs.get("partition_name"))


def send(client: Any, request: Request, timeout: float | None) -> dict[str, Any]:
    """Send with the sync client; the result is shaped as `MilvusClient.insert`'s."""
    handler, context = client._get_connection(), client._generate_call_context()
    rpc = handler._stub.Insert if _is_insert(request) else handler._stub.Upsert
    response = rpc(request, timeout=timeout, metadata=_api_level_md(context))
    return _finish(handler, context, request, response)


async def asend(client: Any, request: Request, timeout: float | None) -> dict[str, Any]:
    """Send with the async client; the result is shaped as `AsyncMilvusClient.insert`'s."""
    handler, context = await client._get_connection(), client._generate_call_context()
    stub = handler._async_stub
    rpc = stub.Insert if _is_insert(request) else stub.Upsert
    response = await rpc(request, timeout=timeout, metadata=_api_level_md(context))
    return _finish(handler, context, request, response)


def _is_insert(request: Request) -> bool:
    return isinstance(request, milvus_pb2.InsertRequest)


def _finish(handler: Any, context: Any, request: Request, response: Any) -> dict[str, Any]:
    check_status(response.status)
    result = MutationResult(response)
    ts_utils.update_collection_ts(request.collection_name, result.timestamp,
                                  handler.server_address, context.get_db_name())
    if _is_insert(request):
        return {"insert_count": result.insert_count, "ids": result.primary_keys}
    return {"upsert_count": result.upsert_count, "ids": result.primary_keys}
