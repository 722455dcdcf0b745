"""Incremental ingestion: split documents into chunks, embed only what changed.

Every chunk gets a content hash (`chunk_hash` in its metadata: SHA-256 of its text and
metadata) and an id derived from its *source*, that hash and its *occurrence* (how many
earlier chunks of the same source have the same hash, so that repeated boilerplate gets
distinct ids). The id does not depend on the chunk's position, so:

- re-ingesting an unchanged source embeds and writes nothing;
- editing one paragraph embeds only the chunk(s) that contain it;
- inserting a paragraph near the top embeds the new chunk and leaves the chunks after it
  untouched;
- chunks of an ingested source that are no longer produced are deleted.

Which chunks exist is asked from the store (one primary-key query per group of sources),
not from a local record, so several machines or a wiped cache cannot make it re-embed or
duplicate. Since a chunk's position is not part of it, no position is stored either (a
`chunk_index` would change, and force a rewrite, whenever a paragraph is inserted above).

The source of a document is `metadata["source"]` (what LangChain loaders set); without it,
the document's `id`; without that, `"sha256:"` and the hash of its text. Every row whose
`source` is an ingested source belongs to that source: rows of it that the new chunks do not
include are deleted. So always ingest *all* the documents of a source (e.g. every page of a
PDF) together.

Needs the `ingest` extra (`langchain-text-splitters`, `tqdm`) and a store with
`auto_id=False` (the default).

Example:
    ```python
    from langchain_milvus_ext import MilvusVectorStore
    from langchain_milvus_ext.ingest import ingest_documents

    result = ingest_documents(store, loader.load(), chunk_size=800, chunk_overlap=100)
    print(result.num_embedded, result.num_skipped, result.num_stale_deleted)
    ```
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langchain_core.documents import Document

if TYPE_CHECKING:
    from langchain_text_splitters import TextSplitter

    from langchain_milvus_ext.vectorstore import MilvusVectorStore

__all__ = [
    "CHUNK_ID_NAMESPACE",
    "HASH_KEY",
    "SOURCE_KEY",
    "IngestChunks",
    "IngestResult",
    "aingest_documents",
    "chunk_documents",
    "chunk_hash",
    "chunk_id",
    "ingest_documents",
    "source_filter",
    "source_of",
]

CHUNK_ID_NAMESPACE = uuid.UUID("5f1c3a0e-9b7d-5c2e-8a41-6d0b7e3f9c12")
"""uuid5 namespace of chunk ids (fixed forever: changing it would re-embed every chunk)."""

SOURCE_KEY = "source"
"""Metadata key holding a chunk's source."""
HASH_KEY = "chunk_hash"
"""Metadata key holding a chunk's content hash."""
_SOURCE_GROUP = 64
"""Sources per existing-chunk query (one `$in` filter per group)."""
_DELETE_GROUP = 1000
"""Ids per delete call."""


@dataclass(frozen=True)
class IngestResult:
    """What an ingestion did.

    Attributes:
        ids: Ids of all the chunks of the ingested documents, in chunk order (embedded now
            or already stored).
        num_chunks: Number of chunks of the ingested documents.
        num_sources: Number of distinct sources ingested.
        num_stale_deleted: Chunks deleted because their source no longer produces them
            (None when unknown).
        num_embedded: Chunks embedded and written by this call (new or changed).
        num_skipped: Chunks already stored unchanged, so neither embedded nor written.
    """

    ids: list[str]
    num_chunks: int
    num_sources: int
    num_stale_deleted: int | None = None
    num_embedded: int = 0
    num_skipped: int = 0


@dataclass(frozen=True)
class IngestChunks:
    """The pure part of an ingestion: chunks with their ids, and chunk counts per source.

    Attributes:
        chunks: The chunks, each with its `id` set and `source` / `chunk_hash` metadata.
        chunk_counts: Number of chunks of each source, in first-seen order.
    """

    chunks: list[Document]
    chunk_counts: dict[str, int] = field(default_factory=dict)

    @property
    def ids(self) -> list[str]:
        """The chunk ids, in chunk order."""
        return [str(chunk.id) for chunk in self.chunks]

    def source_filters(self, group: int = _SOURCE_GROUP) -> Iterator[dict[str, Any]]:
        """Filters matching the stored chunks of these sources, `group` sources at a time."""
        sources = list(self.chunk_counts)
        for start in range(0, len(sources), group):
            yield source_filter(sources[start:start + group])

    def changes(self, stored_ids: Iterable[str]) -> tuple[list[Document], list[str]]:
        """Split against the ids stored for these sources (pure).

        Args:
            stored_ids: Ids of the rows whose `source` is one of these sources.

        Returns:
            The chunks to embed and write (not stored yet), and the stored ids to delete
            (not among these chunks), sorted.
        """
        stored = set(stored_ids)
        current = set(self.ids)
        new = [chunk for chunk in self.chunks if chunk.id not in stored]
        return new, sorted(stored - current)


