"""What every case shares (target, embeddings, documents, a checker client), and the checks
after each timed repetition: row counts, k known results, recall against brute force, deleted
ids gone. A failed check fails the case loudly."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from langchain_core.documents import Document
from pymilvus import MilvusClient

from .config import (
    UPDATED_PREFIX,
    BenchmarkConfig,
    CountingEmbeddings,
    doc_key,
    make_documents,
    query_text,
)

TEXT_FIELD = "text"  # the scalar field holding page_content in every contender's collection
KEY_CHUNK = 100


class CheckFailure(AssertionError):
    """A contender returned or stored wrong data."""


def key_filter(keys: Sequence[str]) -> str:
    """``id in ["doc_0", ...]``: matches every contender's rows by metadata ``id``."""
    return f"id in {json.dumps(list(keys))}"


@dataclass
class BenchContext:
    """What every case needs. The checker client (not the contenders') reads with Strong
    consistency, so counts see every acknowledged write."""

    config: BenchmarkConfig
    uri: str
    token: str | None
    embeddings: CountingEmbeddings
    _top_k: dict[tuple[str, str], list[str]] = field(default_factory=dict, init=False, repr=False)

    def client(self) -> Any:
        """A new ``pymilvus.MilvusClient`` for the target."""
        return MilvusClient(uri=self.uri, token=self.token or "")

    @cached_property
    def checker(self) -> Any:
        """A ``pymilvus.MilvusClient`` used only for set-up and checks."""
        return self.client()

    def close(self) -> None:
        if (checker := self.__dict__.pop("checker", None)) is not None:
            checker.close()

    @cached_property
    def docs(self) -> list[Document]:
        """The documents ``0..max(prefill, N)-1``: the pre-fill and add's are their first ones."""
        return make_documents(max(self.config.prefill, *self.config.n), self.config.seed)

    @cached_property
    def prefill_docs(self) -> list[Document]:
        return self.docs[: self.config.prefill]

    @cached_property
    def prefill_by_content(self) -> dict[str, Document]:
        return {d.page_content: d for d in self.prefill_docs}

    def initial_docs(self, workload: str) -> list[Document]:
        """What a fresh collection is filled with, untimed: add's one seed document, or the
        pre-fill."""
        if workload != "add":
            return self.prefill_docs
        return [Document(page_content="This is test document seed with some random content: 0.5",
                         metadata={"id": "doc_seed", "score": 0.5, "category": "cat_seed"})]

    def queries(self, n: int) -> list[str]:
        """The first ``n`` query texts, duplicates included."""
        return [query_text(i, distinct=self.config.queries == "distinct") for i in range(n)]

    @cached_property
    def dim(self) -> int:
        """The embedding size (probed once, untimed, if the configuration leaves it open)."""
        dim = self.config.effective_dim
        return dim if dim is not None else len(self.embeddings.inner.embed_query("probe"))

    @property
    def store_index_params(self) -> dict[str, Any] | None:
        """``index_params`` given to every store (``None``: each store's own default)."""
        if self.config.metric == "native":
            return None
        return {"index_type": "AUTOINDEX", "metric_type": self.config.metric, "params": {}}

    @property
    def ceiling_metric(self) -> str:
        """The forced metric, else pymilvus's default (COSINE)."""
        return "COSINE" if self.config.metric == "native" else self.config.metric

    def collection_name(self, contender: str, workload: str, n: int) -> str:
        name = f"{self.config.collection_prefix}_{workload}_{n}_{contender}"
        return re.sub(r"[^0-9A-Za-z_]", "_", name)  # a valid Milvus name

    def count(self, collection: str, expr: str = "") -> int:
        """Rows matching ``expr`` (all rows when empty), read with Strong consistency."""
        rows = self.checker.query(collection, filter=expr, output_fields=["count(*)"],
                                  consistency_level="Strong")
        return int(rows[0]["count(*)"])

    def count_keys(self, collection: str, keys: Sequence[str]) -> int:
        """Rows whose metadata ``id`` is one of ``keys`` (in chunks of 100 keys)."""
        return sum(self.count(collection, key_filter(keys[i : i + KEY_CHUNK]))
                   for i in range(0, len(keys), KEY_CHUNK))

    def drop(self, collection: str) -> None:
        if not self.config.keep_collections and self.checker.has_collection(collection):
            self.checker.drop_collection(collection)

    def metric(self, collection: str) -> str | None:
        """The metric of the collection's dense vector index (``L2``, ``IP`` or ``COSINE``)."""
        metrics = [str(self.checker.describe_index(collection, i).get("metric_type", "")).upper()
                   for i in self.checker.list_indexes(collection)]
        return next((m for m in metrics if m in {"L2", "IP", "COSINE"}), None)

    @cached_property
    def _reference_docs(self) -> np.ndarray | None:
        if not self.embeddings.inner_is_local:
            return None  # do not pay a remote model to embed the reference set
        texts = [d.page_content for d in self.prefill_docs]
        return np.asarray(self.embeddings.inner.embed_documents(texts))

    def exact_top_k(self, query: str, metric: str) -> list[str] | None:
        """Brute-force top-k metadata ids of ``query`` in the pre-fill (``None``: remote model),
        computed once per text and metric with the uncounted inner model."""
        if (docs := self._reference_docs) is None:
            return None
        if (query, metric) not in self._top_k:
            q = np.asarray(self.embeddings.inner.embed_query(query))
            dot = docs @ q
            distance = (((docs - q) ** 2).sum(axis=1) if metric == "L2" else -dot if metric == "IP"
                        else -dot / (np.linalg.norm(docs, axis=1) * np.linalg.norm(q)))
            self._top_k[query, metric] = [str(self.prefill_docs[int(i)].metadata["id"])
                                          for i in np.argsort(distance)[: self.config.k]]
        return self._top_k[query, metric]


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailure(message)


