"""Unit tests for the DataLoader-style coalescer (pure asyncio, no Milvus).

Every assertion is on counts and contents, never on wall-clock durations.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import random
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from langchain_milvus_ext._coalescer import (
    BatchError,
    Coalescer,
    CoalescerLimits,
)

pytestmark = pytest.mark.timeout(30)


class Recorder:
    """A batch_fn that doubles each item and records every call."""

    def __init__(self, sleep: Callable[[], float] | None = None) -> None:
        self.calls: list[tuple[Any, list[int]]] = []
        self.running = 0
        self.peak = 0
        self._sleep = sleep

    async def __call__(self, key: Any, items: list[int]) -> list[int]:
        self.calls.append((key, list(items)))
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            if self._sleep is not None:
                await asyncio.sleep(self._sleep())
            return [x * 2 for x in items]
        finally:
            self.running -= 1


class Gated:
    """A batch_fn that records each call, then holds every batch until ``release`` is set,
    and doubles each item; ``started`` is set by the first call."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, list[int]]] = []
        self.started, self.release = asyncio.Event(), asyncio.Event()

    async def __call__(self, key: Any, items: list[int]) -> list[int]:
        self.calls.append((key, list(items)))
        self.started.set()
        await self.release.wait()
        return [x * 2 for x in items]

    @property
    def batches(self) -> list[list[int]]:
        """The items of each call, in call order."""
        return [items for _, items in self.calls]


async def test_thousand_single_submits_make_one_batch() -> None:
    fn = Recorder()
    c: Coalescer[str, int, int] = Coalescer(fn, CoalescerLimits(max_batch_items=1024))
    results = await asyncio.gather(*(c.submit("k", [i]) for i in range(1000)))
    assert len(fn.calls) == 1 and len(fn.calls[0][1]) == 1000
    for i, r in enumerate(results):
        assert r == [2 * i]
    assert (c.stats.batches, c.stats.items, c.stats.max_batch_seen) == (1, 1000, 1000)


async def test_items_are_passed_by_reference() -> None:
    seen: list[object] = []

    async def fn(key: str, items: list[object]) -> list[int]:
        seen.extend(items)
        return [0] * len(items)

    objs = [object() for _ in range(10)]
    c: Coalescer[str, object, int] = Coalescer(fn)
    await asyncio.gather(*(c.submit("k", [o]) for o in objs))
    assert len(seen) == 10 and all(a is b for a, b in zip(seen, objs, strict=True))


async def test_different_keys_are_never_merged() -> None:
    fn = Recorder()
    c: Coalescer[tuple[str, int], int, int] = Coalescer(fn)
    keys = [("a", 1), ("b", 2), ("a", 2)]
    results = await asyncio.gather(*(c.submit(keys[i % 3], [i]) for i in range(300)))
    assert [r[0] for r in results] == [2 * i for i in range(300)]
    assert len(fn.calls) == 3
    for key, items in fn.calls:
        assert all(keys[i % 3] == key for i in items)


async def test_large_call_is_split_and_reassembled_in_order() -> None:
    rng = random.Random(7)
    fn = Recorder(sleep=lambda: rng.uniform(0, 0.01))  # batches finish out of order
    c: Coalescer[str, int, int] = Coalescer(
        fn, CoalescerLimits(max_batch_items=1024, max_in_flight=4)
    )
    items = list(range(5000))
    assert await c.submit("k", items) == [2 * x for x in items]
    assert len(fn.calls) == 5 and [len(b) for _, b in fn.calls] == [1024] * 4 + [904]
    assert c.stats.max_batch_seen == 1024 and fn.peak == 4


async def test_many_mixed_callers_get_their_own_results_when_batches_finish_out_of_order() -> None:
    rng = random.Random(11)
    fn = Recorder(sleep=lambda: rng.uniform(0, 0.005))
    c: Coalescer[str, int, int] = Coalescer(fn, CoalescerLimits(max_batch_items=7, max_in_flight=5))
    calls: list[list[int]] = []
    nxt = 0
    for _ in range(200):
        n = rng.randint(1, 20)
        calls.append(list(range(nxt, nxt + n)))
        nxt += n
    results = await asyncio.gather(*(c.submit("k", items) for items in calls))
    for items, res in zip(calls, results, strict=True):
        assert res == [2 * x for x in items]
    assert c.stats.items == nxt and c.stats.batches == math.ceil(nxt / 7)
    assert all(len(b) <= 7 for _, b in fn.calls)


