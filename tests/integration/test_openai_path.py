"""langchain-openai's `OpenAIEmbeddings` with our store, offline, against a local stub server.

The stub (tests/openai_stub.py) speaks OpenAI's `/v1/embeddings` on 127.0.0.1 and counts the
requests, so these tests check what really goes over HTTP: one request per store batch, and
far fewer requests than calls when many async searches run at once (the store coalesces).

Token ids: with `check_embedding_ctx_length=True` (langchain-openai's default) the client
tokenizes with tiktoken and sends token-id arrays. tiktoken downloads its BPE files on first
use, which is impossible offline, so the "tokens" variant swaps tiktoken's encoding for a
byte-level one (token ids = UTF-8 bytes) and the "strings" variant sets
`check_embedding_ctx_length=False` (plain strings are sent). The stub handles both.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import math
import struct
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import openai
import pytest
from langchain_openai import OpenAIEmbeddings
from pydantic import SecretStr

from langchain_milvus_ext import CoalescerLimits, MilvusVectorStore

pytestmark = pytest.mark.lite

DIM = 16
N_DOCS = 40
N_QUERIES = 200


def _load_stub() -> ModuleType:
    name = "openai_stub"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "openai_stub.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


stub_module = _load_stub()


class ByteEncoding:
    """Stands in for a tiktoken encoding offline: one token per UTF-8 byte."""

    name = "bytes"

    def encode(self, text: str, **kwargs: Any) -> list[int]:
        return list(text.encode("utf-8"))

    def encode_ordinary(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, tokens: list[int]) -> str:
        return bytes(tokens).decode("utf-8", errors="replace")


@pytest.fixture()
def stub() -> Iterator[Any]:
    server = stub_module.EmbeddingStub(dim=DIM).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["strings", "tokens"])
def embeddings(request: pytest.FixtureRequest, stub: Any,
               monkeypatch: pytest.MonkeyPatch) -> OpenAIEmbeddings:
    tokens = request.param == "tokens"
    if tokens:
        import tiktoken  # langchain-openai calls tiktoken.encoding_for_model(model)

        monkeypatch.setattr(tiktoken, "encoding_for_model", lambda _name: ByteEncoding())
    return OpenAIEmbeddings(model="text-embedding-3-small", base_url=stub.url + "/v1",
                            api_key=SecretStr("test"), check_embedding_ctx_length=tokens,
                            max_retries=0)


def _store(tmp_path: Path, embeddings: OpenAIEmbeddings, **kwargs: Any) -> MilvusVectorStore:
    return MilvusVectorStore(embeddings, connection_args={"uri": str(tmp_path / "o.db")},
                             consistency_level="Strong", **kwargs)


def _texts() -> list[str]:
    return [f"document {i}: notes about topic {i * 7 % 13}" for i in range(N_DOCS)]


def _expected(item: str, tokens: bool) -> list[float]:
    vector: list[float] = stub_module.stub_vector(
        list(item.encode("utf-8")) if tokens else item, DIM)
    return vector


# -- the stub itself -------------------------------------------------------------------------


def test_stub_strings_tokens_base64_and_dimensions(stub: Any) -> None:
    client = openai.OpenAI(base_url=stub.url + "/v1", api_key="test", max_retries=0)
    model = "text-embedding-3-small"
    floats = client.embeddings.create(model=model, input=["a", "b"], encoding_format="float")
    b64 = client.embeddings.create(model=model, input=["a", "b"], encoding_format="base64")
    assert [d.index for d in floats.data] == [0, 1]
    for f, b in zip(floats.data, b64.data, strict=True):  # the client leaves base64 as is
        raw = base64.b64decode(str(b.embedding))
        assert f.embedding == pytest.approx(struct.unpack(f"<{DIM}f", raw), abs=1e-6)
    assert floats.data[0].embedding == pytest.approx(stub_module.stub_vector("a", DIM))
    assert math.isclose(sum(x * x for x in floats.data[0].embedding), 1.0, rel_tol=1e-6)
    one = client.embeddings.create(model=model, input="a")
    assert one.data[0].embedding == pytest.approx(floats.data[0].embedding)
    token_lists = client.embeddings.create(model=model, input=[[1, 2, 3], [4]])
    assert token_lists.data[0].embedding == pytest.approx(stub_module.stub_vector([1, 2, 3], DIM))
    flat = client.embeddings.create(model=model, input=[1, 2, 3])
    assert flat.data[0].embedding == pytest.approx(token_lists.data[0].embedding)
    small = client.embeddings.create(model=model, input="a", dimensions=8)
    assert len(small.data[0].embedding) == 8
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model=model, input=[{"x": 1}])  # type: ignore[arg-type]
    assert stub.stats.requests == 6  # the malformed request is refused, not counted
    assert stub.stats.inputs == 9
    assert stub.stats.token_inputs == 3
    assert stub.stats.models == {model}


# -- OpenAIEmbeddings through the store -------------------------------------------------------


def test_sync_add_and_search(tmp_path: Path, embeddings: OpenAIEmbeddings, stub: Any) -> None:
    tokens = embeddings.check_embedding_ctx_length
    assert embeddings.embed_query("hello") == pytest.approx(_expected("hello", tokens))
    stub.reset()
    texts = _texts()
    with _store(tmp_path, embeddings) as store:
        ids = store.add_texts(texts, metadatas=[{"n": i} for i in range(N_DOCS)])
        assert stub.stats.requests == 1 and stub.stats.inputs == N_DOCS
        assert (stub.stats.token_inputs == N_DOCS) is tokens
        for i in (0, 17, N_DOCS - 1):
            top = store.similarity_search(texts[i], k=1)
            assert top[0].page_content == texts[i] and top[0].id == ids[i]
        scored = store.similarity_search_with_score(texts[5], k=2, filter={"n": {"$lt": 5}})
        assert all(d.metadata["n"] < 5 for d, _ in scored)
        assert stub.stats.requests == 5


def test_openai_chunk_size_batches_requests(tmp_path: Path, stub: Any) -> None:
    emb = OpenAIEmbeddings(model="text-embedding-3-small", base_url=stub.url + "/v1",
                           api_key=SecretStr("test"), check_embedding_ctx_length=False,
                           chunk_size=16)
    with _store(tmp_path, emb, batch_size=100) as store:
        store.add_texts(_texts())  # one store batch: langchain-openai splits it by chunk_size
    assert stub.stats.batch_sizes == [16, 16, 8]


@pytest.mark.parametrize("limits", [None, CoalescerLimits(max_batch_items=64)],
                         ids=["default-limits", "batches-of-64"])
async def test_concurrent_async_searches_coalesce(
    tmp_path: Path, embeddings: OpenAIEmbeddings, stub: Any, limits: CoalescerLimits | None
) -> None:
    texts = _texts()
    store = _store(tmp_path, embeddings, coalesce_limits=limits)
    try:
        ids = await store.aadd_texts(texts)
        stub.reset()
        queries = [texts[i % N_DOCS] for i in range(N_QUERIES)]
        results = await asyncio.gather(*(store.asimilarity_search(q, k=1) for q in queries))
        for i, top in enumerate(results):
            assert len(top) == 1
            assert (top[0].page_content, top[0].id) == (texts[i % N_DOCS], ids[i % N_DOCS])
        size = limits.max_batch_items if limits is not None else N_QUERIES
        # each batch embeds its distinct queries once (40 distinct texts among the 200 queries)
        distinct = sum(len(set(queries[s:s + size])) for s in range(0, N_QUERIES, size))
        assert distinct < N_QUERIES
        assert stub.stats.inputs == distinct
        assert stub.stats.requests <= math.ceil(N_QUERIES / 64) + 2, stub.stats.batch_sizes
        print(f"{N_QUERIES} searches -> embedding requests of {stub.stats.batch_sizes}")
        if limits is not None:
            assert max(stub.stats.batch_sizes) <= 64
    finally:
        await store.aclose()


async def test_retriever_abatch_and_ainvoke(tmp_path: Path, embeddings: OpenAIEmbeddings,
                                            stub: Any) -> None:
    texts = _texts()
    store = _store(tmp_path, embeddings)
    try:
        await store.aadd_texts(texts)
        retriever = store.as_retriever(search_kwargs={"k": 1})
        stub.reset()
        batched = await retriever.abatch(texts[:10])
        assert [docs[0].page_content for docs in batched] == texts[:10]
        assert stub.stats.requests == 1
        assert (await retriever.ainvoke(texts[3]))[0].page_content == texts[3]
    finally:
        await store.aclose()
