"""Hybrid search: dense vectors plus server-side BM25 full-text, fused by RRF or weights.

Pure, no I/O: the request objects and the server-version check.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pymilvus import AnnSearchRequest, RRFRanker, WeightedRanker

from langchain_milvus_ext._schema import CollectionLayout

MIN_SERVER = (2, 5)
MIN_LITE = (3, 0)


@dataclass(frozen=True)
class HybridOptions:
    """How the dense and full-text results are fused.

    Attributes:
        ranker: "rrf" (reciprocal rank fusion) or "weighted".
        weights: (dense, full-text) weights for "weighted".
        rrf_k: The RRF constant.
        fetch_k: Candidates per sub-search (default: 2 * k, at least k).
    """

    ranker: Literal["rrf", "weighted"] = "rrf"
    weights: tuple[float, float] = (0.5, 0.5)
    rrf_k: int = 60
    fetch_k: int | None = None

    def __post_init__(self) -> None:
        if self.ranker not in ("rrf", "weighted"):
            raise ValueError(f"ranker must be 'rrf' or 'weighted', got {self.ranker!r}")
        if len(self.weights) != 2 or any(not 0 <= w <= 1 for w in self.weights):
            raise ValueError(f"weights must be two numbers in [0, 1], got {self.weights!r}")
        if self.rrf_k <= 0:
            raise ValueError(f"rrf_k must be positive, got {self.rrf_k}")

    def ranker_object(self) -> Any:
        """The pymilvus ranker."""
        if self.ranker == "weighted":
            return WeightedRanker(*self.weights)
        return RRFRanker(self.rrf_k)


def hybrid_requests(
    layout: CollectionLayout,
    query: str,
    vector: Sequence[float],
    k: int,
    expr: str | None,
    options: HybridOptions,
    dense_params: dict[str, Any],
) -> list[AnnSearchRequest]:
    """The dense and the BM25 sub-searches of one hybrid search."""
    if not layout.sparse_field:
        raise ValueError(
            "this collection has no BM25 full-text field: create the store with "
            "full_text_search=True to use hybrid search"
        )
    limit = max(k, options.fetch_k or 2 * k)
    return [
        AnnSearchRequest(data=[list(vector)], anns_field=layout.vector_field,
                         param=dense_params, limit=limit, expr=expr or None),
        AnnSearchRequest(data=[query], anns_field=layout.sparse_field,
                         param={"metric_type": "BM25", "params": {"drop_ratio_search": 0.0}},
                         limit=limit, expr=expr or None),
    ]


def check_full_text_support(
    version: str, uri: str, *, feature: str = "full-text (BM25) and hybrid search",
    server_min: tuple[int, int] = MIN_SERVER,
) -> None:
    """Raise a clear error when the server is too old for a feature (BM25 by default).

    Args:
        version: What `get_server_version()` returned ("v2.3.5", "v2.3.5-lite" from PyPI's
            embedded `milvus`, "milvus_lite-3.2.2" from Milvus Lite 3, ...).
        uri: The server's URI, for the message.
        feature: What needs the newer server, for the message.
        server_min: The Milvus server version it needs (Milvus Lite needs 3.0).
    """
    numbers = re.search(r"(\d+)\.(\d+)", version)
    if numbers is None:
        return  # unknown format (e.g. a cloud build): let the server decide
    found = (int(numbers.group(1)), int(numbers.group(2)))
    lite = version.lower().startswith("milvus_lite")  # "v2.3.5-lite" is a Milvus build
    needed = MIN_LITE if lite else server_min
    if found < needed:
        product = "Milvus Lite" if lite else "Milvus"
        raise ValueError(
            f"{feature} need {product} >= "
            f"{needed[0]}.{needed[1]}; the server at {uri} runs {version}"
        )
