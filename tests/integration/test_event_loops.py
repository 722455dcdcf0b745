"""Event loops against embedded Milvus Lite: asyncio.run, notebooks, threads, uvloop, close.

The async client of pymilvus binds to the loop it first runs in; the store keeps one session per
running loop and must work from any sequence of loops, from threads with loops of their own,
from sync code inside a running loop, and after `close()` / `aclose()`.
"""

from __future__ import annotations

import asyncio
import asyncio.events
import json
import subprocess
import sys
import textwrap
import threading
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvloop
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_milvus_ext import MilvusVectorStore, StoreClosedError

pytestmark = [pytest.mark.lite, pytest.mark.timeout(120)]

EMBEDDINGS = DeterministicFakeEmbedding(size=16)


@pytest.fixture(scope="module")
def uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("loops") / "x.db")


@pytest.fixture()
def make_store(uri: str) -> Iterator[Callable[..., MilvusVectorStore]]:
    """Stores on fresh collections of one Lite file; dropped and closed afterwards."""
    stores: list[MilvusVectorStore] = []

    def make(**kwargs: Any) -> MilvusVectorStore:
        kwargs.setdefault("collection_name", f"loops_{uuid.uuid4().hex[:12]}")
        kwargs.setdefault("consistency_level", "Strong")
        kwargs.setdefault("index_params", {"metric_type": "COSINE"})  # scores: 1.0 = same
        store = MilvusVectorStore(EMBEDDINGS, connection_args={"uri": uri}, **kwargs)
        stores.append(store)
        return store

    yield make
    for store in stores:
        if store.is_closed:  # a closed store refuses every call: drop with a new one
            store = MilvusVectorStore(EMBEDDINGS, collection_name=store.collection_name,
                                      connection_args={"uri": uri})
        store.drop()
        store.close()


def count(store: MilvusVectorStore) -> int:
    rows = store.client.query(store.collection_name, filter="", output_fields=["count(*)"])
    return int(rows[0]["count(*)"])


def ids_of(documents: list[Document]) -> list[str | None]:
    return [d.id for d in documents]


# -- asyncio.run, several times -------------------------------------------------------------


def test_two_asyncio_runs_in_a_row(make_store: Callable[..., MilvusVectorStore]) -> None:
    store = make_store()

    async def add() -> list[str]:
        return await store.aadd_texts(
            ["alpha", "beta", "gamma"], metadatas=[{"n": 1}, {"n": 2}, {"n": 3}],
            ids=["a", "b", "c"])

    async def search() -> list[Document]:
        return await store.asimilarity_search("beta", k=2)

    assert asyncio.run(add()) == ["a", "b", "c"]
    found = asyncio.run(search())  # a new loop: the first loop's client must not be reused
    assert found[0].id == "b"
    assert found[0].page_content == "beta"
    assert found[0].metadata == {"n": 2}
    assert len(found) == 2
    # and a third loop mixing reads and writes
    again = asyncio.run(store.aget_by_ids(["c", "a"]))
    assert [(d.id, d.page_content) for d in again] == [("c", "gamma"), ("a", "alpha")]
    assert count(store) == 3


# -- a notebook: nest_asyncio, run_until_complete, kernel restart -------------------------

