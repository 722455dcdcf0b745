"""Several vector fields in one collection, as langchain-milvus lays them out. Pure, no I/O.

A store with one dense embedding model keeps the fast single-field path (coalesced writes and
nq-batched searches). Any other set-up (several embedding models, a sparse embedding model,
built-in BM25 functions, or a mix) is described here as a tuple of `VectorField`s: each field
is filled by an embedding model or by a server-side function, has its own index, and a search
asks every field and fuses the results with a ranker (one field: a plain search on it).

Field names follow langchain-milvus: the names given in `vector_field` that are not outputs of a
built-in function go to the embedding models in order; models without a name get `vector_2`,
`vector_3`, ...; built-in function outputs come last.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.embeddings import Embeddings
from pymilvus import AnnSearchRequest, FunctionType, RRFRanker, WeightedRanker

FieldKind = Literal["dense", "sparse", "bm25"]
DEFAULT_INDEX: dict[FieldKind, dict[str, Any]] = {
    "dense": {"index_type": "AUTOINDEX", "metric_type": "L2", "params": {}},
    "sparse": {"index_type": "SPARSE_INVERTED_INDEX", "metric_type": "IP",
               "params": {"drop_ratio_build": 0.2}},
    "bm25": {"index_type": "SPARSE_INVERTED_INDEX", "metric_type": "BM25", "params": {}},
}
_SEARCH_DEFAULTS: dict[str, dict[str, Any]] = {
    "HNSW": {"ef": 64}, "IVF_FLAT": {"nprobe": 10}, "IVF_SQ8": {"nprobe": 10},
    "IVF_PQ": {"nprobe": 10}, "SPARSE_INVERTED_INDEX": {"drop_ratio_search": 0.0},
}


@dataclass(frozen=True)
class VectorField:
    """One vector field and what fills it.

    Attributes:
        name: The field name.
        kind: "dense" (FLOAT_VECTOR from an embedding model), "sparse" (SPARSE_FLOAT_VECTOR from
            a sparse embedding model) or "bm25" (filled by the server from the text field).
        model: Index of the embedding model that fills it (None for "bm25").
        index: `add_index` arguments: index_type, metric_type, params.
        function: The pymilvus BM25 `Function` (for "bm25").
        text_kwargs: Analyzer arguments its function needs on the text field (for "bm25").
    """

    name: str
    kind: FieldKind
    model: int | None = None
    index: Mapping[str, Any] = field(default_factory=dict)
    function: Any = None
    text_kwargs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def metric(self) -> str:
        """The index metric (L2, IP, COSINE, BM25)."""
        return str(self.index.get("metric_type", "")).upper()

    def search_params(self) -> dict[str, Any]:
        """Default search params for this field's index (langchain-milvus's `search_params`)."""
        index_type = str(self.index.get("index_type", "AUTOINDEX")).upper()
        return {"metric_type": self.metric, "params": dict(_SEARCH_DEFAULTS.get(index_type, {}))}


def is_sparse_model(model: Any) -> bool:
    """Whether a model returns sparse vectors (a langchain-milvus BaseSparseEmbedding)."""
    try:
        from langchain_milvus.utils.sparse import BaseSparseEmbedding
    except ImportError:  # pragma: no cover - langchain-milvus is a dependency
        return False
    return isinstance(model, BaseSparseEmbedding)


def as_list(value: Any) -> list[Any]:
    """`value` as a list: None -> [], a list or tuple -> its items, anything else -> [value]."""
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _bm25(function: Any, text_field: str) -> tuple[str, Any, dict[str, Any]]:
    """(output field, pymilvus Function, text-field kwargs) of a langchain-milvus BM25 function."""
    inner = getattr(function, "function", None)
    if inner is None or getattr(inner, "type", None) != FunctionType.BM25:
        raise ValueError(
            "builtin_function: only BM25BuiltInFunction is supported, got "
            f"{type(function).__name__}"
        )
    inputs = as_list(getattr(function, "input_field_names", None))
    outputs = as_list(getattr(function, "output_field_names", None))
    if inputs != [text_field] or len(outputs) != 1:
        raise ValueError(
            f"builtin_function: a BM25 function must read the text field {text_field!r} and write "
            f"one sparse field; it reads {inputs} and writes {outputs}"
        )
    kwargs_of = getattr(function, "get_input_field_schema_kwargs", None)
    text_kwargs = dict(kwargs_of()) if callable(kwargs_of) else {"enable_analyzer": True}
    return str(outputs[0]), inner, text_kwargs


def vector_fields_for(
    models: Sequence[Any],
    functions: Sequence[Any],
    vector_field: str | Sequence[str],
    index_params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None,
    text_field: str,
) -> tuple[VectorField, ...]:
    """The vector fields of a multi-field store, named and indexed as langchain-milvus does.

    Raises:
        ValueError: names repeat, more names than models and functions, index_params of the
            wrong length, or a built-in function other than BM25 on the text field.
    """
    names = as_list(vector_field)
    if len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"vector_field names must be unique non-empty strings, got {names!r}")
    bm25 = [_bm25(function, text_field) for function in functions]
    outputs = [out for out, _, _ in bm25]
    if len(set(outputs)) != len(outputs):
        raise ValueError(f"builtin_function outputs repeat: {outputs}")
    for_models = [n for n in names if n not in outputs]
    if len(for_models) > len(models):
        raise ValueError(
            f"vector_field names {for_models} are more than the {len(models)} embedding models "
            "and are not outputs of a built-in function"
        )
    for_models += [f"vector_{i + 1}" for i in range(len(for_models), len(models))]
    if set(for_models) & set(outputs):
        raise ValueError("vector fields of embedding models and built-in functions overlap")
    all_names = for_models + outputs
    given = as_list(index_params) if not isinstance(index_params, Mapping) else [index_params]
    if given and len(given) not in (len(all_names), len(names)):
        raise ValueError(
            f"index_params: got {len(given)}, expected one per vector field {all_names}"
        )
    by_name = dict(zip(all_names if len(given) == len(all_names) else names, given, strict=False))
    fields: list[VectorField] = []
    for position, (name, model) in enumerate(zip(for_models, models, strict=True)):
        kind: FieldKind = "sparse" if is_sparse_model(model) else "dense"
        fields.append(VectorField(name, kind, model=position,
                                  index=_index(by_name.get(name), kind, name)))
    for name, function, text_kwargs in bm25:
        fields.append(VectorField(name, "bm25", index=_index(by_name.get(name), "bm25", name),
                                  function=function, text_kwargs=text_kwargs))
    if not fields:
        raise ValueError("the store needs an embedding model or a built-in function")
    return tuple(fields)


def _index(given: Mapping[str, Any] | None, kind: FieldKind, name: str) -> dict[str, Any]:
    index = dict(DEFAULT_INDEX[kind])
    if given is not None:
        if not isinstance(given, Mapping):
            raise ValueError(f"index_params for {name!r} must be a dict, got {given!r}")
        index.update({k: v for k, v in given.items() if k in ("index_type", "metric_type")})
        index["params"] = dict(given.get("params") or {})
    if kind == "bm25" and str(index["index_type"]).upper() == "AUTOINDEX":
        index["index_type"] = "SPARSE_INVERTED_INDEX"  # Milvus Lite refuses AUTOINDEX here
    return index


def ranker_for(
    count: int,
    reranker: Any = None,
    ranker_type: str | None = None,
    ranker_params: Mapping[str, Any] | None = None,
) -> Any:
    """The ranker fusing `count` sub-searches: a given pymilvus `Function` or ranker, else
    `ranker_type` "rrf" / "weighted" with `ranker_params`, else equal weights (langchain-milvus's
    default)."""
    if reranker is not None:
        kind = getattr(reranker, "type", None)
        if kind is not None and kind != FunctionType.RERANK:
            raise ValueError(f"reranker must be a RERANK Function or a ranker, got {kind}")
        return reranker
    params = dict(ranker_params or {})
    if ranker_type in (None, "weighted"):
        weights = params.get("weights", [1.0] * count)
        if len(weights) != count:
            raise ValueError(f"ranker_params weights: got {len(weights)}, expected {count}")
        return WeightedRanker(*weights)
    if ranker_type == "rrf":
        return RRFRanker(params["k"]) if params.get("k") else RRFRanker()
    raise ValueError(f"ranker_type must be 'rrf' or 'weighted', got {ranker_type!r}")


def sub_requests(
    fields: Sequence[VectorField],
    data: Sequence[Any],
    params: Sequence[Mapping[str, Any]],
    limit: int,
    expr: str | None,
) -> list[AnnSearchRequest]:
    """One ANN request per field: `data[i]` is the query vector (or text, for BM25) of field i."""
    return [
        AnnSearchRequest(data=[query], anns_field=vf.name, param=dict(param), limit=limit,
                         expr=expr or None)
        for vf, query, param in zip(fields, data, params, strict=True)
    ]


def vector_setup(
    embedding_function: Any, builtin_function: Any, vector_field: Any, index_params: Any,
    text_field: str,
) -> tuple[list[Any], tuple[VectorField, ...]]:
    """The embedding models and, for a multi-vector store, its vector fields (else `()`).

    One dense model and no built-in function keep the single-field fast path, whatever the
    arguments' list shapes (langchain-milvus treats `[x]` as `x`).
    """
    models = as_list(embedding_function)
    functions = as_list(builtin_function)
    names = as_list(vector_field)
    if not models and not functions:
        raise ValueError("embedding_function must be a LangChain Embeddings model (or a list of "
                         "models), unless builtin_function provides the vectors")
    for position, model in enumerate(models):
        if not (isinstance(model, Embeddings) or is_sparse_model(model)):
            raise ValueError(f"embedding_function[{position}] is {type(model).__name__}, not an "
                             "Embeddings or BaseSparseEmbedding model")
    single = (len(models) == 1 and not functions and not is_sparse_model(models[0])
              and len(names) == 1 and len(as_list(index_params)) <= 1)
    if single:
        return models, ()
    return models, vector_fields_for(models, functions, vector_field, index_params, text_field)
