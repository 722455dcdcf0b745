"""Start and stop real Milvus servers on free loopback ports for the test suite.

Two kinds of server are supported, each run as its own process group so that a stop reaches
every process it spawned:

* ``milvus-lite server`` (the gRPC server of PyPI ``milvus-lite``, run from this interpreter's
  environment). Its data directory is locked with ``flock`` while open; the kernel drops the
  lock when the process dies, so a SIGKILLed server can be restarted on the same directory.
* Milvus 2.3.5 standalone from PyPI ``milvus==2.3.5``, installed in a virtualenv of its own.
  Its ``milvus-server`` wrapper unpacks and spawns the real ``milvus`` binary with embedded etcd
  and local storage. Every port is chosen here; the embedded etcd gets its ports from a config
  file named by ``ETCD_CONFIG_PATH`` (``--etcd-port`` alone does not move its listeners).

This module has no pytest dependency; ``tests/conftest.py`` wraps it in fixtures.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_MILVUS_SERVER_BIN = "~/.cache/langchain-milvus-ext/milvus-2.3.5/bin/milvus-server"
ROOT_TOKEN = "root:Milvus"  # default credentials of a Milvus server started with authorization

# Port options of `milvus-server` (each is a scan start: if busy it silently takes the next one).
_STANDALONE_PORT_FLAGS = (
    "proxy-port", "proxy-internal-port", "root-coord-port", "query-coord-port",
    "query-node-port", "index-coord-port", "index-node-port", "data-coord-port",
    "data-node-port", "etcd-port",
)
# Roles advertise this address in their etcd sessions (default: the first non-loopback one).
_ROLES = ("rootCoord", "proxy", "queryCoord", "queryNode", "indexNode", "dataCoord", "dataNode")
_START_LOCK = Path(tempfile.gettempdir()) / "langchain-milvus-ext-milvus-start.lock"
_LIVE: set[ServerHandle] = set()


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _group_alive(pgid: int) -> bool:
    """Whether any non-zombie process is left in process group *pgid* (Linux: reads /proc; a
    zombie counts as gone, as PID 1 here may reap orphans late)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


@dataclass(eq=False)
class ServerHandle:
    """A running server: its URI, process group and files. Stop it with `stop()` or `kill()`."""

    uri: str
    pid: int  # leader of the process group (the process this module started)
    data_dir: Path
    log_path: Path  # the server's captured stdout and stderr
    token: str | None = None  # pass as MilvusClient(token=...) when authorization is on
    ports: dict[str, int] = field(default_factory=dict)
    extra_logs: tuple[Path, ...] = ()
    stop_signal: int = signal.SIGTERM
    stop_timeout: float = 10.0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def port(self) -> int:
        """The gRPC port that `uri` points at."""
        return int(self.uri.rsplit(":", 1)[1])

    @property
    def running(self) -> bool:
        """True while any process of the group is alive."""
        if self.process is not None and self.process.poll() is None:
            return True
        return _group_alive(self.pid)

    def stop(self, sig: int | None = None, timeout: float | None = None) -> None:
        """Signal the group (default `stop_signal`), then SIGKILL it if still alive after
        *timeout* seconds (default `stop_timeout`); returns once every process is gone."""
        self._signal(self.stop_signal if sig is None else sig)
        if not self._wait_gone(self.stop_timeout if timeout is None else timeout):
            self._signal(signal.SIGKILL)
            self._wait_gone(30.0)
        _LIVE.discard(self)

    def kill(self) -> None:
        """SIGKILL the whole group at once (a crash, as far as the server can tell)."""
        self.stop(signal.SIGKILL, timeout=30.0)

    def log_tail(self, lines: int = 60) -> str:
        """The last *lines* lines of each log file of this server."""
        parts = []
        for path in (self.log_path, *self.extra_logs):
            try:
                text = path.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                continue
            parts.append(f"--- {path} ---\n" + "\n".join(text))
        return "\n".join(parts)

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def _wait_gone(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if self.process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(timeout=0.05)
            if not self.running:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)


def _spawn(
    cmd: list[str], log_path: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"\n=== {time.strftime('%H:%M:%S')} {' '.join(cmd)}\n".encode())
        log.flush()
        return subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=env, start_new_session=True,
        )


def _wait_ready(handle: ServerHandle, deadline_s: float) -> None:
    """Poll until `list_collections()` answers; on failure stop the group and raise."""
    from pymilvus import MilvusClient

    deadline = time.monotonic() + deadline_s
    last_error = "no answer"
    while time.monotonic() < deadline:
        if handle.process is not None and handle.process.poll() is not None:
            last_error = f"process exited with code {handle.process.returncode}"
            break
        try:
            with socket.create_connection(("127.0.0.1", handle.port), timeout=0.5):
                pass
            client = MilvusClient(uri=handle.uri, token=handle.token or "", timeout=5)
            try:
                client.list_collections()
                return
            finally:
                client.close()
        except Exception as exc:  # anything means "not ready yet"
            last_error = f"{type(exc).__name__}: {exc}"
        time.sleep(0.3)
    handle.kill()
    raise RuntimeError(
        f"server {handle.uri} (data {handle.data_dir}) not ready within {deadline_s:.0f}s: "
        f"{last_error}\n{handle.log_tail()}"
    )


