"""Unit tests for `langchain_milvus_ext._retry` and `langchain_milvus_ext._errors` (no server)."""

from __future__ import annotations

import asyncio
import fcntl
import os
import random
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymilvus.exceptions import (
    DataNotMatchException,
    ErrorCode,
    MilvusException,
    MilvusUnavailableException,
    ParamError,
)
from pymilvus.grpc_gen import common_pb2

from langchain_milvus_ext._clients import lite_file_locked
from langchain_milvus_ext._errors import (
    MilvusConnectionError,
    WriteError,
    connection_failure,
    redact_text,
    rejected_before_sending,
)
from langchain_milvus_ext._retry import (
    NOT_RETRIED,
    RetryPolicy,
    ServerCode,
    is_auth_failure,
    is_input_error,
    is_transient,
)

URI = "http://milvus.example:19530"


class FakeRpcError(grpc.RpcError):
    """What grpc raises: an RpcError that is also a Call with `code()`."""

    def __init__(self, code: grpc.StatusCode, details: str = "") -> None:
        super().__init__(details)
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code


# --------------------------------------------------------------------------- RetryPolicy


@given(
    attempt=st.integers(1, 64),
    initial=st.floats(0.0, 10.0),
    extra=st.floats(0.0, 100.0),
    seed=st.integers(0, 2**32),
)
def test_backoff_is_within_full_jitter_bounds(
    attempt: int, initial: float, extra: float, seed: int
) -> None:
    policy = RetryPolicy(attempts=3, initial_backoff=initial, max_backoff=initial + extra)
    ceiling = min(policy.max_backoff, initial * 2 ** (attempt - 1))
    wait = policy.backoff(attempt, random.Random(seed))
    assert 0.0 <= wait <= ceiling


def test_backoff_is_reproducible_with_a_seeded_rng() -> None:
    policy = RetryPolicy()
    first = [policy.backoff(n, random.Random(7)) for n in range(1, 6)]
    again = [policy.backoff(n, random.Random(7)) for n in range(1, 6)]
    assert first == again


def test_backoff_ceiling_grows_then_caps() -> None:
    policy = RetryPolicy(attempts=10, initial_backoff=0.1, max_backoff=0.5)
    rng = random.Random(0)
    first = [policy.backoff(1, rng) for _ in range(500)]
    late = [policy.backoff(8, rng) for _ in range(500)]
    assert max(first) <= 0.1
    assert max(late) <= 0.5
    assert max(late) > 0.4  # full jitter reaches close to the cap
    assert min(late) < 0.1  # and close to zero


def test_zero_backoff_never_waits() -> None:
    policy = RetryPolicy(initial_backoff=0.0, max_backoff=0.0)
    assert policy.backoff(5, random.Random(1)) == 0.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"attempts": 0},
        {"attempts": -1},
        {"initial_backoff": -0.1},
        {"initial_backoff": 2.0, "max_backoff": 1.0},
    ],
)
def test_invalid_policy_parameters(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


# --------------------------------------------------------------------------- should_retry

TRANSIENT: list[BaseException] = [
    MilvusException(code=ErrorCode.RATE_LIMIT, message="slow down"),
    MilvusUnavailableException(message="server down"),
    MilvusException(message="service unavailable"),
    MilvusException(message="Deadline Exceeded"),
    MilvusException(message="collection not ready yet"),
    MilvusException(message="Too many requests"),
    FakeRpcError(grpc.StatusCode.UNAVAILABLE),
    FakeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED),
    FakeRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED),
]

PERMANENT: list[BaseException] = [
    MilvusException(message="service unavailable", is_input_error=True),
    MilvusException(code=ErrorCode.RATE_LIMIT, message="bad", is_input_error=True),
    MilvusException(message="unavailable: authentication failed"),
    MilvusException(message="permission denied: not ready"),
    MilvusException(message="invalid token, connection refused"),
    MilvusException(message="field x does not exist"),
    FakeRpcError(grpc.StatusCode.INVALID_ARGUMENT),
    FakeRpcError(grpc.StatusCode.UNAUTHENTICATED),
    FakeRpcError(grpc.StatusCode.PERMISSION_DENIED),
    grpc.RpcError("no code()"),
    ValueError("unavailable"),
    ConnectionError("connection refused"),
]


@pytest.mark.parametrize("error", TRANSIENT, ids=repr)
def test_transient_errors_are_retried(error: BaseException) -> None:
    policy = RetryPolicy(attempts=3)
    assert is_transient(error)
    assert policy.should_retry("upsert", error, 1)
    assert policy.should_retry("search", error, 2)


