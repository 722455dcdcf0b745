"""Property-based: random texts, metadata and filters either fail cleanly or round-trip exactly."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_milvus_ext import MilvusVectorStore

pytestmark = [pytest.mark.lite, pytest.mark.timeout(300)]

KEYS = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
SCALARS = (st.none() | st.booleans() | st.integers(-(2**53), 2**53)
           | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(KEYS, inner, max_size=4), max_leaves=12)
METADATA = st.dictionaries(KEYS, VALUES, max_size=6)
TEXTS = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=300) | (
    st.integers(65_000, 70_000).map(lambda n: "x" * n))
FILTER_VALUES = (st.text(max_size=20) | st.integers(-1000, 1000) | st.booleans()
                 | st.floats(allow_nan=False, allow_infinity=False))
FILTERS = st.one_of(
    st.dictionaries(KEYS, FILTER_VALUES, min_size=1, max_size=2),
    st.builds(lambda k, op, v: {k: {op: v}}, KEYS,
              st.sampled_from(["$eq", "$ne", "$lt", "$gte", "$like", "$regex", "$in"]),
              FILTER_VALUES | st.lists(FILTER_VALUES, max_size=3)),
)


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    return True


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusVectorStore]:
    path: Path = tmp_path_factory.mktemp("prop") / "p.db"
    store = MilvusVectorStore(DeterministicFakeEmbedding(size=8),
                              connection_args={"uri": str(path)}, consistency_level="Strong")
    store.add_texts(["seed"], ids=["seed"])
    yield store
    store.close()


def _count(store: MilvusVectorStore) -> int:
    return len(store.get_pks("pk != \"\""))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.data_too_large])
@given(texts=st.lists(TEXTS, min_size=1, max_size=3),
       metadatas=st.lists(METADATA, min_size=1, max_size=3))
def test_write_either_fails_before_writing_or_round_trips(
    store: MilvusVectorStore, texts: list[str], metadatas: list[dict[str, Any]]
) -> None:
    metadatas = (metadatas * 3)[: len(texts)]
    ids = [uuid.uuid4().hex for _ in texts]
    before = _count(store)
    try:
        store.add_texts(texts, metadatas, ids=ids)
    except ValueError:
        assert _count(store) == before  # rejected before anything was written
        too_long = any(len(t.encode()) > 65_535 for t in texts)
        assert too_long or not all(_finite(m) for m in metadatas)
        return
    got = store.get_by_ids(ids)
    assert [d.id for d in got] == ids
    assert [d.page_content for d in got] == texts
    assert [d.metadata for d in got] == metadatas
    assert _count(store) == before + len(texts)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(filter=FILTERS)
@example(filter={"A": {"$in": ["", 0]}})  # once refused by Milvus: "in" with a mixed list
def test_random_filters_fail_cleanly_or_match_only_what_they_say(
    store: MilvusVectorStore, filter: dict[str, Any]
) -> None:
    probe = {"marker": uuid.uuid4().hex}
    (doc_id,) = store.add_texts(["probe"], [probe])
    try:
        hits = store.search_by_metadata(filter, limit=50)
    except ValueError:
        return  # an invalid key, operator or value, rejected with a message before any I/O
    # The probe document has only "marker": a filter on any other key with $eq can't match it.
    only_eq = all(not isinstance(v, dict) for v in filter.values())
    if only_eq and "marker" not in filter:
        assert doc_id not in {d.id for d in hits}
    store.delete([doc_id])