def _register(handle: ServerHandle) -> ServerHandle:
    _LIVE.add(handle)  # SIGKILLed by `_kill_all` at exit unless stopped before
    return handle


# `milvus-lite server` with the keepalive policy of Milvus's own gRPC servers (pings every 5 s
# allowed, also between calls). pymilvus pings every 10 s, which the grpc default policy of the
# milvus-lite server (5 min) answers with GOAWAY "too_many_pings" after about 30 s idle; a
# connection idle that long then failed its next client's connect in the middle of a test run.
_LITE_SERVER_MAIN = """
import sys
import grpc
from milvus_lite.cmdline import main

_server = grpc.server
POLICY = [("grpc.http2.min_ping_interval_without_data_ms", 5000),
          ("grpc.keepalive_permit_without_calls", 1)]

def server(*args, options=(), **kwargs):
    return _server(*args, options=[*options, *POLICY], **kwargs)

grpc.server = server
sys.argv[0] = "milvus-lite"
sys.exit(main())
"""


def start_lite_server(
    data_dir: Path, port: int | None = None, *, log_path: Path | None = None,
    ready_timeout: float = 60.0,
) -> ServerHandle:
    """Start ``milvus-lite server`` on 127.0.0.1 (*port*, or a free one) over *data_dir*.

    Restarting on the same *data_dir* (and *port*) after `stop()` or `kill()` serves the same
    data. The log goes to *log_path*, by default ``<data_dir>.log`` beside the directory (appended
    to across restarts). `stop()` sends SIGINT, on which the server drains and closes its data.
    """
    data_dir = Path(data_dir)
    port = free_port() if port is None else port
    log_path = log_path or data_dir.with_name(data_dir.name + ".log")
    cmd = [sys.executable, "-c", _LITE_SERVER_MAIN]
    cmd += ["server", "--data-dir", str(data_dir), "--host", "127.0.0.1", "--port", str(port)]
    process = _spawn(cmd, log_path)
    handle = _register(ServerHandle(
        uri=f"http://127.0.0.1:{port}", pid=process.pid, data_dir=data_dir, log_path=log_path,
        ports={"grpc": port}, stop_signal=signal.SIGINT, process=process,
    ))
    _wait_ready(handle, ready_timeout)
    return handle


def milvus_server_bin() -> Path:
    """The `milvus-server` executable: env ``MILVUS_SERVER_BIN`` or the default cache path."""
    return Path(os.environ.get("MILVUS_SERVER_BIN") or DEFAULT_MILVUS_SERVER_BIN).expanduser()


