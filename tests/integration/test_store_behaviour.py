"""Store behaviour against embedded Milvus Lite: ids, filters, metadata, scores, bad input, MMR.

Every test works on a fresh collection of one Lite file and checks what the server really holds
(counts, contents), not only what the store returns.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from pymilvus import MilvusException

from langchain_milvus_ext import MilvusVectorStore

pytestmark = [pytest.mark.lite, pytest.mark.timeout(120)]

DIM = 16
EMBEDDINGS = DeterministicFakeEmbedding(size=DIM)
Make = Callable[..., MilvusVectorStore]


@pytest.fixture(scope="module")
def uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("behaviour") / "x.db")


@pytest.fixture()
def make(uri: str) -> Iterator[Make]:
    """Stores on fresh collections (unless `collection_name` is given); dropped afterwards."""
    stores: list[MilvusVectorStore] = []

    def factory(**kwargs: Any) -> MilvusVectorStore:
        kwargs.setdefault("collection_name", f"c_{uuid.uuid4().hex[:12]}")
        kwargs.setdefault("consistency_level", "Strong")
        # These tests were written for COSINE scores (1.0 = same vector); the L2 default is
        # covered by test_dropin.py.
        kwargs.setdefault("index_params", {"metric_type": "COSINE"})
        store = MilvusVectorStore(EMBEDDINGS, connection_args={"uri": uri}, **kwargs)
        stores.append(store)
        return store

    yield factory
    for store in stores:
        try:
            store.drop()
        finally:
            store.close()


def count(store: MilvusVectorStore) -> int | None:
    """Rows in the store's collection, or None if the collection does not exist."""
    client = store.client
    if not client.has_collection(store.collection_name):
        return None
    rows = client.query(store.collection_name, filter="", output_fields=["count(*)"])
    return int(rows[0]["count(*)"])


def ids_of(documents: list[Document]) -> list[str | None]:
    return [d.id for d in documents]


def exact(value: Any) -> str:
    """A rendering that tells 1 from 1.0 from True (for exact round-trip checks)."""
    return json.dumps(value, sort_keys=True)


TEXTS = [f"document number {i}" for i in range(12)]


# ============================================================================================
# ids
# ============================================================================================


async def test_results_carry_document_id_and_pk_is_not_metadata(make: Make) -> None:
    store = make()
    ids = [f"id-{i}" for i in range(4)]
    metas = [{"n": i} for i in range(4)]
    assert store.add_texts(TEXTS[:4], metadatas=metas, ids=ids) == ids
    by_id = dict(zip(ids, metas, strict=True))
    results: list[list[Document]] = [
        store.similarity_search(TEXTS[2], k=4),
        [d for d, _ in store.similarity_search_with_score(TEXTS[2], k=4)],
        [d for d, _ in store.similarity_search_with_relevance_scores(TEXTS[2], k=4)],
        store.max_marginal_relevance_search(TEXTS[2], k=4, fetch_k=4),
        store.get_by_ids(ids),
        store.search_by_metadata({"n": {"$gte": 0}}),
        await store.asimilarity_search(TEXTS[2], k=4),
        await store.aget_by_ids(ids),
        store.similarity_search_batch([TEXTS[2]], k=4)[0],
    ]
    for docs in results:
        assert sorted(ids_of(docs)) == ids
        for doc in docs:
            assert doc.metadata == by_id[doc.id]  # exactly the metadata: no pk, no text
            assert doc.page_content == TEXTS[ids.index(doc.id)]
    assert ids_of(store.similarity_search(TEXTS[2], k=1)) == ["id-2"]


def test_add_with_existing_id_replaces(make: Make) -> None:
    store = make()
    store.add_texts(["one", "two"], metadatas=[{"v": 1}, {"v": 2}], ids=["1", "2"])
    assert store.add_texts(["one again"], metadatas=[{"v": 10}], ids=["1"]) == ["1"]
    assert count(store) == 2
    (doc,) = store.get_by_ids(["1"])
    assert (doc.page_content, doc.metadata) == ("one again", {"v": 10})
    # via Document.id, and the new vector is searchable
    assert store.add_documents([Document("two replaced", metadata={"v": 20}, id="2")]) == ["2"]
    assert count(store) == 2
    assert [(d.id, d.page_content) for d in store.similarity_search("two replaced", k=1)] == [
        ("2", "two replaced")]
    assert store.search_by_metadata({"v": 2}) == []


def test_generated_ids_are_unique_strings(make: Make) -> None:
    store = make()
    first = store.add_texts(TEXTS)
    second = store.add_documents([Document(t) for t in TEXTS[:5]])
    ids = first + second
    assert all(isinstance(i, str) and i for i in ids)
    assert len(set(ids)) == len(ids) == 17
    assert count(store) == 17
    assert ids_of(store.get_by_ids(first)) == first
    # documents with and without ids in one call: the missing ones are generated
    mixed = store.add_documents([Document("with id", id="mine"), Document("without id")])
    assert mixed[0] == "mine" and mixed[1] not in ids and isinstance(mixed[1], str)
    assert count(store) == 19


