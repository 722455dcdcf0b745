"""Benchmark configuration: names of workloads and contenders, and the run settings."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

WORKLOADS: tuple[str, ...] = ("add", "search", "mmr", "delete", "upsert")
"""Every workload, in the order they run and are reported."""

OURS_SYNC = "ours-sync"
OURS_ASYNC = "ours-async"
LCM_SYNC = "langchain-milvus-sync"
LCM_ASYNC = "langchain-milvus-async"
CEILING = "ceiling"

CONTENDERS: tuple[str, ...] = (OURS_SYNC, OURS_ASYNC, LCM_SYNC, LCM_ASYNC, CEILING)
"""Every contender, in report order."""

PREFILLED_WORKLOADS: frozenset[str] = frozenset({"search", "mmr", "delete", "upsert"})
"""Workloads that run on a collection pre-filled with ``prefill`` documents."""

OURS_IMPLS: tuple[str, ...] = ("auto", "ext", "langchain-milvus")
"""How the ``ours-*`` contenders are built: ``ext`` = ``langchain_milvus_ext.MilvusVectorStore``
(fail if missing); ``auto`` = that, or mark them unavailable; ``langchain-milvus`` = a stand-in
built from ``langchain_milvus.Milvus`` (for developing the benchmark itself)."""

EMBEDDINGS: tuple[str, ...] = ("fake", "openai")

TARGETS: tuple[str, ...] = ("lite", "lite-server")
"""Without ``uri``: a Milvus Lite file served in-process (``lite``), or a Milvus Lite server
started as a separate process on a free loopback port (``lite-server``)."""

METRICS: tuple[str, ...] = ("COSINE", "L2", "IP", "native")
"""Index metric forced on every contender (AUTOINDEX), or ``native``: each store's default
(langchain-milvus L2, ours COSINE; the ceiling then uses pymilvus's default, COSINE)."""

QUERY_SETS: tuple[str, ...] = ("tutorial", "distinct")
"""Query texts of the search and MMR workloads: ``tutorial`` = the published tutorial's
``"test document {i % 50}"`` (50 distinct texts, whatever N); ``distinct`` =
``"test document {i}"``, every query different. Our async store searches equal concurrent
queries once, so only ``distinct`` makes every one of the N queries a separate search."""

DEFAULT_N: tuple[int, ...] = (10, 100, 1000)
DEFAULT_PREFILL = 1000
QUICK_N: tuple[int, ...] = (10, 100)
QUICK_PREFILL = 200
DEFAULT_FAKE_DIM = 128
DEFAULT_PLOT_PATH = "benchmark-results/benchmark.png"


class ConfigError(ValueError):
    """The benchmark configuration is invalid."""


INSTALL_EXTRA = "pip install 'langchain-milvus-ext[benchmark]'"


def require_extra(*, progress: bool, plot: bool) -> None:
    """Check that the modules of the `benchmark` extra this run uses can be imported.

    Args:
        progress: The run shows a progress bar (needs tqdm).
        plot: The run writes a chart (needs matplotlib).

    Raises:
        ConfigError: A module is missing; the message says what to install.
    """
    wanted = [name for name, used in (("tqdm", progress), ("matplotlib", plot)) if used]
    missing = [name for name in wanted if not _importable(name)]
    if missing:
        hint = " (or run with --no-progress)" if missing == ["tqdm"] else ""
        raise ConfigError(
            f"the benchmark needs {' and '.join(missing)}, from its 'benchmark' extra: "
            f"{INSTALL_EXTRA}{hint}"
        )


def _importable(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class BenchmarkConfig:
    """Settings of one benchmark run.

    Args:
        n: Numbers of concurrent single operations per workload (one case per value).
        prefill: Documents loaded (untimed) before the search, mmr, delete and upsert workloads.
        workloads: Subset of :data:`WORKLOADS`.
        contenders: Subset of :data:`CONTENDERS`.
        k: Results per search / MMR call.
        fetch_k: MMR candidate count.
        lambda_mult: MMR diversity parameter.
        metric: One of :data:`METRICS`; the same AUTOINDEX metric for every contender by default.
        embeddings: ``"fake"`` (``DeterministicFakeEmbedding``) or ``"openai"``.
        dim: Embedding size; ``None`` = 128 for fake, the model's default for OpenAI.
        embed_latency_ms: Simulated latency added to every embedding request.
        openai_model: OpenAI embedding model name.
        openai_base_url: Base URL of an OpenAI-compatible embedding server.
        uri: Milvus URI; ``None`` = Milvus Lite in a temporary directory (see ``target``).
        target: One of :data:`TARGETS`; used when ``uri`` is ``None``.
        token: Milvus token.
        seed: Seed of the document RNG.
        ours_impl: One of :data:`OURS_IMPLS`.
        collection_prefix: Prefix of the collections the benchmark creates (and drops).
        keep_collections: Leave each case's collection in place after it ran.
        fail_fast: Stop at the first failed case instead of recording it and going on.
        min_recall: Minimum mean recall@k of the search workload (fake embeddings only).
        queries: One of :data:`QUERY_SETS`, the query texts of the search and MMR workloads:
            ``"tutorial"`` = the tutorial's ``"test document {i % 50}"`` (50 distinct texts);
            ``"distinct"`` = ``"test document {i}"``, every query different.
        progress: Show a tqdm progress bar on stderr.

    Example:
        >>> BenchmarkConfig(n=(5,), prefill=20).validate()
    """

    n: tuple[int, ...] = DEFAULT_N
    prefill: int = DEFAULT_PREFILL
    workloads: tuple[str, ...] = WORKLOADS
    contenders: tuple[str, ...] = CONTENDERS
    k: int = 3
    fetch_k: int = 20
    lambda_mult: float = 0.5
    metric: str = "COSINE"
    embeddings: str = "fake"
    dim: int | None = None
    embed_latency_ms: float = 0.0
    openai_model: str = "text-embedding-3-small"
    openai_base_url: str | None = None
    uri: str | None = None
    target: str = "lite"
    token: str | None = None
    seed: int = 42
    ours_impl: str = "auto"
    collection_prefix: str = "lcmx_bench"
    keep_collections: bool = False
    fail_fast: bool = False
    min_recall: float = 0.9
    queries: str = "tutorial"
    progress: bool = True

    @property
    def effective_dim(self) -> int | None:
        """The embedding size actually requested (``None``: the OpenAI model's default)."""
        if self.dim is not None:
            return self.dim
        return DEFAULT_FAKE_DIM if self.embeddings == "fake" else None

    @property
    def distinct_queries(self) -> bool:
        """``True`` when every search / MMR query text is different (``queries="distinct"``)."""
        return self.queries == "distinct"

    def validate(self) -> None:
        """Raise :class:`ConfigError` if the settings cannot produce a meaningful run."""
        if not self.n or any(v < 1 for v in self.n):
            raise ConfigError(f"--n needs positive integers, got {list(self.n)}")
        _check_subset("workload", self.workloads, WORKLOADS)
        _check_subset("contender", self.contenders, CONTENDERS)
        if self.embeddings not in EMBEDDINGS:
            raise ConfigError(f"unknown embeddings {self.embeddings!r}; choose from {EMBEDDINGS}")
        if self.target not in TARGETS:
            raise ConfigError(f"unknown target {self.target!r}; choose from {TARGETS}")
        if self.metric not in METRICS:
            raise ConfigError(f"unknown metric {self.metric!r}; choose from {METRICS}")
        if self.queries not in QUERY_SETS:
            raise ConfigError(f"unknown --queries {self.queries!r}; choose from {QUERY_SETS}")
        if self.ours_impl not in OURS_IMPLS:
            raise ConfigError(f"unknown --ours-impl {self.ours_impl!r}; choose from {OURS_IMPLS}")
        if self.k < 1 or self.fetch_k < self.k:
            raise ConfigError(f"need 1 <= k <= fetch_k, got k={self.k} fetch_k={self.fetch_k}")
        if self.embed_latency_ms < 0:
            raise ConfigError("--embed-latency-ms must be >= 0")
        if self.dim is not None and self.dim < 2:
            raise ConfigError("--dim must be >= 2")
        if {"search", "mmr"}.intersection(self.workloads) and self.prefill < self.fetch_k:
            raise ConfigError(f"--prefill must be >= fetch_k ({self.fetch_k}) for search/mmr")
        if PREFILLED_WORKLOADS.intersection(self.workloads) and self.prefill < 1:
            raise ConfigError("--prefill must be >= 1")
        for_ids = {"delete", "upsert"}.intersection(self.workloads)
        if for_ids and self.prefill < max(self.n):
            raise ConfigError(
                f"--prefill ({self.prefill}) must be >= the largest N ({max(self.n)}) for "
                f"{'/'.join(sorted(for_ids))}: each operation targets a distinct existing document"
            )

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-compatible values (the token is masked)."""
        data = asdict(self)
        data["n"] = list(self.n)
        data["workloads"] = list(self.workloads)
        data["contenders"] = list(self.contenders)
        if data["token"]:
            data["token"] = "***"
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchmarkConfig:
        """Inverse of :meth:`to_dict` (a masked token stays masked)."""
        values = dict(data)
        for key in ("n", "workloads", "contenders"):
            if key in values:
                values[key] = tuple(values[key])
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in values.items() if k in known})


def _check_subset(what: str, chosen: tuple[str, ...], allowed: tuple[str, ...]) -> None:
    if not chosen:
        raise ConfigError(f"choose at least one {what}")
    unknown = [c for c in chosen if c not in allowed]
    if unknown:
        raise ConfigError(f"unknown {what}(s) {unknown}; choose from {list(allowed)}")
    if len(set(chosen)) != len(chosen):
        raise ConfigError(f"duplicate {what}s in {list(chosen)}")