async def test_max_in_flight_is_respected() -> None:
    fn = Recorder(sleep=lambda: 0.002)
    c: Coalescer[str, int, int] = Coalescer(
        fn, CoalescerLimits(max_batch_items=10, max_in_flight=3)
    )
    results = await asyncio.gather(
        c.submit("a", list(range(100))), c.submit("b", list(range(100))), c.submit("c", [1])
    )
    assert results[0] == [2 * x for x in range(100)] and results[2] == [2]
    assert fn.peak == 3 and c.stats.max_in_flight_seen == 3
    assert c.stats.batches == 21


async def test_max_batch_bytes_splits_batches() -> None:
    sizes: list[list[int]] = []

    async def fn(key: str, items: list[bytes]) -> list[int]:
        sizes.append([len(x) for x in items])
        return [len(x) for x in items]

    c: Coalescer[str, bytes, int] = Coalescer(fn, CoalescerLimits(max_batch_bytes=10), size_of=len)
    items = [b"aaaa", b"bbbb", b"cccc", b"x" * 25, b"dddd"]
    assert await c.submit("k", items) == [4, 4, 4, 25, 4]
    assert sizes == [[4, 4], [4], [25], [4]]  # an oversized item goes out alone


async def test_failed_batch_reaches_every_caller_in_it_and_only_them() -> None:
    boom = RuntimeError("boom")

    async def fn(key: str, items: list[int]) -> list[int]:
        await asyncio.sleep(0)
        if 51 in items:
            raise boom
        return [x * 2 for x in items]

    c: Coalescer[str, int, int] = Coalescer(fn, CoalescerLimits(max_batch_items=4))
    a, b, cc, d = await asyncio.gather(
        c.submit("k", [0, 1, 2, 3, 4, 5]),  # batches [0..3] ok and [4, 5, 50, 51] failing
        c.submit("k", [50, 51]),
        c.submit("k", [60, 61, 62, 63]),
        c.submit("k", [70]),
        return_exceptions=True,
    )
    assert isinstance(a, BatchError) and isinstance(b, BatchError)
    assert a.failed_indices == [4, 5] and a.succeeded_indices == [0, 1, 2, 3]
    assert a.partial_results == {0: 0, 1: 2, 2: 4, 3: 6}
    assert b.failed_indices == [0, 1] and b.succeeded_indices == [] and b.partial_results == {}
    assert a.__cause__ is boom and b.__cause__ is boom and a.errors == [boom]
    assert cc == [120, 122, 124, 126] and d == [140]
    assert c.stats.batches == 4


async def test_wrong_result_count_fails_every_caller() -> None:
    async def fn(key: str, items: list[int]) -> list[int]:
        return items[:-1]

    c: Coalescer[str, int, int] = Coalescer(fn)
    out = await asyncio.gather(*(c.submit("k", [i, i]) for i in range(3)), return_exceptions=True)
    for err in out:
        assert isinstance(err, BatchError) and err.failed_indices == [0, 1]
        assert isinstance(err.__cause__, ValueError)
        assert "5 results for 6 items" in str(err.__cause__)


async def _lone_call_iterations() -> tuple[int, list[Any]]:
    """Loop iterations between a lone submit and its batch_fn, and call_later uses."""
    loop = asyncio.get_running_loop()
    ticks, running = 0, True

    def tick() -> None:  # runs exactly once per loop iteration
        nonlocal ticks
        ticks += 1
        if running:
            loop.call_soon(tick)

    seen: list[int] = []

    async def fn(key: str, items: list[int]) -> list[int]:
        seen.append(ticks)
        return items

    later: list[Any] = []
    real_call_later = loop.call_later

    def spy(delay: float, callback: Any, *args: Any, **kw: Any) -> asyncio.TimerHandle:
        later.append(callback)
        return real_call_later(delay, callback, *args, **kw)

    loop.call_later = spy  # type: ignore[method-assign, assignment]
    try:
        c: Coalescer[str, int, int] = Coalescer(fn)
        loop.call_soon(tick)
        await asyncio.sleep(0)
        start = ticks
        assert await c.submit("k", [1]) == [1]
    finally:
        running = False
        del loop.call_later
    return seen[0] - start, later


async def test_lone_call_runs_on_the_next_loop_iteration() -> None:
    iterations, later = await _lone_call_iterations()
    assert iterations <= 1
    assert later == []  # max_wait == 0 never uses a timer