async def test_auto_id_store(make: Make) -> None:
    store = make(auto_id=True)
    ids = store.add_texts(["auto one", "auto two"], metadatas=[{"n": 1}, {"n": 2}])
    assert len(ids) == 2 and all(isinstance(i, str) and i.lstrip("-").isdigit() for i in ids)
    more = await store.aadd_texts(["auto three"], metadatas=[{"n": 3}])
    assert len(more) == 1 and isinstance(more[0], str) and more[0] not in ids
    ids += more
    assert count(store) == 3
    # ids cannot be chosen: ValueError, nothing written
    with pytest.raises(ValueError, match="auto_id"):
        store.add_texts(["chosen"], ids=["12345"])
    with pytest.raises(ValueError, match="auto_id"):
        await store.aadd_texts(["chosen"], ids=["12345"])
    with pytest.raises(ValueError, match="auto_id"):
        store.add_documents([Document("chosen", id="777")])
    assert count(store) == 3
    # the INT64 keys, given back as strings, work everywhere
    docs = store.get_by_ids(list(reversed(ids)))
    assert ids_of(docs) == list(reversed(ids))
    assert [d.page_content for d in docs] == ["auto three", "auto two", "auto one"]
    assert ids_of(await store.aget_by_ids(ids)) == ids
    assert store.similarity_search("auto two", k=1)[0].id == ids[1]
    pks = store.get_pks({"n": {"$lte": 2}})
    assert sorted(pks) == sorted(int(i) for i in ids[:2])
    assert all(isinstance(p, int) for p in pks)
    assert store.delete([ids[0]]) is True
    assert count(store) == 2
    # a new store object on the same collection reads auto_id and the INT64 key from the server
    reopened = make(collection_name=store.collection_name)
    assert ids_of(reopened.get_by_ids(ids)) == ids[1:]
    new = reopened.add_texts(["auto four"])
    assert new[0].lstrip("-").isdigit()
    with pytest.raises(ValueError, match="auto_id"):
        reopened.add_texts(["chosen"], ids=["5"])
    assert count(store) == 3


async def test_upsert_and_aupsert(make: Make) -> None:
    store = make()
    docs = [Document("first", metadata={"v": 1}, id="u1"), Document("second", id="u2")]
    assert store.upsert(documents=docs) == ["u1", "u2"]
    assert store.upsert(documents=[Document("first v2", metadata={"v": 2}, id="u1")]) == ["u1"]
    assert count(store) == 2
    assert [(d.page_content, d.metadata) for d in store.get_by_ids(["u1"])] == [
        ("first v2", {"v": 2})]
    # explicit ids win over Document.id
    assert store.upsert(ids=["u2"], documents=[Document("second v2", id="other")]) == ["u2"]
    assert await store.aupsert(documents=[Document("third", id="u3")]) == ["u3"]
    assert await store.aupsert(ids=["u3"], documents=[Document("third v2")]) == ["u3"]
    assert count(store) == 3
    assert [d.page_content for d in await store.aget_by_ids(["u1", "u2", "u3"])] == [
        "first v2", "second v2", "third v2"]
    generated = store.upsert(documents=[Document("no id")])
    assert len(generated) == 1 and isinstance(generated[0], str)
    assert count(store) == 4


async def test_get_pks_types_and_limit(make: Make) -> None:
    store = make()
    ids = [f"k{i}" for i in range(10)]
    store.add_texts(TEXTS[:10], metadatas=[{"even": i % 2 == 0} for i in range(10)], ids=ids)
    pks = store.get_pks({"even": True})
    assert sorted(pks) == ["k0", "k2", "k4", "k6", "k8"]
    assert all(isinstance(p, str) for p in pks)
    limited = store.get_pks({"even": True}, limit=2)
    assert len(limited) == 2 and set(limited) <= set(pks)
    assert sorted(await store.aget_pks("even == false")) == [
        "k1", "k3", "k5", "k7", "k9"]
    alimited = await store.aget_pks({"even": False}, limit=3)
    assert len(alimited) == 3 and set(alimited) <= {"k1", "k3", "k5", "k7", "k9"}
    assert sorted(store.get_pks(None)) == ids
    assert store.get_pks({"even": "neither"}) == []


async def test_search_by_metadata_dict_expression_and_offset(make: Make) -> None:
    store = make()
    ids = [f"m{i:02d}" for i in range(10)]
    metas = [{"group": "a" if i < 6 else "b", "i": i} for i in range(10)]
    store.add_texts(TEXTS[:10], metadatas=metas, ids=ids)
    by_dict = store.search_by_metadata({"group": "a"}, limit=100)
    assert sorted(ids_of(by_dict)) == ids[:6]
    assert all(d.metadata["group"] == "a" and d.page_content == TEXTS[int(d.metadata["i"])]
               for d in by_dict)
    by_expr = store.search_by_metadata('group == "b"', limit=100)
    assert sorted(ids_of(by_expr)) == ids[6:]
    assert sorted(ids_of(await store.asearch_by_metadata({"i": {"$lt": 3}}))) == ids[:3]
    assert len(store.search_by_metadata({"group": "a"}, limit=4)) == 4
    pages = [ids_of(store.search_by_metadata({"group": "a"}, limit=2, offset=o))
             for o in (0, 2, 4, 6)]
    assert [len(p) for p in pages] == [2, 2, 2, 0]
    flat = [i for p in pages for i in p]
    assert sorted(flat) == ids[:6]  # disjoint pages that cover the matches
    apage = ids_of(await store.asearch_by_metadata({"group": "a"}, limit=2, offset=2))
    assert apage == pages[1]
    with pytest.raises(ValueError, match="offset"):
        store.search_by_metadata({"group": "a"}, limit=2, offset=-1)


