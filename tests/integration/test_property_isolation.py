"""Property-based (issue 10): any metadata is either written exactly or refused before writing,
and concurrent callers with random poison rows never fail or lose each other's rows (Lite).

Values come from the whole of Unicode (lone surrogates included), integers of any size and
nested dicts and lists. Each test reports how many examples it tried and how they ended.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_milvus_ext import MilvusVectorStore

pytestmark = [pytest.mark.lite, pytest.mark.timeout(600)]

ANY_CHAR = st.characters(exclude_categories=())  # lone surrogates too (excluded by default)
TEXT = st.text(max_size=20) | st.text(ANY_CHAR, max_size=20)
EDGE = 2**63
INTS = (st.integers() | st.integers(EDGE - 3, EDGE + 3) | st.integers(-EDGE - 3, -EDGE + 3)
        | st.integers(min_value=EDGE * 2**40) | st.integers(max_value=-EDGE * 2**40))
SCALARS = (st.none() | st.booleans() | INTS | TEXT
           | st.floats(allow_nan=False, allow_infinity=False))
KEYS = st.text(max_size=8) | st.text(ANY_CHAR, max_size=8)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(KEYS, inner, max_size=4), max_leaves=10)
METADATA = st.dictionaries(KEYS, VALUES, max_size=5)
TALLY: Counter[str] = Counter()


_RESERVED = {"pk", "text", "vector", "$meta"}
"""Top-level keys that name the collection's own fields: refused in the default layout."""


def _writable(value: Any) -> bool:
    """The oracle: what Milvus can hold in JSON (UTF-8 strings, int64 integers)."""
    if isinstance(value, str):
        return not any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_writable(v) for v in value)
    return all(_writable(k) and _writable(v) for k, v in value.items())


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusVectorStore]:
    path: Path = tmp_path_factory.mktemp("prop-iso") / "p.db"
    store = MilvusVectorStore(DeterministicFakeEmbedding(size=8),
                              connection_args={"uri": str(path)}, consistency_level="Strong",
                              partition_key_field="author")
    store.add_texts(["seed"], [{"author": "seed"}], ids=["seed"])
    yield store
    store.close()


def _count(store: MilvusVectorStore) -> int:
    return len(store.get_pks('pk != ""'))


@pytest.fixture(scope="module", autouse=True)
def tally() -> Iterator[Counter[str]]:
    """Print how many examples the tests tried and how they ended (seen with `pytest -s`)."""
    yield TALLY
    print("\n[property isolation]", dict(sorted(TALLY.items())))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(metadata=METADATA, use_async=st.booleans())
def test_metadata_round_trips_exactly_or_is_refused_before_writing(
    store: MilvusVectorStore, metadata: dict[str, Any], use_async: bool
) -> None:
    metadata = {**metadata, "author": "a"}
    doc_id = uuid.uuid4().hex
    before = _count(store)
    TALLY["metadata tried"] += 1
    try:
        if use_async:
            asyncio.run(store.aadd_texts(["t"], [metadata], ids=[doc_id]))
        else:
            store.add_texts(["t"], [metadata], ids=[doc_id])
    except ValueError as error:
        TALLY["metadata refused"] += 1
        reserved = set(metadata) & _RESERVED  # the dynamic-field layout refuses these keys
        assert reserved or not _writable(metadata), f"refused a writable dict: {error}"
        assert str(error).startswith("metadatas[0]")  # names the argument and index
        assert _count(store) == before  # nothing written
        return
    assert _writable(metadata), "accepted a dict Milvus cannot hold"
    assert not set(metadata) & _RESERVED, "accepted a key that names a field"
    (got,) = store.get_by_ids([doc_id])
    assert got.metadata == metadata
    TALLY["metadata round-tripped"] += 1


POISON = st.sampled_from([
    {"author": "x\ud800"},  # caught by validation
    {"author": "a", "n": -(2**64)},
    {"author": 7},  # an int for the VARCHAR partition key
    {"author": "a", "deep": [{"k": "\udfff"}]},
    {"author": "x" * 600},  # over the key's max_length: only the server refuses it (bisection)
])


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(callers=st.lists(st.none() | POISON, min_size=1, max_size=24))
def test_concurrent_adds_with_random_poison_callers_fail_only_those(
    store: MilvusVectorStore, callers: list[dict[str, Any] | None]
) -> None:
    tag = uuid.uuid4().hex[:8]
    docs = [Document(page_content=f"t{i}", id=f"{tag}-{i}",
                     metadata=poison if poison is not None else {"author": "good", "i": i})
            for i, poison in enumerate(callers)]
    before = _count(store)

    async def run() -> list[Any]:
        return await asyncio.gather(*(store.aadd_documents([d]) for d in docs),
                                    return_exceptions=True)

    outcomes = asyncio.run(run())
    good = [i for i, poison in enumerate(callers) if poison is None]
    TALLY["isolation callers"] += len(callers)
    TALLY["isolation poison callers"] += len(callers) - len(good)
    for i, outcome in enumerate(outcomes):
        if i in good:
            assert outcome == [f"{tag}-{i}"]
            TALLY["isolation good callers that succeeded"] += 1
        else:
            assert isinstance(outcome, Exception)
            assert f"{tag}-" not in str(outcome).replace(f"{tag}-{i}", "")  # no other's ids
    assert _count(store) == before + len(good)
    assert [d.id for d in store.get_by_ids([f"{tag}-{i}" for i in good])] == [
        f"{tag}-{i}" for i in good]
