"""Searching on the client's connection and reading the hits ourselves (`_hits`): the thin I/O
part, one function per shell.

The request is the one `MilvusClient.search` / `AsyncMilvusClient.search` build for the same
arguments (pymilvus's own `Prepare.search_requests_with_expr`, with the consistency guarantee
of `ts_utils.construct_guarantee_ts` and the client's cluster id and call context), sent on the
client's own connection (its handler and gRPC stub), its status checked as pymilvus checks it.
Only the answer is read differently: column by column into the dicts our plans take, or, if it
holds anything `_hits` does not read, by pymilvus's `SearchResult`. Those are pymilvus
internals, checked on 3.0.2: `AVAILABLE` is False under a pymilvus that lacks one of them, and
a search whose arguments are not the plain ones our plans send (`DIRECT_ARGS`) goes through
`search` as before.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_milvus_ext._hits import read_hits

try:
    from pymilvus import AsyncMilvusClient, MilvusClient
    from pymilvus.client import ts_utils
    from pymilvus.client.call_context import _api_level_md
    from pymilvus.client.prepare import Prepare
    from pymilvus.client.search_result import SearchResult
    from pymilvus.client.utils import check_status

    _PREPARE = inspect.signature(Prepare.search_requests_with_expr).parameters
    AVAILABLE = (
        {"collection_name", "anns_field", "param", "limit", "data", "expr", "partition_names",
         "output_fields", "round_decimal", "use_default_consistency"} <= set(_PREPARE)
        and len(inspect.signature(ts_utils.construct_guarantee_ts).parameters) == 4
        and all(hasattr(c, name) for c in (MilvusClient, AsyncMilvusClient)
                for name in ("_get_connection", "_generate_call_context", "_with_cluster_id"))
    )
except (ImportError, AttributeError):  # pragma: no cover - another pymilvus layout
    AVAILABLE = False

DIRECT_ARGS = frozenset({"collection_name", "data", "limit", "output_fields", "search_params",
                         "anns_field", "timeout", "filter", "partition_names",
                         "retry_times", "retry_on_rate_limit"})
"""The `search` arguments our plans send for a plain search (the last two turn pymilvus's own
retries off, and a direct search makes none); any other (a pass-through such as
`group_by_field` or `consistency_level`) sends the search through pymilvus's `search`."""


def usable(client: Any, method: str, kwargs: Mapping[str, Any]) -> bool:
    """Whether this call is a plain search of a pymilvus client that can go out directly:
    dense vectors or texts as data (pymilvus prepares binary, sparse and embedding-list
    queries before building the request, so those go through it)."""
    data = kwargs.get("data")
    return (AVAILABLE and method == "search" and kwargs.keys() <= DIRECT_ARGS
            and isinstance(data, list) and "limit" in kwargs
            and all(isinstance(query, (list, str)) for query in data[:1])
            and isinstance(client, (MilvusClient, AsyncMilvusClient)))


def send(client: Any, kwargs: Mapping[str, Any]) -> Sequence[Sequence[Mapping[str, Any]]]:
    """Search with the sync client; the hits of each query."""
    handler, extra = client._get_connection(), client._with_cluster_id({})
    context = client._generate_call_context(**extra)
    request = _request(handler, context, kwargs, extra)
    response = handler._stub.Search(request, timeout=kwargs.get("timeout"),
                                    metadata=_api_level_md(context))
    return _hits_of(response)


async def asend(client: Any, kwargs: Mapping[str, Any],
                ) -> Sequence[Sequence[Mapping[str, Any]]]:
    """Search with the async client; the hits of each query."""
    handler, extra = await client._get_connection(), client._with_cluster_id({})
    context = client._generate_call_context(**extra)
    request = _request(handler, context, kwargs, extra)
    response = await handler._async_stub.Search(request, timeout=kwargs.get("timeout"),
                                                metadata=_api_level_md(context))
    return _hits_of(response)


def _request(handler: Any, context: Any, kwargs: Mapping[str, Any],
             extra: dict[str, Any]) -> Any:
    """The `SearchRequest` pymilvus's client and handler build for these arguments."""
    name = kwargs["collection_name"]
    options: dict[str, Any] = {**extra, "expr_params": {}}
    consistent = ts_utils.construct_guarantee_ts(
        name, options, handler.server_address, context.get_db_name() if context else "")
    return Prepare.search_requests_with_expr(
        collection_name=name, anns_field=kwargs.get("anns_field") or "",
        param=kwargs.get("search_params") or {}, limit=kwargs["limit"], data=kwargs["data"],
        expr=kwargs.get("filter") or "", partition_names=kwargs.get("partition_names"),
        output_fields=kwargs.get("output_fields"), round_decimal=-1,
        use_default_consistency=consistent, **options)


def _hits_of(response: Any) -> Sequence[Sequence[Mapping[str, Any]]]:
    """The hits of each query: our dicts, or pymilvus's `Hit`s as `search` returns them (the
    search plan copies each hit into a dict of its own either way)."""
    check_status(response.status)
    hits = read_hits(response.results)
    if hits is not None:
        return hits
    parsed: Sequence[Sequence[Mapping[str, Any]]] = SearchResult(
        response.results, -1, status=response.status, session_ts=response.session_ts)
    return parsed