# ============================================================================================
# filters at store level
# ============================================================================================

FILTER_DOCS = [
    ("f0", "red apple", {"color": "red", "n": 0, "tags": {"fruit": True}}),
    ("f1", "green apple", {"color": "green", "n": 1, "tags": {"fruit": True}}),
    ("f2", "red car", {"color": "red", "n": 2, "tags": {"fruit": False}}),
    ("f3", "blue car", {"color": "blue", "n": 3}),
    ("f4", "green leaf", {"color": "green", "n": 4}),
    ("f5", "red rose", {"color": "red", "n": 5}),
]


def _filter_store(make: Make) -> MilvusVectorStore:
    store = make()
    store.add_texts([t for _, t, _ in FILTER_DOCS], metadatas=[m for _, _, m in FILTER_DOCS],
                    ids=[i for i, _, _ in FILTER_DOCS])
    return store


async def test_dict_filter_on_every_method(make: Make) -> None:
    store = _filter_store(make)
    red = {"color": "red"}
    red_ids = ["f0", "f2", "f5"]
    assert sorted(ids_of(store.similarity_search("red apple", k=6, filter=red))) == red_ids
    assert sorted(ids_of(await store.asimilarity_search("red", k=6, filter=red))) == red_ids
    assert all(d.metadata["color"] == "red"
               for d, _ in store.similarity_search_with_score("car", k=6, filter=red))
    assert sorted(ids_of(store.max_marginal_relevance_search(
        "red apple", k=3, fetch_k=6, filter=red))) == red_ids
    assert sorted(ids_of(await store.amax_marginal_relevance_search(
        "red apple", k=3, fetch_k=6, filter=red))) == red_ids
    assert sorted(ids_of(store.search_by_metadata(red))) == red_ids
    assert sorted(store.get_pks(red)) == red_ids
    fancy = {"$or": [{"color": "blue"}, {"n": {"$gte": 4}}], "color": {"$ne": "red"}}
    assert sorted(store.get_pks(fancy)) == ["f3", "f4"]
    assert sorted(store.get_pks({"tags.fruit": True})) == ["f0", "f1"]
    assert sorted(store.get_pks({"color": {"$in": ["blue", "green"]}})) == ["f1", "f3", "f4"]
    # raw expr= still works, alone or ANDed with filter=
    raw = "n >= 3"
    assert sorted(ids_of(store.similarity_search("x", k=6, expr=raw))) == ["f3", "f4", "f5"]
    assert ids_of(store.similarity_search("x", k=6, expr=raw, filter=red)) == ["f5"]
    assert sorted(store.get_pks('color == "green"')) == ["f1", "f4"]
    # deletes: by dict filter, by expr, and ids restricted by a filter
    assert store.delete(filter={"color": "green"}) is True
    assert count(store) == 4
    assert sorted(store.get_pks(None)) == ["f0", "f2", "f3", "f5"]
    assert store.delete(expr="n == 3") is True
    assert sorted(store.get_pks(None)) == ["f0", "f2", "f5"]
    assert await store.adelete(filter={"n": 5}) is True
    assert sorted(store.get_pks(None)) == ["f0", "f2"]


async def test_delete_ids_and_filter_deletes_rows_matching_both(make: Make) -> None:
    store = _filter_store(make)
    # f0 and f2 are red, f1 is green: only f0 and f2 match both the ids and the filter
    assert store.delete(["f0", "f1", "f2"], filter={"color": "red"}) is True
    assert sorted(store.get_pks(None)) == ["f1", "f3", "f4", "f5"]
    assert store.delete(["f1", "f3"], expr="n == 3") is True
    assert sorted(store.get_pks(None)) == ["f1", "f4", "f5"]
    assert await store.adelete(["f4", "f5"], filter={"n": {"$gt": 4}}) is True
    assert sorted(store.get_pks(None)) == ["f1", "f4"]


HOSTILE = [
    '" or 1==1 or "',
    "' or ''='",
    '") or (1 == 1) or ("',
    '"] or true or metadata["v',
    "\\",
    "\\\\",
    '\\"',
    "back\\slash\\",
    "new\nline",
    "tab\tand\rcr",
    "“unicode” ‘quotes’ ’",
    "😀 ünïcødé",
    "%",
    "",
]


