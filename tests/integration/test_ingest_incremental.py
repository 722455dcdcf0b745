"""Ingestion does not pay twice: embedding requests counted by the OpenAI-compatible stub.

`OpenAIEmbeddings` points at tests/openai_stub.py on 127.0.0.1, which counts the requests and
the texts it embeds, so these tests check what a per-token-priced model would bill:

- re-ingesting an unchanged corpus: 0 requests;
- editing one paragraph: 1 text embedded, the old chunk deleted, every other id kept;
- inserting a paragraph near the top: 1 text embedded, nothing deleted, the chunks after it
  untouched (same ids, not written again);
- removing a paragraph: 0 requests, 1 chunk deleted.

Each paragraph is one chunk (chunk_size=100, no overlap). Run sync and async, on a Milvus Lite
file, a `milvus-lite server` and Milvus 2.3.5 standalone.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_openai import OpenAIEmbeddings
from openai_stub import EmbeddingStub
from pydantic import SecretStr

from langchain_milvus_ext import MilvusVectorStore
from langchain_milvus_ext.ingest import IngestResult, aingest_documents, ingest_documents

CHUNK = 100


def _paragraph(source: str, label: str) -> str:
    """About 80 characters: one chunk with chunk_size=100."""
    return f"{source} paragraph {label}: " + "lorem ipsum dolor sit amet " * 2


def _doc(source: str, labels: list[str]) -> Document:
    text = "\n\n".join(_paragraph(source, label) for label in labels)
    return Document(page_content=text, metadata={"source": source, "lang": "en"})


def _corpus(**overrides: list[str]) -> list[Document]:
    labels = {"a.md": ["a0", "a1", "a2"], "b.md": ["b0", "b1", "b2", "b3"],
              "c.md": ["c0", "c1", "c2", "c3", "c4"]}
    labels.update(overrides)
    return [_doc(source, parts) for source, parts in labels.items()]


@pytest.fixture()
def stub() -> Iterator[EmbeddingStub]:
    with EmbeddingStub(dim=16) as server:
        yield server


@pytest.fixture(params=[pytest.param("lite", marks=pytest.mark.lite),
                        pytest.param("lite_server_uri", marks=pytest.mark.server),
                        pytest.param("milvus235_uri", marks=pytest.mark.server)])
def store(request: pytest.FixtureRequest, tmp_path: Path,
          stub: EmbeddingStub) -> Iterator[MilvusVectorStore]:
    if request.param == "lite":
        uri, name = str(tmp_path / "ingest.db"), "ingest"
    else:
        uri, name = str(request.getfixturevalue(request.param)), f"ingest_{tmp_path.name}"
    embeddings = OpenAIEmbeddings(model="text-embedding-3-small", base_url=stub.url + "/v1",
                                  api_key=SecretStr("test"), check_embedding_ctx_length=False)
    s = MilvusVectorStore(embeddings, collection_name=name[:200].replace("-", "_"),
                          connection_args={"uri": uri}, consistency_level="Strong")
    try:
        yield s
    finally:
        if not s.is_closed:
            s.drop()
            s.close()


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _ingest(mode: str, store: MilvusVectorStore, docs: list[Document]) -> IngestResult:
    kwargs: dict[str, Any] = {"chunk_size": CHUNK, "chunk_overlap": 0, "batch_size": 5,
                              "progress": False}
    if mode == "async":
        return await aingest_documents(store, docs, **kwargs)
    return ingest_documents(store, docs, **kwargs)


def _counts(result: IngestResult) -> tuple[int, int, int | None]:
    return result.num_embedded, result.num_skipped, result.num_stale_deleted


def _texts_by_id(store: MilvusVectorStore) -> dict[str, str]:
    docs = store.search_by_metadata("pk != ''", limit=1000)
    return {str(d.id): d.page_content for d in docs}


async def test_reingest_pays_only_for_what_changed(
    mode: str, store: MilvusVectorStore, stub: EmbeddingStub,
    report_figures: Any,
) -> None:
    figures: dict[str, object] = {}

    first = await _ingest(mode, store, _corpus())
    assert _counts(first) == (12, 0, 0)
    assert stub.stats.inputs == 12
    figures["first: requests/texts"] = f"{stub.stats.requests}/{stub.stats.inputs}"

    stub.reset()
    again = await _ingest(mode, store, _corpus())
    assert (stub.stats.requests, stub.stats.inputs) == (0, 0)
    assert _counts(again) == (0, 12, 0)
    assert again.ids == first.ids
    figures["unchanged: requests/texts"] = f"{stub.stats.requests}/{stub.stats.inputs}"

    stub.reset()
    edited = await _ingest(mode, store, _corpus(**{"b.md": ["b0", "b1", "B2 edited", "b3"]}))
    assert (stub.stats.requests, stub.stats.inputs) == (1, 1)
    assert _counts(edited) == (1, 11, 1)
    assert set(first.ids) - set(edited.ids) == {first.ids[5]}  # b.md's third chunk only
    assert [i for i in edited.ids if i not in first.ids] == [edited.ids[5]]
    figures["one paragraph edited: requests/texts"] = f"{stub.stats.requests}/{stub.stats.inputs}"

    before = _texts_by_id(store)
    stub.reset()
    inserted = await _ingest(
        mode, store, _corpus(**{"b.md": ["b0", "b1", "B2 edited", "b3"],
                                "c.md": ["c0", "NEW", "c1", "c2", "c3", "c4"]}))
    assert (stub.stats.requests, stub.stats.inputs) == (1, 1)
    assert _counts(inserted) == (1, 12, 0)
    new_ids = [i for i in inserted.ids if i not in edited.ids]
    assert new_ids == [inserted.ids[8]]  # c.md's second chunk; c1..c4 keep their ids
    assert set(edited.ids) < set(inserted.ids)
    after = _texts_by_id(store)
    assert {k: v for k, v in after.items() if k in before} == before
    assert "NEW" in after[inserted.ids[8]]
    figures["paragraph inserted near the top: requests/texts"] = (
        f"{stub.stats.requests}/{stub.stats.inputs}")

    stub.reset()
    removed = await _ingest(
        mode, store, _corpus(**{"b.md": ["b0", "b1", "B2 edited", "b3"],
                                "c.md": ["c0", "NEW", "c1", "c3", "c4"]}))
    assert (stub.stats.requests, stub.stats.inputs) == (0, 0)
    assert _counts(removed) == (0, 12, 1)
    assert len(store.get_pks("pk != ''")) == 12
    figures["paragraph removed: requests/texts"] = f"{stub.stats.requests}/{stub.stats.inputs}"
    report_figures(f"re-ingest embedding requests ({mode})", figures)
    if mode == "async":  # release this loop's client (and the collection, on a server)
        await store.adrop()
        await store.aclose()


def test_metadata_change_and_repeated_paragraphs(store: MilvusVectorStore,
                                                 stub: EmbeddingStub) -> None:
    docs = [_doc("r.md", ["same", "same", "other", "same"])]
    first = ingest_documents(store, docs, chunk_size=CHUNK, chunk_overlap=0, progress=False)
    assert len(set(first.ids)) == 4  # equal chunks: distinct ids by occurrence
    assert stub.stats.inputs == 2  # equal texts in one write batch are embedded once

    stub.reset()
    fewer = ingest_documents(store, [_doc("r.md", ["same", "other", "same"])],
                             chunk_size=CHUNK, chunk_overlap=0, progress=False)
    assert _counts(fewer) == (0, 3, 1) and stub.stats.requests == 0

    stub.reset()
    retagged = [Document(page_content=docs[0].page_content,
                         metadata={"source": "r.md", "lang": "fr"})]
    result = ingest_documents(store, retagged, chunk_size=CHUNK, chunk_overlap=0,
                              progress=False)
    assert _counts(result) == (4, 0, 3)  # metadata is part of the hash: rewritten
    assert {d.metadata["lang"] for d in store.search_by_metadata({"source": "r.md"})} == {"fr"}

    stub.reset()
    forced = ingest_documents(store, retagged, chunk_size=CHUNK, chunk_overlap=0,
                              progress=False, force=True)
    assert _counts(forced) == (4, 0, 0) and stub.stats.requests == 1
    assert len(store.get_pks("pk != ''")) == 4
