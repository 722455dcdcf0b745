"""The two driver shells against fake pymilvus clients (no server).

`FakeClient` / `FakeAsyncClient` stand in for `MilvusClient` / `AsyncMilvusClient` where the
`ClientRegistry` builds them, so the drivers get their clients exactly as in production. Each
fake records its calls and raises the errors its script gives. The clock and sleeps are fakes
too: assertions are on counts, on the timeouts each try was given and on what was raised.
Every scenario runs on both shells, which must behave alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import grpc
import pytest
from fake_clock import FakeClock
from langchain_core.embeddings import DeterministicFakeEmbedding
from pymilvus.exceptions import MilvusException

from langchain_milvus_ext import _clients, _drivers
from langchain_milvus_ext._clients import ClientRegistry
from langchain_milvus_ext._collection import CollectionState
from langchain_milvus_ext._drivers import AsyncDriver, DriverOptions, SyncDriver
from langchain_milvus_ext._errors import MilvusConnectionError
from langchain_milvus_ext._retry import (
    Attempts,
    Failure,
    Outcome,
    RetryPolicy,
    ServerCode,
    after_failure,
)
from langchain_milvus_ext._schema import CollectionLayout
from langchain_milvus_ext._sealing import FLUSH_COST_PER_ROW, FLUSH_COST_ROWS, LiteSealing
from langchain_milvus_ext._steps import Call

URI = "http://milvus.example:19530"
KINDS = ["sync", "async"]


@dataclass
class Script:
    """What the fakes do: each call takes `cost` fake seconds, then raises the next error
    scripted for its method in `errors` (while any remain), else `always[method]`, else
    returns `result`."""

    clock: FakeClock
    errors: dict[str, list[Exception]] = field(default_factory=dict)
    always: dict[str, Exception] = field(default_factory=dict)
    cost: float = 0.0
    result: Any = "ok"
    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    """(client "sync"/"async", method, kwargs) of every call, in order."""

    def run(self, client: str, method: str, kwargs: dict[str, Any]) -> Any:
        self.calls.append((client, method, kwargs))
        self.clock.now += self.cost
        if self.errors.get(method):
            raise self.errors[method].pop(0)
        if method in self.always:
            raise self.always[method]
        return self.result

    def methods(self, client: str | None = None) -> list[str]:
        return [m for c, m, _ in self.calls if client is None or c == client]


class FakeClient:
    """`MilvusClient(**connection_args)`, scripted."""

    script: Script  # set by the fixture, shared by every fake of a test
    built: list[FakeClient | FakeAsyncClient]  # every fake client made, in order

    def __init__(self, **connection_args: Any) -> None:
        self.connection_args = connection_args
        self.built.append(self)

    def __getattr__(self, method: str) -> Any:
        return lambda **kwargs: self.script.run("sync", method, kwargs)

    def has_collection(self, collection_name: str) -> bool:
        return False

    def close(self) -> None:
        pass


class FakeAsyncClient:
    """`AsyncMilvusClient(**connection_args, dedicated=True)`, scripted."""

    script: Script
    built: list[FakeClient | FakeAsyncClient]

    def __init__(self, **connection_args: Any) -> None:
        self.connection_args = connection_args
        self.built.append(self)

    def __getattr__(self, method: str) -> Any:
        async def call(**kwargs: Any) -> Any:
            await asyncio.sleep(0)
            return self.script.run("async", method, kwargs)
        return call

    async def close(self) -> None:
        pass


@pytest.fixture()
def script(monkeypatch: pytest.MonkeyPatch) -> Iterator[Script]:
    clock = FakeClock()
    script = Script(clock)
    monkeypatch.setattr(_drivers, "_clock", clock)
    monkeypatch.setattr(_drivers, "_sleep", clock.sleep)
    monkeypatch.setattr(_drivers, "_asleep", clock.asleep)
    monkeypatch.setattr(FakeClient, "script", script, raising=False)
    monkeypatch.setattr(FakeAsyncClient, "script", script, raising=False)
    built: list[FakeClient | FakeAsyncClient] = []
    monkeypatch.setattr(FakeClient, "built", built, raising=False)
    monkeypatch.setattr(FakeAsyncClient, "built", built, raising=False)
    monkeypatch.setattr(_clients, "MilvusClient", FakeClient)
    monkeypatch.setattr(_clients, "AsyncMilvusClient", FakeAsyncClient)
    yield script


NO_JITTER = RetryPolicy(attempts=4, initial_backoff=0.0, max_backoff=0.0)


def _driver(kind: str, policy: RetryPolicy = NO_JITTER,
            sealing: LiteSealing | None = None) -> SyncDriver | AsyncDriver:
    state = CollectionState("c", CollectionLayout(), sealing=sealing)
    options = DriverOptions(retry=policy)
    embeddings = DeterministicFakeEmbedding(size=4)
    shell = SyncDriver if kind == "sync" else AsyncDriver
    return shell(state, ClientRegistry({"uri": URI}), embeddings, options)


def call(kind: str, step: Call, policy: RetryPolicy = NO_JITTER) -> tuple[Any, Any]:
    """`driver.call(step)` on a fresh driver of `kind`: (result, driver stats)."""
    driver = _driver(kind, policy)
    if isinstance(driver, SyncDriver):
        return driver.call(step), driver.stats

    async def main() -> Any:
        assert isinstance(driver, AsyncDriver)
        try:
            return await driver.call(step, driver.sessions.get())
        finally:
            await driver.aclose()

    return asyncio.run(main()), driver.stats


def raised(kind: str, step: Call, policy: RetryPolicy = NO_JITTER) -> BaseException:
    with pytest.raises(Exception) as info:
        call(kind, step, policy)
    return info.value


def _upsert(timeout: float | None = None) -> Call:
    return Call("upsert", {"collection_name": "c", "data": [{"id": 1}], "timeout": timeout})


def rate_limited() -> MilvusException:
    return MilvusException(ServerCode.RATE_LIMIT, "rate limit exceeded")


def wrapped(server: MilvusException, method: str = "upsert") -> MilvusException:
    """A server error as pymilvus raises it when told to try once (`retry_times=0`)."""
    try:
        raise MilvusException(server.code, f"[{method}] Retry run out of 0 retry times, "
                                           f"message={server.message}") from server
    except MilvusException as error:
        return error


# ------------------------------------------------------------------ clients


def test_the_shells_get_their_clients_from_the_registry(script: Script) -> None:
    call("sync", _upsert())
    call("async", _upsert())
    sync, async_ = FakeClient.built
    assert isinstance(sync, FakeClient) and isinstance(async_, FakeAsyncClient)
    assert sync.connection_args["uri"] == URI
    assert async_.connection_args["uri"] == URI and async_.connection_args["dedicated"]
    assert [c for c, _, _ in script.calls] == ["sync", "async"]


# ------------------------------------------------------------------ retries


@pytest.mark.parametrize("kind", KINDS)
def test_transient_errors_are_retried_and_counted(kind: str, script: Script) -> None:
    script.errors["upsert"] = [rate_limited(), MilvusException(2, "service unavailable"),
                               MilvusException(grpc.StatusCode.UNAVAILABLE, "connect failed")]
    result, stats = call(kind, _upsert())
    assert result == "ok"
    assert script.methods() == ["upsert"] * 4
    assert stats.calls["upsert"] == 4 and stats.retries == 3
    assert len(script.clock.waits) == 3


@pytest.mark.parametrize("kind", KINDS)
def test_tries_are_bounded_by_the_policy(kind: str, script: Script) -> None:
    script.always["search"] = rate_limited()
    error = raised(kind, Call("search", {"collection_name": "c"}))
    assert error is script.always["search"]
    assert script.methods() == ["search"] * NO_JITTER.attempts


PERMANENT = [
    MilvusException(ServerCode.PARAMETER_INVALID, "invalid parameter"),
    MilvusException(ServerCode.NEED_AUTHENTICATE, "service unavailable"),  # an auth code wins
    MilvusException(grpc.StatusCode.UNAUTHENTICATED, "unavailable"),
    MilvusException(100, "collection not found"),
    MilvusException(1100, "tokenizer unavailable", is_input_error=True),
    MilvusException(65535, "cannot parse expression: id == = 1, error: line 1:6 token "
                           "recognition error at: '= '"),  # Milvus 2.3.5, no code
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("error", PERMANENT, ids=repr)
def test_permanent_errors_are_tried_once(kind: str, error: MilvusException,
                                         script: Script) -> None:
    script.always["upsert"] = error
    got = raised(kind, _upsert())
    assert got is error or isinstance(got, MilvusConnectionError)
    assert script.methods() == ["upsert"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("method", ["insert", "create_collection"])
def test_insert_and_create_collection_are_never_retried(kind: str, method: str,
                                                        script: Script) -> None:
    script.always[method] = rate_limited()
    raised(kind, Call(method, {"collection_name": "c", "timeout": None}))
    assert script.methods() == [method]
    sent = script.calls[0][2]
    # pymilvus must not retry inside our one try either (create_collection's kwargs are
    # schema options, so it gets no pymilvus knobs at all)
    assert sent.get("retry_times", 0) == 0 and sent.get("retry_on_rate_limit", False) is False


@pytest.mark.parametrize("kind", KINDS)
def test_an_insert_of_fresh_ids_is_retried_as_an_upsert(kind: str, script: Script) -> None:
    # The first try may have written the rows before failing: an insert again could write
    # them twice, an upsert of the same ids cannot.
    script.errors["insert"] = [MilvusException(grpc.StatusCode.UNAVAILABLE, "connect failed")]
    script.errors["upsert"] = [rate_limited()]
    step = Call("insert", {"collection_name": "c", "data": [{"id": "a"}], "timeout": None},
                retry_as="upsert")
    result, stats = call(kind, step)
    assert result == "ok"
    assert script.methods() == ["insert", "upsert", "upsert"]
    assert [kwargs["data"] for _, _, kwargs in script.calls] == [[{"id": "a"}]] * 3
    assert stats.calls["insert"] == 1 and stats.calls["upsert"] == 2 and stats.retries == 2


# ------------------------------------------------------------------ deadlines


@pytest.mark.parametrize("kind", KINDS)
def test_each_try_gets_the_time_that_remains(kind: str, script: Script) -> None:
    script.cost = 2.0
    script.always["upsert"] = rate_limited()
    raised(kind, _upsert(timeout=5.0), RetryPolicy(attempts=10, initial_backoff=0.0,
                                                   max_backoff=0.0))
    # tries at t=0, 2, 4; one at t=6 would start after the deadline (t=5)
    assert [kw["timeout"] for _, _, kw in script.calls] == [5.0, 3.0, 1.0]


@pytest.mark.parametrize("kind", KINDS)
def test_a_try_that_ran_out_of_time_is_not_retried(kind: str, script: Script) -> None:
    script.cost = 5.0
    script.always["upsert"] = MilvusException(grpc.StatusCode.DEADLINE_EXCEEDED, "late")
    error = raised(kind, _upsert(timeout=5.0))
    assert error is script.always["upsert"]
    assert len(script.calls) == 1


# ------------------------------------------------------------------ outcomes


@pytest.mark.parametrize("kind", KINDS)
def test_outcome_raise_as_caught(kind: str, script: Script) -> None:
    error = MilvusException(100, "collection not found")
    script.always["search"] = error
    got = raised(kind, Call("search", {"collection_name": "c"}))
    assert got is error


@pytest.mark.parametrize("kind", KINDS)
def test_outcome_raise_server_error_drops_the_pymilvus_wrapper(kind: str,
                                                                script: Script) -> None:
    server = MilvusException(65535, "failed to create expr plan, expr = pk == = 1")
    script.always["upsert"] = wrapped(server)
    got = raised(kind, _upsert())
    assert got is server
    assert got.__cause__ is None and got.__suppress_context__
    assert len(script.calls) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_outcome_raise_connection_error_names_the_uri(kind: str, script: Script) -> None:
    refused = MilvusException(2, "Fail connecting to server on milvus.example:19530, illegal "
                                 "connection params or server unavailable")
    script.always["search"] = refused
    got = raised(kind, Call("search", {"collection_name": "c"}))
    assert isinstance(got, MilvusConnectionError) and URI in str(got)
    assert got.__cause__ is refused
    assert len(script.calls) == NO_JITTER.attempts  # unavailable: retried first


@pytest.mark.parametrize("kind", KINDS)
def test_a_connection_error_of_ours_is_raised_as_it_is(kind: str, script: Script) -> None:
    ours = MilvusConnectionError("cannot open the Milvus Lite file")
    script.always["search"] = ours
    assert raised(kind, Call("search", {"collection_name": "c"})) is ours


def _attempts(method: str = "search") -> Attempts:
    return Attempts(NO_JITTER, method, None, now=0.0)


def test_after_failure_names_each_outcome() -> None:
    args = {"uri": URI}
    retry = after_failure(_attempts(), rate_limited(), args, now=0.0)
    assert retry.outcome is Outcome.RETRY and retry.wait == 0.0

    caught = MilvusException(100, "collection not found")
    assert after_failure(_attempts(), caught, args, 0.0) == Failure(
        Outcome.RAISE_AS_CAUGHT, caught)

    server = MilvusException(1100, "invalid parameter")
    assert after_failure(_attempts(), wrapped(server), args, 0.0) == Failure(
        Outcome.RAISE_SERVER_ERROR, server)

    refused = ConnectionError("connection refused")
    clear = after_failure(_attempts(), refused, args, 0.0)
    assert clear.outcome is Outcome.RAISE_CONNECTION_ERROR and clear.cause is refused
    assert isinstance(clear.error, MilvusConnectionError) and URI in str(clear.error)

    no_more = after_failure(_attempts("insert"), rate_limited(), args, 0.0)
    assert no_more.outcome is Outcome.RAISE_AS_CAUGHT  # insert: never retried


def test_a_retry_outcome_does_not_raise() -> None:
    with pytest.raises(RuntimeError, match="not an outcome that raises"):
        Failure(Outcome.RETRY, rate_limited()).raise_()


# ------------------------------------------------------------------ symmetry


SCENARIOS: dict[str, dict[str, Any]] = {
    "success": {},
    "transient then success": {"errors": {"upsert": [rate_limited()]}},
    "always transient": {"always": {"upsert": rate_limited()}},
    "permanent": {"always": {"upsert": MilvusException(1100, "invalid parameter")}},
    "wrapped": {"always": {"upsert": wrapped(MilvusException(1100, "invalid"))}},
    "refused": {"always": {"upsert": ConnectionError("connection refused")}},
    "deadline": {"always": {"upsert": rate_limited()}, "cost": 2.0, "timeout": 5.0},
}


def _observe(kind: str, scenario: dict[str, Any], script: Script) -> tuple[Any, ...]:
    script.calls.clear()
    script.clock.waits.clear()
    script.errors = {m: list(e) for m, e in scenario.get("errors", {}).items()}
    script.always = dict(scenario.get("always", {}))
    script.cost = scenario.get("cost", 0.0)
    try:
        result, stats = call(kind, _upsert(scenario.get("timeout")))
        outcome: Any = result
        counts: Any = (dict(stats.calls), stats.retries)
    except Exception as error:
        outcome = (type(error), str(error), type(error.__cause__))
        counts = None
    sent = [(m, kw) for _, m, kw in script.calls]
    return outcome, counts, sent, list(script.clock.waits)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_both_shells_make_the_same_calls_and_raise_the_same(name: str, script: Script) -> None:
    assert _observe("sync", SCENARIOS[name], script) == _observe("async", SCENARIOS[name],
                                                                 script)


# ------------------------------------------------------------------ pymilvus workarounds


def test_the_async_shell_sends_the_worked_around_calls_with_the_sync_client(
        script: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_drivers, "_VIA_SYNC_CLIENT", frozenset({"delete"}))
    call("async", Call("delete", {"collection_name": "c", "ids": [1]}))
    call("async", Call("search", {"collection_name": "c"}))
    assert [(c, m) for c, m, _ in script.calls] == [("sync", "delete"), ("async", "search")]
    monkeypatch.setattr(_drivers, "_VIA_SYNC_CLIENT", frozenset())
    call("async", Call("delete", {"collection_name": "c", "ids": [1]}))
    assert script.calls[-1][:2] == ("async", "delete")


# ------------------------------------------------------------------ Milvus Lite flushes


def run_calls(kind: str, steps: list[Call], sealing: LiteSealing | None) -> list[Any]:
    """`driver.call(step)` for each step in turn, on one driver of `kind` with `sealing`: the
    results, or the errors raised."""
    driver = _driver(kind, sealing=sealing)

    def outcome(run: Any) -> Any:
        try:
            return run()
        except Exception as error:
            return error

    if isinstance(driver, SyncDriver):
        return [outcome(partial(driver.call, step)) for step in steps]

    async def main() -> list[Any]:
        assert isinstance(driver, AsyncDriver)
        session, out = driver.sessions.get(), []
        for step in steps:
            try:
                out.append(await driver.call(step, session))
            except Exception as error:
                out.append(error)
        await driver.aclose()
        return out

    return asyncio.run(main())


def _insert(rows: int) -> Call:
    return Call("insert", {"collection_name": "c", "data": [{"id": i} for i in range(rows)]})


SEARCH = Call("search", {"collection_name": "c"})


@pytest.mark.parametrize("kind", KINDS)
def test_on_lite_a_read_flushes_first_once_reads_scanned_what_a_flush_costs(
        kind: str, script: Script) -> None:
    # The first read flushes what came before this process; then 1,000 rows written are read
    # unflushed until the reads scanned FLUSH_COST_ROWS + FLUSH_COST_PER_ROW * 1,000 rows.
    reads_before_flush = -(-(FLUSH_COST_ROWS + FLUSH_COST_PER_ROW * 1000) // 1000) - 1
    steps = [SEARCH, _insert(1000)] + [SEARCH] * (reads_before_flush + 2)
    assert run_calls(kind, steps, LiteSealing()) == ["ok"] * len(steps)
    assert script.methods() == (["flush", "search", "insert"] + ["search"] * reads_before_flush
                                + ["flush", "search", "search"])
    assert script.calls[0][2]["collection_name"] == "c"


@pytest.mark.parametrize("kind", KINDS)
def test_on_lite_a_failed_flush_or_write_changes_no_read(kind: str, script: Script) -> None:
    script.always["flush"] = MilvusException(ServerCode.PARAMETER_INVALID, "no flush here")
    sealing = LiteSealing()
    assert run_calls(kind, [SEARCH, SEARCH], sealing) == ["ok", "ok"]
    assert script.methods() == ["flush", "search", "search"]  # the failure was not retried
    script.calls.clear()
    script.always = {"insert": MilvusException(ServerCode.PARAMETER_INVALID, "bad rows")}
    out = run_calls(kind, [_insert(1000)] + [SEARCH] * 20, sealing)
    assert isinstance(out[0], MilvusException) and out[1:] == ["ok"] * 20
    assert "flush" not in script.methods()  # rows that were not written are never flushed


@pytest.mark.parametrize("kind", KINDS)
def test_on_a_server_nothing_is_flushed(kind: str, script: Script) -> None:
    assert run_calls(kind, [_insert(1000)] + [SEARCH] * 20, None) == ["ok"] * 21
    assert "flush" not in script.methods()
