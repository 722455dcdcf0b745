"""A call's `timeout` is a deadline for the whole call, retries included (fake clients, no server).

The clock, sleeps and clients are fakes: assertions are on counts and on the timeouts each try
was given, never on wall-clock time.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

import grpc
import pytest
from fake_clock import FakeClock
from langchain_core.embeddings import DeterministicFakeEmbedding
from pymilvus.exceptions import MilvusException, MilvusUnavailableException

from langchain_milvus_ext import _drivers
from langchain_milvus_ext._clients import ClientRegistry
from langchain_milvus_ext._collection import CollectionState
from langchain_milvus_ext._drivers import AsyncDriver, DriverOptions, SyncDriver
from langchain_milvus_ext._errors import MilvusConnectionError
from langchain_milvus_ext._retry import Attempts, RetryPolicy
from langchain_milvus_ext._schema import CollectionLayout
from langchain_milvus_ext._steps import Call


@dataclass
class FlakyClient:
    """Each call takes `cost` seconds of fake time and fails while `failures` remain."""

    clock: FakeClock
    cost: float = 2.0
    failures: int = 100
    error: Exception = field(default_factory=lambda: MilvusUnavailableException(
        message="server unavailable"))
    seen: list[dict[str, Any]] = field(default_factory=list)

    def _call(self, **kwargs: Any) -> dict[str, Any]:
        self.seen.append(kwargs)
        self.clock.now += self.cost
        if self.failures > 0:
            self.failures -= 1
            raise self.error
        return {"upsert_count": 1}

    def upsert(self, **kwargs: Any) -> dict[str, Any]:
        return self._call(**kwargs)

    def insert(self, **kwargs: Any) -> dict[str, Any]:
        return self._call(**kwargs)


class AsyncFlakyClient(FlakyClient):
    async def upsert(self, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        await asyncio.sleep(0)
        return self._call(**kwargs)


def _drivers_for(client: FlakyClient, policy: RetryPolicy) -> tuple[SyncDriver, AsyncDriver]:
    clients = cast(ClientRegistry, SimpleNamespace(sync=lambda: client, connection_args={}))
    state = CollectionState("c", CollectionLayout())
    options = DriverOptions(retry=policy)
    embeddings = DeterministicFakeEmbedding(size=4)
    return (SyncDriver(state, clients, embeddings, options),
            AsyncDriver(state, clients, embeddings, options))


@pytest.fixture()
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    clock = FakeClock()
    monkeypatch.setattr(_drivers, "_clock", clock)
    monkeypatch.setattr(_drivers, "_sleep", clock.sleep)
    monkeypatch.setattr(_drivers, "_asleep", clock.asleep)
    return clock


NO_JITTER = RetryPolicy(attempts=10, initial_backoff=0.0, max_backoff=0.0)
UPSERT = Call("upsert", {"collection_name": "c", "data": [{}], "timeout": 5.0})


def _run(kind: str, client: FlakyClient, policy: RetryPolicy, step: Call = UPSERT) -> Any:
    sync, async_ = _drivers_for(client, policy)
    if kind == "sync":
        return sync.call(step)
    session = cast(Any, SimpleNamespace(client=client))
    return asyncio.run(async_.call(step, session))


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_each_retry_gets_only_the_time_that_remains(kind: str, clock: FakeClock) -> None:
    client = (AsyncFlakyClient if kind == "async" else FlakyClient)(clock)
    with pytest.raises((MilvusException, MilvusConnectionError)):
        _run(kind, client, NO_JITTER)
    # tries at t=0, 2, 4 (each costs 2 s); a try at t=6 would start after the deadline (t=5)
    assert [kw["timeout"] for kw in client.seen] == [5.0, 3.0, 1.0]
    assert clock.now - 1000.0 == 6.0  # the last try was given 1 s; the fake ignored it


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_no_retry_starts_when_its_backoff_would_reach_the_deadline(
        kind: str, clock: FakeClock) -> None:
    client = (AsyncFlakyClient if kind == "async" else FlakyClient)(clock, cost=1.0)
    policy = RetryPolicy(attempts=10, initial_backoff=8.0, max_backoff=8.0)
    with pytest.raises((MilvusException, MilvusConnectionError)):
        _run(kind, client, policy)
    times = [kw["timeout"] for kw in client.seen]
    assert times[0] == 5.0 and all(0 < t <= 5.0 for t in times)
    assert all(later < earlier for earlier, later in zip(times, times[1:], strict=False))
    assert clock.now - 1000.0 <= 5.0 + 1.0  # no try began after the deadline
    assert len(client.seen) == len(clock.waits) + 1


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_pymilvus_does_not_retry_inside_our_tries(kind: str, clock: FakeClock) -> None:
    client = (AsyncFlakyClient if kind == "async" else FlakyClient)(clock, failures=1)
    assert _run(kind, client, NO_JITTER) == {"upsert_count": 1}
    assert len(client.seen) == 2
    for kwargs in client.seen:
        assert kwargs["retry_times"] == 0 and kwargs["retry_on_rate_limit"] is False


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_without_a_timeout_the_policy_bounds_the_tries(kind: str, clock: FakeClock) -> None:
    client = (AsyncFlakyClient if kind == "async" else FlakyClient)(clock)
    step = Call("upsert", {"collection_name": "c", "data": [{}], "timeout": None})
    with pytest.raises((MilvusException, MilvusConnectionError)):
        _run(kind, client, RetryPolicy(attempts=3, initial_backoff=0.0, max_backoff=0.0), step)
    assert len(client.seen) == 3
    assert all(kw["timeout"] is None for kw in client.seen)


def test_a_try_that_ran_out_of_time_is_not_retried(clock: FakeClock) -> None:
    error = MilvusException(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")
    client = FlakyClient(clock, cost=5.0, error=error)
    with pytest.raises((MilvusException, MilvusConnectionError)):
        _run("sync", client, NO_JITTER)
    assert [kw["timeout"] for kw in client.seen] == [5.0]


def test_inserts_are_tried_once_and_pymilvus_does_not_retry_them(clock: FakeClock) -> None:
    client = FlakyClient(clock)
    step = Call("insert", {"collection_name": "c", "data": [{}], "timeout": 5.0})
    with pytest.raises((MilvusException, MilvusConnectionError)):
        _run("sync", client, NO_JITTER, step)
    assert len(client.seen) == 1 and client.seen[0]["retry_times"] == 0


def test_attempts_is_pure_and_deadline_bound() -> None:
    attempts = Attempts(NO_JITTER, "search", 1.0, now=10.0)
    assert attempts.kwargs({"timeout": 1.0, "x": 1}, now=10.0)["timeout"] == 1.0
    assert attempts.kwargs({"timeout": 1.0}, now=10.25)["timeout"] == 0.75
    unavailable = MilvusUnavailableException(message="unavailable")
    assert attempts.retry_after(unavailable, now=10.5) == 0.0
    assert attempts.retry_after(unavailable, now=11.0) is None  # the deadline has come
    assert Attempts(NO_JITTER, "search", None, now=0.0).kwargs({"a": 1}, now=5.0) == {
        "a": 1, "retry_times": 0, "retry_on_rate_limit": False}


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_server_errors_are_raised_as_the_server_gave_them(kind: str, clock: FakeClock) -> None:
    # pymilvus told to make one try wraps a server error: "[upsert] Retry run out of 0 ..."
    original = MilvusException(65535, "failed to create expr plan, expr = pk == = 1")
    try:
        raise MilvusException(65535, "[upsert] Retry run out of 0 retry times, message="
                                     "failed to create expr plan") from original
    except MilvusException as wrapped:
        error = wrapped
    client = (AsyncFlakyClient if kind == "async" else FlakyClient)(clock, error=error)
    with pytest.raises(MilvusException) as info:
        _run(kind, client, NO_JITTER)
    assert info.value is original and len(client.seen) == 1
