"""State shared by every case of a run: target, embeddings, documents, a checker client."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from langchain_core.documents import Document
from pymilvus import MilvusClient

from .config import BenchmarkConfig
from .data import make_documents, query_text
from .embeddings import CountingEmbeddings

_UNSAFE = re.compile(r"[^0-9A-Za-z_]")
KEY_CHUNK = 100


@dataclass
class BenchContext:
    """What every case needs; the checker client is separate from the contenders' clients.

    The checker reads with ``consistency_level="Strong"`` so counts see every acknowledged
    write, whatever consistency level the contender wrote with.
    """

    config: BenchmarkConfig
    uri: str
    token: str | None
    embeddings: CountingEmbeddings
    _checker: Any = field(default=None, init=False, repr=False)
    _query_vectors: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False)

    @property
    def checker(self) -> Any:
        """A ``pymilvus.MilvusClient`` used only for set-up checks and correctness checks."""
        if self._checker is None:
            kwargs: dict[str, Any] = {"uri": self.uri}
            if self.token:
                kwargs["token"] = self.token
            self._checker = MilvusClient(**kwargs)
        return self._checker

    def close(self) -> None:
        if self._checker is not None:
            self._checker.close()
            self._checker = None

    @cached_property
    def prefill_docs(self) -> list[Document]:
        return make_documents(self.config.prefill, self.config.seed)

    @cached_property
    def add_docs(self) -> list[Document]:
        return make_documents(max(self.config.n), self.config.seed)

    def query(self, i: int) -> str:
        """The ``i``-th search / MMR query text of the configured query set."""
        return query_text(i, distinct=self.config.distinct_queries)

    def queries(self, n: int) -> list[str]:
        """The first ``n`` query texts, duplicates included (the same list every contender uses)."""
        return [self.query(i) for i in range(n)]

    @cached_property
    def prefill_by_key(self) -> dict[str, Document]:
        return {str(d.metadata["id"]): d for d in self.prefill_docs}

    @cached_property
    def dim(self) -> int:
        """The embedding size (probed once, untimed, when the configuration leaves it open)."""
        dim = self.config.effective_dim
        if dim is not None:
            return dim
        return len(self.embeddings.inner.embed_query("dimension probe"))

    @property
    def store_index_params(self) -> dict[str, Any] | None:
        """``index_params`` given to every store (``None`` = each store's own default)."""
        metric = self.config.metric
        if metric == "native":
            return None
        return {"index_type": "AUTOINDEX", "metric_type": metric, "params": {}}

    @property
    def ceiling_metric(self) -> str:
        """The ceiling's metric: the forced one, else pymilvus's default (COSINE)."""
        return "COSINE" if self.config.metric == "native" else self.config.metric

    def collection_name(self, contender: str, workload: str, n: int) -> str:
        """A valid Milvus collection name for one case."""
        raw = f"{self.config.collection_prefix}_{workload}_{n}_{contender}"
        return _UNSAFE.sub("_", raw)

    def count(self, collection: str, expr: str = "") -> int:
        """Rows matching ``expr`` (all rows when empty), read with Strong consistency."""
        rows = self.checker.query(
            collection,
            filter=expr,
            output_fields=["count(*)"],
            consistency_level="Strong",
        )
        return int(rows[0]["count(*)"])

    def count_keys(
        self, collection: str, key_filter: Callable[[Sequence[str]], str], keys: Sequence[str]
    ) -> int:
        """Rows whose metadata ``id`` is one of ``keys`` (queried in chunks of 100 keys)."""
        total = 0
        for start in range(0, len(keys), KEY_CHUNK):
            total += self.count(collection, key_filter(keys[start : start + KEY_CHUNK]))
        return total

    def drop(self, collection: str) -> None:
        if not self.config.keep_collections and self.checker.has_collection(collection):
            self.checker.drop_collection(collection)

    def metric(self, collection: str) -> str | None:
        """The metric of the collection's dense vector index (``L2``, ``IP`` or ``COSINE``)."""
        for index in self.checker.list_indexes(collection):
            info = self.checker.describe_index(collection, index)
            metric = str(info.get("metric_type", "")).upper()
            if metric in {"L2", "IP", "COSINE"}:
                return metric
        return None

    @cached_property
    def _reference_docs(self) -> np.ndarray | None:
        """The pre-filled documents' vectors, or ``None`` when the embeddings are remote."""
        if not self.embeddings.inner_is_local:
            return None  # do not pay a remote model to embed the reference set
        texts = [d.page_content for d in self.prefill_docs]
        return np.asarray(self.embeddings.inner.embed_documents(texts))

    def _query_vector(self, query: str) -> np.ndarray:
        """``query``'s vector from the uncounted inner model, computed once per text."""
        vector = self._query_vectors.get(query)
        if vector is None:
            vector = np.asarray(self.embeddings.inner.embed_query(query))
            self._query_vectors[query] = vector
        return vector

    def exact_top_k(self, query: str, metric: str) -> list[str] | None:
        """Brute-force top-k metadata ids of ``query`` in the pre-filled documents.

        ``None`` when the embeddings are remote (recall is then not checked).
        """
        docs = self._reference_docs
        if docs is None:
            return None
        q = self._query_vector(query)
        if metric == "L2":
            order = np.argsort(((docs - q) ** 2).sum(axis=1))
        elif metric == "IP":
            order = np.argsort(-(docs @ q))
        else:
            norms = np.linalg.norm(docs, axis=1) * np.linalg.norm(q)
            order = np.argsort(-(docs @ q) / norms)
        return [str(self.prefill_docs[int(i)].metadata["id"]) for i in order[: self.config.k]]
