"""Tenant views against real servers: hostile filters, expressions and ids never cross tenants.

Three tenants share one partition-key collection: "acme", "bob" and a tenant whose name is
itself an injection attempt. Every read, delete and write method of a view is tried with the
hostile corpus of the filter-injection tests (`test_filters_lite.HOSTILE`) pasted into dict
filters, raw expressions and ids; every document, key or deleted row of another tenant is
counted as a leak. The counts are printed (`pytest -s`) and must be 0.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from pymilvus import DataType
from test_filters_lite import HOSTILE

from langchain_milvus_ext import MilvusVectorStore, TenantView

EVIL = 'acme") or (tenant == "bob'
TENANTS = ("acme", "bob", EVIL)
ROWS = 4
IDS = {t: [f"{n}{i}" for i in range(ROWS)] for n, t in zip("abe", TENANTS, strict=True)}
OWNER = {pk: t for t, pks in IDS.items() for pk in pks}

STATIC = [
    "x) or (true", '1 == 1) or (tenant == "bob"', 'tenant == "bob")) or ((1 == 1',
    "') or (1 == 1", 'pk in ["a"]] or true or [pk', "(tenant == 'bob'",
    'tenant == "bob"', 'tenant != "acme"', '(tenant == "acme") or (tenant == "bob")',
    'pk != ""', "1 == 1", 'tenant in ["acme", "bob"]', 'not (tenant == "acme")',
    'text like "%"', 'pk in ["b0", "e0"]', "n >= 0", "n >= 0 or true",
]
"""Raw expressions beyond the corpus: escapes (refused) and closed wide conditions."""


def conditions(value: str) -> list[dict[str, Any]]:
    """Search/delete keyword arguments naming `value` (a hostile string) in every form."""
    filters: list[Any] = [
        {"tenant": value}, {"tenant": {"$ne": value}}, {"tenant": {"$in": [value, "bob", EVIL]}},
        {"tenant": {"$nin": [value]}}, {"$or": [{"tenant": value}, {"tenant": "bob"}]},
        {"$not": {"tenant": value}}, {"n": value}, {"tenant": {"$like": value}},
    ]
    raw = [f'tenant == "{value}"', f"tenant == '{value}'", f'tenant != "{value}"',
           f'pk in ["{value}"]', f'text == "{value}" or tenant == "bob"', value]
    return ([{"filter": f} for f in filters] + [{"expr": e} for e in raw]
            + [{"filter": e} for e in raw])


CORPUS = [c for value in HOSTILE for c in conditions(value)] + [
    c for e in STATIC for c in ({"expr": e}, {"filter": e})]


@dataclass
class Tally:
    """Calls tried, refused (an error: nothing returned or done) and rows leaked."""

    tried: int = 0
    refused: int = 0
    leaked: int = 0
    own: int = 0
    leaks: list[str] = field(default_factory=list)

    def read(self, tenant: str, call: Callable[[], Any]) -> None:
        self.tried += 1
        try:
            result = call()
        except Exception:
            self.refused += 1
            return
        self.check(tenant, result)

    def check(self, tenant: str, result: Any) -> None:
        if isinstance(result, BaseException):
            self.refused += 1
            return
        for owner in owners(result):
            if owner == tenant:
                self.own += 1
            else:
                self.leaked += 1
                self.leaks.append(repr(owner))


def owners(result: Any) -> Iterator[Any]:
    """The tenant of each document or key in a result (lists, pairs and lists of lists)."""
    if isinstance(result, Document):
        yield result.metadata.get("tenant")
    elif isinstance(result, tuple):
        yield from owners(result[0])
    elif isinstance(result, list):
        for item in result:
            yield from owners(item)
    else:
        yield OWNER.get(result, f"unknown key {result!r}")


TENANT_COLUMN = {"tenant": {"dtype": DataType.VARCHAR, "max_length": 512}}
"""The tenant as a plain VARCHAR column (`for_tenant(..., field="tenant")`): on Milvus 2.3.5
an equality on a partition key (`tenant == "acme"`) finds no rows, so there the views are
tested on such a column."""


def make_store(uri: str, **kwargs: Any) -> MilvusVectorStore:
    """Three tenants' rows in a fresh collection (a partition-key one unless told)."""
    if "metadata_schema" not in kwargs:
        kwargs["partition_key_field"] = "tenant"
    kwargs.setdefault("consistency_level", "Strong")
    store = MilvusVectorStore(
        DeterministicFakeEmbedding(size=8), collection_name="tenants",
        connection_args={"uri": uri}, drop_old=True, **kwargs)
    for tenant, pks in IDS.items():
        store.add_texts([f"{tenant} doc {i}" for i in range(ROWS)],
                        [{"tenant": tenant, "n": i} for i in range(ROWS)], ids=pks)
    return store


