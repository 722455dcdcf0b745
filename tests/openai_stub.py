"""A tiny OpenAI-compatible `/v1/embeddings` server for offline tests (test code only).

Vectors are deterministic: each input (a string, or a list of token ids) is hashed with
SHA-256 into a unit vector, so equal inputs get equal vectors and different inputs nearly
orthogonal ones. Both `encoding_format`s ("float" and "base64") and the `dimensions`
parameter are honoured. Requests and inputs are counted.

Example:
    ```python
    with EmbeddingStub(dim=16) as stub:
        OpenAIEmbeddings(model="text-embedding-3-small", base_url=stub.url + "/v1",
                         api_key="test", check_embedding_ctx_length=False)
    ```
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

Input = str | list[int]


def stub_vector(item: Input, dim: int) -> list[float]:
    """The unit vector of one input: SHA-256 counter-mode bytes mapped to [-1, 1]."""
    if isinstance(item, str):
        seed = b"s:" + item.encode("utf-8")
    else:
        seed = b"t:" + ",".join(str(int(t)) for t in item).encode("ascii")
    values: list[float] = []
    block = 0
    while len(values) < dim:
        digest = hashlib.sha256(seed + block.to_bytes(4, "big")).digest()
        values.extend(x / 32767.5 - 1.0 for x in struct.unpack(">16H", digest))
        block += 1
    values = values[:dim]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def parse_inputs(raw: Any) -> list[Input]:
    """OpenAI's `input`: a string, a list of strings, a token list, or a list of token lists.

    Raises:
        ValueError: any other shape.
    """
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and raw and all(isinstance(t, int) for t in raw):
        return [list(raw)]
    if isinstance(raw, list) and raw:
        out: list[Input] = []
        for item in raw:
            if isinstance(item, str):
                out.append(item)
            elif isinstance(item, list) and all(isinstance(t, int) for t in item):
                out.append(list(item))
            else:
                raise ValueError(f"bad input item {item!r}")
        return out
    raise ValueError(f"bad input {raw!r}")


@dataclass
class StubStats:
    """Counters of the requests served."""

    requests: int = 0  #: POSTs to /v1/embeddings
    inputs: int = 0  #: inputs embedded, over all requests
    token_inputs: int = 0  #: inputs given as token-id lists
    batch_sizes: list[int] = field(default_factory=list)  #: inputs per request, in order
    models: set[str] = field(default_factory=set)  #: models asked for


class EmbeddingStub:
    """The server: `start()` it (or use `with`), point the client at `url + "/v1"`.

    Args:
        dim: Vector dimension when the request gives no `dimensions`.
        host: Address to bind (loopback only).
    """

    def __init__(self, dim: int = 16, host: str = "127.0.0.1") -> None:
        self.dim = dim
        self.stats = StubStats()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT` (append "/v1" for an OpenAI `base_url`)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> EmbeddingStub:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="openai-stub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def reset(self) -> None:
        """Zero the counters."""
        with self._lock:
            self.stats = StubStats()

    def __enter__(self) -> EmbeddingStub:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def respond(self, body: dict[str, Any]) -> dict[str, Any]:
        """The JSON answer to one embeddings request body (counted)."""
        inputs = parse_inputs(body.get("input"))
        dim = int(body.get("dimensions") or self.dim)
        model = str(body.get("model", ""))
        with self._lock:
            self.stats.requests += 1
            self.stats.inputs += len(inputs)
            self.stats.token_inputs += sum(1 for i in inputs if not isinstance(i, str))
            self.stats.batch_sizes.append(len(inputs))
            self.stats.models.add(model)
        as_base64 = body.get("encoding_format") == "base64"
        data = [{"object": "embedding", "index": n,
                 "embedding": _encode(stub_vector(item, dim), as_base64)}
                for n, item in enumerate(inputs)]
        tokens = sum(len(i) if not isinstance(i, str) else len(i.split()) for i in inputs)
        return {"object": "list", "data": data, "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def _encode(vector: Sequence[float], as_base64: bool) -> list[float] | str:
    if not as_base64:
        return list(vector)
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def _handler_for(stub: EmbeddingStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as OpenAI's client expects

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if self.path.rstrip("/") != "/v1/embeddings":
                self._send(404, {"error": {"message": f"no route {self.path}",
                                           "type": "invalid_request_error"}})
                return
            try:
                answer = stub.respond(json.loads(raw))
            except (ValueError, TypeError) as error:
                self._send(400, {"error": {"message": str(error),
                                           "type": "invalid_request_error"}})
                return
            self._send(200, answer)

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            """Keep test output quiet."""

    return Handler
