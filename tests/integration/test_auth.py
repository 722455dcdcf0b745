"""Authentication against Milvus 2.3.5 started with authorization on (an instance of its own).

The right token works for every operation, sync and async. Wrong credentials (a wrong token,
or a wrong user/password) and a URI with nothing listening fail the first use with
`MilvusConnectionError`, naming the URI and never the secret, which must appear in no log
record (every logger, DEBUG) and nothing written to stdout/stderr either.
"""

from __future__ import annotations

import logging
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import servers
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_milvus_ext import MilvusConnectionError, MilvusVectorStore

pytestmark = [pytest.mark.server, pytest.mark.timeout(300)]

SECRET = "wrong-secret-XYZ"
PHRASE = "authentication failed or the server is unreachable"
FAIL_BOUND_S = 60.0  # a refused first use must fail within this (retries included)


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.ServerHandle]:
    """Milvus 2.3.5 standalone with authorization (root/Milvus), for this module only."""
    if not servers.milvus_server_bin().exists():
        pytest.fail(f"Milvus 2.3.5 not installed at {servers.milvus_server_bin()}", pytrace=False)
    handle = servers.start_milvus_standalone(
        tmp_path_factory.mktemp("milvus235-auth"), authorization=True)
    yield handle
    handle.stop()


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.texts: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        try:  # message, traceback, stack and the raw args/extra fields
            self.texts.append(f"{self.format(record)}\n{record.msg!r} {record.args!r} "
                              f"{record.__dict__!r}")
        except Exception as exc:  # pragma: no cover - a broken record still gets looked at
            self.texts.append(f"unformattable record {record.__dict__!r}: {exc!r}")


@pytest.fixture()
def all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[_Records]:
    """Every log record of every logger at DEBUG: caplog on the root logger, plus a handler on
    each existing logger that does not propagate (pymilvus's own loggers do not)."""
    caplog.set_level(logging.DEBUG)
    handler = _Records()
    root = logging.getLogger()
    saved: list[tuple[logging.Logger, int]] = []
    loggers = [root] + [logger for logger in logging.Logger.manager.loggerDict.values()
                        if isinstance(logger, logging.Logger)]
    for logger in loggers:
        saved.append((logger, logger.level))
        logger.setLevel(logging.DEBUG)
        if logger is root or not logger.propagate:
            logger.addHandler(handler)
    try:  # the capture itself works, through pymilvus's non-propagating logger and the root
        logging.getLogger("pymilvus.decorators").debug("capture-probe-1")
        logging.getLogger("langchain_milvus_ext").debug("capture-probe-2")
        assert len([t for t in handler.texts if "capture-probe-" in t]) == 2
        assert any("capture-probe-2" in r.getMessage() for r in caplog.records)
        handler.texts.clear()
        handler.records.clear()
        caplog.clear()
        yield handler
    finally:
        for logger, level in saved:
            logger.setLevel(level)
            logger.removeHandler(handler)


def _store(connection_args: dict[str, Any], **kwargs: Any) -> MilvusVectorStore:
    return MilvusVectorStore(
        DeterministicFakeEmbedding(size=16), collection_name=f"auth_{uuid.uuid4().hex[:10]}",
        connection_args=connection_args, consistency_level="Strong", **kwargs)


def _wrong_args(uri: str) -> dict[str, dict[str, Any]]:
    return {
        "wrong-token": {"uri": uri, "token": f"root:{SECRET}"},
        "wrong-password": {"uri": uri, "user": "root", "password": SECRET},
    }


def _check_refusal(error: BaseException, uri: str, elapsed: float) -> None:
    assert isinstance(error, MilvusConnectionError), f"{type(error).__name__}: {error}"
    message = str(error)
    assert PHRASE in message and uri in message, message
    chain = "".join(traceback.format_exception(error))  # the causes too
    for text in (message, repr(error), chain):
        assert SECRET not in text and "root:" + SECRET not in text
    assert elapsed < FAIL_BOUND_S, f"took {elapsed:.1f}s to fail"


def _check_nothing_leaked(logs: _Records, caplog: pytest.LogCaptureFixture,
                          capfd: pytest.CaptureFixture[str]) -> None:
    out, err = capfd.readouterr()
    caplog_texts = [f"{r.getMessage()} {r.exc_text or ''} {r.__dict__!r}" for r in caplog.records]
    leaking = [t[:300] for t in [*logs.texts, *caplog_texts] if SECRET in t]
    assert not leaking, f"secret in log records: {leaking[:3]}"
    assert SECRET not in out, "secret written to stdout"
    assert SECRET not in err, "secret written to stderr"


# ------------------------------------------------------------------ right credentials


def test_root_token_sync(auth_server: servers.ServerHandle) -> None:
    store = _store({"uri": auth_server.uri, "token": servers.ROOT_TOKEN})
    try:
        texts = ["alpha apples", "beta bananas", "gamma grapes"]
        assert store.add_texts(texts, [{"n": i} for i in range(3)], ids=["a", "b", "c"]) == [
            "a", "b", "c"]
        assert store.similarity_search("beta bananas", k=1)[0].id == "b"
        assert [d.page_content for d in store.get_by_ids(["c", "a"])] == [texts[2], texts[0]]
        assert store.delete(["a"]) is True
        assert [d.id for d in store.get_by_ids(["a", "b"])] == ["b"]
        assert store.get_by_ids(["b"])[0].metadata == {"n": 1}
    finally:
        store.drop()
        store.close()


