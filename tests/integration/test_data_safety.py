"""Data safety on real Milvus (a Lite file and a `milvus-lite server`): ids given as a bare string,
ids with characters an expression must escape, and the rows that really remain afterwards."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_milvus_ext import MilvusConnectionError, MilvusVectorStore

pytestmark = [pytest.mark.timeout(300)]

EMBEDDINGS = DeterministicFakeEmbedding(size=8)
TARGETS = [pytest.param("lite_uri", marks=pytest.mark.lite),
           pytest.param("lite_server_uri", marks=pytest.mark.server),
           pytest.param("milvus235_uri", marks=pytest.mark.server)]


@pytest.fixture(params=TARGETS)
def store(request: pytest.FixtureRequest) -> Iterator[MilvusVectorStore]:
    """A store on a fresh collection of a Lite file or of the session's milvus-lite server."""
    uri = request.getfixturevalue(request.param)
    store = MilvusVectorStore(EMBEDDINGS, collection_name=f"c_{uuid.uuid4().hex[:12]}",
                              connection_args={"uri": uri}, consistency_level="Strong")
    yield store
    store.drop()
    store.close()


def all_ids(store: MilvusVectorStore) -> set[str]:
    return {str(pk) for pk in store.get_pks('pk != ""')}


# --------------------------------------------------------------------------- item 1: bare string


async def test_a_bare_string_as_ids_deletes_nothing(store: MilvusVectorStore) -> None:
    chars = ["d", "o", "c", "-", "1"]
    store.add_texts([f"text {c}" for c in chars], ids=chars)
    store.add_texts(["the real one"], ids=["doc-1"])
    before = all_ids(store)
    with pytest.raises(ValueError, match="ids must be a list of ids"):
        store.delete("doc-1")
    with pytest.raises(ValueError, match="ids must be a list of ids"):
        await store.adelete("doc-1")
    with pytest.raises(ValueError, match="ids must be a list of ids"):
        store.delete(b"doc-1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ids must be a list of ids"):
        store.get_by_ids("doc-1")
    with pytest.raises(ValueError, match="ids must be a list of ids"):
        await store.aget_by_ids("doc-1")
    with pytest.raises(ValueError, match="ids must be a list of ids"):
        store.upsert("ab", [Document("x"), Document("y")])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ids must be a list of ids"):
        await store.aadd_texts(["x", "y"], ids="ab")  # type: ignore[arg-type]
    assert all_ids(store) == before
    assert [d.page_content for d in store.get_by_ids(["doc-1", "d"])] == ["the real one",
                                                                         "text d"]


# --------------------------------------------------------------------------- item 2: hostile ids

HOSTILE_IDS = [
    "it's", "back\\slash", "new\nline", 'x\\"y', 'quo"te', "tab\tcr\r", "nul\x00byte",
    "trailing\\", "\\", "'", '"', "a\\nb", "ü-ünï€ødé-😀", "\u2028\u2029", "%_like*", "a, b]",
    "x\" or pk != \"", "x' or pk != '",
]


def _round_trip(store: MilvusVectorStore, ids: list[str]) -> None:
    """Sync add, get_by_ids, upsert and delete of `ids`, checking what the server holds."""
    assert store.add_texts([f"v1 {i!r}" for i in ids], ids=ids) == ids
    assert [d.id for d in store.get_by_ids(ids)] == ids
    assert store.upsert(ids, [Document(f"v2 {i!r}") for i in ids]) == ids
    assert [d.page_content for d in store.get_by_ids(ids)] == [f"v2 {i!r}" for i in ids]
    assert store.delete(ids) is True
    assert store.get_by_ids(ids) == []
    assert not all_ids(store) & set(ids)


async def _around_trip(store: MilvusVectorStore, ids: list[str]) -> None:
    """`_round_trip` with the async methods."""
    assert await store.aadd_texts([f"v1 {i!r}" for i in ids], ids=ids) == ids
    assert [d.id for d in await store.aget_by_ids(ids)] == ids
    assert await store.aupsert(ids, [Document(f"v2 {i!r}") for i in ids]) == ids
    assert [d.page_content for d in await store.aget_by_ids(ids)] == [f"v2 {i!r}" for i in ids]
    assert await store.adelete(ids) is True
    assert await store.aget_by_ids(ids) == []
    assert not all_ids(store) & set(ids)


