"""Coalescing of concurrent async calls into bounded batches (DataLoader style)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["BatchError", "BatchFn", "Coalescer", "CoalescerLimits", "CoalescerStats"]

logger = logging.getLogger("langchain_milvus_ext")

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
R = TypeVar("R")

BatchFn = Callable[[K, list[T]], Awaitable[list[R]]]
"""``batch_fn(key, items)``; must return exactly ``len(items)`` results, in order."""


def _unit_size(_: object) -> int:
    return 1


@dataclass(frozen=True)
class CoalescerLimits:
    """Bounds on batch size and concurrency.

    Attributes:
        max_batch_items: Most items in one batch.
        max_batch_bytes: Most estimated bytes (sum of ``size_of``) in one batch; a single item
            larger than this still goes out, alone.
        max_in_flight: Most ``batch_fn`` calls running at once, across keys (backpressure).
        max_wait: Seconds to wait for more calls after the first one on an idle key; 0 flushes
            on the next loop iteration.
    """

    max_batch_items: int = 1024
    max_batch_bytes: int = 32 * 1024 * 1024
    max_in_flight: int = 4
    max_wait: float = 0.0

    def __post_init__(self) -> None:
        bounds = (self.max_batch_items, self.max_batch_bytes, self.max_in_flight)
        if min(bounds) < 1 or not self.max_wait >= 0:
            raise ValueError(f"limits must be >= 1 (max_wait >= 0): {self}")


_DEFAULT_LIMITS = CoalescerLimits()


@dataclass
class CoalescerStats:
    """Counters for tests and benchmarks (stable counts, not timings)."""

    batches: int = 0  #: ``batch_fn`` calls made
    items: int = 0  #: items sent to ``batch_fn``
    max_batch_seen: int = 0  #: largest batch sent
    max_in_flight_seen: int = 0  #: most ``batch_fn`` calls running at once
    splits: int = 0  #: failed batches split in two to isolate the callers that caused them


class BatchError(Exception):
    """Some of a caller's items were in a batch whose ``batch_fn`` call failed.

    :meth:`Coalescer.submit` raises it whenever at least one of the caller's batches failed
    (raised, or returned the wrong number of results); the caller's other batches still ran.
    No item listed in ``failed_indices`` may be assumed done.

    Attributes:
        failed_indices: Sorted indices into the caller's ``items`` whose batch failed.
        succeeded_indices: Sorted indices whose batch succeeded.
        partial_results: Result of each succeeded index (e.g. ids of the rows that were written).
        errors: The exceptions of the failed batches, in order; ``__cause__`` is ``errors[0]``.
    """

    def __init__(
        self, n: int, failed: list[int], partial: dict[int, Any], errors: list[BaseException]
    ) -> None:
        first = errors[0]
        super().__init__(f"{len(failed)} of {n} items failed: {type(first).__name__}: {first}")
        self.failed_indices = failed
        self.succeeded_indices = sorted(partial)
        self.partial_results = partial
        self.errors = errors
        self.__cause__ = errors[0]


@dataclass(eq=False, slots=True)
class _Call(Generic[T, R]):  # one submit(): its items, its future, the state of its batches
    items: Sequence[T]
    future: asyncio.Future[list[R]]
    results: list[Any] | None = None  # made when the first batch of its items succeeds
    pending: int = 0  # batches holding some of our items that have not settled yet
    failed: list[range] | None = None  # the failed batches' slices (made on the first failure)
    errors: list[BaseException] | None = None
    since: float = field(default_factory=time.monotonic)  # when it was submitted


_Seg = tuple[_Call[T, R], int, int]  # (call, start, stop): a slice of the call's items


@dataclass(eq=False, slots=True)
class _Sealed(Generic[K, T, R]):  # a batch waiting for a free slot
    key: K
    segments: list[_Seg[T, R]]
    count: int
    nbytes: int


@dataclass(eq=False, slots=True)
class _Open(Generic[T, R]):  # the batch being filled for one key
    segments: list[_Seg[T, R]] = field(default_factory=list)
    count: int = 0
    nbytes: int = 0
    scheduled: bool = False
    timer: asyncio.TimerHandle | None = None


class Coalescer(Generic[K, T, R]):
    """Merges concurrent ``submit`` calls with equal keys into bounded ``batch_fn`` calls.

    Bound to the event loop of its first ``submit``; create one per loop. A call larger than a
    batch is split over several batches; small calls share one. Queued calls hold only
    references to the callers' items; the heavy work happens in ``batch_fn``, of which at most
    ``max_in_flight`` run at once, each in its own task: cancelling a caller never cancels a
    batch (its results are dropped, and its items not yet sent are skipped).

    Coalescing never changes what a caller sees: when a batch of several callers fails with an
    error ``split_on`` says is about the input (one caller's bad item, say), the batch is split
    in two by callers and each half retried, down to single callers (bisection), so only the
    callers whose own items fail get an error, raised by a batch of their items alone; the
    others get their results. ``batch_fn`` must tolerate a retry of items of a batch that
    failed that way (it was rejected as a whole, or re-doing it is idempotent). Example::

        coalescer = Coalescer(embed_batch, CoalescerLimits(max_batch_items=256))
        vectors = await asyncio.gather(*(coalescer.submit("model", [t]) for t in texts))  # 1 call

    Args:
        batch_fn: ``async (key, items) -> results``, one result per item, in order.
        limits: Batch and concurrency bounds.
        size_of: Estimated bytes of one item, for ``max_batch_bytes``.
        split_on: Whether a failed batch's error is about its input (then it is split, see
            above); never true for errors that may fail a batch of any callers (connection
            lost, timeout). None: failed batches are not split.
        name: The operation, for the DEBUG log line of each batch (logger
            `langchain_milvus_ext`).
        totals: Counters shared by several coalescers (e.g. of every event loop), to which
            this one also adds its batches, items and splits.
    """

    def __init__(
        self,
        batch_fn: BatchFn[K, T, R],
        limits: CoalescerLimits = _DEFAULT_LIMITS,
        size_of: Callable[[T], int] = _unit_size,
        split_on: Callable[[BaseException], bool] | None = None,
        name: str = "batch",
        totals: CoalescerStats | None = None,
    ) -> None:
        self._batch_fn, self._limits, self._size_of = batch_fn, limits, size_of
        self.name, self._totals = name, totals
        self._split_on = split_on
        self._loop: asyncio.AbstractEventLoop | None = None
        self._open: dict[K, _Open[T, R]] = {}
        self._ready: deque[_Sealed[K, T, R]] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._running, self._closed = 0, False
        self.stats = CoalescerStats()

    def submit(self, key: K, items: Sequence[T]) -> asyncio.Future[list[R]]:
        """Queue ``items`` under ``key``; await the returned future for their results.

        Call it from a coroutine of the loop the coalescer is bound to. It is a plain function
        returning a future (not a coroutine), so a caller costs no extra coroutine.

        Args:
            key: Batch key; only calls with equal keys share a batch.
            items: The items; they are not copied, so do not mutate them until this returns.

        Returns:
            One result per item, in order.

        Raises:
            BatchError: (from the future) A batch holding some of the items failed (see its
                attributes).
            RuntimeError: The coalescer is closed or bound to another running loop.
        """
        if self._closed:
            raise RuntimeError("Coalescer is closed")
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._loop is not None and not self._loop.is_closed():
                raise RuntimeError("Coalescer is bound to another event loop; use one per loop")
            self._loop, self._running = loop, 0  # first use, or the old loop and its state died
            self._open, self._ready, self._tasks = {}, deque(), set()
        future: asyncio.Future[list[R]] = loop.create_future()
        if len(items) == 0:
            future.set_result([])
            return future
        sizes = None if self._size_of is _unit_size else list(map(self._size_of, items))
        call: _Call[T, R] = _Call(items, future)
        self._enqueue(key, call, sizes)
        return future

    async def drain(self) -> None:
        """Send every queued item now and wait until all batches have finished."""
        current = asyncio.current_task()
        while True:
            for key in list(self._open):
                self._seal(key)
            self._pump()
            pending = [t for t in self._tasks if t is not current and not t.done()]
            if not pending:
                return
            await asyncio.wait(pending)

    async def aclose(self) -> None:
        """Refuse new calls, then :meth:`drain`."""
        self._closed = True
        await self.drain()

    def _enqueue(self, key: K, call: _Call[T, R], sizes: list[int] | None) -> None:
        max_items, max_bytes = self._limits.max_batch_items, self._limits.max_batch_bytes
        n, i = len(call.items), 0
        while i < n:
            batch = self._open.get(key) or self._open.setdefault(key, _Open())
            j, count, nbytes = i, batch.count, batch.nbytes
            if sizes is None:  # every item weighs 1: take a whole slice at once
                j += min(n - i, max_items - count, max_bytes - nbytes)
                count, nbytes = count + j - i, nbytes + j - i
            else:
                while j < n and count < max_items and nbytes < max_bytes:
                    if count and nbytes + sizes[j] > max_bytes:
                        break
                    count, nbytes, j = count + 1, nbytes + sizes[j], j + 1
            if j > i:
                batch.segments.append((call, i, j))
                batch.count, batch.nbytes = count, nbytes
                call.pending += 1
            i = j
            if i < n or count >= max_items or nbytes >= max_bytes:
                self._seal(key)  # full: dispatch now
        self._pump()  # before scheduling the tail, so batches start in order
        tail = self._open.get(key)
        if tail is not None and not tail.scheduled:
            tail.scheduled, wait = True, self._limits.max_wait
            if wait > 0:
                tail.timer = asyncio.get_running_loop().call_later(wait, self._flush, key, tail)
            else:  # the task starts next iteration and runs the batch itself: no extra hop
                self._spawn(self._flush_and_work(key, tail))

    def _seal(self, key: K) -> None:
        batch = self._open.pop(key)
        if batch.timer is not None:
            batch.timer.cancel()
        self._ready.append(_Sealed(key, batch.segments, batch.count, batch.nbytes))

    def _flush(self, key: K, batch: _Open[T, R], pump: bool = True) -> None:
        if self._open.get(key) is batch:
            self._seal(key)
        if pump:
            self._pump()

    async def _flush_and_work(self, key: K, batch: _Open[T, R]) -> None:
        self._flush(key, batch, pump=False)
        await self._work(self._take())

    def _take(self) -> tuple[K, list[_Seg[T, R]]] | None:  # oldest batch, if a slot is free
        while self._ready and self._running < self._limits.max_in_flight:
            batch = self._ready.popleft()
            if self._ready:
                self._absorb(batch)
            live = [seg for seg in batch.segments if not seg[0].future.done()]  # not cancelled
            if live:
                self._running += 1
                self.stats.max_in_flight_seen = max(self.stats.max_in_flight_seen, self._running)
                return batch.key, live
        return None

    def _absorb(self, batch: _Sealed[K, T, R]) -> None:
        """Move into ``batch`` the batches of its key queued behind it, while the limits allow.

        Under steady load every loop iteration seals a small batch; when all slots are busy
        they queue, and sending them one by one would keep batches small (a web app serving
        many clients would make one search per request). Taken together they are what the
        callers would have made had they arrived at once. It stops at the first one of its key
        that does not fit, so the key's batches still start in order. A call never ends up
        twice in one batch: it is split only where a batch is full, so its next slice never
        fits in the batch holding the one before."""
        limits, key = self._limits, batch.key
        kept: deque[_Sealed[K, T, R]] = deque()
        while self._ready:
            queued = self._ready.popleft()
            if queued.key != key:
                kept.append(queued)
                continue
            if (batch.count + queued.count > limits.max_batch_items
                    or batch.nbytes + queued.nbytes > limits.max_batch_bytes):
                kept.append(queued)
                kept.extend(self._ready)
                self._ready.clear()
                break
            batch.segments.extend(queued.segments)
            batch.count, batch.nbytes = batch.count + queued.count, batch.nbytes + queued.nbytes
        self._ready = kept

    def _pump(self) -> None:
        while (job := self._take()) is not None:
            self._spawn(self._work(job))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)  # strong reference until done
        task.add_done_callback(self._tasks.discard)

    async def _work(self, job: tuple[K, list[_Seg[T, R]]] | None) -> None:  # run until idle
        try:
            while job is not None:
                await self._execute(*job)
                job = self._take()
        finally:
            self._pump()  # only does something if we exit early (cancelled)

    async def _execute(self, key: K, segments: list[_Seg[T, R]]) -> None:
        try:
            await self._run(key, segments)
        finally:
            self._running -= 1

    async def _run(self, key: K, segments: list[_Seg[T, R]]) -> None:
        """One ``batch_fn`` call; on an input error with several callers, bisect by caller."""
        items: list[T] = [x for call, start, stop in segments for x in call.items[start:stop]]
        n = len(items)
        for stats in (self.stats, self._totals):
            if stats is not None:
                stats.batches, stats.items = stats.batches + 1, stats.items + n
                stats.max_batch_seen = max(stats.max_batch_seen, n)
        started = time.monotonic()
        try:
            results = await self._batch_fn(key, items)
        except asyncio.CancelledError as exc:  # delivered: never "not retrieved"
            self._settle(segments, exc)
            raise
        except Exception as exc:
            # A call has at most one segment per batch; cancelled callers need no settling.
            live = [seg for seg in segments if not seg[0].future.done()]
            self._log(segments, n, started, f"failed ({type(exc).__name__})")
            if len(live) > 1 and self._split_on is not None and self._split_on(exc):
                self.stats.splits += 1
                if self._totals is not None:
                    self._totals.splits += 1
                half = len(live) // 2
                await self._run(key, live[:half])
                await self._run(key, live[half:])
                return
            self._settle(segments, exc)
        else:  # a wrong count is never split: the batch ran, and may have written its items
            self._log(segments, n, started, "ok")
            self._settle(segments, results if len(results) == n else ValueError(
                f"batch_fn returned {len(results)} results for {n} items"))

    def _log(self, segments: list[_Seg[T, R]], n: int, started: float, outcome: str) -> None:
        """One DEBUG line per batch: sizes and times only, never items (they are user data)."""
        if logger.isEnabledFor(logging.DEBUG):
            queued = max(started - call.since for call, _, _ in segments)
            logger.debug("%s batch %s: %d callers, %d items, queued %.1f ms, ran %.1f ms",
                         self.name, outcome, len(segments), n, queued * 1e3,
                         (time.monotonic() - started) * 1e3)

    def _settle(self, segments: list[_Seg[T, R]], outcome: list[R] | BaseException) -> None:
        offset = 0
        for call, start, stop in segments:
            if not call.future.done():  # done here means the caller was cancelled
                if isinstance(outcome, BaseException):
                    if call.failed is None or call.errors is None:
                        call.failed, call.errors = [], []
                    call.failed.append(range(start, stop))
                    call.errors.append(outcome)  # a call has at most one segment per batch
                elif call.results is None and stop - start == len(call.items):
                    call.results = outcome[offset:stop + offset]  # all its items, in one batch
                else:
                    if call.results is None:
                        call.results = [None] * len(call.items)
                    call.results[start:stop] = outcome[offset : offset + stop - start]
                call.pending -= 1
                if call.pending == 0:
                    self._finish(call)
            offset += stop - start

    @staticmethod
    def _finish(call: _Call[T, R]) -> None:
        if call.failed is None or call.errors is None:
            call.future.set_result(call.results or [])
            return
        failed_ranges = call.failed
        failed = sorted(i for r in failed_ranges for i in r)
        partial = {i: r for i, r in enumerate(call.results or ())
                   if not any(i in f for f in failed_ranges)}
        call.future.set_exception(BatchError(len(call.items), failed, partial, call.errors))
