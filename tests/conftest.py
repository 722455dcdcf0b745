"""Shared fixtures. Servers come from `tests/servers.py` (importable as `servers`: pytest puts
`tests/` on sys.path for this conftest)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import servers

# --------------------------------------------------------------------------- logging


@pytest.fixture()
def quiet_pymilvus() -> Iterator[None]:
    """Silence pymilvus's per-RPC error tracebacks (tens of thousands after a server kill)."""
    logger = logging.getLogger("pymilvus")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


@pytest.fixture()
def report_figures(
    record_property: Callable[[str, object], None],
) -> Callable[[str, dict[str, object]], None]:
    """Print a test's measured figures (seen with `pytest -s`) and record them as its properties."""

    def report(title: str, figures: dict[str, object]) -> None:
        print(f"\n[{title}]")
        for name, value in figures.items():
            record_property(name, value)
            print(f"  {name}: {value}")

    return report


# --------------------------------------------------------------------------- Milvus Lite file


@pytest.fixture()
def lite_uri(tmp_path: Path) -> str:
    """URI of a fresh embedded Milvus Lite database under the test's tmp_path."""
    return str(tmp_path / "milvus.db")


# --------------------------------------------------------------------------- real servers


def _stop_at_end(request: pytest.FixtureRequest, handle: servers.ServerHandle) -> None:
    """Stop *handle* at session end (servers' atexit hook also SIGKILLs any left over)."""
    request.addfinalizer(handle.stop)


@pytest.fixture(scope="session")
def lite_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> servers.ServerHandle:
    """A `milvus-lite server` gRPC server for the whole session, started on first use."""
    handle = servers.start_lite_server(tmp_path_factory.mktemp("lite-server") / "data")
    _stop_at_end(request, handle)
    return handle


@pytest.fixture(scope="session")
def lite_server_uri(lite_server: servers.ServerHandle) -> str:
    """URI (http://127.0.0.1:PORT) of the session's `milvus-lite server`."""
    return lite_server.uri


def _require_milvus_server_bin() -> None:
    """Fail (or skip, with LMX_ALLOW_SKIP_SERVERS=1) when milvus-server is not installed."""
    path = servers.milvus_server_bin()
    if path.exists():
        return
    message = (
        f"Milvus 2.3.5 not installed: {path} does not exist. Run `bash scripts/test.sh` (it "
        "installs milvus==2.3.5 into its own virtualenv) or set MILVUS_SERVER_BIN."
    )
    if os.environ.get("LMX_ALLOW_SKIP_SERVERS") == "1":
        pytest.skip(message)
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def milvus235(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> servers.ServerHandle:
    """A Milvus 2.3.5 standalone (no authorization) for the whole session, started on first use."""
    _require_milvus_server_bin()
    handle = servers.start_milvus_standalone(tmp_path_factory.mktemp("milvus235"))
    _stop_at_end(request, handle)
    return handle


@pytest.fixture(scope="session")
def milvus235_uri(milvus235: servers.ServerHandle) -> str:
    """URI (http://127.0.0.1:PORT) of the session's Milvus 2.3.5 standalone."""
    return milvus235.uri


# --------------------------------------------------------------------------- every backend


@pytest.fixture(params=["lite", "lite-server", "milvus235"])
def backend_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each backend in turn: a fresh Milvus Lite file, the session's `milvus-lite server`, the
    session's Milvus 2.3.5 standalone."""
    if request.param == "lite":
        return str(tmp_path / "milvus.db")
    fixture = "lite_server_uri" if request.param == "lite-server" else "milvus235_uri"
    uri: str = request.getfixturevalue(fixture)
    return uri