@contextlib.contextmanager
def _start_lock() -> Iterator[None]:
    """Serialise standalone starts across processes: the wrapper picks its metrics port by
    probing from 9091 up, which is only safe once the previous server has bound its own."""
    with open(_START_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _seed_binaries(server_bin: Path, data_dir: Path) -> None:
    """Symlink the unpacked milvus binaries (~250 MB, ~3 s to unpack) from a cache beside the
    venv into ``<data_dir>/bin``; the wrapper then finds their checksums current and skips the
    unpacking. Best effort: on any failure the wrapper unpacks them itself."""
    venv = server_bin.resolve().parent.parent
    cache = venv / "lmx-unpacked"
    try:
        if not (cache / "bin" / "milvus").exists():
            tmp = Path(tempfile.mkdtemp(prefix="lmx-unpack-", dir=venv))
            code = "import sys, milvus; milvus._initialize_data_files(sys.argv[1])"
            subprocess.run([str(server_bin.parent / "python"), "-c", code, str(tmp)],
                           check=True, capture_output=True, timeout=300)
            shutil.rmtree(cache, ignore_errors=True)
            tmp.rename(cache)
        target = data_dir / "bin"
        target.mkdir(parents=True, exist_ok=True)
        for src in (cache / "bin").iterdir():
            dst = target / src.name
            if dst.exists() or dst.is_symlink():
                continue
            if src.name.endswith(".md5"):
                shutil.copyfile(src, dst)
            else:
                dst.symlink_to(src)
    except (OSError, subprocess.SubprocessError):
        pass


def _standalone_ports(grpc_port: int | None) -> dict[str, int]:
    """Distinct free ports for every `milvus-server` port flag plus the etcd peer port."""
    names = [*_STANDALONE_PORT_FLAGS, "etcd-peer-port"]
    ports: dict[str, int] = {}
    while len(ports) < len(names):
        if (candidate := free_port()) not in ports.values() and candidate != grpc_port:
            ports[names[len(ports)]] = candidate
    if grpc_port is not None:
        ports["proxy-port"] = grpc_port
    return ports


def _configured_proxy_port(data_dir: Path) -> int | None:
    """The proxy port the wrapper wrote into ``configs/milvus.yaml`` (it may have moved on)."""
    try:
        text = (data_dir / "configs" / "milvus.yaml").read_text()
    except OSError:
        return None
    match = re.search(r"^proxy:\n(?:[ #].*\n|\n)*?  port: (\d+)", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def start_milvus_standalone(
    data_dir: Path, *, authorization: bool = False, port: int | None = None,
    extra_config: dict[str, str] | None = None, ready_timeout: float = 180.0,
) -> ServerHandle:
    """Start Milvus 2.3.5 standalone (``milvus-server``, see `milvus_server_bin()`) on *data_dir*.

    Every listening port (gRPC proxy, the internal role ports, embedded etcd client and peer) is
    free at run time; the metrics/health port is chosen by the wrapper from 9091 up and is
    recorded in ``ports["metrics"]`` when it can be read. With *authorization* the server wants
    ``token=ROOT_TOKEN`` (root/Milvus), set on the handle. Restarting on the same *data_dir*
    serves the same data on new ports (the URI changes unless *port* is given and free: a busy
    one makes the wrapper silently take the next, which `uri` then shows). After a SIGKILL the
    restart takes about a minute, as the new roles wait for the old etcd sessions (TTL
    ``common.session.ttl``, 30 s) to lapse. *extra_config* sets keys that exist in the wrapper's
    config template, e.g. ``{"common.session.ttl": "10"}`` (restart after SIGKILL in ~25 s).
    """
    server_bin = milvus_server_bin()
    if not server_bin.exists():
        raise FileNotFoundError(f"milvus-server not found at {server_bin} (MILVUS_SERVER_BIN)")
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "logs" / "milvus-server-wrapper.log"
    with _start_lock():
        _seed_binaries(server_bin, data_dir)
        ports = _standalone_ports(port)
        etcd_client = f"http://127.0.0.1:{ports['etcd-port']}"
        etcd_peer = f"http://127.0.0.1:{ports['etcd-peer-port']}"
        etcd_config = data_dir / "configs" / "embedEtcd.yaml"
        etcd_config.parent.mkdir(parents=True, exist_ok=True)
        etcd_config.write_text(
            f"name: default\nlisten-client-urls: {etcd_client}\n"
            f"advertise-client-urls: {etcd_client}\nlisten-peer-urls: {etcd_peer}\n"
            f"initial-advertise-peer-urls: {etcd_peer}\n"
            f"initial-cluster: default={etcd_peer}\n"
        )
        cmd = [str(server_bin), "--data", str(data_dir)]
        cmd += [f"--{name}={value}" for name, value in ports.items() if name != "etcd-peer-port"]
        config = {f"{role}.ip": "127.0.0.1" for role in _ROLES} | (extra_config or {})
        cmd += [f"--extra-config={key}={value}" for key, value in config.items()]
        if authorization:  # the flag is argparse type=bool: any non-empty value means true
            cmd += ["--authorization-enabled", "true"]
        env = {**os.environ, "ETCD_CONFIG_PATH": str(etcd_config)}
        (data_dir / "configs" / "milvus.yaml").unlink(missing_ok=True)  # rewritten by the wrapper
        process = _spawn(cmd, log_path, env)
        handle = _register(ServerHandle(
            uri=f"http://127.0.0.1:{ports['proxy-port']}", pid=process.pid, data_dir=data_dir,
            log_path=log_path, token=ROOT_TOKEN if authorization else None, ports=ports,
            extra_logs=(data_dir / "logs" / "milvus-stderr.log",
                        data_dir / "logs" / "milvus-stdout.log"),
            stop_timeout=5.0, process=process,
        ))
        deadline = time.monotonic() + 30
        while _configured_proxy_port(data_dir) is None and time.monotonic() < deadline:
            if process.poll() is not None:
                break
            time.sleep(0.1)
        actual = _configured_proxy_port(data_dir)
        if actual is not None and actual != handle.port:
            handle.uri = f"http://127.0.0.1:{actual}"
            ports["proxy-port"] = actual
        _wait_ready(handle, ready_timeout)
        metrics = _child_env(handle.pid, "METRICS_PORT")
        if metrics and metrics.isdigit():
            ports["metrics"] = int(metrics)
    return handle


def _child_env(pgid: int, name: str) -> str | None:
    """Value of env var *name* of a process in group *pgid* other than its leader."""
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            stat = (environ.parent / "stat").read_text().rsplit(")", 1)[1].split()
            if int(stat[2]) != pgid or int(environ.parent.name) == pgid:
                continue
            for item in environ.read_bytes().split(b"\0"):
                key, _, value = item.decode(errors="replace").partition("=")
                if key == name:
                    return value
        except (OSError, IndexError, ValueError):
            continue
    return None


@atexit.register
def _kill_all() -> None:
    """Last resort at interpreter exit: SIGKILL every server still running."""
    for handle in list(_LIVE):
        handle.kill()
