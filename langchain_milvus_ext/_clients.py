"""The client registry: one sync client per store, one async session per running event loop.

pymilvus's `AsyncMilvusClient` binds its gRPC channel to the loop it first runs in, so a
client must never outlive its loop or cross into another one. The registry creates an async
session lazily the first time a loop asks for one, keeps it for that loop only, and drops it
once the loop is closed. No loop is created or fetched outside a running coroutine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from pymilvus import AsyncMilvusClient, MilvusClient

from langchain_milvus_ext._errors import MilvusConnectionError, StoreClosedError

S = TypeVar("S")
C = TypeVar("C")


class PerLoop(Generic[S]):
    """One value per running event loop, created on first use in that loop.

    Entries whose loop has closed are dropped on the next access from any loop, so a
    sequence of `asyncio.run` calls, worker threads with their own loops or a restarted
    notebook kernel never see a value that belongs to a dead loop.
    """

    def __init__(self, factory: Callable[[], S]) -> None:
        self._factory = factory
        self._values: dict[asyncio.AbstractEventLoop, S] = {}
        self._lock = threading.Lock()

    def get(self) -> S:
        """The value for the running loop (RuntimeError outside a coroutine)."""
        loop = asyncio.get_running_loop()
        values = self._values
        if len(values) == 1:  # the hot path: this loop's is the only value, nothing to drop
            value = values.get(loop)
            if value is not None:
                return value
        with self._lock:
            self._drop_closed()
            value = self._values.get(loop)
            if value is None:
                value = self._factory()
                self._values[loop] = value
            return value

    def pop_current(self) -> S | None:
        """Remove and return the running loop's value, if any."""
        loop = asyncio.get_running_loop()
        with self._lock:
            self._drop_closed()
            return self._values.pop(loop, None)

    def clear(self) -> list[S]:
        """Forget every value (for `close()` from sync code); returns what was held."""
        with self._lock:
            values = list(self._values.values())
            self._values.clear()
            return values

    def __len__(self) -> int:
        with self._lock:
            self._drop_closed()
            return len(self._values)

    def _drop_closed(self) -> None:
        for loop in [loop for loop in self._values if loop.is_closed()]:
            del self._values[loop]


def lite_file_of(connection_args: Mapping[str, Any]) -> str | None:
    """The Milvus Lite file the connection opens, or None for a server (without a `uri`,
    e.g. `host`/`port`, pymilvus connects to a server)."""
    uri = str(connection_args.get("uri", "http://localhost:19530"))
    return None if "://" in uri else uri


def lite_file_locked(uri: str) -> bool:
    """Whether the Milvus Lite file (a data directory) at `uri` is held by another process.

    Milvus Lite takes an exclusive `flock` on `<file>/LOCK` while a process has it open; a
    shared, non-blocking probe fails exactly then (and is released at once). Always False
    where `fcntl` does not exist (Windows).
    """
    lock = os.path.join(uri, "LOCK")
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return False
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


class ClientRegistry:
    """The store's connection: a lazy sync client, and a factory of async clients.

    Async clients are owned by the per-loop sessions of the async driver (see `PerLoop`).
    """

    def __init__(self, connection_args: Mapping[str, Any]) -> None:
        self._args = dict(connection_args)
        if lite_file_of(self._args) is None:
            # gRPC shares subchannels (and their reconnect backoff, up to 120 s) across the
            # process: after an outage, a new store would be refused by a server that is
            # already back. A local pool per channel reconnects at once.
            options = {"grpc.use_local_subchannel_pool": 1, **self._args.get("grpc_options", {})}
            self._args["grpc_options"] = options
        self._sync: MilvusClient | None = None
        self._sync_lock = threading.Lock()
        self._closing = False  # no new calls; calls already accepted may finish
        self._closed = False  # no client at all

    @property
    def is_closed(self) -> bool:
        """Whether `close()` was called, or an `aclose()` has begun."""
        return self._closing or self._closed

    def check_open(self) -> None:
        """Raise `StoreClosedError` once the store is closed or closing."""
        if self._closing or self._closed:
            raise StoreClosedError()

    def begin_close(self) -> None:
        """Refuse new calls (for `aclose()`, which then drains the calls already accepted)."""
        self._closing = True

    @property
    def connection_args(self) -> dict[str, Any]:
        """The arguments the clients are built from (a copy)."""
        return dict(self._args)

    def sync(self) -> MilvusClient:
        """The sync client, created on first use (`StoreClosedError` once closed)."""
        if self._sync is None:
            with self._sync_lock:
                if self._closed:
                    raise StoreClosedError()
                if self._sync is None:
                    self._sync = self._open(lambda: MilvusClient(**self._args))
        return self._sync

    def new_async_client(self) -> AsyncMilvusClient:
        """A new async client for the running loop, on a connection of its own.

        pymilvus shares async channels per `id(loop)`, an id a new loop can reuse after the
        old one is garbage-collected; a dedicated connection cannot be inherited that way.
        """
        self.check_open()
        return self._open(lambda: AsyncMilvusClient(**self._args, dedicated=True))

    def _open(self, factory: Callable[[], C]) -> C:
        """`factory()`, with a clear error when a Lite file is held by another process
        (pymilvus only says "Open local milvus failed"; the cause goes to stderr)."""
        try:
            return factory()
        except Exception as error:
            uri = lite_file_of(self._args)
            if uri is None or not uri.endswith(".db") or not lite_file_locked(uri):
                raise
            raise MilvusConnectionError(
                f"cannot open the Milvus Lite file {os.path.abspath(uri)}: it is opened by "
                "another process, and Milvus Lite lets only one process open a file at a "
                "time. Open it from one process only, or share the data through a Milvus "
                "server (`milvus-lite server`, Milvus standalone or a cluster) with "
                "connection_args={'uri': 'http://host:19530'}"
            ) from error

    def close(self) -> None:
        """Close the sync client for good: later calls raise `StoreClosedError`."""
        with self._sync_lock:
            self._closed = True
            client, self._sync = self._sync, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