@pytest.mark.parametrize("error", PERMANENT, ids=repr)
def test_permanent_errors_are_not_retried(error: BaseException) -> None:
    assert not is_transient(error)
    assert not RetryPolicy(attempts=5).should_retry("search", error, 1)


@pytest.mark.parametrize("method", sorted(NOT_RETRIED))
def test_non_idempotent_methods_are_not_retried(method: str) -> None:
    error = MilvusUnavailableException(message="down")
    assert not RetryPolicy(attempts=5).should_retry(method, error, 1)


def test_insert_is_never_retried() -> None:
    assert "insert" in NOT_RETRIED
    assert "upsert" not in NOT_RETRIED


def test_attempts_are_bounded() -> None:
    error = MilvusUnavailableException(message="down")
    policy = RetryPolicy(attempts=3)
    assert [policy.should_retry("search", error, n) for n in (1, 2, 3, 4)] == [
        True, True, False, False,
    ]
    assert not RetryPolicy(attempts=1).should_retry("search", error, 1)


# --------------------------------------------------------------------------- WriteError


def test_write_error_lists_ids() -> None:
    error = WriteError("write failed", not_written_ids=["a", 2], written_ids=["x"])
    assert str(error) == "write failed; ids not written: ['a', 2]"
    assert error.not_written_ids == ["a", 2]
    assert error.written_ids == ["x"]
    assert isinstance(error, RuntimeError)


def test_write_error_truncates_after_twenty_ids() -> None:
    ids = [f"id{n:02d}" for n in range(25)]
    message = str(WriteError("boom", not_written_ids=ids))
    assert "'id19'" in message
    assert "'id20'" not in message and "'id24'" not in message
    assert "5 more" in message
    assert WriteError("boom", not_written_ids=ids).not_written_ids == ids


def test_write_error_exactly_twenty_ids_has_no_more_marker() -> None:
    message = str(WriteError("boom", not_written_ids=[str(n) for n in range(20)]))
    assert "'19'" in message and "more" not in message


def test_write_error_positions_for_auto_id() -> None:
    error = WriteError("boom", not_written_positions=[3, 4, 7])
    assert str(error) == "boom; 3 rows not written"
    assert error.not_written_positions == [3, 4, 7]
    assert error.not_written_ids == []


# --------------------------------------------------------------------------- connection_failure


@pytest.mark.parametrize(
    "error",
    [
        ConnectionError("Connection refused"),
        MilvusException(message="Fail connecting to server on milvus.example:19530"),
        MilvusUnavailableException(message="x"),
        MilvusException(message="illegal connection params or server unavailable"),
        FakeRpcError(grpc.StatusCode.UNAUTHENTICATED, "Unauthenticated"),
        MilvusException(message="auth check failure, please check username and password"),
    ],
    ids=repr,
)
def test_connection_failures_name_the_uri(error: BaseException) -> None:
    failure = connection_failure(error, {"uri": URI})
    assert isinstance(failure, MilvusConnectionError)
    assert isinstance(failure, ConnectionError)
    assert URI in str(failure)


def test_default_uri_is_named() -> None:
    failure = connection_failure(ConnectionError("connection refused"), {})
    assert failure is not None and "http://localhost:19530" in str(failure)


@pytest.mark.parametrize(
    "error",
    [
        ValueError("bad filter"),
        MilvusException(message="field year does not exist"),
        MilvusException(message="collection not found[collection=docs]"),
        KeyError("x"),
    ],
    ids=repr,
)
def test_other_errors_are_not_connection_failures(error: BaseException) -> None:
    assert connection_failure(error, {"uri": URI}) is None


@pytest.mark.parametrize(
    "message",
    [
        'cannot parse expression: metadata["author"] == ',
        "field author does not exist",
        'filter key "authors" is not a metadata field',
    ],
)
def test_errors_mentioning_author_fields_are_not_connection_failures(message: str) -> None:
    """`author` is a common metadata key; an error about it is not an authentication failure."""
    assert connection_failure(MilvusException(message=message), {"uri": URI}) is None


# --------------------------------------------------------------------------- redaction


def test_redact_text_removes_token_password_and_user_password() -> None:
    args = {"uri": URI, "user": "root", "password": "hunter2", "token": "tok-123"}
    text = "token=tok-123 creds=root:hunter2 pw=hunter2"
    out = redact_text(text, args)
    assert "tok-123" not in out and "hunter2" not in out
    assert out == "token=*** creds=*** pw=***"


def test_redact_text_without_credentials_is_identity() -> None:
    assert redact_text("nothing secret", {"uri": URI, "token": "", "password": None}) == (
        "nothing secret"
    )


