"""Incremental ingestion (`ingest_documents` / `aingest_documents`) on embedded Milvus Lite.

Chunk ids come from source + content hash + occurrence (not position), so the tests that
check which ids survive a change compare against the plan's ids rather than `chunk_id(source,
index)`; the embedding-request counts are in test_ingest_incremental.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_text_splitters import CharacterTextSplitter

from langchain_milvus_ext import MilvusVectorStore
from langchain_milvus_ext.ingest import (
    aingest_documents,
    chunk_documents,
    chunk_hash,
    chunk_id,
    ingest_documents,
    source_of,
)

pytestmark = pytest.mark.lite

CHUNK = 100


def _text(source: str, n_paragraphs: int, version: str = "v1") -> str:
    """`n_paragraphs` paragraphs of ~90 characters: one chunk each with chunk_size=100."""
    return "\n\n".join(
        f"{source} {version} paragraph {i}: " + "lorem ipsum dolor sit amet " * 2
        for i in range(n_paragraphs)
    )


def _corpus(**overrides: str) -> list[Document]:
    texts = {"a.md": _text("a.md", 3), "b.md": _text("b.md", 4), "c.md": _text("c.md", 5)}
    texts.update(overrides)
    return [Document(page_content=t, metadata={"source": s, "lang": "en"})
            for s, t in texts.items()]


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[MilvusVectorStore]:
    s = MilvusVectorStore(DeterministicFakeEmbedding(size=16),
                          connection_args={"uri": str(tmp_path / "i.db")},
                          consistency_level="Strong")
    try:
        yield s
    finally:
        s.close()


def _count(store: MilvusVectorStore) -> int:
    return len(store.get_pks("pk != ''"))


def _source_texts(store: MilvusVectorStore, source: str) -> list[str]:
    docs = store.search_by_metadata({"source": source}, limit=1000)
    return sorted(d.page_content for d in docs)  # no position is stored; texts sort in order


def test_chunking_is_pure_and_deterministic() -> None:
    docs = _corpus()
    first = chunk_documents(docs, chunk_size=CHUNK, chunk_overlap=0)
    second = chunk_documents(_corpus(), chunk_size=CHUNK, chunk_overlap=0)
    assert first.ids == second.ids
    assert first.chunk_counts == {"a.md": 3, "b.md": 4, "c.md": 5}
    assert len(set(first.ids)) == 12
    head = first.chunks[0]
    meta = {"source": "a.md", "lang": "en"}
    assert head.metadata["chunk_hash"] == chunk_hash(head.page_content, meta)
    assert first.ids[0] == chunk_id("a.md", head.metadata["chunk_hash"], 0)
    assert "chunk_index" not in head.metadata
    assert all(c.metadata["lang"] == "en" for c in first.chunks)
    assert docs[0].metadata == {"source": "a.md", "lang": "en"}  # inputs untouched


def test_sources_without_metadata_source() -> None:
    by_id = Document(page_content="x", id="doc-7")
    by_hash = Document(page_content="same text")
    assert source_of(by_id) == "doc-7"
    assert source_of(by_hash) == source_of(Document(page_content="same text"))
    assert source_of(by_hash).startswith("sha256:")
    plan = chunk_documents([by_id, by_hash], chunk_size=CHUNK, chunk_overlap=0)
    assert [c.metadata["source"] for c in plan.chunks] == ["doc-7", source_of(by_hash)]


def test_pages_of_one_source_are_numbered_across_documents() -> None:
    pages = [Document(page_content=_text("p", 2, f"page{i}"), metadata={"source": "f.pdf"})
             for i in range(3)]
    plan = chunk_documents(pages, chunk_size=CHUNK, chunk_overlap=0)
    assert plan.chunk_counts == {"f.pdf": 6}
    assert [c.page_content.split()[1] for c in plan.chunks] == [
        "page0", "page0", "page1", "page1", "page2", "page2"]
    assert len(set(plan.ids)) == 6


def test_custom_splitter_and_bad_arguments(store: MilvusVectorStore) -> None:
    splitter = CharacterTextSplitter(separator="\n\n", chunk_size=1, chunk_overlap=0)
    plan = chunk_documents(_corpus(), splitter=splitter)
    assert plan.chunk_counts == {"a.md": 3, "b.md": 4, "c.md": 5}
    with pytest.raises(ValueError, match="batch_size"):
        ingest_documents(store, _corpus(), batch_size=0, progress=False)
    with pytest.raises(ValueError, match="chunk_overlap"):
        ingest_documents(store, _corpus(), chunk_size=10, chunk_overlap=10, progress=False)
    with pytest.raises(ValueError, match="Document"):
        ingest_documents(store, [{"page_content": "x"}], progress=False)  # type: ignore[list-item]


def test_reingest_replaces_and_shrinks(store: MilvusVectorStore) -> None:
    first = ingest_documents(store, _corpus(), chunk_size=CHUNK, chunk_overlap=0,
                             batch_size=5, progress=False)
    assert (first.num_chunks, first.num_sources, first.num_stale_deleted) == (12, 3, 0)
    assert _count(store) == 12

    again = ingest_documents(store, _corpus(), chunk_size=CHUNK, chunk_overlap=0,
                             batch_size=5, progress=False)
    assert again.ids == first.ids
    assert _count(store) == 12

    changed = _text("b.md", 4, "v2")
    ingest_documents(store, _corpus(**{"b.md": changed}), chunk_size=CHUNK, chunk_overlap=0,
                     progress=False)
    assert _count(store) == 12
    assert all(" v2 " in t for t in _source_texts(store, "b.md"))
    assert all(" v1 " in t for t in _source_texts(store, "a.md"))

    shrunk = ingest_documents(store, _corpus(**{"c.md": _text("c.md", 2, "v3")}),
                              chunk_size=CHUNK, chunk_overlap=0, progress=False)
    # v3 changes every paragraph of c.md (its 5 v1 chunks go, 2 new ones come) and b.md is
    # back to v1 (4 v2 chunks go, 4 come): position-based ids deleted only the 3 chunks of
    # c.md beyond its new length and rewrote everything else.
    assert (shrunk.num_stale_deleted, shrunk.num_embedded, shrunk.num_skipped) == (9, 6, 3)
    assert _count(store) == 9
    assert len(_source_texts(store, "c.md")) == 2
    assert sorted(store.get_pks({"source": "c.md"})) == sorted(shrunk.ids[-2:])
    assert store.get_by_ids(first.ids[-5:]) == []
    got = store.get_by_ids([shrunk.ids[-1]])
    assert got[0].metadata == {"source": "c.md", "lang": "en",
                               "chunk_hash": chunk_hash(got[0].page_content,
                                                     {"source": "c.md", "lang": "en"})}


def test_ingest_with_progress_bar(store: MilvusVectorStore,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    ingest_documents(store, _corpus(), chunk_size=CHUNK, chunk_overlap=0, batch_size=4)
    assert "12/12" in capsys.readouterr().err
    assert _count(store) == 12


def test_empty_source_deletes_its_chunks(store: MilvusVectorStore) -> None:
    ingest_documents(store, _corpus(), chunk_size=CHUNK, chunk_overlap=0, progress=False)
    result = ingest_documents(store, [Document(page_content="", metadata={"source": "a.md"})],
                              progress=False)
    assert (result.num_chunks, result.num_stale_deleted) == (0, 3)
    assert _count(store) == 9


def test_ids_deterministic_across_stores(tmp_path: Path) -> None:
    ids = []
    for name in ("one.db", "two.db"):
        with MilvusVectorStore(DeterministicFakeEmbedding(size=16),
                               connection_args={"uri": str(tmp_path / name)},
                               consistency_level="Strong") as s:
            ids.append(ingest_documents(s, _corpus(), chunk_size=CHUNK, chunk_overlap=0,
                                        progress=False).ids)
    assert ids[0] == ids[1]
    assert len(set(ids[0])) == 12


def test_auto_id_store_is_refused(tmp_path: Path) -> None:
    with MilvusVectorStore(DeterministicFakeEmbedding(size=16), auto_id=True,
                           connection_args={"uri": str(tmp_path / "a.db")}) as s:
        with pytest.raises(ValueError, match="auto_id"):
            ingest_documents(s, _corpus(), progress=False)


async def test_async_reingest_replaces_and_shrinks(store: MilvusVectorStore) -> None:
    kwargs = {"chunk_size": CHUNK, "chunk_overlap": 0, "batch_size": 2, "progress": False}
    first = await aingest_documents(store, _corpus(), **kwargs)  # type: ignore[arg-type]
    assert (first.num_chunks, first.num_sources, first.num_stale_deleted) == (12, 3, 0)
    assert first.ids == chunk_documents(_corpus(), chunk_size=CHUNK, chunk_overlap=0).ids
    assert len(await store.aget_pks("pk != ''")) == 12

    again = await aingest_documents(store, _corpus(), **kwargs)  # type: ignore[arg-type]
    assert again.ids == first.ids
    assert len(await store.aget_pks("pk != ''")) == 12

    await aingest_documents(store, _corpus(**{"b.md": _text("b.md", 4, "v2")}),
                            **kwargs)  # type: ignore[arg-type]
    b_ids = chunk_documents(_corpus(**{"b.md": _text("b.md", 4, "v2")}), chunk_size=CHUNK,
                        chunk_overlap=0).ids[3:7]
    docs = await store.aget_by_ids(b_ids)
    assert len(docs) == 4 and all(" v2 " in d.page_content for d in docs)
    assert len(await store.aget_pks("pk != ''")) == 12

    shrunk = await aingest_documents(store, _corpus(**{"c.md": _text("c.md", 1, "v3")}),
                                     **kwargs)  # type: ignore[arg-type]
    # c.md's 5 v1 chunks and b.md's 4 v2 chunks changed (by position: 4 deleted, c.md's tail)
    assert (shrunk.num_stale_deleted, shrunk.num_embedded) == (9, 5)
    assert len(await store.aget_pks("pk != ''")) == 8
    assert await store.aget_pks({"source": "c.md"}) == [shrunk.ids[-1]]
    await store.aclose()


async def test_async_with_many_sources_and_progress(store: MilvusVectorStore) -> None:
    docs = [Document(page_content=_text(f"s{i}", 2), metadata={"source": f"s{i}"})
            for i in range(100)]  # more sources than one stale-check group
    result = await aingest_documents(store, docs, chunk_size=CHUNK, chunk_overlap=0,
                                     batch_size=16)
    assert (result.num_chunks, result.num_sources) == (200, 100)
    shorter = [Document(page_content=_text(f"s{i}", 1), metadata={"source": f"s{i}"})
               for i in range(100)]
    result = await aingest_documents(store, shorter, chunk_size=CHUNK, chunk_overlap=0,
                                     progress=False)
    assert result.num_stale_deleted == 100
    assert len(await store.aget_pks("pk != ''")) == 100
    await store.aclose()


@pytest.mark.parametrize("layout", [{"metadata_field": "metadata"},
                                    {"enable_dynamic_field": False}],
                         ids=["json-field", "columns"])
def test_incremental_on_other_layouts(tmp_path: Path, layout: dict[str, object]) -> None:
    """Skipping and stale deletion filter on `source` in every metadata layout."""
    with MilvusVectorStore(DeterministicFakeEmbedding(size=16), consistency_level="Strong",
                           connection_args={"uri": str(tmp_path / "l.db")},
                           **layout) as s:  # type: ignore[arg-type]
        kwargs = {"chunk_size": CHUNK, "chunk_overlap": 0, "progress": False}
        first = ingest_documents(s, _corpus(), **kwargs)  # type: ignore[arg-type]
        again = ingest_documents(s, _corpus(), **kwargs)  # type: ignore[arg-type]
        edited = ingest_documents(s, _corpus(**{"a.md": _text("a.md", 2)}),
                                  **kwargs)  # type: ignore[arg-type]
        assert (first.num_embedded, again.num_embedded, again.num_skipped) == (12, 0, 12)
        assert (edited.num_embedded, edited.num_skipped, edited.num_stale_deleted) == (0, 11, 1)
        assert _count(s) == 11


def test_changes_is_a_pure_diff() -> None:
    plan = chunk_documents(_corpus(), chunk_size=CHUNK, chunk_overlap=0)
    stored = [*plan.ids[:5], "gone-1", "gone-0"]
    new, stale = plan.changes(stored)
    assert [c.id for c in new] == plan.ids[5:]
    assert stale == ["gone-0", "gone-1"]
    assert plan.changes(plan.ids) == ([], [])
    assert list(plan.source_filters(group=2)) == [
        {"source": {"$in": ["a.md", "b.md"]}}, {"source": "c.md"}]
