"""`_direct_search.usable`: which searches go out directly, without a server."""

from __future__ import annotations

from typing import Any

import pytest
from pymilvus import AsyncMilvusClient, MilvusClient

from langchain_milvus_ext import _direct_search

PLAIN = {"collection_name": "c", "limit": 3, "output_fields": ["text"], "timeout": None,
         "search_params": {"metric_type": "COSINE", "params": {}}, "anns_field": "vector",
         "retry_times": 0, "retry_on_rate_limit": False}
SYNC = object.__new__(MilvusClient)  # an instance, never connected
ASYNC = object.__new__(AsyncMilvusClient)


@pytest.mark.parametrize("client", [SYNC, ASYNC])
@pytest.mark.parametrize("data", [[[0.1, 0.2]], ["a text (BM25)"], []])
def test_plain_searches_of_pymilvus_clients_go_out_directly(client: Any, data: Any) -> None:
    assert _direct_search.AVAILABLE
    assert _direct_search.usable(client, "search", {**PLAIN, "data": data})
    assert _direct_search.usable(client, "search", {**PLAIN, "data": data, "filter": "a > 1",
                                                    "partition_names": ["p"]})


@pytest.mark.parametrize(("method", "kwargs"), [
    ("query", {**PLAIN, "data": [[0.1]]}),
    ("search", {**PLAIN}),  # no data
    ("search", {**PLAIN, "data": [[0.1]], "consistency_level": "Strong"}),  # pass-through
    ("search", {**PLAIN, "data": [[0.1]], "group_by_field": "source"}),
    ("search", {**PLAIN, "data": [b"\x01\x02"]}),  # binary: pymilvus fetches the schema first
    ("search", {**PLAIN, "data": [{3: 0.5}]}),  # sparse
])
def test_anything_else_goes_through_pymilvus(method: str, kwargs: dict[str, Any]) -> None:
    assert not _direct_search.usable(SYNC, method, kwargs)


def test_other_clients_are_called_as_they_are() -> None:
    assert not _direct_search.usable(object(), "search", {**PLAIN, "data": [[0.1]]})
