"""Idempotent ingestion: split documents into chunks with deterministic ids and write them.

Every chunk gets an id derived from its *source* and its position in that source, so
ingesting the same source again replaces its chunks instead of duplicating them (the store's
add is an upsert by id), and chunks left over from a longer earlier version of a source are
deleted.

The source of a document is `metadata["source"]` (what LangChain loaders set); without it,
the document's `id`; without that, `"sha256:"` and the hash of its text. Chunks of documents
sharing a source (e.g. the pages of one PDF) are numbered in order across those documents, so
always ingest *all* the documents of a source together.

Each chunk keeps its document's metadata plus `source` and `chunk_index` (overwriting keys of
those names), which is what stale-chunk deletion filters on.

Needs the `ingest` extra (`langchain-text-splitters`, `tqdm`) and a store with
`auto_id=False` (the default).

Example:
    ```python
    from langchain_milvus_ext import MilvusVectorStore
    from langchain_milvus_ext.ingest import ingest_documents

    result = ingest_documents(store, loader.load(), chunk_size=800, chunk_overlap=100)
    print(result.num_chunks, result.num_stale_deleted)
    ```
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langchain_core.documents import Document

if TYPE_CHECKING:
    from langchain_text_splitters import TextSplitter

    from langchain_milvus_ext.vectorstore import MilvusVectorStore

__all__ = [
    "CHUNK_ID_NAMESPACE",
    "IngestPlan",
    "IngestResult",
    "aingest_documents",
    "chunk_id",
    "ingest_documents",
    "plan_ingest",
    "source_of",
    "stale_filter",
]

CHUNK_ID_NAMESPACE = uuid.UUID("5f1c3a0e-9b7d-5c2e-8a41-6d0b7e3f9c12")
"""uuid5 namespace of chunk ids (fixed forever: changing it would duplicate every chunk)."""

SOURCE_KEY = "source"
INDEX_KEY = "chunk_index"
_STALE_GROUP = 64
"""Sources checked for stale chunks per query (one `$or` filter per group)."""


@dataclass(frozen=True)
class IngestResult:
    """What an ingestion wrote.

    Attributes:
        ids: Ids of the chunks written, in chunk order.
        num_chunks: Number of chunks written.
        num_sources: Number of distinct sources ingested.
        num_stale_deleted: Chunks deleted because their source now has fewer chunks
            (None when unknown).
    """

    ids: list[str]
    num_chunks: int
    num_sources: int
    num_stale_deleted: int | None = None


@dataclass(frozen=True)
class IngestPlan:
    """The pure part of an ingestion: chunks with their ids, and chunk counts per source.

    Attributes:
        chunks: The chunks, each with its `id` set and `source` / `chunk_index` metadata.
        chunk_counts: Number of chunks of each source, in first-seen order.
    """

    chunks: list[Document]
    chunk_counts: dict[str, int] = field(default_factory=dict)

    @property
    def ids(self) -> list[str]:
        """The chunk ids, in chunk order."""
        return [str(chunk.id) for chunk in self.chunks]

    def batches(self, batch_size: int) -> Iterator[list[Document]]:
        """The chunks in consecutive batches of at most `batch_size`."""
        _check_positive("batch_size", batch_size)
        for start in range(0, len(self.chunks), batch_size):
            yield self.chunks[start:start + batch_size]

    def stale_filters(self, group: int = _STALE_GROUP) -> Iterator[dict[str, Any]]:
        """Filters matching the chunks of these sources beyond their new chunk counts."""
        clauses = [stale_filter(src, n) for src, n in self.chunk_counts.items()]
        for start in range(0, len(clauses), group):
            part = clauses[start:start + group]
            yield part[0] if len(part) == 1 else {"$or": part}


def source_of(document: Document) -> str:
    """The source a document's chunks are keyed by: metadata source, id, or content hash."""
    source = (document.metadata or {}).get(SOURCE_KEY)
    if source is not None and source != "":
        return source if isinstance(source, str) else str(source)
    if document.id:
        return str(document.id)
    return "sha256:" + hashlib.sha256(document.page_content.encode("utf-8")).hexdigest()


def chunk_id(source: str, index: int) -> str:
    """The deterministic id of chunk `index` of `source` (a uuid5 string)."""
    return str(uuid.uuid5(CHUNK_ID_NAMESPACE, f"{source}\x1f{index}"))


def stale_filter(source: str, num_chunks: int) -> dict[str, Any]:
    """The filter of a source's chunks numbered `num_chunks` and above."""
    return {SOURCE_KEY: source, INDEX_KEY: {"$gte": num_chunks}}


def default_splitter(chunk_size: int = 1000, chunk_overlap: int = 200) -> TextSplitter:
    """A `RecursiveCharacterTextSplitter` with these sizes (in characters)."""
    _check_positive("chunk_size", chunk_size)
    if isinstance(chunk_overlap, bool) or not 0 <= chunk_overlap < chunk_size:
        raise ValueError(
            f"chunk_overlap must be in [0, chunk_size), got {chunk_overlap} for {chunk_size}")
    try:
        from langchain_text_splitters import RecursiveCharacterTextSplitter
    except ImportError as error:  # pragma: no cover - depends on the installed extras
        raise ImportError(
            "ingestion needs langchain-text-splitters: pip install 'langchain-milvus-ext[ingest]'"
        ) from error
    return RecursiveCharacterTextSplitter(chunk_size=chunk_size, chunk_overlap=chunk_overlap)


