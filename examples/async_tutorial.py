"""The Milvus async tutorial's workload, written as it is for langchain-milvus, with one changed
import (`from langchain_milvus_ext import Milvus`).

    python examples/async_tutorial.py [URI]      # default: a Milvus Lite file in a temp dir

Uses OpenAI embeddings when OPENAI_API_KEY is set, otherwise LangChain's fake embeddings. Adds,
searches and deletes (by the tutorial's raw expression on the metadata key `id`) with a sync
loop and with `asyncio.gather`, prints the timings, and exits non-zero if a result is wrong.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import tempfile
import time

from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_milvus_ext import Milvus  # was: from langchain_milvus import Milvus

URI = sys.argv[1] if len(sys.argv) > 1 else os.path.join(tempfile.mkdtemp(), "tutorial.db")
if os.environ.get("OPENAI_API_KEY"):
    from langchain_openai import OpenAIEmbeddings

    embeddings = OpenAIEmbeddings()
else:
    embeddings = DeterministicFakeEmbedding(size=128)


def generate_test_documents(num_docs: int) -> list[Document]:
    documents = []
    for i in range(num_docs):
        rand = random.random()
        documents.append(Document(
            page_content=f"This is test document {i} with some random content: {rand}",
            metadata={"id": f"doc_{i}", "score": rand, "category": f"cat_{i % 5}"},
        ))
    return documents


def create_vector_store(name: str) -> Milvus:
    return Milvus(embedding_function=embeddings, collection_name=name,
                  connection_args={"uri": URI}, auto_id=True, drop_old=True)


async def test_async_add(store: Milvus, docs: list[Document]) -> float:
    start = time.time()
    await asyncio.gather(*(store.aadd_documents([doc]) for doc in docs))
    return time.time() - start


def test_sync_add(store: Milvus, docs: list[Document]) -> float:
    start = time.time()
    for doc in docs:
        store.add_documents([doc])
    return time.time() - start


async def test_async_search(store: Milvus, n: int) -> tuple[float, list[list[Document]]]:
    start = time.time()
    results = await asyncio.gather(
        *(store.asimilarity_search(f"test document {i % 50}", k=3) for i in range(n)))
    return time.time() - start, results


def test_sync_search(store: Milvus, n: int) -> tuple[float, list[list[Document]]]:
    start = time.time()
    results = [store.similarity_search(f"test document {i % 50}", k=3) for i in range(n)]
    return time.time() - start, results


async def test_async_delete(store: Milvus, n: int) -> float:
    start = time.time()
    await asyncio.gather(*(store.adelete(expr=f"id == 'doc_{i}'") for i in range(n)))
    return time.time() - start


def test_sync_delete(store: Milvus, n: int) -> float:
    start = time.time()
    for i in range(n):
        store.delete(expr=f"id == 'doc_{i}'")
    return time.time() - start


def count(store: Milvus) -> int:
    return len(store.get_pks("pk >= 0", consistency_level="Strong"))


def main() -> None:
    n, prefill = 20, 100
    problems = []
    for mode in ("sync", "async"):
        store = create_vector_store(f"tutorial_add_{mode}")
        docs = generate_test_documents(n)
        took = (asyncio.run(test_async_add(store, docs)) if mode == "async"
                else test_sync_add(store, docs))
        print(f"add    {mode:5} N={n}: {took:.3f} s")
        if count(store) != n:
            problems.append(f"{mode} add: {count(store)} rows, expected {n}")

        store = create_vector_store(f"tutorial_search_{mode}")
        store.add_documents(generate_test_documents(prefill))
        took, results = (asyncio.run(test_async_search(store, n)) if mode == "async"
                         else test_sync_search(store, n))
        print(f"search {mode:5} N={n}: {took:.3f} s")
        if any(len(r) != 3 for r in results):
            problems.append(f"{mode} search: a query did not get 3 documents")

        took = (asyncio.run(test_async_delete(store, n)) if mode == "async"
                else test_sync_delete(store, n))
        print(f"delete {mode:5} N={n}: {took:.3f} s")
        left = store.get_pks("id in [" + ", ".join(f'"doc_{i}"' for i in range(n)) + "]",
                             consistency_level="Strong")
        if left or count(store) != prefill - n:
            problems.append(f"{mode} delete: {len(left)} deleted ids remain")
        store.close()
    if problems:
        sys.exit("; ".join(problems))
    print("all results checked")


if __name__ == "__main__":
    main()