NOTEBOOK_CODE = textwrap.dedent(
    """
    import asyncio, json, sys
    import nest_asyncio
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_milvus_ext import MilvusVectorStore

    store = MilvusVectorStore(
        DeterministicFakeEmbedding(size=16), collection_name="notebook",
        connection_args={"uri": sys.argv[1]}, consistency_level="Strong", drop_old=True,
    )
    out = {}
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    nest_asyncio.apply()  # what Jupyter users do

    async def cell():
        # nested run_until_complete inside the running loop, then a plain await, then a
        # sync call from inside the running loop (a notebook cell calling the sync API)
        inner = asyncio.get_event_loop().run_until_complete(
            store.asimilarity_search("alpha", k=1))
        outer = await store.asimilarity_search("beta", k=1)
        sync = store.similarity_search("gamma", k=1)
        return [[d.id for d in inner], [d.id for d in outer], [d.id for d in sync]]

    out["add"] = loop.run_until_complete(
        store.aadd_texts(["alpha", "beta", "gamma"], ids=["a", "b", "c"]))
    out["first"] = loop.run_until_complete(cell())
    out["second"] = loop.run_until_complete(cell())
    out["sessions_open"] = len(store._async.sessions)
    loop.close()  # the kernel restarts its loop
    out["sessions_closed"] = len(store._async.sessions)
    loop2 = asyncio.new_event_loop()
    asyncio.set_event_loop(loop2)
    nest_asyncio.apply(loop2)
    out["new_loop"] = loop2.run_until_complete(cell())
    out["new_loop_add"] = loop2.run_until_complete(store.aadd_texts(["delta"], ids=["d"]))
    out["sessions_new"] = len(store._async.sessions)
    loop2.close()
    out["count"] = len(store.get_pks(None))
    store.drop()
    store.close()
    print("RESULT " + json.dumps(out))
    """
)


def test_nest_asyncio_notebook_pattern(tmp_path: Path) -> None:
    # nest_asyncio patches asyncio globally, so this runs in a process of its own
    proc = subprocess.run(
        [sys.executable, "-c", NOTEBOOK_CODE, str(tmp_path / "x.db")],
        capture_output=True, text=True, timeout=120,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-4000:]
    out = json.loads(lines[-1][len("RESULT "):])
    expected_cell = [["a"], ["b"], ["c"]]
    assert out["add"] == ["a", "b", "c"]
    assert out["first"] == expected_cell
    assert out["second"] == expected_cell
    assert out["sessions_open"] == 1
    assert out["sessions_closed"] == 0
    assert out["new_loop"] == expected_cell
    assert out["new_loop_add"] == ["d"]
    assert out["sessions_new"] == 1
    assert out["count"] == 4


# -- worker threads, each with its own loop ------------------------------------------------


def test_threads_each_running_their_own_loop(
    make_store: Callable[..., MilvusVectorStore],
) -> None:
    store = make_store()  # the collection does not exist yet: the threads race to create it
    n_threads, per_thread = 4, 3
    barrier = threading.Barrier(n_threads)
    results: dict[int, dict[str, Any]] = {}
    errors: list[BaseException] = []

    def texts_of(worker: int) -> list[str]:
        return [f"thread {worker} document {j}" for j in range(per_thread)]

    async def five_ops(worker: int) -> dict[str, Any]:
        texts = texts_of(worker)
        ids = [f"w{worker}-{j}" for j in range(per_thread)]
        # two writes at once (one coalesced batch), then three reads at once
        added, added_doc = await asyncio.gather(
            store.aadd_texts(texts[:-1], metadatas=[{"w": worker, "j": j} for j in (0, 1)],
                             ids=ids[:-1]),
            store.aadd_documents([Document(texts[-1], metadata={"w": worker, "j": 2},
                                           id=ids[-1])]),
        )
        first, scored, by_id = await asyncio.gather(
            store.asimilarity_search(texts[0], k=1),
            store.asimilarity_search_with_score(texts[1], k=1, filter={"w": worker}),
            store.aget_by_ids(list(reversed(ids))),
        )
        return {"added": added + added_doc, "first": first, "scored": scored, "by_id": by_id}

    def worker(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = asyncio.run(five_ops(i))
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=100)
    assert not any(t.is_alive() for t in threads), "a worker thread hung"
    assert not errors, errors
    for i in range(n_threads):
        texts = texts_of(i)
        ids = [f"w{i}-{j}" for j in range(per_thread)]
        r = results[i]
        assert r["added"] == ids
        assert [(d.id, d.page_content) for d in r["first"]] == [(ids[0], texts[0])]
        (doc, score), = r["scored"]
        assert (doc.id, doc.metadata) == (ids[1], {"w": i, "j": 1})
        assert score == pytest.approx(1.0, abs=1e-4)
        assert [(d.id, d.page_content) for d in r["by_id"]] == list(
            zip(reversed(ids), reversed(texts), strict=True))
    assert count(store) == n_threads * per_thread
    assert len(store._async.sessions) == 0  # every worker loop is closed