def snapshot(store: MilvusVectorStore) -> dict[str, tuple[str, Any]]:
    docs = store.search_by_metadata('pk != ""', limit=1000)
    return {str(d.id): (d.page_content, d.metadata.get("tenant")) for d in docs}


BACKENDS = [
    pytest.param(("lite_uri", {}), marks=pytest.mark.lite, id="lite"),
    pytest.param(("lite_server_uri", {}), marks=pytest.mark.server, id="lite-server"),
    # Session: one client sees its own writes, without Strong's wait on every read.
    pytest.param(("milvus235_uri", {"metadata_schema": TENANT_COLUMN,
                                    "consistency_level": "Session"}),
                 marks=pytest.mark.server, id="milvus-2.3.5"),
]


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, quiet_pymilvus: None) -> Iterator[MilvusVectorStore]:
    uri_fixture, options = request.param
    store = make_store(request.getfixturevalue(uri_fixture), **options)
    yield store
    store.drop()
    store.close()


@pytest.fixture()
def corpus(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    """The corpus, or every fourth condition on Milvus 2.3.5 (slower per call: the whole
    corpus would outlast the test timeout there)."""
    uri_fixture, _ = request.node.callspec.params["store"]
    return CORPUS[::4] if uri_fixture == "milvus235_uri" else CORPUS


def for_tenant(store: MilvusVectorStore, tenant: str) -> TenantView:
    """The store's view of `tenant`: on its partition key, else on the `tenant` column."""
    return store.for_tenant(tenant, field=None if store._partition_key_field else "tenant")


def sync_reads(view: TenantView, condition: dict[str, Any]) -> list[Callable[[], Any]]:
    expr = condition.get("filter", condition.get("expr"))
    vector = [0.1] * 8
    return [
        lambda: view.similarity_search("doc", k=20, **condition),
        lambda: view.similarity_search_with_score_by_vector(vector, k=20, **condition),
        lambda: view.similarity_search_with_relevance_scores("doc", k=20, **condition),
        lambda: view.similarity_search_batch(["doc", "acme"], k=20, **condition),
        lambda: view.max_marginal_relevance_search("doc", k=5, fetch_k=20, **condition),
        lambda: view.search_by_metadata(expr, limit=100),
        lambda: view.get_pks(expr, limit=100),
        lambda: view.as_retriever(search_kwargs={"k": 20, **condition}).invoke("doc"),
    ]


def async_reads(view: TenantView, condition: dict[str, Any]) -> list[Any]:
    expr = condition.get("filter", condition.get("expr"))
    return [
        view.asimilarity_search("doc", k=20, **condition),
        view.amax_marginal_relevance_search("doc", k=5, fetch_k=20, **condition),
        view.asearch_by_metadata(expr, limit=100),
        view.aget_pks(expr, limit=100),
        view.as_retriever(search_kwargs={"k": 20, **condition}).ainvoke("doc"),
    ]


def test_reads_never_cross_tenants(
    store: MilvusVectorStore, corpus: list[dict[str, Any]],
    report_figures: Callable[[str, dict[str, object]], None],
) -> None:
    views = {t: for_tenant(store, t) for t in ("acme", EVIL)}
    tally = Tally()
    for tenant, view in views.items():  # sanity: each view sees all of its own rows
        assert sorted(d.id or "" for d in view.similarity_search("doc", k=50)) == IDS[tenant]
        for condition in corpus:
            for call in sync_reads(view, condition):
                tally.read(tenant, call)
        foreign = [pk for t, pks in IDS.items() if t != tenant for pk in pks]
        for value in [*HOSTILE, *foreign]:
            if value:
                ids = [value, *foreign]
                tally.read(tenant, lambda i=ids, v=view: v.get_by_ids(i))

    async def concurrently() -> None:  # both views at once: their calls share coalescers
        for start in range(0, len(corpus), 25):
            chunk = corpus[start:start + 25]
            calls = [(t, c) for t, view in views.items() for cond in chunk
                     for c in async_reads(view, cond)]
            calls += [(t, views[t].aget_by_ids(IDS["bob"] + IDS[other]))
                      for t, other in (("acme", EVIL), (EVIL, "acme"))]
            results = await asyncio.gather(*(c for _, c in calls), return_exceptions=True)
            for (tenant, _), result in zip(calls, results, strict=True):
                tally.tried += 1
                tally.check(tenant, result)

    asyncio.run(concurrently())
    report_figures("tenant reads", {"tried": tally.tried, "refused": tally.refused,
                                    "own rows returned": tally.own, "leaked": tally.leaked})
    assert tally.leaked == 0, tally.leaks[:20]
    assert tally.own > 0


def test_deletes_never_cross_tenants(
    store: MilvusVectorStore, corpus: list[dict[str, Any]],
    report_figures: Callable[[str, dict[str, object]], None],
) -> None:
    before = snapshot(store)
    tried = refused = 0
    for tenant in ("acme", EVIL):
        view = for_tenant(store, tenant)
        foreign = [pk for t, pks in IDS.items() if t != tenant for pk in pks]
        attempts: list[dict[str, Any]] = [
            *corpus, {"ids": foreign}, *({"ids": [v]} for v in HOSTILE if v),
            *({"ids": foreign, **c} for c in corpus[:40]),
        ]
        for condition in attempts[::2]:
            tried += 1
            try:
                view.delete(**condition)
            except Exception:
                refused += 1

        async def concurrently(view: TenantView = view,
                               attempts: list[dict[str, Any]] = attempts) -> list[Any]:
            return await asyncio.gather(*(view.adelete(**c) for c in attempts[1::2]),
                                        return_exceptions=True)

        results = asyncio.run(concurrently())
        tried += len(results)
        refused += sum(isinstance(r, BaseException) for r in results)
        after = snapshot(store)
        others = {pk: row for pk, row in before.items() if row[1] != tenant}
        lost = {pk for pk in others if after.get(pk) != others[pk]}
        report_figures(f"tenant deletes from {tenant!r}", {
            "tried": len(attempts), "rows of other tenants deleted": len(lost)})
        assert not lost, sorted(lost)
        before = after
    report_figures("tenant deletes", {"tried": tried, "refused": refused, "leaked": 0})


def test_deletes_of_several_tenants_coalesced_stay_apart(store: MilvusVectorStore) -> None:
    acme, bob = for_tenant(store, "acme"), for_tenant(store, "bob")

    async def together() -> None:
        await asyncio.gather(
            acme.adelete(ids=IDS["bob"]), acme.adelete(filter={"tenant": "bob"}),
            acme.adelete(expr='tenant == "bob"'), bob.adelete(ids=["b0"]),
            bob.adelete(ids=["a1"]), bob.adelete(filter={"n": 3}), acme.adelete(ids=["a2"]))

    asyncio.run(together())
    # Strong: the async client deleted; a Session read of the sync client may not see it yet.
    left = set(map(str, store.get_pks('pk != ""', consistency_level="Strong")))
    assert left == set(OWNER) - {"b0", "b3", "a2"}


def test_writes_are_stamped_and_never_cross_tenants(
    store: MilvusVectorStore, report_figures: Callable[[str, dict[str, object]], None],
) -> None:
    acme = for_tenant(store, "acme")
    others = {pk: row for pk, row in snapshot(store).items() if row[1] != "acme"}
    tried = refused = 0
    attempts: list[Callable[[], Any]] = []
    for value in [*HOSTILE, "bob", EVIL, "ACME", " acme"]:
        attempts += [
            lambda v=value: acme.add_texts(["w"], [{"tenant": v}]),
            lambda v=value: acme.add_documents([Document("w", metadata={"tenant": v})]),
            lambda v=value: acme.upsert(documents=[Document("w", metadata={"tenant": v})]),
        ]
    for pk in [pk for pks in (IDS["bob"], IDS[EVIL]) for pk in pks]:
        attempts += [
            lambda p=pk: acme.add_texts(["w"], ids=[p]),
            lambda p=pk: acme.upsert(documents=[Document("w", id=p)]),
            lambda p=pk: asyncio.run(acme.aadd_texts(["w"], ids=[p])),
            lambda p=pk: asyncio.run(acme.aupsert(ids=[p], documents=[Document("w")])),
        ]
    for attempt in attempts:
        tried += 1
        with pytest.raises(ValueError, match="tenant"):
            attempt()
        refused += 1
    ids = acme.add_texts(["stamped"], [{"n": 9}]) + asyncio.run(acme.aadd_texts(["stamped"]))
    assert [d.metadata["tenant"] for d in acme.get_by_ids(ids)] == ["acme", "acme"]
    assert for_tenant(store, "bob").get_by_ids(ids) == []
    after = snapshot(store)
    leaked = sum(after.get(pk) != row for pk, row in others.items())
    leaked += sum(row[1] != "acme" and pk not in others for pk, row in after.items())
    report_figures("tenant writes", {"tried": tried, "refused": refused, "leaked": leaked})
    assert leaked == 0


@pytest.mark.parametrize("backend", [
    pytest.param("lite_uri", marks=pytest.mark.lite, id="lite"),
    pytest.param("lite_server_uri", marks=pytest.mark.server, id="lite-server"),
])
def test_hybrid_search_never_crosses_tenants(
    backend: str, request: pytest.FixtureRequest, quiet_pymilvus: None,
    report_figures: Callable[[str, dict[str, object]], None],
) -> None:
    store = make_store(request.getfixturevalue(backend), full_text_search=True)
    view = for_tenant(store, "acme")
    assert sorted(d.id or "" for d in view.hybrid_search("doc", k=50)) == IDS["acme"]
    tally = Tally()
    retriever = view.as_retriever(search_type="hybrid", search_kwargs={"k": 20})
    for condition in CORPUS:
        tally.read("acme", lambda c=condition: view.hybrid_search_with_score("doc", k=20, **c))
        tally.read("acme", lambda c=condition: retriever.invoke("doc", **c))

    async def concurrently() -> list[Any]:
        return await asyncio.gather(*(view.ahybrid_search("doc", k=20, **c) for c in CORPUS),
                                    return_exceptions=True)

    for result in asyncio.run(concurrently()):
        tally.tried += 1
        tally.check("acme", result)
    store.drop()
    report_figures("tenant hybrid searches", {"tried": tally.tried, "refused": tally.refused,
                                              "own rows returned": tally.own,
                                              "leaked": tally.leaked})
    assert tally.leaked == 0, tally.leaks[:20]
    assert tally.own > 0


@pytest.mark.lite
def test_for_tenant_needs_a_tenant_column(lite_uri: str) -> None:
    plain = MilvusVectorStore(DeterministicFakeEmbedding(size=8),
                              connection_args={"uri": lite_uri})
    with pytest.raises(ValueError, match="partition_key_field"):
        plain.for_tenant("acme")
    view = make_store(lite_uri).for_tenant("acme")
    for refused in (lambda: view.client, view.drop, lambda: view.for_tenant("bob")):
        with pytest.raises(ValueError, match="tenant view"):
            refused()
    with pytest.raises(ValueError, match="non-empty string"):
        make_store(lite_uri).for_tenant("")