@pytest.mark.parametrize("hostile", HOSTILE_IDS)
async def test_ids_needing_escapes_round_trip(store: MilvusVectorStore, hostile: str) -> None:
    store.add_texts(["bystander"], ids=["bystander"])
    _round_trip(store, [hostile])
    await _around_trip(store, [hostile])
    _round_trip(store, [hostile, "plain"])
    await _around_trip(store, [hostile, "plain"])
    # one by one through the coalescer, and with a filter as well (ids become an expression)
    await store.aadd_texts(["a", "b"], ids=[hostile, "plain"], metadatas=[{"k": 1}, {"k": 2}])
    await store.adelete([hostile], filter={"k": 1})
    assert all_ids(store) == {"bystander", "plain"}
    store.delete(["plain"], filter={"k": 2})
    assert all_ids(store) == {"bystander"}


@pytest.mark.parametrize("bad", ["lone\ud800surrogate", "\udfff"])
async def test_ids_no_parser_can_express_are_refused_before_writing(
    store: MilvusVectorStore, bad: str
) -> None:
    store.add_texts(["bystander"], ids=["bystander"])
    with pytest.raises(ValueError, match=r"ids\[1\].*UTF-8"):
        store.add_texts(["a", "b"], ids=["ok", bad])
    with pytest.raises(ValueError, match=r"ids\[0\].*UTF-8"):
        await store.aadd_texts(["b"], ids=[bad])
    with pytest.raises(ValueError, match=r"ids\[0\].*UTF-8"):
        store.get_by_ids([bad])
    with pytest.raises(ValueError, match=r"ids\[0\].*UTF-8"):
        await store.adelete([bad])
    assert all_ids(store) == {"bystander"}


# Every code point (surrogates included), with the characters an expression must escape
# drawn more often than their share of the range.
ID_CHARS = st.characters(exclude_categories=()) | st.sampled_from("'\"\\\n\r\t\x00")
ID_LISTS = st.lists(st.text(ID_CHARS, min_size=1, max_size=24), min_size=1, max_size=4,
                    unique=True)
# Lone surrogates are rare in the full range: put one in an id on purpose.
BAD_IDS = st.builds(
    lambda head, surrogate, tail: head + surrogate + tail, st.text(ID_CHARS, max_size=8),
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, exclude_categories=()),
    st.text(ID_CHARS, max_size=8))


def _storable(pk: str) -> bool:
    """Whether the store must accept `pk` (else it must refuse it before writing)."""
    try:
        return bool(pk) and len(pk.encode("utf-8")) <= 65_535
    except UnicodeEncodeError:
        return False


@pytest.fixture(scope="module", params=[pytest.param("lite file", marks=pytest.mark.lite),
                                        pytest.param("lite server", marks=pytest.mark.server)])
def shared_store(request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusVectorStore]:
    """One collection reused by every hypothesis example (module scope keeps examples fast)."""
    if request.param == "lite file":
        uri = str(tmp_path_factory.mktemp("any-id") / "ids.db")
    else:
        uri = request.getfixturevalue("lite_server_uri")
    store = MilvusVectorStore(EMBEDDINGS, collection_name=f"p_{uuid.uuid4().hex[:12]}",
                              connection_args={"uri": uri}, consistency_level="Strong")
    store.add_texts(["bystander"], ids=["bystander"])
    yield store
    store.drop()
    store.close()


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    """One event loop for the async half of every example (one async client, reused)."""
    with asyncio.Runner() as runner:
        yield runner


