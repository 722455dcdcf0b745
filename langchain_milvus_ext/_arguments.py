"""Keyword arguments of the store's methods: which are accepted, and what they become (pure).

langchain-milvus passes unknown keyword arguments on or drops them; here a misspelt or
unsupported one is a TypeError, never silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from langchain_milvus_ext._batching import Batching
from langchain_milvus_ext._coalescer import CoalescerLimits
from langchain_milvus_ext._vectors import VectorField, as_list, vector_setup

WRITE_ARGS = frozenset({"partition_name"})
"""Keyword arguments of `add_embeddings`, `upsert` and `delete` (besides their own)."""
QUERY_ARGS = frozenset({"consistency_level", "partition_names"})
"""Keyword arguments of `get_pks`, passed on to the query as by langchain-milvus."""
SEARCH_PASSTHROUGH = frozenset({
    "group_by_field", "group_size", "strict_group_size", "consistency_level", "round_decimal",
    "offset", "ignore_growing", "guarantee_timestamp", "graceful_time", "travel_timestamp",
})
"""`MilvusClient.search` arguments forwarded unchanged (langchain-milvus passes **kwargs on)."""
_RANKING = frozenset({"reranker", "ranker_type", "ranker_params"})
_SEARCH_OWN = frozenset({"partition_names", "fetch_k", "score_threshold", "output_fields",
                         *_RANKING})
_RETRIEVER_FIELDS = ("k", "filter", "fetch_k", "lambda_mult", "score_threshold")


def check_kwargs(method: str, kwargs: Mapping[str, Any], accepted: frozenset[str]) -> None:
    """A misspelt or unsupported keyword argument is a TypeError, never silently ignored."""
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise TypeError(f"{method}() got unexpected keyword arguments {unknown} "
                        f"(accepted: {sorted(accepted)})")


def store_vectors(
    embedding_function: Any, builtin_function: Any, vector_field: Any, index_params: Any,
    text_field: str, *, vector_schema: Any, full_text_search: bool,
) -> tuple[list[Any], tuple[VectorField, ...], Any, Any]:
    """The constructor's vector arguments, checked: the embedding models, the vector fields
    of a multi-vector store (else `()`), and the vector field name and index params of a
    single-field store (else as given).

    Raises:
        ValueError: Unsupported or inconsistent vector arguments.
    """
    if vector_schema is not None:
        raise ValueError("vector_schema (custom vector types such as FLOAT16_VECTOR) is not "
                         "supported: dense fields are FLOAT_VECTOR")
    models, vectors = vector_setup(embedding_function, builtin_function, vector_field,
                                   index_params, text_field)
    if not vectors:
        vector_field = as_list(vector_field)[0]
        index_params = (as_list(index_params) or [None])[0]
        if index_params is not None and not isinstance(index_params, Mapping):
            raise ValueError(f"index_params must be a dict, got {index_params!r}")
    if vectors and full_text_search:
        raise ValueError("full_text_search=True takes one dense embedding model; for other "
                         "set-ups use builtin_function=BM25BuiltInFunction()")
    return models, vectors, vector_field, index_params


def batching_from_args(
    batching: Batching | None, *, batch_size: int, coalesce: bool,
    coalesce_limits: CoalescerLimits | None, batch_query_embeddings: bool,
) -> Batching:
    """The store's `Batching`: `batching`, or one made of the shorthand arguments.

    Raises:
        ValueError: If `batching` comes with a shorthand argument that is not its default
            (two answers to one question), or a batch size is not a positive integer.
    """
    shorthand = Batching(batch_size=batch_size, coalesce=coalesce, limits=coalesce_limits,
                         batch_query_embeddings=batch_query_embeddings)
    if batching is None:
        return shorthand
    if not isinstance(batching, Batching):
        raise ValueError(f"batching must be a Batching, got {type(batching).__name__}")
    given = sorted(name for name, value in (
        ("batch_size", batch_size != 1000), ("coalesce", coalesce is not True),
        ("coalesce_limits", coalesce_limits is not None),
        ("batch_query_embeddings", batch_query_embeddings is not True)) if value)
    if given:
        raise ValueError(f"pass {', '.join(given)} inside batching=Batching(...), not beside it")
    return batching


def check_store_args(*, collection_name: Any) -> None:
    """Refuse an empty collection name."""
    if not isinstance(collection_name, str) or not collection_name:
        raise ValueError(f"collection_name must be a non-empty string, got {collection_name!r}")


_NONE: Mapping[str, Any] = MappingProxyType({})


def search_options(
    kwargs: Mapping[str, Any], *, param: Any, expr: str | None, timeout: float | None,
    filter: Any, partition_names: Any,
) -> dict[str, Any]:
    """The options of a search plan (`_operations.search_plan`) for one call.

    Args:
        kwargs: The call's other keyword arguments: pymilvus search arguments that
            langchain-milvus passes through (`group_by_field`, `consistency_level`,
            `output_fields`, ...), `partition_names`, `fetch_k` and ranking arguments.
        param: Search params (the store's default already filled in).
        expr: The raw expression.
        timeout: Seconds for the call (the store's default already filled in).
        filter: The dict filter or expression string.
        partition_names: The store's default partitions, used unless `kwargs` name some.

    Raises:
        TypeError: Any other keyword argument.
    """
    extra: Mapping[str, Any] = _NONE
    ranking: Mapping[str, Any] = _NONE
    if kwargs:  # most calls pass none: nothing to sort out
        unknown = set(kwargs) - SEARCH_PASSTHROUGH - _SEARCH_OWN
        if unknown:
            raise TypeError(
                f"unexpected search arguments: {sorted(unknown)} (accepted: "
                f"{sorted(SEARCH_PASSTHROUGH | _SEARCH_OWN)})"
            )
        extra = {name: kwargs[name] for name in SEARCH_PASSTHROUGH if name in kwargs}
        ranking = {name: kwargs[name] for name in _RANKING if kwargs.get(name) is not None}
    return {
        "ranking": ranking, "fanout": kwargs.get("fetch_k"),
        "filter": filter, "expr": expr, "param": param, "timeout": timeout,
        "partition_names": kwargs.get("partition_names") or partition_names,
        "output_fields": kwargs.get("output_fields"),
        "extra": extra,
    }


def split_search_kwargs(
    search_kwargs: Mapping[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """LangChain's `as_retriever(search_kwargs={"k": 4, "fetch_k": 20})` style, split into
    `MilvusRetriever` fields (`k`, `filter`, `fetch_k`, `lambda_mult`, `score_threshold`)
    and the other search arguments."""
    rest = dict(search_kwargs or {})
    own = {name: rest.pop(name) for name in _RETRIEVER_FIELDS if name in rest}
    return own, rest
