"""The two thin shells that run plans: one over `MilvusClient`, one over `AsyncMilvusClient`.

Each driver executes the steps a plan yields and sends the results back. The sync driver
overlaps embedding the next batch with writing the current one; the async driver routes
writes, searches and deletes by id through per-loop coalescers, so concurrent calls share
embedding requests and RPCs.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from itertools import repeat
from typing import Any

import pymilvus
from langchain_core.embeddings import Embeddings
from pymilvus import AsyncMilvusClient

from langchain_milvus_ext import _direct_search, _packed_writes
from langchain_milvus_ext._batch_plans import (
    delete_batch_plan,
    embed_plan,
    search_batch_plan,
    store_rows_plan,
    write_batch_plan,
)
from langchain_milvus_ext._batching import Batching
from langchain_milvus_ext._clients import ClientRegistry, PerLoop
from langchain_milvus_ext._coalescer import (
    BatchError,
    Coalescer,
    CoalescerStats,
    logger,
)
from langchain_milvus_ext._collection import CollectionState
from langchain_milvus_ext._errors import WriteError, rejected_before_sending
from langchain_milvus_ext._filters import is_self_contained
from langchain_milvus_ext._packing import WireFormat
from langchain_milvus_ext._pymilvus_compat import via_sync_client
from langchain_milvus_ext._retry import (
    Attempts,
    Failure,
    Outcome,
    RetryPolicy,
    after_failure,
    is_input_error,
)
from langchain_milvus_ext._rows import PrimaryKey, Row, estimate_row_bytes
from langchain_milvus_ext._steps import (
    Call,
    Delete,
    DeleteKey,
    Describe,
    Embed,
    Plan,
    PlanOf,
    R,
    Search,
    SearchItem,
    SearchKey,
    SearchResult,
    Step,
    Write,
    WriteKey,
)


@dataclass(frozen=True)
class DriverOptions:
    """What both shells are told: how to batch, and how to retry."""

    batching: Batching = field(default_factory=Batching)
    retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass
class DriverStats:
    """Counters for tests, the benchmark and `store.stats()`: client calls by method, retries
    and embedding requests."""

    calls: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    embedding_requests: int = 0


def _log_retry(method: str, error: Exception, wait: float) -> None:
    """One DEBUG line per retry: the call and the error's type, never its arguments."""
    logger.debug("retrying %s in %.2f s after %s", method, wait, type(error).__name__)


_clock = time.monotonic  # module-level so that tests can run the retry loops on a fake clock
_sleep = time.sleep
_asleep = asyncio.sleep


def _retry_wait(failure: Failure, stats: DriverStats, method: str) -> float:
    """Seconds to wait before the next try (counted and logged), or raise the failure."""
    if failure.outcome is not Outcome.RETRY:
        failure.raise_()
    stats.retries += 1
    _log_retry(method, failure.error, failure.wait)
    return failure.wait


def _chunks(write: Write, size: int) -> list[tuple[int, Write]]:
    out = []
    for start in range(0, len(write.rows), size):
        stop = start + size
        out.append((start, Write(
            rows=write.rows[start:stop],
            texts=write.texts[start:stop] if write.texts is not None else None,
            vectors=write.vectors[start:stop] if write.vectors is not None else None,
            key=write.key,
        )))
    return out


def _write_error(rows: Sequence[Row], pk: str, failed: Sequence[int], written: Sequence[Any],
                 cause: BaseException) -> WriteError:
    ids = [rows[i][pk] for i in failed if pk in rows[i]]
    return WriteError(
        f"write failed: {type(cause).__name__}: {cause}",
        not_written_ids=ids, written_ids=written, not_written_positions=failed,
    )


def _wire(state: CollectionState, options: DriverOptions) -> WireFormat | None:
    """How the rows of writes are packed (`_packing`); None: by pymilvus."""
    return state.layout.wire if options.batching.pack_writes else None