def test_connection_error_never_contains_the_token() -> None:
    token = "root:S3cr3t-Pa55"
    args = {"uri": URI, "token": token}
    error = MilvusException(message=f"authentication failed for token {token}")
    failure = connection_failure(error, args)
    assert failure is not None
    assert URI in str(failure)
    assert token not in str(failure)
    assert "S3cr3t-Pa55" not in str(failure)
    assert token not in repr(failure)


def test_connection_error_never_contains_user_password() -> None:
    args = {"uri": URI, "user": "admin", "password": "pw-9f8e7d"}
    error = ConnectionError("connection refused (admin:pw-9f8e7d)")
    failure = connection_failure(error, args)
    assert failure is not None
    assert "pw-9f8e7d" not in str(failure)


@given(st.text(alphabet="0123456789abcdefXYZ_-:", min_size=8, max_size=40))
def test_no_credential_in_any_connection_error(token: str) -> None:
    args = {"uri": URI, "token": token, "password": token[::-1]}
    error = ConnectionError(f"connection refused: token={token} password={token[::-1]}")
    failure = connection_failure(error, args)
    assert failure is not None
    assert token not in str(failure)
    assert token[::-1] not in str(failure)


def test_credentials_in_the_uri_are_not_shown() -> None:
    """pymilvus accepts `http://user:password@host:port`; the message names the URI."""
    uri = "http://root:S3cr3t-Pa55@milvus.example:19530"
    failure = connection_failure(ConnectionError("connection refused"), {"uri": uri})
    assert failure is not None
    assert "milvus.example:19530" in str(failure)
    assert "S3cr3t-Pa55" not in str(failure)


def test_a_connection_error_of_ours_is_passed_on_unchanged() -> None:
    error = MilvusConnectionError("cannot open the Milvus Lite file /x.db: it is opened by "
                                  "another process")
    assert connection_failure(error, {"uri": "/x.db"}) is error


def test_lite_file_locked_probes_the_lock_of_the_data_directory(tmp_path: Path) -> None:
    data = tmp_path / "f.db"
    assert not lite_file_locked(str(data))  # no such file
    data.mkdir()
    (data / "LOCK").touch()
    assert not lite_file_locked(str(data))
    fd = os.open(data / "LOCK", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as Milvus Lite holds it
        assert lite_file_locked(str(data))
    finally:
        os.close(fd)
    assert not lite_file_locked(str(data))


# --------------------------------------------------------------------------- is_input_error


@pytest.mark.parametrize("error", [
    MilvusException(6, "unexpected character '=' at column 7"),  # Milvus Lite, a bad filter
    MilvusException(1100, "invalid parameter[expected=valid expr]"),
    MilvusException(1, "cannot parse expression: pk == = 1"),
    MilvusException(65535, "anything", is_input_error=True),
    MilvusException(6, "VARCHAR field 'author' value length 600 exceeds max_length=512"),
    MilvusException(6, "unexpected token ')' at column 10"),
    MilvusException(65535, "failed to create expr plan, expr = pk == = 1"),  # Milvus 2.3.5
    DataNotMatchException(message="str is not valid UTF-8: surrogates not allowed"),
    ParamError(message="wrong type"),
])
def test_errors_about_the_request_are_input_errors(error: BaseException) -> None:
    assert is_input_error(error)


@pytest.mark.parametrize("error", [
    MilvusUnavailableException(message="server unavailable"),
    FakeRpcError(grpc.StatusCode.UNAVAILABLE, "connection refused"),
    FakeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "invalid deadline"),
    MilvusException(ErrorCode.RATE_LIMIT, "rate limit exceeded"),
    MilvusException(1, "[delete] Retry timeout: 5s, invalid"),
    MilvusException(1, "fail connecting to server on localhost:19530"),
    MilvusException(1, "invalid token: authentication failed"),
    MilvusException(1, "invalid: unauthenticated"),
    MilvusException(1, "internal error"),
    MilvusConnectionError("cannot use Milvus at http://x: invalid token"),
    TimeoutError("timed out"),
    asyncio.TimeoutError(),
    RuntimeError("invalid"),
    ValueError("embeddings[3] has dimension 7"),  # the model's output: splitting won't help
])
def test_transport_and_unknown_failures_are_not_input_errors(error: BaseException) -> None:
    assert not is_input_error(error)


# --------------------------------------------------------------------------- codes, not words