def plan_ingest(
    documents: Iterable[Document],
    *,
    chunk_size: int = 1000,
    chunk_overlap: int = 200,
    splitter: TextSplitter | None = None,
) -> IngestPlan:
    """Split documents and give each chunk its deterministic id (pure, no I/O).

    Args:
        documents: The documents; all documents of a source must be in this call.
        chunk_size: Chunk size of the default splitter (ignored when `splitter` is given).
        chunk_overlap: Chunk overlap of the default splitter (ignored with `splitter`).
        splitter: Any LangChain `TextSplitter`.

    Returns:
        The chunks and the number of chunks of each source.

    Raises:
        ValueError: bad sizes, or an input that is not a Document.
    """
    splitter = splitter or default_splitter(chunk_size, chunk_overlap)
    chunks: list[Document] = []
    counts: dict[str, int] = {}
    for position, document in enumerate(documents):
        if not isinstance(document, Document):
            raise ValueError(
                f"documents[{position}] is {type(document).__name__}, expected a Document")
        source = source_of(document)
        index = counts.setdefault(source, 0)
        for piece in splitter.split_documents([document]):
            metadata = {**piece.metadata, SOURCE_KEY: source, INDEX_KEY: index}
            chunks.append(Document(page_content=piece.page_content, metadata=metadata,
                                   id=chunk_id(source, index)))
            index += 1
        counts[source] = index
    return IngestPlan(chunks=chunks, chunk_counts=counts)


def ingest_documents(
    store: MilvusVectorStore,
    documents: Iterable[Document],
    *,
    chunk_size: int = 1000,
    chunk_overlap: int = 200,
    batch_size: int = 256,
    progress: bool = True,
    splitter: TextSplitter | None = None,
) -> IngestResult:
    """Split, write in batches (replacing earlier versions), then delete stale chunks.

    Args:
        store: The vector store (`auto_id=False`).
        documents: Documents to ingest; every document of a source must be in this call.
        chunk_size: Characters per chunk of the default `RecursiveCharacterTextSplitter`.
        chunk_overlap: Characters of overlap of the default splitter.
        batch_size: Chunks per `add_documents` call.
        progress: Show a tqdm progress bar.
        splitter: A LangChain `TextSplitter` to use instead of the default one.

    Returns:
        The ids written and counts.

    Raises:
        ValueError: bad arguments or an `auto_id` store, before anything is written.
        WriteError: a batch failed (earlier batches stay written; stale chunks are kept).
    """
    plan = _plan_for(store, documents, chunk_size, chunk_overlap, batch_size, splitter)
    ids: list[str] = []
    with _progress_bar(len(plan.chunks), progress) as bar:
        for batch in plan.batches(batch_size):
            ids.extend(store.add_documents(batch, ids=[str(d.id) for d in batch]))
            bar.update(len(batch))
    deleted = 0
    for condition in plan.stale_filters():
        stale = store.get_pks(condition)
        if stale:
            store.delete(ids=[str(pk) for pk in stale])
            deleted += len(stale)
    return IngestResult(ids, len(plan.chunks), len(plan.chunk_counts), deleted)


async def aingest_documents(
    store: MilvusVectorStore,
    documents: Iterable[Document],
    *,
    chunk_size: int = 1000,
    chunk_overlap: int = 200,
    batch_size: int = 256,
    progress: bool = True,
    splitter: TextSplitter | None = None,
) -> IngestResult:
    """Async `ingest_documents`: batches are written concurrently.

    All batches are submitted at once; the store bounds concurrency itself (its coalescer
    caps batches in flight, and a new collection is created once). Every batch runs to
    completion even if another fails; then the first failure is raised and stale chunks
    are kept.
    """
    plan = _plan_for(store, documents, chunk_size, chunk_overlap, batch_size, splitter)
    batches = list(plan.batches(batch_size))
    ids: list[str] = []
    with _progress_bar(len(plan.chunks), progress) as bar:

        async def write(batch: list[Document]) -> list[str]:
            written = await store.aadd_documents(batch, ids=[str(d.id) for d in batch])
            bar.update(len(batch))
            return written

        outcomes = await asyncio.gather(*(write(b) for b in batches), return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
        ids.extend(outcome)
    deleted = 0
    for condition in plan.stale_filters():
        stale = await store.aget_pks(condition)
        if stale:
            await store.adelete(ids=[str(pk) for pk in stale])
            deleted += len(stale)
    return IngestResult(ids, len(plan.chunks), len(plan.chunk_counts), deleted)


def _plan_for(
    store: MilvusVectorStore, documents: Iterable[Document], chunk_size: int,
    chunk_overlap: int, batch_size: int, splitter: TextSplitter | None,
) -> IngestPlan:
    _check_positive("batch_size", batch_size)
    if getattr(store, "auto_id", False):
        raise ValueError("ingestion chooses chunk ids: use a store with auto_id=False")
    if isinstance(documents, (Document, str, Mapping)):
        raise ValueError("documents must be an iterable of Document")
    return plan_ingest(documents, chunk_size=chunk_size, chunk_overlap=chunk_overlap,
                       splitter=splitter)


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


class _NoBar:
    def update(self, n: int) -> None:
        """Do nothing."""

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def _progress_bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - depends on the installed extras
        return _NoBar()
    return tqdm(total=total, unit="chunk", desc="ingest")
