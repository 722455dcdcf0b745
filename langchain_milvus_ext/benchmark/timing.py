"""Timing N single operations: a sync loop, or an ``asyncio.gather`` of N tasks.

Each helper runs a full garbage collection first, so garbage left by the previous case is not
collected inside this one's timed region.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Timed:
    """Wall time of the whole batch, each operation's latency, and each operation's result."""

    total_s: float
    latencies_s: list[float]
    outputs: list[Any]


def time_sync(calls: Sequence[Callable[[], Any]]) -> Timed:
    """Run ``calls`` one after another (the tutorial's sync loop); latency = each call's time."""
    outputs: list[Any] = []
    latencies: list[float] = []
    gc.collect()
    start = time.perf_counter()
    for call in calls:
        t0 = time.perf_counter()
        outputs.append(call())
        latencies.append(time.perf_counter() - t0)
    return Timed(time.perf_counter() - start, latencies, outputs)


async def time_gather(calls: Sequence[Callable[[], Awaitable[Any]]]) -> Timed:
    """Run ``calls`` concurrently with ``asyncio.gather`` (the tutorial's async pattern).

    Every operation is submitted at the same instant, so its latency is measured from that
    instant to its own completion: what the caller of that one operation waits.
    """
    latencies = [0.0] * len(calls)

    async def one(i: int, call: Callable[[], Awaitable[Any]]) -> Any:
        result = await call()
        latencies[i] = time.perf_counter() - start
        return result

    gc.collect()
    start = time.perf_counter()
    outputs = await asyncio.gather(*(one(i, c) for i, c in enumerate(calls)))
    total = time.perf_counter() - start
    return Timed(total, latencies, list(outputs))


def time_batch(call: Callable[[], Sequence[Any]]) -> Timed:
    """Run one batched call doing the work of N operations and returning their N results.

    Every operation waits for the whole call, so each latency is the call's duration.
    """
    gc.collect()
    start = time.perf_counter()
    outputs = list(call())
    total = time.perf_counter() - start
    return Timed(total, [total] * len(outputs), outputs)