def source_of(document: Document) -> str:
    """The source a document's chunks are keyed by: metadata source, id, or content hash."""
    source = (document.metadata or {}).get(SOURCE_KEY)
    if source is not None and source != "":
        return source if isinstance(source, str) else str(source)
    if document.id:
        return str(document.id)
    return "sha256:" + hashlib.sha256(document.page_content.encode("utf-8")).hexdigest()


def chunk_hash(text: str, metadata: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a chunk's text and metadata, the `chunk_hash` key excluded.

    Metadata is part of it so that a chunk whose metadata changed is written again.
    """
    meta = {k: v for k, v in metadata.items() if k != HASH_KEY}
    payload = json.dumps([text, meta], sort_keys=True, ensure_ascii=False, default=repr)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def chunk_id(source: str, content_hash: str, occurrence: int = 0) -> str:
    """The id of a chunk (a uuid5 string): from its source, hash and occurrence.

    Args:
        source: The chunk's source.
        content_hash: Its `chunk_hash`.
        occurrence: How many earlier chunks of the same source have the same hash.
    """
    return str(uuid.uuid5(CHUNK_ID_NAMESPACE, f"{source}\x1f{content_hash}\x1f{occurrence}"))


def source_filter(sources: Sequence[str]) -> dict[str, Any]:
    """The filter matching every stored chunk of these sources."""
    if len(sources) == 1:
        return {SOURCE_KEY: sources[0]}
    return {SOURCE_KEY: {"$in": list(sources)}}


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


def chunk_documents(
    documents: Iterable[Document],
    *,
    chunk_size: int = 1000,
    chunk_overlap: int = 200,
    splitter: TextSplitter | None = None,
) -> IngestChunks:
    """Split documents and give each chunk its hash and id (pure, no I/O).

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
    seen: dict[tuple[str, str], int] = {}
    for position, document in enumerate(documents):
        if not isinstance(document, Document):
            raise ValueError(
                f"documents[{position}] is {type(document).__name__}, expected a Document")
        source = source_of(document)
        counts.setdefault(source, 0)
        for piece in splitter.split_documents([document]):
            metadata = {**piece.metadata, SOURCE_KEY: source}
            digest = chunk_hash(piece.page_content, metadata)
            occurrence = seen.get((source, digest), 0)
            seen[(source, digest)] = occurrence + 1
            chunks.append(Document(page_content=piece.page_content,
                                   metadata={**metadata, HASH_KEY: digest},
                                   id=chunk_id(source, digest, occurrence)))
            counts[source] += 1
    return IngestChunks(chunks=chunks, chunk_counts=counts)



IngestPlan = IngestChunks
"""Former name of `IngestChunks` (kept so that existing imports still work)."""
plan_ingest = chunk_documents
"""Former name of `chunk_documents` (kept so that existing imports still work)."""


# ---------------------------------------------------------------- the steps, and two drivers


@dataclass(frozen=True)
class _StoredIds:
    """Ask for the ids of the stored rows matching `condition`."""

    condition: dict[str, Any]


@dataclass(frozen=True)
class _Write:
    """Embed and write these batches of chunks (answers nothing)."""

    batches: list[list[Document]]


@dataclass(frozen=True)
class _Delete:
    """Delete these ids (answers nothing)."""

    ids: list[str]


_Step = _StoredIds | _Write | _Delete
_Steps = Generator[_Step, Any, IngestResult]


def _ingest_steps(ingest: IngestChunks, batch_size: int, force: bool) -> _Steps:
    """The ingestion as steps: find stored ids, write what is new, delete what is gone."""
    stored: list[str] = []
    for condition in ingest.source_filters():
        stored.extend(str(pk) for pk in (yield _StoredIds(condition)))
    new, stale = ingest.changes(stored)
    if force:
        new = list(ingest.chunks)
    yield _Write([new[i:i + batch_size] for i in range(0, len(new), batch_size)])
    for start in range(0, len(stale), _DELETE_GROUP):
        yield _Delete(stale[start:start + _DELETE_GROUP])
    return IngestResult(ingest.ids, len(ingest.chunks), len(ingest.chunk_counts),
                        num_stale_deleted=len(stale), num_embedded=len(new),
                        num_skipped=len(ingest.chunks) - len(new))


def ingest_documents(
    store: MilvusVectorStore,
    documents: Iterable[Document],
    *,
    chunk_size: int = 1000,
    chunk_overlap: int = 200,
    batch_size: int = 256,
    progress: bool = True,
    splitter: TextSplitter | None = None,
    force: bool = False,
) -> IngestResult:
    """Split, embed and write the new or changed chunks, then delete the vanished ones.

    Args:
        store: The vector store (`auto_id=False`).
        documents: Documents to ingest; every document of a source must be in this call.
        chunk_size: Characters per chunk of the default `RecursiveCharacterTextSplitter`.
        chunk_overlap: Characters of overlap of the default splitter.
        batch_size: Chunks per `add_documents` call.
        progress: Show a tqdm progress bar of the chunks written.
        splitter: A LangChain `TextSplitter` to use instead of the default one.
        force: Embed and write every chunk, stored or not (e.g. after changing the
            embedding model in place).

    Returns:
        The chunk ids and the counts: embedded, skipped (already stored), stale deleted.

    Raises:
        ValueError: bad arguments or an `auto_id` store, before anything is written.
        WriteError: a batch failed (earlier batches stay written; stale chunks are kept).
    """
    steps = _ingest_steps(
        _chunks_for(store, documents, chunk_size, chunk_overlap, batch_size, splitter),
        batch_size, force)
    answer: Any = None
    while True:
        try:
            step = steps.send(answer)
        except StopIteration as done:
            result: IngestResult = done.value
            return result
        answer = None
        if isinstance(step, _StoredIds):
            answer = store.get_pks(step.condition)
        elif isinstance(step, _Write):
            with _progress_bar(sum(map(len, step.batches)), progress) as bar:
                for batch in step.batches:
                    store.add_documents(batch, ids=[str(d.id) for d in batch])
                    bar.update(len(batch))
        else:
            store.delete(ids=step.ids)


async def aingest_documents(
    store: MilvusVectorStore,
    documents: Iterable[Document],
    *,
    chunk_size: int = 1000,
    chunk_overlap: int = 200,
    batch_size: int = 256,
    progress: bool = True,
    splitter: TextSplitter | None = None,
    force: bool = False,
) -> IngestResult:
    """Async `ingest_documents`: the batches to write are written concurrently.

    All batches are submitted at once; the store bounds concurrency itself (its coalescer
    caps batches in flight, and a new collection is created once). Every batch runs to
    completion even if another fails; then the first failure is raised and stale chunks
    are kept. Arguments and result are those of `ingest_documents`.
    """
    steps = _ingest_steps(
        _chunks_for(store, documents, chunk_size, chunk_overlap, batch_size, splitter),
        batch_size, force)
    answer: Any = None
    while True:
        try:
            step = steps.send(answer)
        except StopIteration as done:
            result: IngestResult = done.value
            return result
        answer = None
        if isinstance(step, _StoredIds):
            answer = await store.aget_pks(step.condition)
        elif isinstance(step, _Write):
            await _awrite(store, step.batches, progress)
        else:
            await store.adelete(ids=step.ids)


async def _awrite(store: MilvusVectorStore, batches: list[list[Document]],
                  progress: bool) -> None:
    with _progress_bar(sum(map(len, batches)), progress) as bar:

        async def write(batch: list[Document]) -> None:
            await store.aadd_documents(batch, ids=[str(d.id) for d in batch])
            bar.update(len(batch))

        outcomes = await asyncio.gather(*(write(b) for b in batches), return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


def _chunks_for(
    store: MilvusVectorStore, documents: Iterable[Document], chunk_size: int,
    chunk_overlap: int, batch_size: int, splitter: TextSplitter | None,
) -> IngestChunks:
    _check_positive("batch_size", batch_size)
    if getattr(store, "auto_id", False):
        raise ValueError("ingestion chooses chunk ids: use a store with auto_id=False")
    if isinstance(documents, (Document, str, Mapping)):
        raise ValueError("documents must be an iterable of Document")
    return chunk_documents(documents, chunk_size=chunk_size, chunk_overlap=chunk_overlap,
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
