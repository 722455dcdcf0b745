"""The tutorial's test documents and queries, and the counting embeddings."""

from __future__ import annotations

import asyncio
import os
import random
import re
import threading
import time

from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings

from .config import BenchmarkConfig, ConfigError

QUERY_DISTINCT = 50  # the tutorial's queries are "test document {i % 50}"
UPDATED_PREFIX = "This is updated test document"  # page content written by upsert
_CONTENT_RE = re.compile(r"^This is (?:updated )?test document (\d+) with ")


def make_documents(count: int, seed: int) -> list[Document]:
    """The tutorial's documents ``0..count-1``; the same ``seed`` gives the same documents.

    Example:
        >>> make_documents(1, seed=1)[0].metadata["id"]
        'doc_0'
    """
    rng = random.Random(seed)
    return [
        Document(
            page_content=f"This is test document {i} with some random content: {rand}",
            metadata={"id": doc_key(i), "score": rand, "category": f"cat_{i % 5}"},
        )
        for i, rand in ((i, rng.random()) for i in range(count))
    ]


def updated_document(doc: Document) -> Document:
    """The upsert workload's replacement for ``doc``: new content, same metadata ``id``."""
    content = doc.page_content.replace("This is test document", UPDATED_PREFIX, 1)
    return Document(page_content=content, metadata=dict(doc.metadata))


def seed_document() -> Document:
    """The single document written (untimed) to create the add workload's collection."""
    return Document(page_content="This is test document seed with some random content: 0.5",
                    metadata={"id": "doc_seed", "score": 0.5, "category": "cat_seed"})  # fmt: skip


def query_text(i: int, distinct: bool = False) -> str:
    """The ``i``-th search / MMR query: the tutorial's ``"test document {i % 50}"`` (50
    distinct texts), or with ``distinct`` ``"test document {i}"``.

    Example:
        >>> query_text(51), query_text(51, distinct=True)
        ('test document 1', 'test document 51')
    """
    return f"test document {i if distinct else i % QUERY_DISTINCT}"


def describe_queries(queries: str) -> str:
    """A short human description of a query set of :data:`~.config.QUERY_SETS`."""
    if queries == "tutorial":
        n = QUERY_DISTINCT
        return f'tutorial ("test document {{i % {n}}}", {n} distinct texts)'
    if queries == "distinct":
        return 'distinct ("test document {i}", every query different)'
    return queries


def doc_key(i: int) -> str:
    """The metadata ``id`` of document ``i``."""
    return f"doc_{i}"


def key_from_content(page_content: str) -> str | None:
    """The metadata ``id`` a page content belongs to, or ``None`` if it is not a test document."""
    match = _CONTENT_RE.match(page_content)
    return doc_key(int(match.group(1))) if match else None


class CountingEmbeddings(Embeddings):
    """Wraps an embedding model, counting requests and optionally adding latency.

    Every ``embed_documents``/``embed_query``/``aembed_documents``/``aembed_query`` call is one
    request, whatever the number of texts, and pays ``latency_s`` once (``time.sleep`` or
    ``asyncio.sleep``). With ``inner_is_local`` (cheap local CPU work, fake embeddings) the async
    methods call the sync ones directly, so no thread pool is part of what is measured.

    Example:
        >>> emb = CountingEmbeddings(DeterministicFakeEmbedding(size=4), inner_is_local=True)
        >>> _ = emb.embed_documents(["a", "b"]); _ = emb.embed_query("c")
        >>> emb.requests, emb.texts
        (2, 3)
    """

    def __init__(
        self, inner: Embeddings, latency_s: float = 0.0, *, inner_is_local: bool = False
    ) -> None:
        self.inner, self.latency_s, self.inner_is_local = inner, latency_s, inner_is_local
        self._lock = threading.Lock()
        self.requests = self.texts = 0

    def reset(self) -> None:
        """Zero both counters (requests and texts)."""
        with self._lock:
            self.requests = self.texts = 0

    def _tick(self, texts: int) -> None:
        with self._lock:
            self.requests += 1
            self.texts += texts
        if self.latency_s:
            time.sleep(self.latency_s)

    async def _atick(self, texts: int) -> None:
        with self._lock:
            self.requests += 1
            self.texts += texts
        if self.latency_s:  # no sleep(0): it would change how the event loop schedules
            await asyncio.sleep(self.latency_s)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self._tick(len(texts))
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        self._tick(1)
        return self.inner.embed_query(text)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        await self._atick(len(texts))
        if self.inner_is_local:
            return self.inner.embed_documents(texts)
        return await self.inner.aembed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        await self._atick(1)
        if self.inner_is_local:
            return self.inner.embed_query(text)
        return await self.inner.aembed_query(text)


def make_embeddings(config: BenchmarkConfig) -> CountingEmbeddings:
    """Build the counting embeddings the configuration asks for.

    Raises:
        ConfigError: OpenAI without ``OPENAI_API_KEY`` or a base URL, or without langchain-openai.
    """
    latency_s = config.embed_latency_ms / 1000.0
    if config.embeddings == "fake":
        dim = config.effective_dim or 0
        return CountingEmbeddings(DeterministicFakeEmbedding(size=dim), latency_s,
                                  inner_is_local=True)  # fmt: skip
    api_key = os.environ.get("OPENAI_API_KEY")
    if not api_key and not config.openai_base_url:
        raise ConfigError("--embeddings openai needs OPENAI_API_KEY or --openai-base-url")
    try:
        from langchain_openai import OpenAIEmbeddings
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError(
            "--embeddings openai needs langchain-openai (pip install langchain-milvus-ext[openai])"
        ) from exc
    from pydantic import SecretStr

    inner = OpenAIEmbeddings(
        model=config.openai_model, base_url=config.openai_base_url, dimensions=config.dim,
        api_key=SecretStr(api_key or "not-needed"),
        # OpenAI-compatible servers usually take raw strings, not tiktoken ids.
        check_embedding_ctx_length=config.openai_base_url is None,
    )  # fmt: skip
    return CountingEmbeddings(inner, latency_s, inner_is_local=False)