def _client_call(clients: ClientRegistry, state: CollectionState, step: Call,
                 wire: WireFormat | None = None, direct_search: bool = False) -> Any:
    """One call on the sync client (a write packed with `wire` if it fits, a plain search
    sent directly with `direct_search`); creating the collection is serialised per
    collection."""
    client = clients.sync()
    if direct_search and _direct_search.usable(client, step.method, step.kwargs):
        return _direct_search.send(client, step.kwargs)
    packed = _packed_writes.packed_request(wire, step.method, step.kwargs)
    if packed is not None:
        return _packed_writes.send(client, packed, step.kwargs.get("timeout"))
    if step.method != "create_collection":
        return getattr(client, step.method)(**step.kwargs)
    with state.create_lock:  # racing creators: Milvus Lite raises "File exists"
        if client.has_collection(step.kwargs["collection_name"]):
            return None
        return client.create_collection(**step.kwargs)


def _flush_call(state: CollectionState) -> Call:
    """The flush of the collection's rows written so far (Milvus Lite, see `_sealing`)."""
    return Call("flush", {"collection_name": state.name})


def _log_failed_flush(error: Exception) -> None:
    """A flush is only for speed: when it fails, the read goes on and the rows stay in
    Milvus Lite's memtable (flushed later, or by Lite itself at 128 MiB)."""
    logger.debug("flush failed (%s); reading without it", type(error).__name__)


def _model(embeddings: Any, step: Embed) -> Any:
    """The embedding model of `step` (a multi-vector store has a list of them)."""
    return embeddings[step.model] if isinstance(embeddings, list) else embeddings


def _one_request(step: Embed, options: DriverOptions) -> bool:
    """Whether both shells embed `step` with one `embed_documents` request: always for
    documents, for several queries when `batch_query_embeddings` allows it."""
    several = len(step.texts) > 1
    return step.kind == "documents" or (options.batching.batch_query_embeddings and several)


