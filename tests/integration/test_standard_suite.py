"""LangChain's standard VectorStore suite, sync and async, on every Milvus target."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_tests.integration_tests.vectorstores import VectorStoreIntegrationTests

from langchain_milvus_ext import MilvusVectorStore


def _store(uri: str) -> Iterator[MilvusVectorStore]:
    store = MilvusVectorStore(
        embedding_function=VectorStoreIntegrationTests.get_embeddings(),
        collection_name=f"std_{uuid.uuid4().hex[:12]}",
        connection_args={"uri": uri},
        consistency_level="Strong",
        drop_old=True,
    )
    try:
        yield store
    finally:
        store.drop()
        store.close()


@pytest.mark.lite
class TestEmbeddedLite(VectorStoreIntegrationTests):
    """Embedded Milvus Lite: a local file, no server."""

    @pytest.fixture()
    def vectorstore(self, tmp_path: Path) -> Iterator[MilvusVectorStore]:  # type: ignore[override]
        yield from _store(str(tmp_path / "standard.db"))


@pytest.mark.server
class TestLiteServer(VectorStoreIntegrationTests):
    """`milvus-lite server` over TCP."""

    @pytest.fixture()
    def vectorstore(self, lite_server_uri: str) -> Iterator[MilvusVectorStore]:  # type: ignore[override]
        yield from _store(lite_server_uri)


@pytest.mark.server
class TestMilvus235(VectorStoreIntegrationTests):
    """A real Milvus 2.3.5 standalone server."""

    @pytest.fixture()
    def vectorstore(self, milvus235_uri: str) -> Iterator[MilvusVectorStore]:  # type: ignore[override]
        yield from _store(milvus235_uri)
