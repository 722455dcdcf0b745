"""Where the benchmark runs: a Milvus Lite file, a Milvus Lite server process, or any URI.

Milvus Lite 3.x is pure Python: opened as a ``.db`` file it serves from threads *inside the
benchmark's process*, so client and "server" share one GIL. ``lite-server`` starts
``python -m milvus_lite server`` as a separate process on a free loopback port instead, which
is closer to a real deployment (client and server on different cores).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

from .config import BenchmarkConfig

STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


@contextlib.contextmanager
def milvus_target(config: BenchmarkConfig) -> Iterator[tuple[str, str]]:
    """Yield ``(uri, description)`` for the run, and clean up afterwards."""
    if config.uri:
        yield config.uri, config.uri
        return
    with tempfile.TemporaryDirectory(prefix="lcmx-bench-", ignore_cleanup_errors=True) as tmp:
        if config.target == "lite-server":
            with lite_server(os.path.join(tmp, "data")) as uri:
                yield uri, "Milvus Lite server (separate process)"
        else:
            yield os.path.join(tmp, "bench.db"), "Milvus Lite (in-process, temporary file)"


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def lite_server(data_dir: str) -> Iterator[str]:
    """Run a Milvus Lite server process for the duration of the block; yields its URI.

    The process gets its own session (process group); it is stopped with SIGTERM, then SIGKILL.

    Raises:
        RuntimeError: The server exited or did not accept connections in time.
    """
    port = free_port()
    log_path = os.path.join(os.path.dirname(data_dir) or ".", "milvus-lite-server.log")
    command = [sys.executable, "-m", "milvus_lite", "server", "--data-dir", data_dir,
               "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_for_port(proc, port, log_path)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)


def _wait_for_port(proc: subprocess.Popen[bytes], port: int, log_path: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            with open(log_path, encoding="utf-8", errors="replace") as fh:
                tail = fh.read()[-2000:]
            raise RuntimeError(f"milvus-lite server exited with {proc.returncode}: {tail}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.2)
    raise RuntimeError(f"milvus-lite server did not listen on port {port} in time")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(STOP_TIMEOUT_S)
