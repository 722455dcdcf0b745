"""Contenders: what is benchmarked, and how each one is built, called and checked.

A store contender is a name, a mode (``sync`` loop or ``async`` gather) and a
:class:`StoreProfile`: a factory building a store from ``(uri, token, collection_name,
embeddings)``, how it deletes by the tutorial's metadata key, and how the benchmark's checker
selects its rows with a raw Milvus expression. The ``ceiling`` contender has no profile: it is
the same work as one batched call per workload through pymilvus directly (see ``ceiling.py``).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore

from .config import (
    CEILING,
    CONTENDERS,
    LCM_ASYNC,
    LCM_SYNC,
    OURS_ASYNC,
    OURS_SYNC,
    BenchmarkConfig,
    ConfigError,
)


class StoreFactory(Protocol):
    """Builds a store on a fresh collection (``drop_old=True``).

    ``index_params=None`` keeps the implementation's default index and metric.
    """

    def __call__(
        self,
        uri: str,
        token: str | None,
        collection_name: str,
        embeddings: Embeddings,
        *,
        index_params: dict[str, Any] | None = None,
    ) -> VectorStore: ...


Mode = Literal["sync", "async", "ceiling"]

OURS_CLASS_PATH = "langchain_milvus_ext.MilvusVectorStore"


@dataclass(frozen=True)
class StoreProfile:
    """How one vector-store implementation is built and driven.

    Attributes:
        implementation: Human-readable description, shown in the report.
        factory: Builds the store on a fresh collection (``drop_old=True``).
        delete_kwargs: Keyword arguments of ``delete``/``adelete`` removing the documents whose
            metadata ``id`` is the given key.
        key_filter: Raw Milvus expression matching the documents whose metadata ``id`` is one of
            the given keys; used by the checker, not by the timed work.
        text_field: Name of the scalar field holding ``page_content``.
    """

    implementation: str
    factory: StoreFactory
    delete_kwargs: Callable[[str], dict[str, Any]]
    key_filter: Callable[[Sequence[str]], str]
    text_field: str = "text"


@dataclass(frozen=True)
class Contender:
    """One column of the comparison."""

    name: str
    mode: Mode
    profile: StoreProfile | None = None

    @property
    def implementation(self) -> str:
        if self.profile is None:
            return "pymilvus MilvusClient, one batched call per workload"
        return f"{self.profile.implementation}, {self.mode}"


def connection_args(uri: str, token: str | None) -> dict[str, Any]:
    """``connection_args`` for the langchain-milvus constructor."""
    args: dict[str, Any] = {"uri": uri}
    if token:
        args["token"] = token
    return args


def _string_list(keys: Sequence[str]) -> str:
    return json.dumps(list(keys))


def scalar_key_filter(keys: Sequence[str]) -> str:
    """Rows whose metadata ``id`` is one of ``keys``: ``id in ["doc_0", ...]`` (a scalar field of
    langchain-milvus's and the ceiling's collections, a dynamic-field key of ours)."""
    return f"id in {_string_list(keys)}"


def _store_from_class(cls: Any, *, auto_id: bool) -> StoreFactory:
    def factory(
        uri: str,
        token: str | None,
        collection_name: str,
        embeddings: Embeddings,
        *,
        index_params: dict[str, Any] | None = None,
    ) -> VectorStore:
        store: VectorStore = cls(
            embedding_function=embeddings,
            collection_name=collection_name,
            connection_args=connection_args(uri, token),
            index_params=index_params,
            drop_old=True,
            auto_id=auto_id,
        )
        return store

    return factory


def _lcm_factory(
    uri: str,
    token: str | None,
    collection_name: str,
    embeddings: Embeddings,
    *,
    index_params: dict[str, Any] | None = None,
) -> VectorStore:
    from langchain_milvus import Milvus

    # auto_id=True like the tutorial; langchain-milvus's upsert still accepts the INT64 pks.
    factory = _store_from_class(Milvus, auto_id=True)
    return factory(uri, token, collection_name, embeddings, index_params=index_params)


def langchain_milvus_profile(label: str = "langchain_milvus.Milvus") -> StoreProfile:
    """langchain-milvus 0.4.0: metadata keys become scalar fields, deletes take ``expr=``."""
    return StoreProfile(
        implementation=label,
        factory=_lcm_factory,
        delete_kwargs=lambda key: {"expr": f"id == '{key}'"},
        key_filter=scalar_key_filter,
    )


def ours_profile(cls: Any) -> StoreProfile:
    """Our store: metadata keys in the dynamic field, deletes take a dict ``filter=``.

    Built with its default ``auto_id=False`` (ids assigned client-side): with ``auto_id=True``
    it refuses caller-chosen ids, so the upsert workload could not address existing rows.
    """
    return StoreProfile(
        implementation=OURS_CLASS_PATH,
        factory=_store_from_class(cls, auto_id=False),
        delete_kwargs=lambda key: {"filter": {"id": key}},
        key_filter=scalar_key_filter,
    )


def import_ours() -> Any:
    """Import ``langchain_milvus_ext.MilvusVectorStore`` (raises if it is not there yet)."""
    module = importlib.import_module("langchain_milvus_ext")
    return module.MilvusVectorStore


@dataclass(frozen=True)
class ResolvedContenders:
    """The contenders that will run, and those that cannot, with the reason."""

    contenders: list[Contender]
    unavailable: dict[str, str]

    def implementations(self) -> dict[str, str]:
        return {c.name: c.implementation for c in self.contenders}


def resolve_contenders(config: BenchmarkConfig) -> ResolvedContenders:
    """Build the contenders the configuration selects.

    With ``ours_impl="auto"`` a failing import of our store marks ``ours-*`` unavailable (the
    run goes on without them); ``"ext"`` makes it an error; ``"langchain-milvus"`` substitutes
    langchain-milvus as a stand-in, labelled as such.

    Raises:
        ConfigError: ``ours_impl="ext"`` and our store cannot be imported.
    """
    wanted = [c for c in CONTENDERS if c in config.contenders]
    unavailable: dict[str, str] = {}
    ours: StoreProfile | None = None
    if {OURS_SYNC, OURS_ASYNC}.intersection(wanted):
        if config.ours_impl == "langchain-milvus":
            ours = langchain_milvus_profile("langchain_milvus.Milvus (STAND-IN for ours)")
        else:
            try:
                ours = ours_profile(import_ours())
            except Exception as exc:  # any import-time failure, not only ImportError
                reason = (
                    f"cannot import {OURS_CLASS_PATH} ({type(exc).__name__}: {exc}); "
                    "pass --ours-impl langchain-milvus to benchmark a stand-in"
                )
                if config.ours_impl == "ext":
                    raise ConfigError(reason) from exc
                unavailable = {name: reason for name in (OURS_SYNC, OURS_ASYNC) if name in wanted}
    lcm = langchain_milvus_profile()
    table: dict[str, Contender | None] = {
        OURS_SYNC: Contender(OURS_SYNC, "sync", ours) if ours else None,
        OURS_ASYNC: Contender(OURS_ASYNC, "async", ours) if ours else None,
        LCM_SYNC: Contender(LCM_SYNC, "sync", lcm),
        LCM_ASYNC: Contender(LCM_ASYNC, "async", lcm),
        CEILING: Contender(CEILING, "ceiling"),
    }
    chosen = [c for name in wanted if (c := table[name]) is not None]
    return ResolvedContenders(chosen, unavailable)