class SyncDriver:
    """Runs plans with the sync client and the embeddings' sync methods."""

    def __init__(self, state: CollectionState, clients: ClientRegistry,
                 embeddings: Embeddings | list[Any], options: DriverOptions) -> None:
        self.state, self.clients, self.embeddings, self.options = (
            state, clients, embeddings, options)
        self.stats = DriverStats()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def run(self, plan: PlanOf[R]) -> R:
        """Run a plan to completion and return its result (`StoreClosedError` once closed)."""
        self.clients.check_open()
        try:
            step = next(plan)
            while True:
                try:
                    result = self._execute(step)
                except Exception as error:
                    step = plan.throw(error)
                else:
                    step = plan.send(result)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    def call(self, step: Call) -> Any:
        """One client call, retried while it fails transiently, within its timeout (on
        Milvus Lite, after a flush when one is due: `_sealing`)."""
        sealing = self.state.sealing
        if sealing is not None and sealing.flush_due(step):
            try:
                self.call(_flush_call(self.state))
            except Exception as error:
                _log_failed_flush(error)
        attempts = Attempts(self.options.retry, step.method, step.kwargs.get("timeout"), _clock(),
                            step.retry_as)
        while True:
            method = attempts.method
            self.stats.calls[method] += 1
            try:
                kwargs = attempts.kwargs(step.kwargs, _clock())
                result = _client_call(self.clients, self.state, Call(method, kwargs),
                                      _wire(self.state, self.options),
                                      self.options.batching.direct_search)
            except Exception as caught:
                failure = after_failure(attempts, caught, self.clients.connection_args, _clock())
                wait = _retry_wait(failure, self.stats, method)
            else:
                if sealing is not None:
                    sealing.done(step)
                return result
            _sleep(wait)

    def _execute(self, step: Step) -> Any:
        if isinstance(step, Call):
            return self.call(step)
        if isinstance(step, Embed):
            return self.embed(step)
        if isinstance(step, Write):
            return self._write(step)
        if isinstance(step, Search):
            return self.run(search_batch_plan(self.state, step.items, step.key))
        if isinstance(step, Delete):
            return self.run(delete_batch_plan(self.state, step.key, step.items))
        if isinstance(step, Describe):
            return self.run(self.state.describe_plan())
        raise TypeError(f"unknown plan step {step!r}")

    def embed(self, step: Embed) -> list[Sequence[float]]:
        """Embed with the sync API (documents in one call, queries one by one).

        Vectors are returned as the model gave them; the plans check and convert them.
        """
        model = _model(self.embeddings, step)
        if _one_request(step, self.options):
            self.stats.embedding_requests += 1
            return list(model.embed_documents(step.texts))
        self.stats.embedding_requests += len(step.texts)
        return [model.embed_query(t) for t in step.texts]

    def _writer(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="milvus-ext-writer")
            return self._pool

    def _write(self, write: Write) -> list[PrimaryKey]:
        """Write in batches, embedding batch i+1 while batch i is being written."""
        chunks = _chunks(write, self.options.batching.batch_size)
        written: list[PrimaryKey] = []
        pending: Future[list[PrimaryKey]] | None = None  # the batch being written
        pk = self.state.planned.pk_field
        try:
            for _, chunk in chunks:
                vectors = chunk.vectors if chunk.vectors is not None else self.run(
                    embed_plan(chunk.texts or [], "documents"))
                if pending is not None:
                    written += pending.result()
                    pending = None
                plan = store_rows_plan(self.state, chunk.rows, vectors, chunk.key,
                                       checked=chunk.vectors is not None)
                pending = (self._writer().submit(self.run, plan) if len(chunks) > 1
                           else _done(self.run, plan))
            if pending is not None:
                written += pending.result()
        except Exception as error:
            if pending is not None and pending.exception() is None:  # waits for it
                written += pending.result()  # written before the failure of the next batch
            if rejected_before_sending(error, written):
                raise  # bad input (e.g. a wrong dimension) found before any row was sent
            failed = list(range(len(written), len(write.rows)))
            raise _write_error(write.rows, pk, failed, written, error) from error
        return written

    def close(self) -> None:
        """Stop the writer thread."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)


async def _finished(value: R) -> R:
    """An awaitable of a plan that finished before its first step."""
    return value


def _done(fn: Callable[[Plan], list[PrimaryKey]], plan: Plan) -> Future[list[PrimaryKey]]:
    future: Future[list[PrimaryKey]] = Future()
    try:
        future.set_result(fn(plan))
    except Exception as error:
        future.set_exception(error)
    return future


@dataclass(eq=False, slots=True)
class _WriteItem:
    """One row of a caller's write, as it waits in the write coalescer."""

    row: Row
    text: str | None
    vector: Sequence[float] | None  # given, or embedded by the first batch that held the row


def _write_items(write: Write) -> list[_WriteItem]:
    """The rows of `write` as coalescer items, with their texts or given vectors."""
    texts: Iterable[str | None] = write.texts if write.texts is not None else repeat(None)
    vectors: Iterable[Sequence[float] | None] = (
        write.vectors if write.vectors is not None else repeat(None))
    return list(map(_WriteItem, write.rows, texts, vectors))


def _write_error_of(write: Write, pk: str, error: BatchError) -> WriteError:
    """The `WriteError` of a coalesced write some of whose batches failed."""
    written = [write.rows[i].get(pk) for i in error.succeeded_indices]
    return _write_error(write.rows, pk, error.failed_indices, written, error.errors[0])


_WriteBatchKey = tuple[str | None, float | None, bool, bool]
"""(partition name, timeout, fresh ids, embedded): a `WriteKey` as a plain tuple, hashed and
compared in C for every row queued, and whether the rows' vectors are embedded (not given)."""
_MAX_DELETE_BYTES = 64 * 1024


