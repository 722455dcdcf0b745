"""The tutorial's test documents and queries, generated deterministically."""

from __future__ import annotations

import random
import re

from langchain_core.documents import Document

QUERY_DISTINCT = 50
"""The tutorial queries ``"test document {i % 50}"``: 50 distinct texts, however many queries."""

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


def query_text(i: int, distinct: bool = False) -> str:
    """The ``i``-th query of the search and MMR workloads.

    Args:
        i: Index of the query in its workload, from 0.
        distinct: ``False``: the tutorial's ``"test document {i % 50}"`` (only 50 distinct
            texts); ``True``: ``"test document {i}"``, every query different.

    Example:
        >>> query_text(51), query_text(51, distinct=True)
        ('test document 1', 'test document 51')
    """
    return f"test document {i if distinct else i % QUERY_DISTINCT}"


def describe_queries(queries: str) -> str:
    """A short human description of a query set of :data:`~.config.QUERY_SETS`.

    Example:
        >>> describe_queries("distinct")
        'distinct ("test document {i}", every query different)'
    """
    if queries == "tutorial":
        n = QUERY_DISTINCT
        return f'tutorial ("test document {{i % {n}}}", {n} distinct texts)'
    if queries == "distinct":
        return 'distinct ("test document {i}", every query different)'
    return queries


def doc_key(i: int) -> str:
    """The metadata ``id`` of document ``i``."""
    return f"doc_{i}"


def key_from_content(page_content: str) -> str | None:
    """The metadata ``id`` a page content belongs to, or ``None`` if it is not a test document."""
    match = _CONTENT_RE.match(page_content)
    return doc_key(int(match.group(1))) if match else None