CODED_TRANSIENT: list[BaseException] = [
    MilvusException(ServerCode.SERVICE_UNAVAILABLE, "whatever the text says"),
    MilvusException(ServerCode.TOO_MANY_REQUESTS, "queue is full"),
    MilvusException(ServerCode.RESOURCE_INSUFFICIENT, "no"),
    MilvusException(1, "not ready", common_pb2.NotReadyServe),  # merr's "service not ready"
    MilvusException(0, "legacy only", common_pb2.RateLimit),  # a server without `code`
    MilvusException(100, "told to retry", retriable=True),  # the server's own verdict
    MilvusException(grpc.StatusCode.UNAVAILABLE, "[search] Retry timeout: 5s"),  # pymilvus
    # pymilvus's own "Fail connecting" (Status.CONNECT_FAILED, the code of merr's unavailable)
    MilvusException(2, "Fail connecting to server on x:19530, illegal connection params or "
                       "server unavailable"),
]

CODED_PERMANENT: list[BaseException] = [
    MilvusException(100, "collection not found: service unavailable"),  # a code: text unread
    MilvusException(ServerCode.PARAMETER_INVALID, "rate limit must be positive"),
    MilvusException(101, "collection not loaded"),  # Milvus 2.3.5
    MilvusException(grpc.StatusCode.INVALID_ARGUMENT, "unavailable"),
]

AUTH: list[BaseException] = [
    MilvusException(ServerCode.NOT_AUTHENTICATED, "service unavailable"),
    MilvusException(ServerCode.NOT_PERMITTED, "rate limit"),
    MilvusException(ServerCode.NEED_AUTHENTICATE, "not ready"),
    MilvusException(1, "connection refused", common_pb2.PermissionDenied),
    MilvusException(grpc.StatusCode.UNAUTHENTICATED, "unavailable"),
    MilvusException(grpc.StatusCode.PERMISSION_DENIED, "unavailable"),
    MilvusException(ServerCode.NEED_AUTHENTICATE, "retry", retriable=True),
    FakeRpcError(grpc.StatusCode.UNAUTHENTICATED),
    MilvusException(message="invalid token: service unavailable"),  # no code: by its words
]


@pytest.mark.parametrize("error", CODED_TRANSIENT, ids=repr)
def test_transient_codes_are_retried_whatever_the_message(error: BaseException) -> None:
    assert is_transient(error)
    assert not is_input_error(error)


@pytest.mark.parametrize("error", CODED_PERMANENT, ids=repr)
def test_other_codes_are_permanent_whatever_the_message(error: BaseException) -> None:
    assert not is_transient(error)


@pytest.mark.parametrize("error", AUTH, ids=repr)
def test_auth_errors_are_permanent(error: BaseException) -> None:
    assert is_auth_failure(error)
    assert not is_transient(error)
    assert not is_input_error(error)


@pytest.mark.parametrize("error", [
    MilvusException(1100, "invalid tokenizer params: unknown tokenizer 'x'"),
    MilvusException(message="tokenizer not found"),
], ids=repr)
def test_a_tokenizer_error_is_not_an_auth_failure(error: MilvusException) -> None:
    assert not is_auth_failure(error)
    assert connection_failure(error, {"uri": URI}) is None


def test_token_does_not_match_tokenizer() -> None:
    """A code-less 'unavailable' is transient, unless it is about credentials ('token')."""
    assert is_transient(MilvusException(message="tokenizer service unavailable"))
    assert not is_transient(MilvusException(message="token service unavailable"))


def test_a_coded_tokenizer_error_is_permanent() -> None:
    error = MilvusException(1100, "invalid tokenizer params: unknown tokenizer 'x'")
    assert not is_transient(error)
    assert is_input_error(error)


def test_milvus_235_parse_errors_mentioning_token_are_input_errors() -> None:
    """Milvus 2.3.5 answers a bad filter with code 65535 (no code of its own) and a message
    naming the parser's 'token': an input error, not an authentication failure."""
    error = MilvusException(65535, "cannot parse expression: id == = 1, error: line 1:6 token "
                                   "recognition error at: '= '")
    assert is_input_error(error)
    assert not is_transient(error)


def test_errors_without_any_code_fall_back_to_their_message() -> None:
    assert is_transient(MilvusException(message="[search] rate limit exceeded"))
    assert not is_transient(MilvusException(message="[search] Retry timeout: 5s"))
    assert not is_transient(MilvusException(message="unavailable tokens: authentication"))


# --------------------------------------------------------------------------- failed writes


def test_a_value_error_before_anything_was_written_is_the_callers_own() -> None:
    assert rejected_before_sending(ValueError("embeddings[0] has dimension 3"), [])


@pytest.mark.parametrize("error, written", [
    (ValueError("dimension 3"), ["a"]),  # a later batch failed: some rows are written
    (MilvusException(1100, "invalid parameter"), []),  # the server's: a WriteError
    (ConnectionError("connection refused"), []),
], ids=repr)
def test_other_write_failures_become_write_errors(error: BaseException,
                                                  written: list[str]) -> None:
    assert not rejected_before_sending(error, written)
