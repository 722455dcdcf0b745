"""Turning pymilvus results into Documents, relevance scores and MMR picks. Pure, no I/O."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from langchain_core.documents import Document
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from langchain_milvus_ext._schema import CollectionLayout

Scored = tuple[Document, float]


def document_from_entity(pk: Any, entity: Mapping[str, Any], layout: CollectionLayout) -> Document:
    """One Document from a result entity: `id` is the primary key, which is not put in metadata."""
    text = entity.get(layout.text_field)
    page_content = text if isinstance(text, str) else ""
    metadata: dict[str, Any]
    skip = layout.non_metadata_keys
    if not layout.metadata_field:  # dynamic keys and columns: every other key is metadata
        metadata = {name: value for name, value in entity.items() if name not in skip}
    else:
        stored = entity.get(layout.metadata_field)
        metadata = dict(stored) if isinstance(stored, Mapping) else {}
        if entity.keys() <= {layout.text_field, layout.metadata_field}:  # the usual entity
            return Document(id=str(pk), page_content=page_content, metadata=_own(metadata))
        for name, value in entity.items():
            if name in skip:
                continue
            if name in layout.scalar_fields:
                metadata.setdefault(name, value)  # partition-key column mirrors the JSON value
            else:
                metadata[name] = value
    dynamic = entity.get("$meta")
    if isinstance(dynamic, Mapping):
        metadata.update(dynamic)
    return Document(id=str(pk), page_content=page_content, metadata=_own(metadata))


def _own(metadata: dict[str, Any]) -> dict[str, Any]:
    # Equal coalesced queries share their hits: nested values are copied so that no two
    # Documents share a mutable object.
    for value in metadata.values():
        if isinstance(value, (dict, list)):
            return copy.deepcopy(metadata)
    return metadata


_NO_ENTITY: Mapping[str, Any] = {}


def documents_from_hits(
    hits: Sequence[Mapping[str, Any]], layout: CollectionLayout
) -> list[Scored]:
    """(Document, raw distance) pairs from one query's search hits, in server order."""
    pk = layout.pk_field
    return [
        (document_from_entity(hit[pk] if pk in hit else hit["id"],
                              hit.get("entity", _NO_ENTITY), layout),
         float(hit["distance"]))
        for hit in hits
    ]


def vectors_from_hits(
    hits: Sequence[Mapping[str, Any]], layout: CollectionLayout
) -> list[list[float]]:
    """The vector of each hit (requested as an output field for MMR)."""
    return [list(hit.get("entity", {}).get(layout.vector_field, [])) for hit in hits]


def documents_from_rows(
    rows: Sequence[Mapping[str, Any]], layout: CollectionLayout
) -> list[Document]:
    """Documents from `query` / `get` rows."""
    return [document_from_entity(row[layout.pk_field], row, layout) for row in rows]


def order_by_ids(documents: Sequence[Document], ids: Sequence[str]) -> list[Document]:
    """Documents in the order of `ids`, dropping ids that were not found."""
    by_id = {doc.id: doc for doc in documents}
    return [by_id[i] for i in ids if i in by_id]


def relevance_fn(metric: str) -> Callable[[float], float]:
    """A monotone map from the metric's raw score to [0, 1], higher meaning closer.

    - COSINE: similarity s in [-1, 1] -> (s + 1) / 2.
    - IP: the same map, clipped to [0, 1]; exact for normalised embeddings (the usual case
      for IP), order-preserving (not strictly) otherwise.
    - L2: Milvus returns the squared distance d, in [0, 4] for normalised embeddings ->
      1 - d / 4, clipped to [0, 1] (langchain-milvus's map).
    For normalised embeddings the three agree: an orthogonal pair scores 0.5 under each.
    """
    metric = metric.upper()
    if metric in ("COSINE", "IP"):
        return lambda s: min(1.0, max(0.0, (s + 1.0) / 2.0))
    if metric == "L2":
        return lambda d: min(1.0, max(0.0, 1.0 - d / 4.0))
    raise ValueError(f"no relevance score function for metric {metric!r}")


def to_relevance(scored: Sequence[Scored], metric: str) -> list[Scored]:
    """Replace raw distances by relevance scores in [0, 1]."""
    fn = relevance_fn(metric)
    out = []
    for doc, score in scored:
        if not math.isfinite(score):
            raise ValueError(f"non-finite score {score} for document {doc.id!r}")
        out.append((doc, fn(score)))
    return out


def mmr_select(
    query_vector: Sequence[float],
    scored: Sequence[Scored],
    vectors: Sequence[Sequence[float]],
    k: int,
    lambda_mult: float,
) -> list[Scored]:
    """Pick `k` of the candidates by maximal marginal relevance (cosine similarity)."""
    if not 0.0 <= lambda_mult <= 1.0:
        raise ValueError(f"lambda_mult must be in [0, 1], got {lambda_mult}")
    if not scored:
        return []
    picks = maximal_marginal_relevance(
        np.asarray(query_vector, dtype=np.float32),
        [list(v) for v in vectors],
        lambda_mult=lambda_mult,
        k=k,
    )
    return [scored[i] for i in picks]


def check_k(k: int, name: str = "k") -> int:
    """Validate a result count."""
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise ValueError(f"{name} must be a positive integer, got {k!r}")
    return k
