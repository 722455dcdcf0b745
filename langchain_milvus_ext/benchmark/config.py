"""What a run is: its settings (each one a CLI flag), the tutorial's documents and queries, and
the counting embeddings."""

from __future__ import annotations

import asyncio
import os
import random
import sys
import threading
import time
from dataclasses import MISSING, asdict, dataclass, field, fields
from importlib.util import find_spec
from typing import Any

from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings

STORE_WORKLOADS: tuple[str, ...] = ("add", "search", "mmr", "delete", "upsert")
WORKLOADS: tuple[str, ...] = (*STORE_WORKLOADS, "service")
OURS_SYNC, OURS_ASYNC = "ours-sync", "ours-async"
LCM_SYNC, LCM_ASYNC = "langchain-milvus-sync", "langchain-milvus-async"
CEILING = "ceiling"
CONTENDERS: tuple[str, ...] = (OURS_SYNC, OURS_ASYNC, LCM_SYNC, LCM_ASYNC, CEILING)
QUERY_DESCRIPTIONS = {  # by query set
    "tutorial": 'tutorial ("test document {i % 50}", 50 distinct texts)',
    "distinct": 'distinct ("test document {i}", every query different)',
}
QUERY_SETS: tuple[str, ...] = tuple(QUERY_DESCRIPTIONS)
DEFAULT_PLOT_PATH = "benchmark-results/benchmark.png"
INSTALL_EXTRA = "pip install 'langchain-milvus-ext[benchmark]'"
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {"n": (10, 100), "prefill": 200, "repeat": 1},
    "full": {"n": (10, 100, 1000), "workloads": STORE_WORKLOADS},
}
UPDATED_PREFIX = "This is updated test document"  # page content written by upsert


OURS_LAYOUTS: dict[str, tuple[str, dict[str, Any]]] = {  # --ours-layout: (described, kwargs)
    "dynamic": ("", {}),
    "columns": (" (enable_dynamic_field=False)", {"enable_dynamic_field": False}),
}


class ConfigError(ValueError):
    """The benchmark configuration is invalid."""


def _opt(default: Any, help: str, **cli: Any) -> Any:
    return field(default=default, metadata={"help": help, **cli})