# -- uvloop ---------------------------------------------------------------------------------


def test_uvloop(make_store: Callable[..., MilvusVectorStore]) -> None:
    store = make_store()

    async def add_and_search(tag: str) -> tuple[bool, list[str], list[str | None], int]:
        running_uvloop = isinstance(asyncio.get_running_loop(), uvloop.Loop)
        written = await store.aadd_texts([f"uv {tag} one", f"uv {tag} two"],
                                         ids=[f"{tag}1", f"{tag}2"])
        found = await store.asimilarity_search(f"uv {tag} two", k=1)
        return running_uvloop, written, ids_of(found), len(store._async.sessions)

    assert uvloop.run(add_and_search("r")) == (True, ["r1", "r2"], ["r2"], 1)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(add_and_search("x")) == (True, ["x1", "x2"], ["x2"], 1)
        # a second call in the same uvloop reuses its session
        assert runner.run(add_and_search("y")) == (True, ["y1", "y2"], ["y2"], 1)
    assert len(store._async.sessions) == 0
    # a plain asyncio loop after the uvloop ones
    assert asyncio.run(add_and_search("z")) == (False, ["z1", "z2"], ["z2"], 1)
    assert count(store) == 8


# -- sync methods from inside a running loop ------------------------------------------------


async def test_sync_methods_inside_running_loop(
    make_store: Callable[..., MilvusVectorStore],
) -> None:
    store = make_store()
    assert store.add_texts(["red apple", "green pear"], metadatas=[{"c": "r"}, {"c": "g"}],
                           ids=["r", "g"]) == ["r", "g"]
    assert ids_of(store.similarity_search("green pear", k=1)) == ["g"]
    assert ids_of(store.similarity_search("red apple", k=2, filter={"c": "g"})) == ["g"]
    assert ids_of(store.get_by_ids(["g", "r"])) == ["g", "r"]
    # async and sync interleaved in the same coroutine
    assert await store.aadd_texts(["blue berry"], ids=["b"]) == ["b"]
    assert ids_of(store.similarity_search("blue berry", k=1)) == ["b"]
    assert store.delete(["r"]) is True
    assert ids_of(await store.aget_by_ids(["r", "g", "b"])) == ["g", "b"]
    assert count(store) == 2


# -- construction fetches no event loop -------------------------------------------------------

_LOOP_FUNCTIONS = ("get_event_loop", "get_event_loop_policy", "new_event_loop", "set_event_loop",
                   "get_running_loop", "_get_running_loop")


def _spy_on_loop_functions(monkeypatch: pytest.MonkeyPatch, thread_id: Callable[[], int | None],
                           calls: Counter[str]) -> None:
    """Count calls of asyncio's loop accessors made from the thread `thread_id()` names."""
    for module in (asyncio, asyncio.events):
        for name in _LOOP_FUNCTIONS:
            original = getattr(module, name)

            def spy(*args: Any, _original: Any = original, _name: str = name,
                    **kwargs: Any) -> Any:
                if threading.get_ident() == thread_id():
                    calls[_name] += 1
                return _original(*args, **kwargs)

            monkeypatch.setattr(module, name, spy)