async def test_hostile_filter_values_match_only_exact_docs(make: Make) -> None:
    store = make()
    ids = [f"h{i}" for i in range(len(HOSTILE))]
    store.add_texts([f"hostile {i}" for i in range(len(HOSTILE))],
                    metadatas=[{"v": v, "i": i} for i, v in enumerate(HOSTILE)], ids=ids)
    store.add_texts(["control"], metadatas=[{"v": "plain", "i": -1}], ids=["ctl"])
    for i, value in enumerate(HOSTILE):
        want = [ids[i]]
        flt = {"v": value}
        assert store.get_pks(flt) == want, value
        assert ids_of(store.search_by_metadata(flt)) == want, value
        assert ids_of(store.similarity_search("control", k=20, filter=flt)) == want, value
        assert ids_of(await store.asimilarity_search("control", k=20, filter=flt)) == want, value
        got = store.search_by_metadata(flt)[0].metadata
        assert got == {"v": value, "i": i}
        # the value inside $in / $ne / nested logic is just as inert
        assert sorted(store.get_pks({"v": {"$in": [value, "plain"]}})) == sorted(want + ["ctl"])
        assert len(store.get_pks({"v": {"$ne": value}}, limit=100)) == len(HOSTILE)
    # a delete with a hostile value removes exactly its document
    assert store.delete(filter={"v": HOSTILE[0]}) is True
    assert count(store) == len(HOSTILE)
    assert store.get_pks({"v": HOSTILE[0]}) == []
    assert await store.adelete(filter={"v": {"$in": [HOSTILE[1], HOSTILE[2]]}}) is True
    assert count(store) == len(HOSTILE) - 2
    assert sorted(store.get_pks(None)) == sorted(ids[3:] + ["ctl"])


def test_unknown_operator_and_invalid_key_raise(make: Make) -> None:
    store = _filter_store(make)
    calls: list[Callable[[Any], Any]] = [
        lambda f: store.similarity_search("red", k=2, filter=f),
        lambda f: store.max_marginal_relevance_search("red", k=2, filter=f),
        lambda f: store.delete(filter=f),
        lambda f: store.delete(["f0"], filter=f),
        lambda f: store.search_by_metadata(f),
        lambda f: store.get_pks(f),
    ]
    bad_filters = [
        ({"color": {"$regex": "r.*"}}, r"\$regex"),
        ({"$xor": [{"color": "red"}]}, r"\$xor"),
        ({"a b": 1}, "'a b'"),
        ({"x);drop": 1}, r"'x\);drop'"),
        ({"$or": [{"ok": 1}, {"bad-key": 2}]}, "'bad-key'"),
    ]
    for call in calls:
        for flt, named in bad_filters:
            with pytest.raises(ValueError, match=named):
                call(flt)
    assert count(store) == len(FILTER_DOCS)


# ============================================================================================
# metadata
# ============================================================================================

MIXED_METADATA: list[dict[str, Any]] = [
    {"a": 1, "nested": {"x": [1, 2, {"y": None}], "z": {"deep": True}}, "f": 1.5, "g": 0.1,
     "h": 1.0},
    {"b": "ünïcødé ✓ 😀", "list": ["a", 1, 2.5, False, None], "none": None, "t": True,
     "neg": -3, "e": 1e-12, "big": 2**53},
    {},
    {"empty_list": [], "empty_dict": {}, "s": "", "quote": "\"'\\\n\t"},
    {"a": "now a string", "t": 0, "f": [1.5]},  # same keys, other types
]


async def test_mixed_metadata_round_trips_exactly(make: Make) -> None:
    store = make()
    texts = [f"mixed metadata {i}" for i in range(len(MIXED_METADATA))]
    ids = store.add_texts(texts, metadatas=MIXED_METADATA)
    docs = store.get_by_ids(ids)
    assert [exact(d.metadata) for d in docs] == [exact(m) for m in MIXED_METADATA]
    assert [d.page_content for d in docs] == texts
    adocs = await store.aget_by_ids(ids)
    assert [exact(d.metadata) for d in adocs] == [exact(m) for m in MIXED_METADATA]
    for text, meta, pk in zip(texts, MIXED_METADATA, ids, strict=True):
        (doc,) = store.similarity_search(text, k=1)
        assert (doc.id, doc.page_content, exact(doc.metadata)) == (pk, text, exact(meta))
        (adoc,) = await store.asimilarity_search(text, k=1)
        assert (adoc.id, exact(adoc.metadata)) == (pk, exact(meta))
    assert ids_of(store.search_by_metadata({"nested.z.deep": True})) == [ids[0]]
    assert ids_of(store.search_by_metadata({"a": "now a string"})) == [ids[4]]
    assert ids_of(store.search_by_metadata({"b": "ünïcødé ✓ 😀"})) == [ids[1]]