@dataclass(frozen=True)
class BenchmarkConfig:
    """Settings of one benchmark run; each field with a ``help`` is the CLI flag ``--field-name``.

    A case runs up to ``repeat`` timed repetitions, each after a warm-up call, until one more (at
    the mean so far, set-up and checks included) would take it past ``case_budget_s``; a first
    sync loop starts no call once it took that long.
    """

    n: tuple[int, ...] = _opt((100, 1000), "operations per case", metavar="N")
    prefill: int = _opt(1000, "documents pre-loaded for every workload but add", metavar="DOCS")
    workloads: tuple[str, ...] = _opt(("add", "search", "delete"), "some of %(choices)s",
                                      choices=WORKLOADS, metavar="W")
    contenders: tuple[str, ...] = _opt(CONTENDERS, "some of %(choices)s", choices=CONTENDERS,
                                       metavar="C")
    repeat: int = _opt(3, "timed repetitions per case (median and min-max reported)")
    case_budget_s: float = _opt(10.0, "seconds (set-up and checks included) after which a case "
                                "repeats no more, and a first sync loop starts no more calls "
                                "(0: no limit)", metavar="S")
    k: int = _opt(3, "results per search")
    fetch_k: int = _opt(20, "MMR candidates")
    lambda_mult: float = _opt(0.5, "MMR diversity")
    metric: str = _opt("COSINE", "AUTOINDEX metric forced on every contender; native = each "
                       "store's own", choices=("COSINE", "L2", "IP", "native"))
    ours_layout: str = _opt("dynamic", "metadata layout of our store and the ceiling: dynamic = "
                            "our default, Milvus's dynamic field; columns = "
                            "enable_dynamic_field=False, a scalar column per key, as "
                            "langchain-milvus lays them out", choices=tuple(OURS_LAYOUTS))
    queries: str = _opt("tutorial", 'search/mmr query texts: tutorial = "test document {i %% 50}" '
                        "(50 distinct, searched once each by our async store); distinct = "
                        '"test document {i}"', choices=QUERY_SETS)
    service_concurrency: tuple[int, ...] = _opt((1, 16, 128), "concurrent HTTP clients of the "
                                                "service workload", metavar="C")
    service_requests: int = _opt(500, "requests per service case")
    embeddings: str = _opt("fake", "fake = DeterministicFakeEmbedding", choices=("fake", "openai"))
    dim: int | None = _opt(None, "embedding size (default: 128 fake, the model's)", type=int)
    embed_latency_ms: float = _opt(0.0, "simulated latency per embedding request", metavar="MS")
    openai_model: str = _opt("text-embedding-3-small", "OpenAI embedding model")
    openai_base_url: str | None = _opt(None, "OpenAI-compatible embedding server", type=str)
    uri: str | None = _opt(None, "Milvus URI (default: Milvus Lite in a temp dir)", type=str)
    target: str = _opt("lite", "without --uri: Lite in-process or a lite server",
                       choices=("lite", "lite-server"))
    token: str | None = _opt(None, "Milvus token", type=str)
    seed: int = _opt(42, "document RNG seed")
    keep_collections: bool = _opt(False, "do not drop each case's collection")
    fail_fast: bool = _opt(False, "stop at the first failed case")
    progress: bool = _opt(True, "progress bar on stderr")
    min_recall: float = 0.9
    collection_prefix: str = "lcmx_bench"

    @property
    def effective_dim(self) -> int | None:
        """The embedding size requested (``None``: the OpenAI model's own)."""
        return self.dim if self.dim is not None else 128 if self.embeddings == "fake" else None

    def validate(self) -> None:
        """Raise :class:`ConfigError` if the settings cannot produce a meaningful run."""
        if not self.n or min(self.n) < 1:
            raise ConfigError(f"--n needs positive integers, got {list(self.n)}")
        for f in fields(self):
            choices, value = f.metadata.get("choices"), getattr(self, f.name)
            chosen, flag = value if isinstance(value, tuple) else (value,), f.name.replace("_", "-")
            if choices and (not chosen or set(chosen) - set(choices)):
                raise ConfigError(f"unknown --{flag} {value!r}; choose from {choices}")
            if isinstance(value, tuple) and len(set(value)) != len(value):
                raise ConfigError(f"duplicate values in --{flag} {list(value)}")
        if self.case_budget_s < 0:
            raise ConfigError("--case-budget-s must be >= 0")
        if self.repeat < 1 or self.service_requests < 1 or min(self.service_concurrency) < 1:
            raise ConfigError("--repeat, --service-requests and --service-concurrency must be >= 1")
        if self.k < 1 or self.fetch_k < self.k:
            raise ConfigError(f"need 1 <= k <= fetch_k, got k={self.k} fetch_k={self.fetch_k}")
        if self.embed_latency_ms < 0:
            raise ConfigError("--embed-latency-ms must be >= 0")
        if self.dim is not None and self.dim < 2:
            raise ConfigError("--dim must be >= 2")
        if {"search", "mmr", "service"} & set(self.workloads) and self.prefill < self.fetch_k:
            raise ConfigError(f"--prefill must be >= fetch_k ({self.fetch_k}) for searches")
        if set(self.workloads) - {"add"} and self.prefill < 1:
            raise ConfigError("--prefill must be >= 1")
        for_ids = sorted({"delete", "upsert"}.intersection(self.workloads))
        if for_ids and self.prefill < max(self.n):
            raise ConfigError(
                f"--prefill ({self.prefill}) must be >= the largest N ({max(self.n)}) for "
                f"{'/'.join(for_ids)}: each operation targets a distinct existing document"
            )

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-compatible values (the token is masked)."""
        data = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        return {**data, "token": data["token"] and "***"}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchmarkConfig:
        """Inverse of :meth:`to_dict` (unknown keys are ignored)."""
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                                  for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**values)


def cli_fields() -> list[tuple[str, Any, dict[str, Any]]]:
    """``(name, default, argparse options)`` of every setting that is a CLI flag."""
    return [(f.name, f.default, dict(f.metadata)) for f in fields(BenchmarkConfig)
            if "help" in f.metadata and f.default is not MISSING]


def require_extra(*, progress: bool, plot: bool, service: bool = False) -> None:
    """Raise :class:`ConfigError`, saying what to install, if a module of the ``benchmark``
    extra this run uses cannot be imported."""
    wanted = {"tqdm": progress, "matplotlib": plot, "starlette": service, "uvicorn": service}
    missing = [name for name, used in wanted.items()  # a None in sys.modules blocks the import
               if used and (sys.modules.get(name, sys) is None or find_spec(name) is None)]
    if missing:
        hint = " (or run with --no-progress)" if missing == ["tqdm"] else ""
        raise ConfigError(f"the benchmark needs {' and '.join(missing)}, from its 'benchmark' "
                          f"extra: {INSTALL_EXTRA}{hint}")


def make_documents(count: int, seed: int) -> list[Document]:
    """The tutorial's documents ``0..count-1``; the same ``seed`` gives the same documents."""
    rng = random.Random(seed)
    return [Document(page_content=f"This is test document {i} with some random content: {r}",
                     metadata={"id": doc_key(i), "score": r, "category": f"cat_{i % 5}"})
            for i, r in ((i, rng.random()) for i in range(count))]


