"""Unit tests: a bare string or bytes where a list of ids is expected is refused before any I/O.

`store.delete("doc-1")` used to delete the ids "d", "o", "c", "-" and "1". Every method that
takes ids must refuse a str / bytes with a ValueError naming the argument, before a client is
even opened (the store below points at a Lite file that is never created).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from test_plans import FakeDriver, existing_state, missing_state
from test_rows import STR_PK

from langchain_milvus_ext import MilvusVectorStore
from langchain_milvus_ext._operations import add_plan, delete_plan, get_by_ids_plan
from langchain_milvus_ext._rows import normalize_ids, split_documents

BARE = ["doc-1", b"doc-1", bytearray(b"ab")]
SHOWN = ["'doc-1'", "b'doc-1'", "bytearray"]


@pytest.mark.parametrize("bare", BARE)
@pytest.mark.parametrize("state", [existing_state, missing_state])
def test_plans_refuse_a_bare_string_as_ids_before_any_step(bare: Any, state: Any) -> None:
    for plan in (
        delete_plan(state(), bare),
        delete_plan(state(), bare, filter={"k": 1}),
        get_by_ids_plan(state(), bare),
        add_plan(state(), ["x"] * len(bare), None, bare),
    ):
        driver = FakeDriver()
        with pytest.raises(ValueError, match=r"^ids must be a list of ids, not a single"):
            driver.run(plan)
        assert driver.steps == []


@pytest.mark.parametrize("bare", BARE)
def test_split_documents_refuses_a_bare_string_as_ids(bare: Any) -> None:
    docs = [Document("x") for _ in bare]
    with pytest.raises(ValueError, match=r"^ids must be a list of ids"):
        split_documents(docs, bare)


def test_a_non_iterable_ids_is_refused_too() -> None:
    driver = FakeDriver()
    with pytest.raises(ValueError, match=r"^ids must be a list of ids, got int"):
        driver.run(delete_plan(existing_state(), 7))  # type: ignore[arg-type]


def test_the_message_shows_the_value_and_how_to_wrap_it() -> None:
    with pytest.raises(ValueError) as info:
        FakeDriver().run(get_by_ids_plan(existing_state(), "doc-1"))
    assert "'doc-1'" in str(info.value) and "['doc-1']" in str(info.value)


def test_a_list_of_ids_still_works() -> None:
    driver = FakeDriver({"get": [], "query": []})
    assert driver.run(get_by_ids_plan(existing_state(), ("a", "b"))) == []
    assert driver.run(delete_plan(existing_state(), ("a",))) is True


# --------------------------------------------------------------------------- every store method

SyncCall = Callable[[MilvusVectorStore, Any], Any]
AsyncCall = Callable[[MilvusVectorStore, Any], Awaitable[Any]]

SYNC_METHODS: dict[str, SyncCall] = {
    "delete": lambda s, ids: s.delete(ids),
    "delete(ids=)": lambda s, ids: s.delete(ids=ids),
    "delete(ids=, filter=)": lambda s, ids: s.delete(ids=ids, filter={"k": 1}),
    "get_by_ids": lambda s, ids: s.get_by_ids(ids),
    "add_texts": lambda s, ids: s.add_texts(["t"] * len(ids), ids=ids),
    "add_embeddings": lambda s, ids: s.add_embeddings(
        ["t"] * len(ids), [[1.0] * 8] * len(ids), ids=ids),
    "add_documents": lambda s, ids: s.add_documents([Document("t")] * len(ids), ids=ids),
    "upsert": lambda s, ids: s.upsert(ids, [Document("t")] * len(ids)),
    "from_texts": lambda s, ids: MilvusVectorStore.from_texts(
        ["t"] * len(ids), s.embeddings, connection_args=s._connection_args, ids=ids),
}
ASYNC_METHODS: dict[str, AsyncCall] = {
    "adelete": lambda s, ids: s.adelete(ids),
    "adelete(ids=, expr=)": lambda s, ids: s.adelete(ids=ids, expr="pk != ''"),
    "aget_by_ids": lambda s, ids: s.aget_by_ids(ids),
    "aadd_texts": lambda s, ids: s.aadd_texts(["t"] * len(ids), ids=ids),
    "aadd_embeddings": lambda s, ids: s.aadd_embeddings(
        ["t"] * len(ids), [[1.0] * 8] * len(ids), ids=ids),
    "aadd_documents": lambda s, ids: s.aadd_documents([Document("t")] * len(ids), ids=ids),
    "aupsert": lambda s, ids: s.aupsert(ids, [Document("t")] * len(ids)),
    "afrom_texts": lambda s, ids: MilvusVectorStore.afrom_texts(
        ["t"] * len(ids), s.embeddings, connection_args=s._connection_args, ids=ids),
}


def _store(tmp_path: Path) -> MilvusVectorStore:
    return MilvusVectorStore(DeterministicFakeEmbedding(size=8),
                             connection_args={"uri": str(tmp_path / "never.db")})


@pytest.mark.parametrize("bare", BARE[:2])
@pytest.mark.parametrize("name", list(SYNC_METHODS))
def test_every_sync_method_refuses_bare_string_ids_without_io(
    tmp_path: Path, name: str, bare: Any
) -> None:
    store = _store(tmp_path)
    with pytest.raises(ValueError, match=r"^ids must be a list of ids"):
        SYNC_METHODS[name](store, bare)
    assert store._clients._sync is None  # no client was opened
    assert not (tmp_path / "never.db").exists()


@pytest.mark.parametrize("bare", BARE[:2])
@pytest.mark.parametrize("name", list(ASYNC_METHODS))
async def test_every_async_method_refuses_bare_string_ids_without_io(
    tmp_path: Path, name: str, bare: Any
) -> None:
    store = _store(tmp_path)
    with pytest.raises(ValueError, match=r"^ids must be a list of ids"):
        await ASYNC_METHODS[name](store, bare)
    assert len(store._async.sessions) == 0  # no async client was opened
    assert store._clients._sync is None
    assert not (tmp_path / "never.db").exists()


def test_an_id_with_a_lone_surrogate_is_refused_naming_its_position() -> None:
    with pytest.raises(ValueError, match=r"^ids\[1\]: contains a lone surrogate '\\udc80' at "
                       r"position 1, which is not valid UTF-8"):
        normalize_ids(["ok", "x\udc80"], STR_PK)