async def test_reserved_metadata_keys_round_trip_in_json_mode(make: Make) -> None:
    store = make(metadata_field="metadata")
    meta = {"pk": "fake-pk", "text": "fake text", "vector": [9.0, 9.0],
            "metadata": {"inner": 1}, "id": "fake-id", "$meta": 3}
    assert store.add_texts(["the real text"], metadatas=[meta], ids=["real"]) == ["real"]
    store.add_texts(["another text"], metadatas=[{"pk": "real"}], ids=["other"])
    assert count(store) == 2
    for doc in [*store.get_by_ids(["real"]), store.similarity_search("the real text", k=1)[0],
                *(await store.aget_by_ids(["real"])),
                store.max_marginal_relevance_search("the real text", k=1, fetch_k=2)[0]]:
        assert doc.id == "real"
        assert doc.page_content == "the real text"
        assert exact(doc.metadata) == exact(meta)
    # the stored vector is the embedding, not metadata["vector"]
    (hit, score), = store.similarity_search_with_score_by_vector(
        EMBEDDINGS.embed_query("the real text"), k=1)
    assert hit.id == "real" and score == pytest.approx(1.0, abs=1e-4)
    # filters on those keys address the metadata, not the fields
    assert store.get_pks({"pk": "fake-pk"}) == ["real"]
    assert store.get_pks({"pk": "real"}) == ["other"]
    assert store.get_pks({"metadata.inner": 1}) == ["real"]
    assert store.get_pks({"text": "fake text"}) == ["real"]


def test_dynamic_field_reserved_keys_raise_before_writing(make: Make) -> None:
    store = make(enable_dynamic_field=True)
    ids = store.add_texts(["dynamic one"], metadatas=[{"u": 1, "nested": {"x": [1, None]}}])
    (doc,) = store.get_by_ids(ids)
    assert exact(doc.metadata) == exact({"u": 1, "nested": {"x": [1, None]}})
    for key in ("pk", "text", "vector"):
        with pytest.raises(ValueError, match=f"'{key}'"):
            store.add_texts(["ok", "reserved"], metadatas=[{"u": 2}, {key: "x"}])
        with pytest.raises(ValueError, match=f"'{key}'"):
            store.add_documents([Document("reserved", metadata={key: 1})])
    assert count(store) == 1
    assert ids_of(store.search_by_metadata({"u": 1})) == ids


# ============================================================================================
# relevance scores
# ============================================================================================

METRICS = ["COSINE", "IP", "L2"]


def _check_relevance(scored: list[tuple[Document, float]], top_id: str, k: int) -> None:
    assert len(scored) == k
    scores = [s for _, s in scored]
    assert all(0.0 <= s <= 1.0 and math.isfinite(s) for s in scores), scores
    assert all(a >= b for a, b in zip(scores, scores[1:], strict=False)), scores
    assert scored[0][0].id == top_id
    assert scores[0] == pytest.approx(1.0, abs=1e-4)


async def _check_threshold_retriever(store: MilvusVectorStore, query: str) -> None:
    for k in (3, len(TEXTS)):
        expected = [d.id for d, s in store.similarity_search_with_relevance_scores(query, k=k)
                    if s >= 0.5]
        retriever = store.as_retriever(search_type="similarity_score_threshold",
                                       search_kwargs={"score_threshold": 0.5, "k": k})
        assert ids_of(retriever.invoke(query)) == expected
        assert ids_of(await retriever.ainvoke(query)) == expected
        assert expected and expected[0] == "s3"
        if k == len(TEXTS):
            assert len(expected) < k  # the threshold really dropped something
    # the retriever's scores are the store's relevance scores
    relevance = dict((d.id, s) for d, s in await store.asimilarity_search_with_relevance_scores(
        query, k=len(TEXTS)))
    retriever = store.as_retriever(search_type="similarity_score_threshold",
                                   search_kwargs={"score_threshold": 0.5, "k": len(TEXTS)})
    assert all(relevance[d.id] >= 0.5 for d in retriever.invoke(query))


@pytest.mark.parametrize("metric", METRICS)
async def test_relevance_scores_per_metric(make: Make, metric: str) -> None:
    store = make(index_params={"index_type": "FLAT", "metric_type": metric})
    ids = [f"s{i}" for i in range(len(TEXTS))]
    store.add_texts(TEXTS, ids=ids)
    assert store.metric == metric
    query = TEXTS[3]
    _check_relevance(store.similarity_search_with_relevance_scores(query, k=8), "s3", 8)
    _check_relevance(await store.asimilarity_search_with_relevance_scores(query, k=8), "s3", 8)
    raw = store.similarity_search_with_score(query, k=8)
    if metric == "L2":  # distances grow, relevance falls
        assert [s for _, s in raw] == sorted(s for _, s in raw)
    else:
        assert [s for _, s in raw] == sorted((s for _, s in raw), reverse=True)
    await _check_threshold_retriever(store, query)

    # a NEW store on the collection, without index_params: the metric comes from the server
    reopened = make(collection_name=store.collection_name)
    scored = reopened.similarity_search_with_relevance_scores(query, k=8)
    assert reopened.metric == metric
    _check_relevance(scored, "s3", 8)
    assert [(d.id, pytest.approx(s, abs=1e-6)) for d, s in scored] == [
        (d.id, s) for d, s in store.similarity_search_with_relevance_scores(query, k=8)]
    await _check_threshold_retriever(reopened, query)
    # first use through the async retriever
    fresh = make(collection_name=store.collection_name)
    retriever = fresh.as_retriever(search_type="similarity_score_threshold",
                                   search_kwargs={"score_threshold": 0.5, "k": 8})
    got = ids_of(await retriever.ainvoke(query))
    assert fresh.metric == metric
    assert got == [d.id for d, s in scored if s >= 0.5]