def updated_document(doc: Document) -> Document:
    """The upsert workload's replacement for ``doc``: new content, same metadata ``id``."""
    content = doc.page_content.replace("This is test document", UPDATED_PREFIX, 1)
    return Document(page_content=content, metadata=dict(doc.metadata))


def query_text(i: int, distinct: bool = False) -> str:
    """The ``i``-th query: ``"test document {i % 50}"``, or ``"test document {i}"`` if distinct."""
    return f"test document {i if distinct else i % 50}"  # the tutorial's 50 texts


def doc_key(i: int) -> str:
    """The metadata ``id`` of document ``i``."""
    return f"doc_{i}"


class CountingEmbeddings(Embeddings):
    """Wraps an embedding model, counting requests (calls) and texts, adding ``latency_s`` each;
    with ``inner_is_local`` (fake embeddings) the async methods call the sync ones directly, so
    no thread pool is part of what is measured."""

    def __init__(
        self, inner: Embeddings, latency_s: float = 0.0, *, inner_is_local: bool = False
    ) -> None:
        self.inner, self.latency_s, self.inner_is_local = inner, latency_s, inner_is_local
        self._lock = threading.Lock()
        self.requests = self.texts = 0

    def reset(self) -> None:
        with self._lock:
            self.requests = self.texts = 0

    def _count(self, texts: int) -> None:
        with self._lock:
            self.requests += 1
            self.texts += texts

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self._count(len(texts))
        if self.latency_s:
            time.sleep(self.latency_s)
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        self._count(len(texts))
        if self.latency_s:  # no sleep(0): it would change how the event loop schedules
            await asyncio.sleep(self.latency_s)
        if self.inner_is_local:
            return self.inner.embed_documents(texts)
        return await self.inner.aembed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        return (await self.aembed_documents([text]))[0]


def make_embeddings(config: BenchmarkConfig) -> CountingEmbeddings:
    """The counting embeddings the configuration asks for (:class:`ConfigError` if impossible)."""
    latency_s = config.embed_latency_ms / 1000.0
    if config.embeddings == "fake":
        fake = DeterministicFakeEmbedding(size=config.effective_dim or 0)
        return CountingEmbeddings(fake, latency_s, inner_is_local=True)
    api_key = os.environ.get("OPENAI_API_KEY")
    if not api_key and not config.openai_base_url:
        raise ConfigError("--embeddings openai needs OPENAI_API_KEY or --openai-base-url")
    try:
        from langchain_openai import OpenAIEmbeddings
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError("--embeddings openai needs langchain-openai "
                          "(pip install langchain-milvus-ext[openai])") from exc
    from pydantic import SecretStr

    inner = OpenAIEmbeddings(  # OpenAI-compatible servers usually take strings, not token ids
        model=config.openai_model, base_url=config.openai_base_url, dimensions=config.dim,
        api_key=SecretStr(api_key or "not-needed"),
        check_embedding_ctx_length=config.openai_base_url is None,
    )
    return CountingEmbeddings(inner, latency_s)
