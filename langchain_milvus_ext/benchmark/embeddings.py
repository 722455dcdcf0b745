"""Embeddings for the benchmark: a counting wrapper with optional simulated latency."""

from __future__ import annotations

import asyncio
import os
import threading
import time

from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings

from .config import BenchmarkConfig, ConfigError


class CountingEmbeddings(Embeddings):
    """Wraps an embedding model, counting requests and optionally adding latency.

    Every call of ``embed_documents``, ``embed_query``, ``aembed_documents`` or ``aembed_query``
    is one request, whatever the number of texts. The simulated latency is paid once per request:
    ``time.sleep`` in the sync methods, ``asyncio.sleep`` in the async ones.

    Args:
        inner: The model doing the work.
        latency_s: Simulated latency per request, in seconds.
        inner_is_local: ``True`` when ``inner`` is cheap local CPU work (fake embeddings): the
            async methods then call its sync methods directly instead of the default
            ``run_in_executor`` path, so the thread pool is not part of what is measured.

    Example:
        >>> emb = CountingEmbeddings(DeterministicFakeEmbedding(size=4), inner_is_local=True)
        >>> _ = emb.embed_documents(["a", "b"]); _ = emb.embed_query("c")
        >>> emb.requests, emb.texts
        (2, 3)
    """

    def __init__(
        self, inner: Embeddings, latency_s: float = 0.0, *, inner_is_local: bool = False
    ) -> None:
        self.inner = inner
        self.latency_s = latency_s
        self.inner_is_local = inner_is_local
        self._lock = threading.Lock()
        self._requests = 0
        self._texts = 0

    @property
    def requests(self) -> int:
        """Embedding requests since the last :meth:`reset`."""
        return self._requests

    @property
    def texts(self) -> int:
        """Texts embedded since the last :meth:`reset`."""
        return self._texts

    def reset(self) -> None:
        """Zero both counters."""
        with self._lock:
            self._requests = 0
            self._texts = 0

    def _tick(self, texts: int) -> None:
        with self._lock:
            self._requests += 1
            self._texts += texts

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self._tick(len(texts))
        if self.latency_s:
            time.sleep(self.latency_s)
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        self._tick(1)
        if self.latency_s:
            time.sleep(self.latency_s)
        return self.inner.embed_query(text)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        self._tick(len(texts))
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if self.inner_is_local:
            return self.inner.embed_documents(texts)
        return await self.inner.aembed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        self._tick(1)
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if self.inner_is_local:
            return self.inner.embed_query(text)
        return await self.inner.aembed_query(text)


def make_embeddings(config: BenchmarkConfig) -> CountingEmbeddings:
    """Build the counting embeddings the configuration asks for.

    Raises:
        ConfigError: OpenAI was chosen without ``OPENAI_API_KEY`` or a base URL, or
            langchain-openai is not installed.
    """
    latency_s = config.embed_latency_ms / 1000.0
    if config.embeddings == "fake":
        dim = config.effective_dim
        assert dim is not None
        return CountingEmbeddings(
            DeterministicFakeEmbedding(size=dim), latency_s, inner_is_local=True
        )
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
        model=config.openai_model,
        base_url=config.openai_base_url,
        api_key=SecretStr(api_key or "not-needed"),
        dimensions=config.dim,
        # OpenAI-compatible servers usually take raw strings, not tiktoken ids.
        check_embedding_ctx_length=config.openai_base_url is None,
    )
    return CountingEmbeddings(inner, latency_s, inner_is_local=False)