# ============================================================================================
# bad input: raised before anything is written
# ============================================================================================


async def test_length_mismatches_raise_before_writing(make: Make) -> None:
    store = make()
    cases: list[Callable[[], Any]] = [
        lambda: store.add_texts(["a", "b"], metadatas=[{}]),
        lambda: store.add_texts(["a"], metadatas=[{}, {}]),
        lambda: store.add_texts(["a", "b"], ids=["1"]),
        lambda: store.add_texts(["a"], ids=["1", "2"]),
        lambda: store.add_embeddings(["a", "b"], [[0.1] * DIM]),
        lambda: store.add_documents([Document("a"), Document("b")], ids=["1"]),
    ]
    for case in cases:
        with pytest.raises(ValueError, match=r"got \d+ texts but \d+"):
            case()
    with pytest.raises(ValueError, match=r"got \d+ texts but \d+"):
        await store.aadd_texts(["a", "b"], metadatas=[{}])
    with pytest.raises(ValueError, match=r"got \d+ texts but \d+"):
        await store.aadd_embeddings(["a"], [[0.1] * DIM, [0.2] * DIM])
    assert count(store) is None  # the collection was not even created
    store.add_texts(["exists"], ids=["e"])
    for case in cases:
        with pytest.raises(ValueError, match=r"got \d+ texts but \d+"):
            case()
    assert count(store) == 1


async def test_duplicate_ids_in_one_call_raise(make: Make) -> None:
    store = make()
    with pytest.raises(ValueError, match="duplicates.*'x'"):
        store.add_texts(["a", "b", "c"], ids=["x", "y", "x"])
    with pytest.raises(ValueError, match="duplicates"):
        store.add_documents([Document("a", id="d"), Document("b", id="d")])
    with pytest.raises(ValueError, match="duplicates"):
        await store.aadd_texts(["a", "b"], ids=["z", "z"])
    assert count(store) is None
    store.add_texts(["ok"], ids=["x"])
    with pytest.raises(ValueError, match="duplicates"):
        store.add_texts(["a", "b"], ids=["x", "x"])
    assert count(store) == 1
    assert [d.page_content for d in store.get_by_ids(["x"])] == ["ok"]


def test_wrong_dimension_raises_value_error_before_writing(make: Make) -> None:
    store = make()
    store.add_texts(["sixteen dims"], ids=["a"])
    with pytest.raises(ValueError, match="dimension 8"):
        store.add_embeddings(["eight dims"], [[0.1] * 8], ids=["b"])
    assert count(store) == 1
    assert store.get_by_ids(["b"]) == []


async def test_wrong_dimension_raises_value_error_before_writing_async(make: Make) -> None:
    store = make()
    store.add_texts(["sixteen dims"], ids=["a"])
    with pytest.raises(ValueError, match="dimension 8"):
        await store.aadd_embeddings(["eight dims"], [[0.1] * 8], ids=["b"])
    assert count(store) == 1


def test_wrong_dimension_is_not_written(make: Make) -> None:
    """Whatever the exception type, a vector of the wrong dimension writes nothing."""
    store = make()
    store.add_texts(["sixteen dims"], ids=["a"])
    with pytest.raises(Exception, match="dimension 8"):
        store.add_embeddings(["ok", "eight dims"], [[0.1] * DIM, [0.1] * 8], ids=["b", "c"])
    assert count(store) == 1
    assert store.get_by_ids(["b", "c"]) == []
    with pytest.raises(ValueError, match="dimension 8"):
        store.similarity_search_by_vector([0.1] * 8, k=1)


async def test_text_over_max_length_raises_naming_the_document(make: Make) -> None:
    store = make()
    too_long = "x" * 65_536
    too_many_bytes = "é" * 32_768  # 32,768 characters but 65,536 bytes
    with pytest.raises(ValueError, match=r"texts\[1\].*65536 bytes"):
        store.add_texts(["fine", too_long])
    with pytest.raises(ValueError, match=r"texts\[2\].*65536 bytes"):
        store.add_texts(["fine", "fine", too_many_bytes])
    with pytest.raises(ValueError, match=r"texts\[0\]"):
        await store.aadd_texts([too_long])
    assert count(store) is None
    store.add_texts(["x" * 65_535], ids=["max"])  # exactly at the limit is accepted
    with pytest.raises(ValueError, match=r"texts\[1\]"):
        store.add_documents([Document("fine"), Document(too_many_bytes)])
    assert count(store) == 1
    assert len(store.get_by_ids(["max"])[0].page_content) == 65_535


async def test_bad_k_raises(make: Make) -> None:
    store = make()
    store.add_texts(TEXTS[:3], ids=["a", "b", "c"])
    for k in (0, -1, 2.0, "3", None, True):
        with pytest.raises(ValueError, match="k must be a positive integer"):
            store.similarity_search("x", k=k)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="k must be a positive integer"):
            await store.asimilarity_search("x", k=k)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="k must be a positive integer"):
            store.similarity_search_with_relevance_scores("x", k=k)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="k must be a positive integer"):
            store.similarity_search_batch(["x"], k=k)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="k must be a positive integer"):
            store.max_marginal_relevance_search("x", k=k)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fetch_k"):
        store.max_marginal_relevance_search("x", k=2, fetch_k=0)
    with pytest.raises(ValueError, match="limit"):
        store.get_pks(None, limit=0)