async def test_max_wait_merges_calls_within_the_window() -> None:
    async def scenario(max_wait: float) -> int:
        fn = Recorder()
        c: Coalescer[str, int, int] = Coalescer(fn, CoalescerLimits(max_wait=max_wait))
        first = asyncio.ensure_future(c.submit("k", [1]))
        for _ in range(5):
            await asyncio.sleep(0)  # several loop iterations later, well within the window
        second = asyncio.ensure_future(c.submit("k", [2]))
        assert list(await asyncio.gather(first, second)) == [[2], [4]]
        return len(fn.calls)

    assert await scenario(0.5) == 1
    assert await scenario(0.0) == 2


async def test_max_wait_window_closes_and_full_batch_does_not_wait() -> None:
    fn = Recorder()
    c: Coalescer[str, int, int] = Coalescer(fn, CoalescerLimits(max_wait=0.02, max_batch_items=3))
    first = asyncio.ensure_future(c.submit("k", [1]))
    await asyncio.sleep(0.2)  # a later timer than the flush: the window has closed
    assert first.done() and first.result() == [2]
    assert await c.submit("k", [2]) == [4]
    assert len(fn.calls) == 2
    slow: Coalescer[str, int, int] = Coalescer(fn, CoalescerLimits(max_wait=60, max_batch_items=3))
    assert await asyncio.wait_for(slow.submit("k", [1, 2, 3]), 10) == [2, 4, 6]  # full: no wait


_heavy = {"live": 0, "peak": 0}


class Heavy:
    """A 1 KiB per-item allocation made inside batch_fn, counted while alive."""

    def __init__(self) -> None:
        self.payload = bytes(1024)
        _heavy["live"] += 1
        _heavy["peak"] = max(_heavy["peak"], _heavy["live"])

    def __del__(self) -> None:
        _heavy["live"] -= 1


async def test_memory_bound_under_100k_concurrent_submits() -> None:
    _heavy.update(live=0, peak=0)

    async def fn(key: str, items: list[int]) -> list[int]:
        heavy = [Heavy() for _ in items]
        await asyncio.sleep(0)  # let other batches try to start meanwhile
        out = [x * 2 for x in items]
        del heavy
        return out

    limits = CoalescerLimits(max_batch_items=1024, max_in_flight=2)
    c: Coalescer[str, int, int] = Coalescer(fn, limits)
    n = 100_000
    results = await asyncio.gather(*(c.submit("k", [i]) for i in range(n)))
    assert all(r == [2 * i] for i, r in enumerate(results))
    assert _heavy["peak"] <= 2 * 1024 and _heavy["live"] == 0
    assert c.stats.max_in_flight_seen <= 2
    assert c.stats.items == n and c.stats.batches == math.ceil(n / 1024)


async def test_cancelling_a_caller_does_not_cancel_its_batch() -> None:
    fn = Gated()
    c: Coalescer[str, int, int] = Coalescer(fn)
    tasks = [asyncio.ensure_future(c.submit("k", [i, i + 10])) for i in range(3)]
    await fn.started.wait()
    tasks[1].cancel()
    await asyncio.sleep(0)
    fn.release.set()
    assert await tasks[0] == [0, 20] and await tasks[2] == [4, 24]
    with pytest.raises(asyncio.CancelledError):
        await tasks[1]
    assert fn.batches == [[0, 10, 1, 11, 2, 12]]


async def test_cancelled_caller_items_not_yet_sent_are_skipped() -> None:
    fn = Gated()
    c: Coalescer[str, int, int] = Coalescer(fn, CoalescerLimits(max_batch_items=1, max_in_flight=1))
    t1, t2, t3 = (asyncio.ensure_future(c.submit("k", [i])) for i in (1, 2, 3))
    await fn.started.wait()
    t2.cancel()
    fn.release.set()
    assert await t1 == [2] and await t3 == [6]
    assert t2.cancelled() and fn.batches == [[1], [3]]