def test_any_id_round_trips_or_is_refused_up_front(
    shared_store: MilvusVectorStore, runner: asyncio.Runner,
    report_figures: Callable[[str, dict[str, object]], None],
) -> None:
    store = shared_store
    counts: Counter[str] = Counter()

    @settings(max_examples=40, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(ids=ID_LISTS, bad=st.none() | BAD_IDS, at=st.integers(0, 4))
    def check(ids: list[str], bad: str | None, at: int) -> None:
        counts["examples"] += 1
        counts["ids tried"] += len(ids)
        if bad is not None:  # the same ids with a bad one among them: nothing is written
            counts["lists with a lone surrogate tried"] += 1
            with_bad = [*ids[:at], bad, *ids[at:]]
            with pytest.raises(ValueError, match=r"ids\[\d+\].*UTF-8"):
                store.add_texts(["t"] * len(with_bad), ids=with_bad)
            with pytest.raises(ValueError, match=r"ids\[\d+\].*UTF-8"):
                runner.run(store.aadd_texts(["t"] * len(with_bad), ids=with_bad))
            assert all_ids(store) == {"bystander"}
            counts["lists with a lone surrogate refused"] += 1
        if not all(_storable(pk) for pk in ids):  # the full range holds surrogates too
            counts["ids refused (in a list with a surrogate)"] += len(ids)
            with pytest.raises(ValueError, match=r"ids\[\d+\].*UTF-8"):
                store.add_texts(["t"] * len(ids), ids=ids)
            return
        _round_trip(store, ids)
        counts["ids round-tripped sync"] += len(ids)
        runner.run(_around_trip(store, ids))
        counts["ids round-tripped async"] += len(ids)
        assert all_ids(store) == {"bystander"}

    check()
    report_figures("any id round trip", dict(sorted(counts.items())))
    assert counts["ids round-tripped sync"] == counts["ids round-tripped async"]
    refused = counts["ids refused (in a list with a surrogate)"]
    assert counts["ids round-tripped sync"] + refused == counts["ids tried"]
    assert counts["ids round-tripped sync"] >= 40
    assert counts["lists with a lone surrogate refused"] >= 5


# --------------------------------------------------------------------------- Lite file lock

HOLD_LITE_FILE = """
import sys
from pymilvus import MilvusClient
client = MilvusClient(uri=sys.argv[1])
client.list_collections()
print("holding", flush=True)
sys.stdin.read()  # until the test closes our stdin
"""


@pytest.mark.lite
async def test_a_lite_file_open_in_another_process_is_a_clear_error(
    tmp_path: Path, quiet_pymilvus: None
) -> None:
    path = tmp_path / "shared.db"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LITE_FILE, str(path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
        store = MilvusVectorStore(EMBEDDINGS, connection_args={"uri": str(path)})
        calls = {
            "add_texts": lambda: store.add_texts(["x"], ids=["x"]),
            "get_by_ids": lambda: store.get_by_ids(["x"]),
            "client": lambda: store.client,
        }
        for name, call in calls.items():
            with pytest.raises(MilvusConnectionError) as info:
                call()
            message = str(info.value)
            assert "opened by another process" in message, (name, message)
            assert str(path) in message and "Milvus server" in message, message
            assert "one process" in message, message
        with pytest.raises(MilvusConnectionError, match="opened by another process"):
            await store.aadd_texts(["x"], ids=["x"])
        with pytest.raises(MilvusConnectionError, match="opened by another process"):
            await store.asimilarity_search("x")
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=60)
    # once the other process has let go, the same store opens the file
    assert store.add_texts(["x"], ids=["x"]) == ["x"]
    assert [d.id for d in await store.aget_by_ids(["x"])] == ["x"]
    store.close()


async def test_long_texts_round_trip_exactly(store: MilvusVectorStore) -> None:
    """Long texts reach pymilvus as `WholeText` (see `_pymilvus_compat`): every character,
    multi-byte ones included, comes back as written, sync and async, inserted and upserted."""
    texts = ["é" * 3000 + "\U0001f600 end", "a b\nc\t" * 800, "x" * 64, "short"]
    ids = store.add_texts(texts)
    ids += await store.aadd_texts([t + " async" for t in texts])
    store.upsert([ids[0]], [Document("ü" * 5000)])
    expected = ["ü" * 5000, *texts[1:], *(t + " async" for t in texts)]
    got = {d.id: d.page_content for d in store.get_by_ids(ids)}
    assert [got[i] for i in ids] == expected
    assert all(type(text) is str for text in got.values())
    assert all(type(i) is str for i in ids)  # the ids returned are plain strings


def test_a_whole_text_packs_to_the_same_request_bytes(lite_uri: str) -> None:
    """pymilvus builds the same insert and upsert requests from `WholeText` texts and keys as
    from the plain strings."""
    from pymilvus import MilvusClient
    from pymilvus.client.prepare import Prepare

    from langchain_milvus_ext._pymilvus_compat import WholeText

    store = MilvusVectorStore(EMBEDDINGS, collection_name="whole_text",
                              connection_args={"uri": lite_uri}, drop_old=True)
    store.add_texts(["seed"], [{"k": 1}])
    fields = MilvusClient(uri=lite_uri).describe_collection("whole_text")["fields"]
    text = "Grüße, " * 300

    key = "0123456789abcdef" * 2

    def request(kind: str, value: str, pk: str) -> bytes:
        row = {"pk": pk, "text": value, "vector": [0.5] * 8, "k": 2}
        prepare = Prepare.row_insert_param if kind == "insert" else Prepare.row_upsert_param
        packed = prepare("whole_text", [row], "", fields, enable_dynamic=True)
        return bytes(packed.SerializeToString())

    for kind in ("insert", "upsert"):
        assert request(kind, WholeText(text), WholeText(key)) == request(kind, text, key)
    store.close()