async def test_delete_needs_ids_or_a_filter(make: Make) -> None:
    store = make()
    store.add_texts(TEXTS[:3], ids=["a", "b", "c"])
    with pytest.raises(ValueError, match="empty list"):
        store.delete([])
    with pytest.raises(ValueError, match="empty list"):
        await store.adelete([])
    with pytest.raises(ValueError, match="empty list"):
        store.delete([], filter={"x": 1})
    with pytest.raises(ValueError, match="refusing to delete everything"):
        store.delete()
    with pytest.raises(ValueError, match="refusing to delete everything"):
        store.delete(filter={})
    assert count(store) == 3


async def test_bad_metadata_raises_before_writing(make: Make) -> None:
    store = make()
    store.add_texts(["exists"], ids=["e"])
    bad: list[tuple[Any, str]] = [
        ("a string", r"metadatas\[1\] must be a dict"),
        ([("k", "v")], r"metadatas\[1\] must be a dict"),
        ({"x": float("nan")}, r"metadatas\[1\] is not JSON"),
        ({"x": {"deep": [float("inf")]}}, r"metadatas\[1\] is not JSON"),
        ({"x": object()}, r"metadatas\[1\] is not JSON"),
        ({1: "int key"}, r"metadatas\[1\] has non-string keys"),
    ]
    for metadata, message in bad:
        with pytest.raises(ValueError, match=message):
            store.add_texts(["good", "bad"], metadatas=[{"ok": 1}, metadata])
        with pytest.raises(ValueError, match=message):
            await store.aadd_texts(["good", "bad"], metadatas=[{"ok": 1}, metadata])
    assert count(store) == 1


BAD_EXPR = "this is not valid ((("


def _sync_server_calls(store: MilvusVectorStore) -> dict[str, Callable[[], Any]]:
    return {
        "similarity_search expr": lambda: store.similarity_search("x", k=2, expr=BAD_EXPR),
        "similarity_search filter": lambda: store.similarity_search("x", k=2, filter=BAD_EXPR),
        "mmr": lambda: store.max_marginal_relevance_search("x", k=2, expr=BAD_EXPR),
        "delete": lambda: store.delete(expr=BAD_EXPR),
        "search_by_metadata": lambda: store.search_by_metadata(BAD_EXPR),
        "get_pks": lambda: store.get_pks(BAD_EXPR),
    }


def test_server_errors_raise_sync(make: Make) -> None:
    store = make()
    store.add_texts(TEXTS[:3], ids=["a", "b", "c"])
    for name, call in _sync_server_calls(store).items():
        with pytest.raises(MilvusException, match="valid"):  # the server's parse error
            result = call()
            pytest.fail(f"{name} returned {result!r} instead of raising")
    assert count(store) == 3


ASYNC_SERVER_CALLS = ["asimilarity_search", "amax_marginal_relevance_search", "adelete",
                      "asearch_by_metadata", "aget_pks"]


@pytest.mark.parametrize("name", ASYNC_SERVER_CALLS)
async def test_server_errors_raise_async(make: Make, name: str) -> None:
    """The server's own exception (with its message), as in the sync API and langchain-milvus."""
    store = make()
    store.add_texts(TEXTS[:3], ids=["a", "b", "c"])
    calls: dict[str, Callable[[], Any]] = {
        "asimilarity_search": lambda: store.asimilarity_search("x", k=2, expr=BAD_EXPR),
        "amax_marginal_relevance_search": lambda: store.amax_marginal_relevance_search(
            "x", k=2, expr=BAD_EXPR),
        "adelete": lambda: store.adelete(expr=BAD_EXPR),
        "asearch_by_metadata": lambda: store.asearch_by_metadata(BAD_EXPR),
        "aget_pks": lambda: store.aget_pks(BAD_EXPR),
    }
    with pytest.raises(MilvusException, match="valid"):  # the server's parse error
        result = await calls[name]()
        pytest.fail(f"{name} returned {result!r} instead of raising")
    assert count(store) == 3


# ============================================================================================
# MMR
# ============================================================================================


