"""Benchmark configuration: workload and contender names, the run settings and their CLI flags.

Every setting is a field of :class:`BenchmarkConfig`; its ``metadata`` holds the CLI help, so
the parser in ``__main__`` is derived from the dataclass, never restated.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Any

STORE_WORKLOADS: tuple[str, ...] = ("add", "search", "mmr", "delete", "upsert")
"""The tutorial's workloads: N concurrent single calls (or a sync loop) per case."""
WORKLOADS: tuple[str, ...] = (*STORE_WORKLOADS, "service")
"""Every workload, in report order. ``service`` = one search per HTTP request to an ASGI app."""

OURS_SYNC, OURS_ASYNC = "ours-sync", "ours-async"
LCM_SYNC, LCM_ASYNC = "langchain-milvus-sync", "langchain-milvus-async"
CEILING = "ceiling"
CONTENDERS: tuple[str, ...] = (OURS_SYNC, OURS_ASYNC, LCM_SYNC, LCM_ASYNC, CEILING)
"""Every contender, in report order (the service workload runs the two async ones)."""

EMBEDDINGS: tuple[str, ...] = ("fake", "openai")
TARGETS: tuple[str, ...] = ("lite", "lite-server")
METRICS: tuple[str, ...] = ("COSINE", "L2", "IP", "native")
QUERY_SETS: tuple[str, ...] = ("tutorial", "distinct")
DEFAULT_FAKE_DIM = 128
DEFAULT_PLOT_PATH = "benchmark-results/benchmark.png"
INSTALL_EXTRA = "pip install 'langchain-milvus-ext[benchmark]'"

PRESETS: dict[str, dict[str, Any]] = {
    "quick": {"n": (10, 100), "prefill": 200, "repeat": 1},
    "full": {"n": (10, 100, 1000), "workloads": STORE_WORKLOADS},
}
"""``--quick`` and ``--full``: values for the settings not given explicitly."""


class ConfigError(ValueError):
    """The benchmark configuration is invalid."""


def _opt(default: Any, help: str, **cli: Any) -> Any:
    """A config field whose CLI flag is derived from its name; ``cli`` goes to argparse."""
    return field(default=default, metadata={"help": help, **cli})