class _LoopSession:
    """What one event loop owns: its async client and its coalescers."""

    def __init__(self, driver: AsyncDriver) -> None:
        self.client: AsyncMilvusClient = driver.clients.new_async_client()
        self.describing: asyncio.Future[Any] | None = None  # the one layout read in flight
        limits = driver.options.batching.coalescer_limits
        # Batches run on this session's client, even while aclose() drains them. A batch the
        # server rejects for its content is bisected down to the callers whose input it was
        # (`split_on`). That re-sends the other callers' items, which is safe: deletes and
        # upserts are idempotent, and an input error is raised by validation before anything
        # is written: pymilvus 3.0.2's `insert`/`upsert` send all rows as one request, built
        # (and checked: DataNotMatchException) before sending; the Milvus proxy validates the
        # whole Insert/Upsert/Delete request (PreExecute) before any row reaches the log. So
        # even a rejected auto_id insert wrote nothing and its re-sent halves are not
        # duplicates (tests/integration/test_isolation.py checks it on Lite, milvus-lite
        # server and Milvus 2.3.5). Connection errors and timeouts are never split: their
        # rows may or may not be written.
        self.writes: Coalescer[_WriteBatchKey, _WriteItem, PrimaryKey] = Coalescer(
            partial(driver.write_batch, self), driver.options.batching.write_limits,
            size_of=lambda item: estimate_row_bytes(item.row) + 8 * len(item.vector or ()),
            split_on=is_input_error, name="write", totals=driver.batches["write"])
        # Not split: what the server can reject in a search (filter, params) is in the key,
        # shared by every caller of the batch, so halves would only fail again.
        self.searches: Coalescer[SearchKey, SearchItem, SearchResult] = Coalescer(
            partial(driver.search_batch, self), limits, name="search",
            totals=driver.batches["search"])
        # Deleted ids or expressions are ORed into one expression: keep it short.
        self.deletes: Coalescer[DeleteKey, PrimaryKey | str, None] = Coalescer(
            partial(driver.delete_batch, self),
            replace(limits, max_batch_bytes=min(limits.max_batch_bytes, _MAX_DELETE_BYTES)),
            size_of=lambda item: 8 + len(str(item)), split_on=is_input_error, name="delete",
            totals=driver.batches["delete"])


_VIA_SYNC_CLIENT = via_sync_client(pymilvus.__version__)
"""The calls the async shell makes with the sync client under the installed pymilvus."""