def check_case(
    ctx: BenchContext, collection: str, workload: str, n: int, outputs: Sequence[Any],
    rows_before: int,
) -> tuple[int, float | None, list[str]]:
    """Check one timed repetition's results and the collection it left behind (else raise
    :class:`CheckFailure`); returns the rows left, recall@k (searches) and the checks passed."""
    expect(len(outputs) == n, f"{len(outputs)} results for {n} operations")
    if workload not in {"add", "delete", "upsert"}:  # search, mmr, service
        return (rows_before, *_check_search(ctx, collection, outputs, mmr=workload == "mmr"))
    keys = [doc_key(i) for i in range(n)]

    def count(expected: int, what: str) -> int:
        rows = ctx.count(collection)
        expect(rows == expected, f"{what}: collection has {rows} rows, expected {expected}")
        return rows

    if workload == "add":
        for i, out in enumerate(outputs):
            ok = isinstance(out, list) and len(out) == 1 and out[0] is not None
            expect(ok, f"add #{i} returned {out!r}, expected a list with one id")
        ids = {str(out[0]) for out in outputs}
        expect(len(ids) == n, f"add returned {n - len(ids)} duplicate ids")
        rows = count(rows_before + n, "after add")
        stored = ctx.count_keys(collection, keys)
        expect(stored == n, f"after add: {stored} rows carry the added metadata ids, expected {n}")
        return rows, None, [f"{n} distinct ids", f"row count {rows} = {rows_before}+{n}"]
    if workload == "delete":
        failed = [i for i, out in enumerate(outputs) if out is False]
        expect(not failed, f"{len(failed)} deletes reported failure (first: #{failed[:1]})")
        rows = count(rows_before - n, "after delete")
        left = ctx.count_keys(collection, keys)
        expect(left == 0, f"after delete: {left} deleted metadata ids still present")
        return rows, None, [f"row count {rows} = {rows_before} - {n}"]
    rows = count(rows_before, "after upsert (no new rows)")
    updated = ctx.count(collection, f'{TEXT_FIELD} like "{UPDATED_PREFIX}%"')
    expect(updated == n, f"after upsert: {updated} rows carry the new content, expected {n}")
    same = ctx.count_keys(collection, keys)
    expect(same == n, f"after upsert: {same} rows for the {n} upserted metadata ids")
    return rows, None, [f"{n} rows replaced in place, row count {rows}"]


def _check_search(
    ctx: BenchContext, collection: str, outputs: Sequence[Any], *, mmr: bool
) -> tuple[float | None, list[str]]:
    k, what = ctx.config.k, "mmr" if mmr else "search"
    returned: list[list[str]] = []
    for i, docs in enumerate(outputs):
        expect(isinstance(docs, list), f"{what} #{i} returned {type(docs).__name__}, not a list")
        expect(len(docs) == k, f"{what} #{i} returned {len(docs)} documents, expected k={k}")
        for doc in docs:
            expect(isinstance(doc, Document), f"{what} #{i} returned a {type(doc).__name__}")
            if (original := ctx.prefill_by_content.get(doc.page_content)) is None:
                raise CheckFailure(f"{what} #{i}: page_content {doc.page_content[:60]!r} is no "
                                   "pre-filled document's (unknown, or not as stored)")
            where, key, meta_key = f"{what} #{i}", original.metadata["id"], doc.metadata.get("id")
            expect(meta_key == key, f"{where}: page_content of {key} carries metadata id "
                   f"{meta_key!r}")
            expect(doc.metadata.get("category") == original.metadata["category"],
                   f"{where}: {key} metadata {doc.metadata!r} != {original.metadata!r}")
            # A search result's id: Document.id, else langchain-milvus's metadata["pk"].
            identifier = doc.id if doc.id is not None else doc.metadata.get("pk")
            expect(identifier is not None, f"{where}: {key} came back without an id")
        keys = [str(doc.metadata["id"]) for doc in docs]
        expect(len(set(keys)) == len(keys), f"{what} #{i} returned duplicates {keys}")
        returned.append(keys)
    passed = [f"{len(outputs)} x {k} known documents with ids"]
    metric = None if mmr else ctx.metric(collection)
    queries = ctx.queries(len(returned))
    truths = [ctx.exact_top_k(query, metric) for query in queries] if metric else []
    if not truths or any(t is None for t in truths):
        return None, passed
    hits = sum(len(set(t or ()).intersection(r)) for t, r in zip(truths, returned, strict=True))
    recall = hits / (len(returned) * k)
    expect(recall >= ctx.config.min_recall, f"mean recall@{k} {recall:.3f} < "
           f"{ctx.config.min_recall} (results are not the nearest neighbours)")
    return recall, [*passed, f"recall@{k} {recall:.3f}"]