async def test_root_token_async(auth_server: servers.ServerHandle) -> None:
    store = _store({"uri": auth_server.uri, "token": servers.ROOT_TOKEN})
    try:
        texts = ["alpha apples", "beta bananas", "gamma grapes"]
        assert await store.aadd_texts(texts, [{"n": i} for i in range(3)],
                                      ids=["a", "b", "c"]) == ["a", "b", "c"]
        assert (await store.asimilarity_search("gamma grapes", k=1))[0].id == "c"
        got = await store.aget_by_ids(["b", "c"])
        assert [d.page_content for d in got] == [texts[1], texts[2]]
        assert await store.adelete(["b"]) is True
        assert [d.id for d in await store.aget_by_ids(["a", "b", "c"])] == ["a", "c"]
        await store.adrop()
    finally:
        await store.aclose()


# ------------------------------------------------------------------ wrong credentials

_SYNC_FIRST_USES: dict[str, Callable[[MilvusVectorStore], object]] = {
    "add_texts": lambda s: s.add_texts(["hello"], ids=["x"]),
    "similarity_search": lambda s: s.similarity_search("hello", k=1),
    "get_by_ids": lambda s: s.get_by_ids(["x"]),
}


@pytest.mark.parametrize("first_use", sorted(_SYNC_FIRST_USES))
@pytest.mark.parametrize("credentials", ["wrong-token", "wrong-password"])
def test_wrong_credentials_sync(
    auth_server: servers.ServerHandle, credentials: str, first_use: str, all_logs: _Records,
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str],
) -> None:
    uri = auth_server.uri
    store = _store(_wrong_args(uri)[credentials])
    started = time.monotonic()
    with pytest.raises(Exception) as info:
        _SYNC_FIRST_USES[first_use](store)
    _check_refusal(info.value, uri, time.monotonic() - started)
    store.close()
    _check_nothing_leaked(all_logs, caplog, capfd)


@pytest.mark.parametrize("first_use", ["aadd_texts", "asimilarity_search", "aget_by_ids"])
@pytest.mark.parametrize("credentials", ["wrong-token", "wrong-password"])
async def test_wrong_credentials_async(
    auth_server: servers.ServerHandle, credentials: str, first_use: str, all_logs: _Records,
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str],
) -> None:
    uri = auth_server.uri
    store = _store(_wrong_args(uri)[credentials])
    calls = {
        "aadd_texts": lambda: store.aadd_texts(["hello"], ids=["x"]),
        "asimilarity_search": lambda: store.asimilarity_search("hello", k=1),
        "aget_by_ids": lambda: store.aget_by_ids(["x"]),
    }
    started = time.monotonic()
    with pytest.raises(Exception) as info:
        await calls[first_use]()
    _check_refusal(info.value, uri, time.monotonic() - started)
    await store.aclose()
    _check_nothing_leaked(all_logs, caplog, capfd)


# ------------------------------------------------------------------ nothing listening


def _dead_uri() -> str:
    return f"http://127.0.0.1:{servers.free_port()}"


def test_wrong_uri_sync(all_logs: _Records) -> None:
    uri = _dead_uri()
    store = _store({"uri": uri}, timeout=2)
    started = time.monotonic()
    with pytest.raises(Exception) as info:
        store.add_texts(["hello"], ids=["x"])
    elapsed = time.monotonic() - started
    assert isinstance(info.value, MilvusConnectionError), repr(info.value)
    assert PHRASE in str(info.value) and uri in str(info.value)
    assert elapsed < 30, f"took {elapsed:.1f}s to report an unreachable server"
    store.close()


async def test_wrong_uri_async(all_logs: _Records) -> None:
    uri = _dead_uri()
    store = _store({"uri": uri}, timeout=2)
    started = time.monotonic()
    with pytest.raises(Exception) as info:
        await store.aadd_texts(["hello"], ids=["x"])
    elapsed = time.monotonic() - started
    assert isinstance(info.value, MilvusConnectionError), repr(info.value)
    assert PHRASE in str(info.value) and uri in str(info.value)
    assert elapsed < 30, f"took {elapsed:.1f}s to report an unreachable server"
    await store.aclose()


def test_secret_in_uri_is_not_shown(auth_server: servers.ServerHandle, all_logs: _Records,
                                    caplog: pytest.LogCaptureFixture,
                                    capfd: pytest.CaptureFixture[str]) -> None:
    """Credentials given inside the URI (http://user:password@host) are not echoed either."""
    host = auth_server.uri.removeprefix("http://")
    store = _store({"uri": f"http://root:{SECRET}@{host}"}, timeout=5)
    started = time.monotonic()
    with pytest.raises(Exception) as info:
        store.add_texts(["hello"], ids=["x"])
    elapsed = time.monotonic() - started
    assert isinstance(info.value, MilvusConnectionError), repr(info.value)
    assert PHRASE in str(info.value) and host in str(info.value)
    for text in (str(info.value), repr(info.value),
                 "".join(traceback.format_exception(info.value))):
        assert SECRET not in text
    assert elapsed < FAIL_BOUND_S
    store.close()
    _check_nothing_leaked(all_logs, caplog, capfd)