@dataclass(frozen=True)
class BenchmarkConfig:
    """Settings of one benchmark run.

    Each field is one CLI flag (``--field-name``) and is documented once, by the ``help`` in
    its metadata (what ``--help`` prints). ``repeat`` timed repetitions run per case, each
    after a warm-up call; a case stops repeating early when one more repetition (at the mean
    so far) would take its timed total past ``case_budget_s``, so the default run stays near
    3 minutes on 2 cores (slow cells such as 1,000 sync Lite calls run once). ``min_recall``
    is the least mean recall@k of searches against brute force; ``collection_prefix`` names
    the collections the benchmark creates and drops.

    Example:
        >>> BenchmarkConfig(n=(5,), prefill=20).validate()
    """

    n: tuple[int, ...] = _opt((100, 1000), "operations per case", metavar="N")
    prefill: int = _opt(1000, "documents pre-loaded for every workload but add", metavar="DOCS")
    workloads: tuple[str, ...] = _opt(
        ("add", "search", "delete"), "some of %(choices)s", choices=WORKLOADS, metavar="W"
    )
    contenders: tuple[str, ...] = _opt(
        CONTENDERS, "some of %(choices)s", choices=CONTENDERS, metavar="C"
    )
    repeat: int = _opt(3, "timed repetitions per case (median and min-max reported)")
    case_budget_s: float = _opt(
        10.0, "seconds of timed work after which a case repeats no more (0: no limit)", metavar="S"
    )
    k: int = _opt(3, "results per search")
    fetch_k: int = _opt(20, "MMR candidates")
    lambda_mult: float = _opt(0.5, "MMR diversity")
    metric: str = _opt(
        "COSINE", "AUTOINDEX metric forced on every contender; native = each store's own",
        choices=METRICS,
    )
    queries: str = _opt(
        "tutorial",
        'search/mmr query texts: tutorial = "test document {i %% 50}" (50 distinct, searched '
        'once each by our async store); distinct = "test document {i}"',
        choices=QUERY_SETS,
    )
    service_concurrency: tuple[int, ...] = _opt(
        (1, 16, 128), "concurrent HTTP clients of the service workload", metavar="C"
    )
    service_requests: int = _opt(500, "requests per service case")
    embeddings: str = _opt("fake", "fake = DeterministicFakeEmbedding", choices=EMBEDDINGS)
    dim: int | None = _opt(None, "embedding size (default: 128 fake, the model's)", type=int)
    embed_latency_ms: float = _opt(0.0, "simulated latency per embedding request", metavar="MS")
    openai_model: str = _opt("text-embedding-3-small", "OpenAI embedding model")
    openai_base_url: str | None = _opt(None, "OpenAI-compatible embedding server", type=str)
    uri: str | None = _opt(None, "Milvus URI (default: Milvus Lite in a temp dir)", type=str)
    target: str = _opt("lite", "without --uri: Lite in-process or a lite server", choices=TARGETS)
    token: str | None = _opt(None, "Milvus token", type=str)
    seed: int = _opt(42, "document RNG seed")
    keep_collections: bool = _opt(False, "do not drop each case's collection")
    fail_fast: bool = _opt(False, "stop at the first failed case")
    progress: bool = _opt(True, "progress bar on stderr")
    min_recall: float = field(default=0.9)
    collection_prefix: str = field(default="lcmx_bench")

    @property
    def effective_dim(self) -> int | None:
        """The embedding size actually requested (``None``: the OpenAI model's default)."""
        if self.dim is not None:
            return self.dim
        return DEFAULT_FAKE_DIM if self.embeddings == "fake" else None

    @property
    def distinct_queries(self) -> bool:
        """``True`` when every search / MMR query text is different."""
        return self.queries == "distinct"

    def validate(self) -> None:
        """Raise :class:`ConfigError` if the settings cannot produce a meaningful run."""
        if not self.n or min(self.n) < 1:
            raise ConfigError(f"--n needs positive integers, got {list(self.n)}")
        for f in fields(self):
            choices = f.metadata.get("choices")
            value = getattr(self, f.name)
            chosen = value if isinstance(value, tuple) else (value,)
            if choices and (not chosen or set(chosen) - set(choices)):
                raise ConfigError(f"unknown --{_flag(f.name)} {value!r}; choose from {choices}")
            if isinstance(value, tuple) and len(set(value)) != len(value):
                raise ConfigError(f"duplicate values in --{_flag(f.name)} {list(value)}")
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
        if data["token"]:
            data["token"] = "***"
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchmarkConfig:
        """Inverse of :meth:`to_dict` (a masked token stays masked; unknown keys are ignored)."""
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                                  for k, v in data.items() if k in known}  # fmt: skip
        return cls(**values)

    @classmethod
    def with_preset(cls, preset: str | None, **given: Any) -> BenchmarkConfig:
        """The defaults, overridden by a :data:`PRESETS` entry, overridden by ``given``."""
        return replace(cls(), **{**PRESETS.get(preset or "", {}), **given})


def cli_fields() -> list[tuple[str, Any, dict[str, Any]]]:
    """``(name, default, argparse options)`` of every setting that is a CLI flag."""
    out = []
    for f in fields(BenchmarkConfig):
        if "help" in f.metadata and f.default is not MISSING:
            out.append((f.name, f.default, dict(f.metadata)))
    return out


def _flag(name: str) -> str:
    return name.replace("_", "-")


def require_extra(*, progress: bool, plot: bool, service: bool = False) -> None:
    """Check that the modules of the ``benchmark`` extra this run uses can be imported.

    Args:
        progress: The run shows a progress bar (needs tqdm).
        plot: The run writes a chart (needs matplotlib).
        service: The run has the service workload (needs starlette, uvicorn, httpx).

    Raises:
        ConfigError: A module is missing; the message says what to install.
    """
    wanted = {"tqdm": progress, "matplotlib": plot, "starlette": service, "uvicorn": service,
              "httpx": service}  # fmt: skip
    missing = [name for name, used in wanted.items() if used and not _importable(name)]
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
