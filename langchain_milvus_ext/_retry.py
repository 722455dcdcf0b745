"""Which failures are worth another try, and how long to wait before it. Pure, no I/O.

pymilvus already retries some gRPC failures inside one call; this policy sits above it and
retries whole calls that failed transiently (server unavailable, deadline exceeded, rate
limited), with bounded exponential backoff and full jitter. Permanent failures (bad schema,
bad filter, bad input, authentication) are raised at once. Only idempotent calls are retried:
every write with ids is an upsert, so writing the same rows twice leaves the same rows.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

import grpc
from pymilvus.exceptions import (
    DataNotMatchException,
    ErrorCode,
    MilvusException,
    MilvusUnavailableException,
    ParamError,
)

_TRANSIENT_GRPC = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
_TRANSIENT_WORDS = ("unavailable", "deadline exceeded", "rate limit", "not ready",
                    "connection refused", "too many requests")
_PERMANENT_WORDS = ("auth", "permission", "password", "token", "privilege")
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


def is_transient(error: BaseException) -> bool:
    """True for failures that may pass on a later try."""
    if isinstance(error, MilvusUnavailableException):
        return True
    if isinstance(error, grpc.RpcError) and hasattr(error, "code"):
        return error.code() in _TRANSIENT_GRPC
    if isinstance(error, MilvusException):
        if error.is_input_error:
            return False
        if error.code == ErrorCode.RATE_LIMIT or error.code in _TRANSIENT_GRPC:
            return True
        text = str(error.message).lower()
        if any(word in text for word in _PERMANENT_WORDS):
            return False
        return any(word in text for word in _TRANSIENT_WORDS)
    return False


_NOT_INPUT = re.compile(  # whole words: a field named 'author' is not about authentication
    r"time ?out|deadline|connect|unavailable|refused|\bclosed\b|\b(un)?auth(entic\w*|oriz\w*)?\b"
    r"|permission|password|credential")
_INPUT_WORDS = ("invalid", "illegal", "cannot parse", "parse", "unexpected character",
                "unexpected token", "syntax", "must be", "expect", "not match", "mismatch",
                "inconsistent", "out of range", "exceed", "not valid", "unsupported",
                "not support", "surrogate")
_INPUT_CODES = {5, 6, 1100}  # IllegalArgument / Milvus Lite's parse errors, ParameterInvalid


def is_input_error(error: BaseException) -> bool:
    """True when `error` rejects the request's content (a bad filter, a bad value).

    Such a failure of a coalesced batch is caused by some caller's input, so the batch may be
    split to find that caller; a failure that can hit any batch (connection lost, timeout,
    rate limit, authentication, an unexplained server error) is never one. Input errors are
    found by validation before anything is written: pymilvus raises `DataNotMatchException` /
    `ParamError` before sending, and Milvus checks a whole request before writing any of it.
    """
    if is_transient(error) or isinstance(error, (ConnectionError, TimeoutError)):
        return False
    if isinstance(error, (DataNotMatchException, ParamError)):
        return True
    if isinstance(error, MilvusException):
        text = str(error.message).lower()
        if _NOT_INPUT.search(text):
            return False
        return (error.is_input_error or error.code in _INPUT_CODES
                or any(word in text for word in _INPUT_WORDS))
    return isinstance(error, (ValueError, TypeError))  # our own checks inside a batch plan
