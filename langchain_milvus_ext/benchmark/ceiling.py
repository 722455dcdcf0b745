"""The ``ceiling`` contender: each workload's N operations as one batched pymilvus call.

Collection layout mirrors langchain-milvus's (text, vector, metadata keys as scalar fields,
``AUTOINDEX``, ``Session`` consistency) except that the primary key is a VARCHAR the benchmark
assigns, so upserts address rows by key without relying on auto-id semantics. The metric is the
one forced on every contender (``--metric``), or pymilvus's default COSINE with ``native``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from langchain_core.documents import Document
from langchain_core.vectorstores.utils import maximal_marginal_relevance
from pymilvus import DataType, MilvusClient

from .checks import CollectionView
from .contenders import scalar_key_filter
from .context import BenchContext
from .data import doc_key, seed_document, updated_document
from .timing import Timed, time_batch

PK, TEXT, VECTOR = "pk", "text", "vector"
META_FIELDS: tuple[str, ...] = ("id", "score", "category")
INSERT_CHUNK = 1000


def ceiling_view(name: str) -> CollectionView:
    return CollectionView(name=name, key_filter=scalar_key_filter, text_field=TEXT)


def _client(ctx: BenchContext) -> Any:
    kwargs: dict[str, Any] = {"uri": ctx.uri}
    if ctx.token:
        kwargs["token"] = ctx.token
    return MilvusClient(**kwargs)


def _create_collection(client: Any, name: str, dim: int, metric: str) -> None:
    if client.has_collection(name):
        client.drop_collection(name)
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field(PK, DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field(TEXT, DataType.VARCHAR, max_length=65_535)
    schema.add_field(VECTOR, DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field("id", DataType.VARCHAR, max_length=65_535)
    schema.add_field("score", DataType.DOUBLE)
    schema.add_field("category", DataType.VARCHAR, max_length=65_535)
    index = client.prepare_index_params()
    index.add_index(field_name=VECTOR, index_type="AUTOINDEX", metric_type=metric, params={})
    client.create_collection(name, schema=schema, index_params=index, consistency_level="Session")
    client.load_collection(name)


def _rows(
    pks: Sequence[str], docs: Sequence[Document], vectors: Sequence[Any]
) -> list[dict[str, Any]]:
    rows = []
    for pk, doc, vector in zip(pks, docs, vectors, strict=True):
        row = {PK: pk, TEXT: doc.page_content, VECTOR: vector}
        row.update({key: doc.metadata[key] for key in META_FIELDS})
        rows.append(row)
    return rows


def _to_document(hit: Any) -> Document:
    entity = hit["entity"]
    return Document(
        id=str(hit[PK] if PK in hit else hit["id"]),  # 2.3 servers key hits by "id"
        page_content=entity[TEXT],
        metadata={key: entity[key] for key in META_FIELDS},
    )


def _search_params(ctx: BenchContext) -> dict[str, Any]:
    return {"metric_type": ctx.ceiling_metric, "params": {}}


def _prefill_pk(i: int) -> str:
    return f"p{i}"


def run_ceiling_case(ctx: BenchContext, workload: str, n: int, name: str) -> tuple[Timed, int]:
    """Set up ``name`` (untimed), time the batched call, return the timing and rows before."""
    client = _client(ctx)
    try:
        _create_collection(client, name, ctx.dim, ctx.ceiling_metric)
        if workload == "add":
            docs = [seed_document()]
            pks = ["seed"]
        else:
            docs = ctx.prefill_docs
            pks = [_prefill_pk(i) for i in range(len(docs))]
        for start in range(0, len(docs), INSERT_CHUNK):
            chunk = docs[start : start + INSERT_CHUNK]
            vectors = ctx.embeddings.embed_documents([d.page_content for d in chunk])
            client.insert(name, _rows(pks[start : start + INSERT_CHUNK], chunk, vectors))
        # Warm-up, like the store contenders: one untimed read of the workload's kind.
        warm_up = "mmr" if workload == "mmr" else "search"
        _operation(ctx, client, warm_up, 1, name)()
        ctx.embeddings.reset()
        timed = time_batch(_operation(ctx, client, workload, n, name))
        return timed, len(docs)
    finally:
        client.close()


def _operation(
    ctx: BenchContext, client: Any, workload: str, n: int, name: str
) -> Callable[[], list[Any]]:
    emb = ctx.embeddings
    k = ctx.config.k

    def add() -> list[Any]:
        docs = ctx.add_docs[:n]
        pks = [f"a{i}" for i in range(n)]
        vectors = emb.embed_documents([d.page_content for d in docs])
        result = client.insert(name, _rows(pks, docs, vectors))
        ids = list(result["ids"])
        return [[pk] for pk in ids]

    def search() -> list[Any]:
        vectors = emb.embed_documents(ctx.queries(n))  # the N texts, duplicates included
        hits = client.search(
            name,
            data=vectors,
            limit=k,
            output_fields=[TEXT, *META_FIELDS],
            search_params=_search_params(ctx),
            anns_field=VECTOR,
        )
        return [[_to_document(h) for h in row] for row in hits]

    def mmr() -> list[Any]:
        fetch_k = ctx.config.fetch_k
        vectors = emb.embed_documents(ctx.queries(n))  # the N texts, duplicates included
        hits = client.search(
            name,
            data=vectors,
            limit=fetch_k,
            output_fields=[TEXT, VECTOR, *META_FIELDS],
            search_params=_search_params(ctx),
            anns_field=VECTOR,
        )
        out = []
        for query_vector, row in zip(vectors, hits, strict=True):
            candidates = list(row)
            picked = maximal_marginal_relevance(
                np.asarray(query_vector, dtype=np.float32),
                [list(h["entity"][VECTOR]) for h in candidates],
                lambda_mult=ctx.config.lambda_mult,
                k=k,
            )
            out.append([_to_document(candidates[j]) for j in picked])
        return out

    def delete() -> list[Any]:
        client.delete(name, filter=scalar_key_filter([doc_key(i) for i in range(n)]))
        return [True] * n

    def upsert() -> list[Any]:
        docs = [updated_document(d) for d in ctx.prefill_docs[:n]]
        vectors = emb.embed_documents([d.page_content for d in docs])
        client.upsert(name, _rows([_prefill_pk(i) for i in range(n)], docs, vectors))
        return [None] * n

    operations: dict[str, Callable[[], list[Any]]] = {
        "add": add,
        "search": search,
        "mmr": mmr,
        "delete": delete,
        "upsert": upsert,
    }
    return operations[workload]