async def test_batch_failures_are_never_logged_as_unretrieved(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = asyncio.Event()

    async def fn(key: str, items: list[int]) -> list[int]:
        await release.wait()
        raise KeyError("nope")

    c: Coalescer[str, int, int] = Coalescer(fn)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        kept = asyncio.ensure_future(c.submit("k", [1]))
        dropped = asyncio.ensure_future(c.submit("k", [2]))
        await asyncio.sleep(0.01)
        dropped.cancel()
        release.set()
        with pytest.raises(BatchError):
            await kept
        await c.drain()
        del kept, dropped
        gc.collect()
        await asyncio.sleep(0)
    assert "never retrieved" not in caplog.text


async def test_drain_and_aclose() -> None:
    fn = Recorder(sleep=lambda: 0.005)
    c: Coalescer[str, int, int] = Coalescer(fn, CoalescerLimits(max_batch_items=2, max_in_flight=1))
    tasks = [asyncio.ensure_future(c.submit("k", [i])) for i in range(7)]
    await asyncio.sleep(0)  # every caller has queued its item
    await c.aclose()
    assert c.stats.items == 7 and c.stats.batches == 4 and fn.running == 0
    assert [await t for t in tasks] == [[2 * i] for i in range(7)]
    with pytest.raises(RuntimeError, match="closed"):
        await c.submit("k", [1])


def test_init_needs_no_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom() -> None:
        raise AssertionError("get_event_loop called")

    monkeypatch.setattr(asyncio, "get_event_loop", boom)
    Coalescer(Recorder())


def test_bound_to_one_event_loop() -> None:
    c: Coalescer[str, int, int] = Coalescer(Recorder())
    a, b = asyncio.new_event_loop(), asyncio.new_event_loop()

    async def submit(items: list[int]) -> list[int]:  # submit is called in the running loop
        return await c.submit("k", items)

    try:
        assert a.run_until_complete(submit([1])) == [2]
        with pytest.raises(RuntimeError, match="another event loop"):
            b.run_until_complete(submit([1]))
        a.close()  # a closed loop releases the binding
        assert b.run_until_complete(submit([3])) == [6]
    finally:
        a.close()
        b.close()


def test_limits_are_validated() -> None:
    for bad in ({"max_batch_items": 0}, {"max_in_flight": 0}, {"max_wait": -1.0}):
        with pytest.raises(ValueError):
            CoalescerLimits(**bad)
    with pytest.raises(ValueError):
        CoalescerLimits(max_wait=float("nan"))


def _run_on(loop_name: str, coro_fn: Callable[[], Any]) -> Any:
    if loop_name == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro_fn())
    finally:
        loop.close()


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
def test_works_on_each_event_loop(loop_name: str) -> None:
    async def scenario() -> None:
        fn = Recorder(sleep=lambda: 0.001)
        limits = CoalescerLimits(max_batch_items=100, max_in_flight=2)
        c: Coalescer[str, int, int] = Coalescer(fn, limits)
        singles = await asyncio.gather(*(c.submit("k", [i]) for i in range(1000)))
        assert [r[0] for r in singles] == [2 * i for i in range(1000)]
        assert c.stats.batches == 10 and fn.peak == 2
        assert await c.submit("k", list(range(250))) == [2 * i for i in range(250)]

        async def bad(key: str, items: Sequence[int]) -> list[int]:
            raise OSError("down")

        failing: Coalescer[str, int, int] = Coalescer(bad)
        with pytest.raises(BatchError) as info:
            await failing.submit("k", [1, 2])
        assert info.value.failed_indices == [0, 1] and isinstance(info.value.__cause__, OSError)
        iterations, later = await _lone_call_iterations()
        assert iterations <= 1 and later == []
        await c.aclose()

    _run_on(loop_name, scenario)


# --------------------------------------------------------------------------- caller isolation


class BadInput(ValueError):
    """What a batch_fn raises when the server rejects one item of the batch."""


class Picky:
    """A batch_fn that rejects a whole batch holding any negative item, naming the batch."""

    def __init__(self, error: type[Exception] = BadInput) -> None:
        self.calls: list[list[int]] = []
        self._error = error

    async def __call__(self, key: str, items: list[int]) -> list[int]:
        self.calls.append(list(items))
        if any(x < 0 for x in items):
            raise self._error(f"rejected batch {items}")
        return [x * 2 for x in items]


def _isolating(fn: Picky, **limits: Any) -> Coalescer[str, int, int]:
    return Coalescer(fn, CoalescerLimits(**limits), split_on=lambda e: isinstance(e, BadInput))


@pytest.mark.parametrize("poison", [0, 5, 20])
async def test_one_bad_caller_fails_alone_and_its_error_names_only_its_input(
        poison: int) -> None:
    fn = Picky()
    c = _isolating(fn)
    values = [100 + i for i in range(21)]
    values[poison] = -1
    outcomes = await asyncio.gather(*(c.submit("k", [v]) for v in values),
                                    return_exceptions=True)
    for i, outcome in enumerate(outcomes):
        if i == poison:
            assert isinstance(outcome, BatchError) and outcome.failed_indices == [0]
            assert "[-1]" in str(outcome.errors[0])  # a batch of the bad caller alone
            assert not any(str(v) in str(outcome) for v in values if v != -1)
        else:
            assert outcome == [2 * values[i]]
    # every good item written exactly once; bisection costs ~2 log2(n) more calls
    written = [x for call in fn.calls if -1 not in call for x in call]
    assert sorted(written) == sorted(v for v in values if v != -1)
    assert len(fn.calls) <= 1 + 2 * math.ceil(math.log2(21))
    assert c.stats.splits >= 1


