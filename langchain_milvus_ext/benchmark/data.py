"""The tutorial's test documents and queries, generated deterministically."""

from __future__ import annotations

import random
import re

from langchain_core.documents import Document

QUERY_DISTINCT = 50
"""The tutorial queries ``"test document {i % 50}"``."""

UPDATED_PREFIX = "This is updated test document"
"""Prefix of the page content written by the upsert workload."""

SEED_DOC_KEY = "doc_seed"
"""Metadata ``id`` of the document that creates the collection of the add workload."""

_CONTENT_RE = re.compile(r"^This is (?:updated )?test document (\d+) with ")


def make_documents(count: int, seed: int) -> list[Document]:
    """The tutorial's documents ``0..count-1``; the same ``seed`` gives the same documents.

    Example:
        >>> make_documents(1, seed=1)[0].metadata["id"]
        'doc_0'
    """
    rng = random.Random(seed)
    docs = []
    for i in range(count):
        rand = rng.random()
        docs.append(
            Document(
                page_content=f"This is test document {i} with some random content: {rand}",
                metadata={"id": f"doc_{i}", "score": rand, "category": f"cat_{i % 5}"},
            )
        )
    return docs


def updated_document(doc: Document) -> Document:
    """The upsert workload's replacement for ``doc``: new content, same metadata ``id``."""
    content = doc.page_content.replace("This is test document", UPDATED_PREFIX, 1)
    return Document(page_content=content, metadata=dict(doc.metadata))


def seed_document() -> Document:
    """The single document written (untimed) to create the add workload's collection."""
    return Document(
        page_content="This is test document seed with some random content: 0.5",
        metadata={"id": SEED_DOC_KEY, "score": 0.5, "category": "cat_seed"},
    )


def query_text(i: int) -> str:
    """The ``i``-th query of the search and MMR workloads."""
    return f"test document {i % QUERY_DISTINCT}"


def doc_key(i: int) -> str:
    """The metadata ``id`` of document ``i``."""
    return f"doc_{i}"


def key_from_content(page_content: str) -> str | None:
    """The metadata ``id`` a page content belongs to, or ``None`` if it is not a test document."""
    match = _CONTENT_RE.match(page_content)
    return doc_key(int(match.group(1))) if match else None