class AsyncDriver:
    """Runs plans with the running loop's async client, coalescing concurrent calls."""

    def __init__(self, state: CollectionState, clients: ClientRegistry,
                 embeddings: Embeddings | list[Any], options: DriverOptions) -> None:
        self.state, self.clients, self.embeddings, self.options = (
            state, clients, embeddings, options)
        self.stats = DriverStats()
        self.batches = {name: CoalescerStats() for name in ("write", "search", "delete")}
        """Coalesced batches of every loop, by operation (for `store.stats()`)."""
        self.sessions: PerLoop[_LoopSession] = PerLoop(lambda: _LoopSession(self))

    def run(self, plan: PlanOf[R]) -> Awaitable[R]:
        """Run a plan to completion in the running loop; await the result.

        Call it from a coroutine of that loop. The plan's checks before its first step run
        now, before the loop's client is opened, and raise here: a `StoreClosedError` once
        the store is closed, a `ValueError` for bad input. Not itself a coroutine, so a call
        costs one coroutine fewer (see `_execute`).
        """
        self.clients.check_open()
        try:
            first = next(plan)
        except StopIteration as stop:
            return _finished(stop.value)
        return self._drive(plan, self.sessions.get(), coalesce=self.options.batching.coalesce,
                           first=first)

    async def _drive(self, plan: PlanOf[R], session: _LoopSession, *, coalesce: bool,
                     first: Step | None = None) -> R:
        try:
            step = next(plan) if first is None else first
            while True:
                try:
                    result = await self._execute(step, session, coalesce)
                except BatchError as error:  # the coalesced batch of a step failed
                    step = plan.throw(self._caller_error(step, error))
                except Exception as error:
                    step = plan.throw(error)
                else:
                    step = plan.send(result)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def call(self, step: Call, session: _LoopSession) -> Any:
        """One client call, retried while it fails transiently, within its timeout (on
        Milvus Lite, after a flush when one is due: `_sealing`)."""
        sealing = self.state.sealing
        if sealing is not None and sealing.flush_due(step):
            try:
                await self.call(_flush_call(self.state), session)
            except Exception as error:
                _log_failed_flush(error)
        attempts = Attempts(self.options.retry, step.method, step.kwargs.get("timeout"), _clock(),
                            step.retry_as)
        while True:
            method = attempts.method
            self.stats.calls[method] += 1
            try:
                result = await self._send(Call(method, attempts.kwargs(step.kwargs, _clock())),
                                          session)
            except Exception as caught:
                failure = after_failure(attempts, caught, self.clients.connection_args, _clock())
                wait = _retry_wait(failure, self.stats, method)
            else:
                if sealing is not None:
                    sealing.done(step)
                return result
            await _asleep(wait)

    async def _send(self, step: Call, session: _LoopSession) -> Any:
        """One try of a call: on the loop's client (a write packed if it fits), or on the
        sync client in a thread for the calls pymilvus's async client gets wrong."""
        method, kwargs = step.method, step.kwargs
        if method in _VIA_SYNC_CLIENT:
            return await asyncio.to_thread(_client_call, self.clients, self.state, step)
        client = session.client
        if self.options.batching.direct_search and _direct_search.usable(client, method, kwargs):
            return await _direct_search.asend(client, kwargs)
        packed = _packed_writes.packed_request(_wire(self.state, self.options), method, kwargs)
        if packed is not None:
            return await _packed_writes.asend(client, packed, kwargs.get("timeout"))
        return await getattr(client, method)(**kwargs)

    def _execute(self, step: Step, session: _LoopSession, coalesce: bool) -> Awaitable[Any]:
        """The awaitable that carries out one step (a plain function: one coroutine per
        step, not two)."""
        if isinstance(step, Write):
            return self._write(step, session, coalesce)
        if isinstance(step, Call):
            return self.call(step, session)
        if isinstance(step, Embed):
            return self.embed(step)
        if isinstance(step, Describe):
            return self._describe(session)
        return self._read_or_delete(step, session, coalesce)

    def _read_or_delete(self, step: Step, session: _LoopSession,
                        coalesce: bool) -> Awaitable[Any]:
        if isinstance(step, Search):
            if coalesce:
                return session.searches.submit(step.key, step.items)
            return self.search_batch(session, step.key, step.items)
        if not isinstance(step, Delete):
            raise TypeError(f"unknown plan step {step!r}")
        # An expression that is not one closed group could OR with another caller's into
        # a different, valid one: it goes alone, and the server judges it as written.
        if coalesce and (step.expr is None or is_self_contained(step.expr)):
            return session.deletes.submit(step.key, step.items)
        return self.delete_batch(session, step.key, step.items)

    def _caller_error(self, step: Step, error: BatchError) -> BaseException:
        """What a caller sees when a coalesced batch holding its step failed: for a write, its
        own bad input (found before its rows were sent) or a `WriteError` naming its rows not
        written; for a read or delete, the server's error."""
        cause = error.errors[0]
        if isinstance(step, Write) and not rejected_before_sending(cause, error.succeeded_indices):
            failure: BaseException = _write_error_of(step, self.state.planned.pk_field, error)
            failure.__cause__ = cause
            return failure
        cause.__cause__, cause.__suppress_context__ = None, True  # `raise cause from None`
        return cause

    async def _describe(self, session: _LoopSession) -> Any:
        """Read the layout once for all the calls of this loop that need it now."""
        if session.describing is None or session.describing.done():
            plan = self.state.describe_plan()
            session.describing = asyncio.ensure_future(self._drive(plan, session, coalesce=False))
        return await asyncio.shield(session.describing)

    async def embed(self, step: Embed) -> list[Sequence[float]]:
        """Embed with the async API; several queries share one request when allowed.

        Vectors are returned as the model gave them; the plans check and convert them.
        """
        model = _model(self.embeddings, step)
        if _one_request(step, self.options):
            self.stats.embedding_requests += 1
            return list(await model.aembed_documents(step.texts))
        self.stats.embedding_requests += len(step.texts)
        return list(await asyncio.gather(*(model.aembed_query(t) for t in step.texts)))

    def _write(self, write: Write, session: _LoopSession, coalesce: bool) -> Awaitable[Any]:
        """Queue the rows in the loop's write coalescer (its failures: `_caller_error`), or
        write them in chunks. (No closure: a call waiting in the queue holds no cells.)"""
        if coalesce:
            key = (write.key.partition_name, write.key.timeout, write.key.fresh_ids,
                   write.texts is not None)
            return session.writes.submit(key, _write_items(write))
        return self._write_chunks(write, session)

    async def _write_chunks(self, write: Write, session: _LoopSession) -> list[PrimaryKey]:
        """Write in chunks of `batch_size` rows, a few at once (coalescing turned off)."""
        pk = self.state.planned.pk_field
        chunks = _chunks(write, self.options.batching.batch_size)
        bound = asyncio.Semaphore(self.options.batching.coalescer_limits.max_in_flight)

        async def one(chunk: Write) -> list[PrimaryKey]:
            async with bound:
                plan = write_batch_plan(self.state, chunk)
                return list(await self._drive(plan, session, coalesce=False))

        results = await asyncio.gather(*(one(c) for _, c in chunks), return_exceptions=True)
        failed = [i for (start, c), r in zip(chunks, results, strict=True)
                  if isinstance(r, BaseException) for i in range(start, start + len(c.rows))]
        written = [pk_ for r in results if not isinstance(r, BaseException) for pk_ in r]
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors and rejected_before_sending(errors[0], written):
            raise errors[0]
        if errors:
            raise _write_error(write.rows, pk, failed, written, errors[0]) from errors[0]
        return written

    async def write_batch(self, session: _LoopSession, key: _WriteBatchKey,
                          items: list[_WriteItem]) -> list[PrimaryKey]:
        """One coalesced write batch: one embedding request, one upsert (insert: fresh ids).

        Vectors are kept on the items: a batch split to isolate a bad caller's rows (see
        `_LoopSession`) embeds no text twice.
        """
        missing = [item for item in items if item.vector is None]
        if missing:
            plan = embed_plan([item.text or "" for item in missing], "documents")
            vectors = await self._drive(plan, session, coalesce=False)
            for item, vector in zip(missing, vectors, strict=True):
                item.vector = vector
        plan = store_rows_plan(self.state, [item.row for item in items],
                               [item.vector or [] for item in items], WriteKey(*key[:3]),
                               checked=not key[3])
        return list(await self._drive(plan, session, coalesce=False))

    async def search_batch(self, session: _LoopSession, key: SearchKey,
                           items: list[SearchItem]) -> list[SearchResult]:
        """One coalesced search batch: one embedding request, one search with nq queries."""
        plan = search_batch_plan(self.state, items, key)
        return list(await self._drive(plan, session, coalesce=False))

    async def delete_batch(self, session: _LoopSession, key: DeleteKey,
                           items: Sequence[PrimaryKey | str]) -> list[None]:
        """One coalesced delete: all ids, or all expressions ORed, in one RPC."""
        await self._drive(delete_batch_plan(self.state, key, items), session, coalesce=False)
        return [None] * len(items)

    async def aclose(self) -> None:
        """Drain and close the running loop's session."""
        session = self.sessions.pop_current()
        if session is None:
            return
        for coalescer in (session.writes, session.searches, session.deletes):
            await coalescer.aclose()
        await session.client.close()

    def forget_sessions(self) -> None:
        """Drop every loop's session (from sync `close()`)."""
        self.sessions.clear()