async def test_several_bad_callers_each_fail_alone() -> None:
    fn = Picky()
    c = _isolating(fn)
    rng = random.Random(7)
    values = [rng.choice([-1, 1]) * (i + 1) for i in range(40)]
    outcomes = await asyncio.gather(*(c.submit("k", [v]) for v in values),
                                    return_exceptions=True)
    for v, outcome in zip(values, outcomes, strict=True):
        if v < 0:
            assert isinstance(outcome, BatchError) and f"[{v}]" in str(outcome.errors[0])
        else:
            assert outcome == [2 * v]


async def test_a_bad_item_fails_its_whole_call_but_not_the_others() -> None:
    fn = Picky()
    c = _isolating(fn)
    a, b = await asyncio.gather(c.submit("k", [1, -2, 3]), c.submit("k", [4]),
                                return_exceptions=True)
    assert isinstance(a, BatchError) and a.failed_indices == [0, 1, 2]
    assert "4" not in str(a)
    assert b == [8]


@pytest.mark.parametrize("error", [ConnectionError, TimeoutError, RuntimeError])
async def test_failures_not_about_input_are_not_split(error: type[Exception]) -> None:
    fn = Picky(error)
    c = _isolating(fn)
    outcomes = await asyncio.gather(*(c.submit("k", [v]) for v in [1, -1, 2]),
                                    return_exceptions=True)
    assert all(isinstance(o, BatchError) for o in outcomes)
    assert len(fn.calls) == 1 and c.stats.splits == 0


async def test_without_split_on_a_failed_batch_is_not_split() -> None:
    fn = Picky()
    c: Coalescer[str, int, int] = Coalescer(fn)
    outcomes = await asyncio.gather(*(c.submit("k", [v]) for v in [1, -1, 2]),
                                    return_exceptions=True)
    assert all(isinstance(o, BatchError) for o in outcomes) and len(fn.calls) == 1


async def test_a_wrong_result_count_is_never_split() -> None:
    # The batch ran (rows may be written): re-sending halves could write them twice.
    calls: list[list[int]] = []

    async def short(key: str, items: list[int]) -> list[int]:
        calls.append(list(items))
        return [0] * (len(items) - 1)

    c: Coalescer[str, int, int] = Coalescer(short, split_on=lambda e: True)
    outcomes = await asyncio.gather(*(c.submit("k", [v]) for v in range(5)),
                                    return_exceptions=True)
    assert all(isinstance(o, BatchError) for o in outcomes)
    assert len(calls) == 1 and c.stats.splits == 0


async def _submit_one_per_iteration(
    c: Coalescer[str, int, int], submits: Sequence[tuple[str, int]]
) -> list[asyncio.Future[list[int]]]:
    """Submit each (key, item) in its own loop iteration, as requests of a busy app arrive."""
    futures = []
    for key, item in submits:
        futures.append(asyncio.ensure_future(c.submit(key, [item])))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    return futures


async def test_batches_queued_behind_busy_slots_go_out_together() -> None:
    """Calls that arrive one loop iteration apart while every slot is busy are sealed as
    separate small batches; when a slot frees they go out as one (per key, keys in order)."""
    fn = Gated()
    c: Coalescer[str, int, int] = Coalescer(fn, CoalescerLimits(max_in_flight=1))
    first = asyncio.ensure_future(c.submit("k", [0]))
    await fn.started.wait()
    queued = await _submit_one_per_iteration(c, [("k", 1), ("k", 2), ("j", 9), ("k", 3)])
    fn.release.set()
    assert await first == [0]
    assert [await f for f in queued] == [[2], [4], [18], [6]]
    assert fn.calls == [("k", [0]), ("k", [1, 2, 3]), ("j", [9])]
    assert c.stats.max_batch_seen == 3


async def test_queued_batches_merge_only_within_the_limits() -> None:
    fn = Gated()
    c: Coalescer[str, int, int] = Coalescer(
        fn, CoalescerLimits(max_batch_items=2, max_in_flight=1))
    first = asyncio.ensure_future(c.submit("k", [0]))
    await fn.started.wait()
    queued = await _submit_one_per_iteration(c, [("k", i) for i in (1, 2, 3, 4, 5)])
    fn.release.set()
    assert await first == [0] and [await f for f in queued] == [[2], [4], [6], [8], [10]]
    assert fn.batches == [[0], [1, 2], [3, 4], [5]]