async def test_mmr_diversity_lambda_one_and_small_fetch_k(make: Make) -> None:
    store = make()
    dupes = ["ap1", "ap2", "ap3"]
    store.add_texts(["apple"] * 3, metadatas=[{"kind": "dupe"}] * 3, ids=dupes)
    store.add_texts(TEXTS[:10], metadatas=[{"kind": "doc"}] * 10,
                    ids=[f"d{i}" for i in range(10)])
    # plain similarity returns the three identical vectors; MMR avoids the redundancy
    assert sorted(ids_of(store.similarity_search("apple", k=3))) == dupes
    for docs in (
        store.max_marginal_relevance_search("apple", k=3, fetch_k=13, lambda_mult=0.1),
        await store.amax_marginal_relevance_search("apple", k=3, fetch_k=13, lambda_mult=0.1),
        store.max_marginal_relevance_search_by_vector(
            EMBEDDINGS.embed_query("apple"), k=3, fetch_k=13, lambda_mult=0.1),
    ):
        got = ids_of(docs)
        assert len(got) == len(set(got)) == 3
        assert got[0] in dupes
        assert len(set(got) & set(dupes)) == 1
    # lambda_mult=1: pure relevance, the similarity order (on vectors without ties)
    docs_only = {"kind": "doc"}
    for query in (TEXTS[3], "something else"):
        similar = ids_of(store.similarity_search(query, k=6, filter=docs_only))
        mmr = ids_of(store.max_marginal_relevance_search(
            query, k=6, fetch_k=10, lambda_mult=1.0, filter=docs_only))
        assert mmr == similar
        amrr = ids_of(await store.amax_marginal_relevance_search(
            query, k=6, fetch_k=10, lambda_mult=1.0, filter=docs_only))
        assert amrr == similar
    # fetch_k < k still returns k documents
    few = store.max_marginal_relevance_search(TEXTS[0], k=5, fetch_k=2)
    assert len(few) == 5 and len(set(ids_of(few))) == 5
    afew = await store.amax_marginal_relevance_search(TEXTS[0], k=5, fetch_k=2)
    assert len(afew) == 5
    with pytest.raises(ValueError, match="lambda_mult"):
        store.max_marginal_relevance_search("apple", k=2, lambda_mult=1.5)


# ============================================================================================
# constructors and batch search
# ============================================================================================


async def test_from_texts_afrom_texts_from_documents(uri: str) -> None:
    name = f"ctor_{uuid.uuid4().hex[:10]}"
    common: dict[str, Any] = {"connection_args": {"uri": uri}, "consistency_level": "Strong"}
    stores: list[MilvusVectorStore] = []
    try:
        store = MilvusVectorStore.from_texts(
            TEXTS[:4], EMBEDDINGS, metadatas=[{"i": i} for i in range(4)],
            collection_name=name, ids=["t0", "t1", "t2", "t3"], **common)
        stores.append(store)
        assert isinstance(store, MilvusVectorStore)
        assert count(store) == 4
        (doc,) = store.similarity_search(TEXTS[2], k=1)
        assert (doc.id, doc.page_content, doc.metadata) == ("t2", TEXTS[2], {"i": 2})

        astore = await MilvusVectorStore.afrom_texts(
            TEXTS[4:7], EMBEDDINGS, metadatas=[{"i": i} for i in range(4, 7)],
            collection_name=name, drop_old=True, **common)
        stores.append(astore)
        assert count(astore) == 3  # drop_old removed the four earlier documents
        (adoc,) = await astore.asimilarity_search(TEXTS[5], k=1)
        assert (adoc.page_content, adoc.metadata) == (TEXTS[5], {"i": 5})

        documents = [Document(TEXTS[i], metadata={"i": i}, id=f"doc{i}") for i in range(7, 10)]
        dstore = MilvusVectorStore.from_documents(
            documents, EMBEDDINGS, collection_name=name, drop_old=True, **common)
        stores.append(dstore)
        assert count(dstore) == 3
        assert [(d.id, d.page_content, d.metadata) for d in dstore.get_by_ids(
            ["doc9", "doc7"])] == [("doc9", TEXTS[9], {"i": 9}), ("doc7", TEXTS[7], {"i": 7})]

        adstore = await MilvusVectorStore.afrom_documents(
            documents[:1], EMBEDDINGS, collection_name=name, **common)
        stores.append(adstore)
        assert count(adstore) == 3  # no drop_old: upserted the same id
        assert ids_of(await adstore.asimilarity_search(TEXTS[7], k=1)) == ["doc7"]
    finally:
        if stores:
            stores[0].drop()
        for s in stores:
            s.close()


async def test_similarity_search_batch_equals_individual_searches(make: Make) -> None:
    store = make()
    store.add_texts(TEXTS, metadatas=[{"i": i, "odd": i % 2 == 1} for i in range(len(TEXTS))],
                    ids=[f"b{i}" for i in range(len(TEXTS))])
    queries = [TEXTS[0], TEXTS[5], "unrelated query", TEXTS[5]]
    for kwargs in ({}, {"filter": {"odd": True}}, {"expr": "i < 6"}):
        single = [ids_of(store.similarity_search(q, k=3, **kwargs)) for q in queries]
        batch = store.similarity_search_batch(queries, k=3, **kwargs)
        abatch = await store.asimilarity_search_batch(queries, k=3, **kwargs)
        assert [ids_of(r) for r in batch] == single
        assert [ids_of(r) for r in abatch] == single
        assert all(len(r) == 3 for r in batch)
        if not kwargs:
            assert [r[0].id for r in batch] == ["b0", "b5", batch[2][0].id, "b5"]


async def test_similarity_search_batch_of_no_queries(make: Make) -> None:
    store = make()
    store.add_texts(TEXTS[:3])
    assert store.similarity_search_batch([], k=3) == []
    assert await store.asimilarity_search_batch([], k=3) == []
