"""Which failures are worth another try, and how long to wait before it. Pure, no I/O.

This policy retries whole calls that failed transiently (server unavailable, deadline
exceeded, rate limited), with bounded exponential backoff and full jitter. Permanent failures
(bad schema, bad filter, bad input, authentication) are raised at once. Only idempotent calls
are retried: every write with ids is an upsert, so writing the same rows twice leaves the same
rows.

One layer retries, this one. pymilvus's `retry_on_rpc_failure` decorator would otherwise retry
inside each of our tries (up to 75 times without a timeout; until the timeout is spent with
one, each of its tries given the full timeout again), so that a call with timeout=5 could take
three times that plus backoff, and an auto_id insert we never retry could be sent twice. We
keep ours because it knows what pymilvus does not: which calls are idempotent, the caller's
deadline, and server statuses that are transient. `Attempts` turns pymilvus's off for every
try (`retry_times=0`, `retry_on_rate_limit=False`) and makes `timeout` a deadline for the
whole call: each try is given the time that remains, and no try or wait starts that could not
end before the deadline. (With a timeout, pymilvus's decorator still loops on gRPC transport
errors until the timeout it was given is spent; since that is our remaining time, it cannot
push the call past the deadline, except for a sync gRPC try it started just before it.)

What is transient is read from codes: the gRPC status of a transport failure, the server's
`code` and legacy `ErrorCode`, and its `retriable` flag (`is_transient`). The message is read
only when an error has no code at all. After a failed try, `after_failure` names what a
driver does (`Outcome`): retry, or raise the error as caught, the server's error pymilvus
wrapped, or a clear connection error.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import Any, Generic, NoReturn, TypeVar

import grpc
from pymilvus.exceptions import (
    DataNotMatchException,
    ErrorCode,
    MilvusException,
    MilvusUnavailableException,
    ParamError,
)
from pymilvus.grpc_gen import common_pb2

from langchain_milvus_ext._errors import MilvusConnectionError, connection_failure

_TRANSIENT_GRPC = frozenset({
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
})
"""gRPC statuses of a transport failure worth another try. pymilvus raises the `grpc.RpcError`
itself, or (its retry decorator's wrapper) a `MilvusException` whose `code` is the status."""
_AUTH_GRPC = frozenset({grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED})


class ServerCode(IntEnum):
    """Milvus's error codes (`Status.code`, Milvus >= 2.3: package `merr`), which pymilvus
    puts in `MilvusException.code`. Only those this module tells apart are listed."""

    UNEXPECTED = ErrorCode.UNEXPECTED_ERROR  # 1: pymilvus's default code, and merr's
    # "service not ready" (then `compatible_code` is NotReadyServe): no meaning on its own
    SERVICE_UNAVAILABLE = 2  # also pymilvus's own Status.CONNECT_FAILED ("Fail connecting")
    TOO_MANY_REQUESTS = 4
    RATE_LIMIT = ErrorCode.RATE_LIMIT  # 8
    RESOURCE_INSUFFICIENT = 12
    PARAMETER_INVALID = 1100
    NOT_AUTHENTICATED = 1400
    NOT_PERMITTED = 1401
    NEED_AUTHENTICATE = 1402
    UNDEFINED = 65535  # merr's code for an error it has no code for (e.g. 2.3.5's parse errors)


_TRANSIENT_CODES = frozenset({ServerCode.SERVICE_UNAVAILABLE, ServerCode.TOO_MANY_REQUESTS,
                              ServerCode.RATE_LIMIT, ServerCode.RESOURCE_INSUFFICIENT})
_AUTH_CODES = frozenset({ServerCode.NOT_AUTHENTICATED, ServerCode.NOT_PERMITTED,
                         ServerCode.NEED_AUTHENTICATE})
_UNCODED = frozenset({0, ServerCode.UNEXPECTED, ServerCode.UNDEFINED})
"""`code`s that say nothing of the failure (0: a status with only the legacy code set)."""

# The legacy `ErrorCode` (`Status.error_code`, `MilvusException.compatible_code`), which
# Milvus 2.3 still sets beside `code` (2.3.5: 100/4 collection not found, 1100/5 invalid
# parameter, 65535/1 a parse error) and servers that predate `code` set alone. Milvus Lite
# repeats `code` there (6/6 a parse error, 101/101 not loaded).
_TRANSIENT_LEGACY = frozenset({common_pb2.RateLimit, common_pb2.NotReadyServe,
                               common_pb2.NotReadyCoordActivating, common_pb2.ConnectFailed})
_AUTH_LEGACY = frozenset({common_pb2.PermissionDenied})
_UNCODED_LEGACY = frozenset({common_pb2.Success, common_pb2.UnexpectedError})

# Message fallback, only for errors that carry no code: pymilvus's own (its asyncio timeouts,
# "Unexpected error" wrappers, client-side checks all use code 1) and a server's generic
# UnexpectedError / merr's ErrUndefined (65535: Milvus 2.3.5 wraps errors it has no code for,
# e.g. a bad filter). Whole words: "token" must not match "tokenizer", nor "auth" "author".
_TRANSIENT_TEXT = re.compile(
    r"\bunavailable\b|deadline exceeded|rate limit|\bnot ready\b|connection refused"
    r"|too many requests")
_AUTH_TEXT = re.compile(
    r"\b(un)?auth(entic\w*|oriz\w*)?\b|permission|password|\btokens?\b|privilege"
    r"|credential")


NOT_RETRIED = frozenset({"insert", "create_collection", "drop_collection"})
"""Client methods never retried: an auto_id insert would write its rows twice."""


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with full jitter.

    Attributes:
        attempts: Tries in all (1 = no retry).
        initial_backoff: Upper bound of the first wait, in seconds.
        max_backoff: Upper bound of any wait, in seconds.
    """

    attempts: int = 3
    initial_backoff: float = 0.2
    max_backoff: float = 5.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {self.attempts}")
        if self.initial_backoff < 0 or self.max_backoff < self.initial_backoff:
            raise ValueError("need 0 <= initial_backoff <= max_backoff")

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed try number `attempt` (1-based)."""
        ceiling = min(self.max_backoff, self.initial_backoff * (2 ** (attempt - 1)))
        return (rng or random).uniform(0.0, ceiling)

    def should_retry(self, method: str, error: BaseException, attempt: int) -> bool:
        """Whether try number `attempt` of `method` that raised `error` gets another try."""
        return attempt < self.attempts and method not in NOT_RETRIED and is_transient(error)


_PYMILVUS_SINGLE_TRY = {"retry_times": 0, "retry_on_rate_limit": False}
_NO_PYMILVUS_KNOBS = frozenset({"create_collection"})  # its kwargs become schema options
_MIN_TRY = 0.01  # seconds: a try given less than this is not started


M = TypeVar("M", bound=str)  # the client method names a driver uses


class Attempts(Generic[M]):
    """The tries of one client call under a policy, bounded by the call's deadline. Pure.

    Example (a driver's loop; `clock` is monotonic)::

        attempts = Attempts(policy, "upsert", timeout, clock())
        while True:
            try:
                return client.upsert(**attempts.kwargs(kwargs, clock()))
            except Exception as error:
                wait = attempts.retry_after(error, clock())
                if wait is None:
                    raise
            sleep(wait)

    Args:
        policy: Tries, backoff, what is transient.
        method: The client method of the first try (some are never retried); `method` is
            the attribute the driver reads for each try.
        timeout: Seconds the whole call may take, retries and waits included; None: no bound
            but the policy's number of tries.
        now: The clock's reading when the call starts.
        retry_as: The method of the retries, if not `method` (see `_steps.Call.retry_as`).
    """

    def __init__(self, policy: RetryPolicy, method: M, timeout: float | None,
                 now: float, retry_as: M | None = None) -> None:
        self.policy, self.method, self.attempt = policy, method, 1
        self.retry_as = retry_as
        self.deadline = None if timeout is None else now + timeout

    def kwargs(self, kwargs: dict[str, Any], now: float) -> dict[str, Any]:
        """The client call's keyword arguments for the next try, started at `now`."""
        out = dict(kwargs)
        if self.method not in _NO_PYMILVUS_KNOBS:
            out.update(_PYMILVUS_SINGLE_TRY)
        if self.deadline is not None and "timeout" in out:
            out["timeout"] = max(self.deadline - now, 0.0)
        return out

    def retry_after(self, error: BaseException, now: float,
                    rng: random.Random | None = None) -> float | None:
        """Seconds to wait before the next try after `error` at `now`; None: give up."""
        if not self.policy.should_retry(self.retry_as or self.method, error, self.attempt):
            return None
        wait = self.policy.backoff(self.attempt, rng)
        if self.deadline is not None and now + wait + _MIN_TRY >= self.deadline:
            return None  # the retry would start too late to do anything before the deadline
        self.attempt += 1
        self.method = self.retry_as or self.method  # what the next try calls
        return wait


def server_error(error: Exception) -> Exception:
    """The server's own error from a pymilvus call made with `retry_times=0`.

    Told to make one try, pymilvus wraps every server error as ``[method] Retry run out of 0
    retry times, message=...`` (its ``__cause__`` is the server's error); callers should see
    the server's error as pymilvus raises it by default. Transport failures keep the wrapper:
    it is the `MilvusException` (with the gRPC code) pymilvus raises for them by default too.
    """
    return _wrapped_server_error(error) or error


def _wrapped_server_error(error: Exception) -> Exception | None:
    """The server's error inside pymilvus's single-try wrapper `error`; None if it is none
    (pymilvus's own fixed text is the only mark of that wrapper)."""
    cause = error.__cause__
    if (isinstance(error, MilvusException) and isinstance(cause, MilvusException)
            and cause is not error and "Retry run out of 0 retry times" in str(error.message)):
        server: Exception = cause
        return server
    return None


class Outcome(Enum):
    """What a driver does after a failed try of a client call (see `after_failure`)."""

    RETRY = "retry"
    """Transient, and time and tries remain: wait `Failure.wait`, then try again."""
    RAISE_AS_CAUGHT = "raise as caught"
    """Raise the client's exception unchanged (a transport failure, pymilvus's own error, or
    one of ours)."""
    RAISE_SERVER_ERROR = "raise the server's error"
    """Raise the server's error that pymilvus wrapped in its single-try message, without
    the wrapper (as pymilvus raises it by default)."""
    RAISE_CONNECTION_ERROR = "raise a connection error"
    """Raise a clear, credential-free `MilvusConnectionError` in its place, caused by the
    server's error."""


@dataclass(frozen=True)
class Failure:
    """The decision after a failed try: `outcome`, and the exception it is about.

    Attributes:
        outcome: What to do.
        error: For `RETRY`, the error retried; else the exception to raise.
        cause: For `RAISE_CONNECTION_ERROR`, the error it replaces (its `__cause__`).
        wait: For `RETRY`, seconds to wait first.
    """

    outcome: Outcome
    error: Exception
    cause: Exception | None = None
    wait: float = 0.0

    def raise_(self) -> NoReturn:
        """Raise what the outcome says (call it while handling the caught exception)."""
        if self.outcome is Outcome.RAISE_AS_CAUGHT:
            raise self.error
        if self.outcome is Outcome.RAISE_SERVER_ERROR:
            raise self.error from None
        if self.outcome is Outcome.RAISE_CONNECTION_ERROR:
            raise self.error from self.cause
        raise RuntimeError(f"{self.outcome} is not an outcome that raises")


def after_failure(attempts: Attempts[Any], caught: Exception, connection_args: Mapping[str, Any],
                  now: float) -> Failure:
    """What to do after one try of a client call raised `caught` at `now`. Pure.

    The one rule of both drivers: retry while the server's error is transient and the
    attempts (tries, deadline) allow; else raise it, as clear as it can be made.
    """
    wrapped = _wrapped_server_error(caught)
    error = wrapped or caught
    wait = attempts.retry_after(error, now)
    if wait is not None:
        return Failure(Outcome.RETRY, error, wait=wait)
    if not isinstance(error, MilvusConnectionError):  # ours are already clear
        clear = connection_failure(error, connection_args)
        if clear is not None:
            return Failure(Outcome.RAISE_CONNECTION_ERROR, clear, cause=error)
    if wrapped is None:
        return Failure(Outcome.RAISE_AS_CAUGHT, caught)
    return Failure(Outcome.RAISE_SERVER_ERROR, wrapped)


def is_transient(error: BaseException) -> bool:
    """True for failures that may pass on a later try.

    Decided by the error's codes: the gRPC status of a transport failure, else the server's
    `code` / legacy `ErrorCode` (rate limited, not ready, unavailable) or its own `retriable`
    flag. Authentication and input errors never are. Only an error with no code at all is
    judged by its message (see `_TRANSIENT_TEXT`).
    """
    if isinstance(error, MilvusUnavailableException):
        return True
    if isinstance(error, grpc.RpcError) and hasattr(error, "code"):
        return error.code() in _TRANSIENT_GRPC
    if not isinstance(error, MilvusException):
        return False
    if error.is_input_error or is_auth_failure(error):
        return False
    if isinstance(error.code, grpc.StatusCode):
        return error.code in _TRANSIENT_GRPC
    if (error.retriable or error.code in _TRANSIENT_CODES
            or error.compatible_code in _TRANSIENT_LEGACY):
        return True
    if not _uncoded(error):
        return False  # a code, and not one of the transient ones
    return _TRANSIENT_TEXT.search(str(error.message).lower()) is not None


def is_auth_failure(error: BaseException) -> bool:
    """True when `error` refuses the caller's credentials or rights (never retried).

    By gRPC status or server code; an error with no code, by its message.
    """
    if _auth_by_code(error):
        return True
    return (isinstance(error, MilvusException) and _uncoded(error)
            and _AUTH_TEXT.search(str(error.message).lower()) is not None)


def _auth_by_code(error: BaseException) -> bool:
    if isinstance(error, grpc.RpcError) and hasattr(error, "code"):
        return error.code() in _AUTH_GRPC
    if not isinstance(error, MilvusException):
        return False
    if isinstance(error.code, grpc.StatusCode):
        return error.code in _AUTH_GRPC
    return error.code in _AUTH_CODES or error.compatible_code in _AUTH_LEGACY


def _uncoded(error: MilvusException) -> bool:
    """Whether neither of the error's codes says what failed."""
    return error.code in _UNCODED and error.compatible_code in _UNCODED_LEGACY


_NOT_INPUT = re.compile(  # whole words: a field named 'author' is not about authentication
    r"time ?out|deadline|connect|unavailable|refused|\bclosed\b|\b(un)?auth(entic\w*|oriz\w*)?\b"
    r"|permission|password|credential")
_INPUT_WORDS = ("invalid", "illegal", "cannot parse", "parse", "expr plan",
                "unexpected character", "unexpected token", "syntax", "must be", "expect",
                "not match", "mismatch", "inconsistent", "out of range", "exceed", "not valid",
                "unsupported", "not support", "surrogate")
_INPUT_CODES = {5, 6, ServerCode.PARAMETER_INVALID}  # IllegalArgument / Lite's parse errors


def is_input_error(error: BaseException) -> bool:
    """True when `error` rejects the request's content (a bad filter, a bad value).

    Such a failure of a coalesced batch is caused by some caller's input, so the batch may be
    split to find that caller; a failure that can hit any batch (connection lost, timeout,
    rate limit, authentication, an unexplained server error) is never one. Input errors are
    found by validation before anything is written: pymilvus raises `DataNotMatchException` /
    `ParamError` before sending, and Milvus checks a whole request before writing any of it.
    """
    # By code only: the message of a code-less parse error may say "token" (`_NOT_INPUT`).
    if (is_transient(error) or _auth_by_code(error)
            or isinstance(error, (ConnectionError, TimeoutError))):
        return False
    if isinstance(error, (DataNotMatchException, ParamError)):
        return True
    if isinstance(error, MilvusException):
        text = str(error.message).lower()
        if _NOT_INPUT.search(text):
            return False
        return (error.is_input_error or error.code in _INPUT_CODES
                or any(word in text for word in _INPUT_WORDS))
    # Not our own ValueErrors inside a batch (a vector of the wrong dimension, say): they are
    # about the embedding model's output, and a split would only repeat them.
    return False
