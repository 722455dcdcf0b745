"""Exceptions of the package."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pymilvus.exceptions import MilvusUnavailableException


class WriteError(RuntimeError):
    """A write failed for some rows; nothing is reported as written that was not.

    Attributes:
        not_written_ids: Ids of the rows that were not (or not confirmed to be) written.
            Empty for auto_id collections, whose ids the server assigns; see
            `not_written_positions` there.
        written_ids: Ids confirmed written by the same call before the failure.
        not_written_positions: Positions (in the call's input) of the rows not written.
    """

    def __init__(
        self,
        message: str,
        *,
        not_written_ids: Sequence[Any] = (),
        written_ids: Sequence[Any] = (),
        not_written_positions: Sequence[int] = (),
    ) -> None:
        self.not_written_ids = list(not_written_ids)
        self.written_ids = list(written_ids)
        self.not_written_positions = list(not_written_positions)
        shown = ", ".join(repr(i) for i in self.not_written_ids[:20])
        more = len(self.not_written_ids) - 20
        detail = f"; ids not written: [{shown}{f', … {more} more' if more > 0 else ''}]"
        if not self.not_written_ids:
            detail = f"; {len(self.not_written_positions)} rows not written"
        super().__init__(message + detail)


def rejected_before_sending(error: BaseException, written: Sequence[Any]) -> bool:
    """Whether a failed write is the caller's bad input, found before any row was sent.

    The one rule for what a failed write raises: a `ValueError` while nothing of the call
    is written (`written`: what of it was written so far, ids or positions) is raised as it
    is. The checks of the rows, vectors and filters raise `ValueError` before their batch is
    sent, and every batch is checked before it goes, so nothing of the call was sent then.
    Any other failure becomes a `WriteError` saying which rows were and were not written.
    (One `ValueError` comes after sending: the coalescer's, for a batch that returned the
    wrong number of results; `write_batch` returns one id per row, so it does not arise.)
    """
    return isinstance(error, ValueError) and not written


class StoreClosedError(RuntimeError):
    """The store was closed (`close()`, `aclose()`, or the end of its `with` block).

    A closed store refuses every further call instead of silently opening new clients;
    create a new store to use the collection again.
    """

    def __init__(self, what: str = "vector store") -> None:
        super().__init__(
            f"Cannot use the {what}: it has been closed (close(), aclose() or the end of its "
            "`with` / `async with` block); create a new store to use the collection again"
        )


class MilvusConnectionError(ConnectionError):
    """The store could not use Milvus: the server is unreachable, the credentials were
    refused, or a Milvus Lite file is opened by another process.

    The message names the URI but never a token or password.

    Attributes:
        not_written_ids: For a write that failed before sending anything: its ids (all of
            them were not written; empty when the server was to assign them).
    """

    def __init__(self, message: str, *, not_written_ids: Sequence[Any] = ()) -> None:
        super().__init__(message)
        self.not_written_ids = list(not_written_ids)

    def nothing_written(self, ids: Sequence[Any] | None, rows: int) -> MilvusConnectionError:
        """This error, for a write of `rows` rows of which none was sent."""
        return MilvusConnectionError(
            f"{self}; nothing was written ({rows} rows)", not_written_ids=list(ids or []))


_CONNECTION_PATTERN = re.compile(
    r"illegal connection params|unavailable\b|unauthenticated|\bauth\b"
    r"|\bauthenticat(e|ion|ed)\b|\bauthorization\b|permission denied|connection refused"
    r"|fail(ed)? (to )?connect",
    re.IGNORECASE,
)


def connection_failure(
    error: BaseException, connection_args: Mapping[str, Any]
) -> MilvusConnectionError | None:
    """A clear, credential-free error for a failure to connect or authenticate, else None.

    A `MilvusConnectionError` is already clear: it is returned as it is.
    """
    if isinstance(error, MilvusConnectionError):
        return error
    text = f"{type(error).__name__}: {error}"
    unavailable = isinstance(error, MilvusUnavailableException)
    if not unavailable and not _CONNECTION_PATTERN.search(text):
        return None
    uri = safe_uri(str(connection_args.get("uri", "http://localhost:19530")))
    return MilvusConnectionError(
        f"cannot use Milvus at {uri}: authentication failed or the server is unreachable "
        f"at that URI ({redact_text(text, connection_args)})"
    )


def redact_text(text: str, connection_args: Mapping[str, Any]) -> str:
    """`text` with every credential from `connection_args` replaced by '***'."""
    secrets = [str(connection_args.get(k) or "") for k in ("token", "password")]
    user, password = connection_args.get("user"), connection_args.get("password")
    if user and password:
        secrets.append(f"{user}:{password}")
    parts = urlsplit(str(connection_args.get("uri", "")))
    if parts.password:
        secrets += [parts.password, f"{parts.username}:{parts.password}"]
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def safe_uri(uri: str) -> str:
    """`uri` without any `user:password@` part."""
    parts = urlsplit(uri)
    if not parts.username and not parts.password:
        return uri
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))