def test_construction_outside_any_loop_fetches_no_loop(
    uri: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: Counter[str] = Counter()
    worker: dict[str, Any] = {}
    _spy_on_loop_functions(monkeypatch, lambda: worker.get("ident"), calls)

    def construct() -> None:  # a thread that never had a loop
        worker["ident"] = threading.get_ident()
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                plain = MilvusVectorStore(EMBEDDINGS, collection_name="no_loop",
                                          connection_args={"uri": uri})
                worker["plain_calls"] = dict(calls)
                # drop_old does sync I/O in the constructor: still no loop
                dropping = MilvusVectorStore(EMBEDDINGS, collection_name="no_loop",
                                             connection_args={"uri": uri}, drop_old=True)
                dropping.add_texts(["made in a loop-less thread"], ids=["t"])
                worker["found"] = ids_of(dropping.similarity_search("made in", k=1))
            worker["warnings"] = [f"{w.category.__name__}: {w.message}" for w in caught]
            worker["calls"] = dict(calls)
            dropping.drop()
            plain.close()
            dropping.close()
        except BaseException as error:
            worker["error"] = error

    thread = threading.Thread(target=construct)
    thread.start()
    thread.join(timeout=100)
    assert not thread.is_alive()
    assert "error" not in worker, worker.get("error")
    assert worker["plain_calls"] == {}
    assert worker["calls"] == {}
    assert worker["found"] == ["t"]
    assert not [w for w in worker["warnings"] if "DeprecationWarning" in w], worker["warnings"]


async def test_construction_inside_running_loop_fetches_no_loop(
    uri: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: Counter[str] = Counter()
    me = threading.get_ident()
    _spy_on_loop_functions(monkeypatch, lambda: me, calls)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store = MilvusVectorStore(EMBEDDINGS, collection_name=f"in_loop_{uuid.uuid4().hex[:8]}",
                                  connection_args={"uri": uri}, consistency_level="Strong")
    assert dict(calls) == {}
    assert not [w for w in caught if issubclass(w.category, DeprecationWarning)]
    assert len(store._async.sessions) == 0  # no session until the first async call
    monkeypatch.undo()
    try:
        assert await store.aadd_texts(["built in a loop"], ids=["l"]) == ["l"]
        assert ids_of(await store.asimilarity_search("built in a loop", k=1)) == ["l"]
        assert len(store._async.sessions) == 1
    finally:
        await store.adrop()
        await store.aclose()


# -- per-loop sessions are released ---------------------------------------------------------


def test_sessions_released_after_loops_close(
    make_store: Callable[..., MilvusVectorStore],
) -> None:
    store = make_store()
    store.add_texts(["session probe"], ids=["p"])

    async def probe() -> tuple[list[str | None], int]:
        found = await store.asimilarity_search("session probe", k=1)
        return ids_of(found), len(store._async.sessions)

    for _ in range(3):
        assert asyncio.run(probe()) == (["p"], 1)
    assert len(store._async.sessions) == 0

    # two loops open at once (not running): one session each, released when closed
    first, second = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        assert first.run_until_complete(probe()) == (["p"], 1)
        assert second.run_until_complete(probe()) == (["p"], 2)
        assert first.run_until_complete(probe()) == (["p"], 2)  # reused, not a third one
    finally:
        first.close()
    assert len(store._async.sessions) == 1
    second.close()
    assert len(store._async.sessions) == 0
    assert asyncio.run(probe()) == (["p"], 1)
    assert len(store._async.sessions) == 0


# -- close / aclose / with / async with ----------------------------------------------------


def test_close_and_with_close_the_store_for_good(
    make_store: Callable[..., MilvusVectorStore],
) -> None:
    store = make_store()
    with store as entered:
        assert entered is store
        store.add_texts(["inside with"], ids=["w"])
    assert store._clients._sync is None  # the sync client was released
    assert store.is_closed
    # a closed store refuses every call instead of silently opening new clients
    with pytest.raises(StoreClosedError, match="has been closed"):
        store.similarity_search("inside with", k=1)
    with pytest.raises(StoreClosedError):
        store.add_texts(["after with"], ids=["w2"])
    with pytest.raises(StoreClosedError):
        store.client  # noqa: B018
    store.close()  # idempotent
    with pytest.raises(StoreClosedError):
        asyncio.run(store.aadd_texts(["async after close"], ids=["a"]))
    with pytest.raises(StoreClosedError), store:
        pass
    assert store._clients._sync is None and len(store._async.sessions) == 0  # nothing reopened
    assert isinstance(StoreClosedError("x"), RuntimeError)

    # sync close from inside a running loop: the loop's session is dropped, later calls refused
    other = make_store()

    async def close_inside_loop() -> None:
        await other.aadd_texts(["async before close"], ids=["a"])
        other.close()
        assert len(other._async.sessions) == 0
        with pytest.raises(StoreClosedError):
            await other.asimilarity_search("async before close", k=1)
        assert len(other._async.sessions) == 0

    asyncio.run(close_inside_loop())
    # what was written before closing is there for a new store
    assert ids_of(make_store(collection_name=store.collection_name).get_by_ids(["w"])) == ["w"]
    assert count(make_store(collection_name=other.collection_name)) == 1


async def test_aclose_and_async_with_close_the_store_for_good(
    make_store: Callable[..., MilvusVectorStore],
) -> None:
    store = make_store()
    async with store as entered:
        assert entered is store
        assert await store.aadd_texts(["inside async with"], ids=["x"]) == ["x"]
        assert len(store._async.sessions) == 1
    assert len(store._async.sessions) == 0
    assert store._clients._sync is None
    with pytest.raises(StoreClosedError, match="has been closed"):
        await store.asimilarity_search("inside async with", k=1)
    with pytest.raises(StoreClosedError):
        store.aclient  # noqa: B018
    assert len(store._async.sessions) == 0  # no new session, no new client
    await store.aclose()
    await store.aclose()  # idempotent
    with pytest.raises(StoreClosedError):
        store.similarity_search("inside async with", k=1)
    with pytest.raises(StoreClosedError):
        await store.aget_by_ids(["x"])
    with pytest.raises(StoreClosedError):
        async with store:
            pass
    store = make_store(collection_name=store.collection_name)
    assert ids_of(await store.aget_by_ids(["x"])) == ["x"]
    # aclose while concurrent calls are pending in the coalescer: they finish first
    pending = [asyncio.ensure_future(store.aadd_texts([f"pending {i}"], ids=[f"p{i}"]))
               for i in range(5)]
    await asyncio.sleep(0)
    await store.aclose()
    assert [await p for p in pending] == [[f"p{i}"] for i in range(5)]
    assert count(make_store(collection_name=store.collection_name)) == 6


async def test_aclose_closes_every_async_client_it_opened(
    make_store: Callable[..., MilvusVectorStore], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Batches drained by `aclose` run on the closing session, not on a new, leaked one."""
    store = make_store()
    store.add_texts(["seed"], ids=["s"])
    created: list[Any] = []
    closed: list[Any] = []
    original = store._clients.new_async_client

    def tracking() -> Any:
        client = original()
        created.append(client)
        close = client.close

        async def tracked_close(*args: Any, **kwargs: Any) -> Any:
            closed.append(client)
            return await close(*args, **kwargs)

        client.close = tracked_close
        return client

    monkeypatch.setattr(store._clients, "new_async_client", tracking)
    assert ids_of(await store.asimilarity_search("seed", k=1)) == ["s"]
    pending = [asyncio.ensure_future(store.aadd_texts([f"queued {i}"], ids=[f"q{i}"]))
               for i in range(3)]
    await asyncio.sleep(0)  # the calls are queued in the coalescer
    await store.aclose()
    assert [await p for p in pending] == [[f"q{i}"] for i in range(3)]
    assert count(make_store(collection_name=store.collection_name)) == 4
    assert len(store._async.sessions) == 0
    assert len(created) == 1, f"{len(created)} async clients opened for one loop"
    assert [id(c) for c in closed] == [id(c) for c in created]
