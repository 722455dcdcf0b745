"""Retrieval-augmented generation on Milvus: an LCEL chain, sync and async, and per-tenant chains.

Run it with `python examples/rag_chain.py`. With `OPENAI_API_KEY` set it uses `ChatOpenAI` and
`OpenAIEmbeddings` (needs `pip install 'langchain-milvus-ext[openai]'`); without it, LangChain's
fake chat model and `DeterministicFakeEmbedding`, so it runs offline (the fake model's answers
are canned, but retrieval and the prompt are real). Either way the store is a Milvus Lite file
in a temporary directory.

The chain is the usual one::

    {"context": retriever | format_docs, "question": RunnablePassthrough()}
    | prompt | llm | StrOutputParser()

Multi-tenancy: the store keeps `tenant` as a partition-key column
(`partition_key_field="tenant"`), and each user gets a retriever of a tenant view
(`store.for_tenant(user)`), so a user's searches only ever see that user's chunks, whatever
filter they are given (and Milvus only scans that tenant's partition).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings
from langchain_core.language_models import BaseChatModel, FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnablePassthrough

from langchain_milvus_ext import MilvusRetriever, MilvusVectorStore
from langchain_milvus_ext.ingest import IngestResult, ingest_documents

PROMPT = ChatPromptTemplate.from_messages([
    ("system",
     "Answer the question using only the context below. If the context does not contain "
     "the answer, say you don't know.\n\nContext:\n{context}"),
    ("human", "{question}"),
])

CORPUS = [
    Document(
        page_content="Milvus is an open-source vector database built for similarity search "
        "over billions of embeddings. Milvus Lite is its embedded edition: a local file.",
        metadata={"source": "milvus.md", "tenant": "acme"}),
    Document(
        page_content="HNSW is a graph-based approximate nearest neighbour index; its M and "
        "efConstruction parameters trade memory and build time for recall.",
        metadata={"source": "indexes.md", "tenant": "acme"}),
    Document(
        page_content="Acme's on-call rota rotates every Monday at 09:00 UTC; escalations go to "
        "the platform team's pager.",
        metadata={"source": "oncall.md", "tenant": "acme"}),
    Document(
        page_content="Globex bills customers on the first day of each month; invoices are sent "
        "by email as PDF files.",
        metadata={"source": "billing.md", "tenant": "globex"}),
    Document(
        page_content="Globex's office in Springfield is open from 8am to 6pm, Monday to Friday.",
        metadata={"source": "office.md", "tenant": "globex"}),
]

QUESTIONS = ["What is Milvus Lite?", "How does HNSW trade recall for memory?"]


def format_docs(docs: Sequence[Document]) -> str:
    """Render retrieved documents as the prompt's context, each tagged with its source."""
    return "\n\n".join(f"[{d.metadata.get('source', '?')}] {d.page_content}" for d in docs)


def build_chain(retriever: BaseRetriever, llm: BaseChatModel) -> Runnable[str, str]:
    """The RAG chain: retrieve, format the context, prompt, generate, parse to a string.

    Args:
        retriever: Any LangChain retriever (e.g. `store.as_retriever()`).
        llm: The chat model.

    Returns:
        A runnable from a question to an answer (`invoke`, `ainvoke`, `batch`, `stream`).
    """
    chain: Runnable[str, str] = (
        {"context": retriever | format_docs, "question": RunnablePassthrough()}
        | PROMPT
        | llm
        | StrOutputParser()
    )
    return chain


def tenant_retriever(store: MilvusVectorStore, tenant: str, k: int = 4) -> MilvusRetriever:
    """A retriever that only sees `tenant`'s documents."""
    return store.for_tenant(tenant).as_retriever(search_kwargs={"k": k})


def build_tenant_chains(
    store: MilvusVectorStore, llm: BaseChatModel, tenants: Iterable[str], k: int = 4
) -> dict[str, Runnable[str, str]]:
    """One RAG chain per tenant, each over a retriever of that tenant's view."""
    return {t: build_chain(tenant_retriever(store, t, k), llm) for t in tenants}


def make_models() -> tuple[Embeddings, BaseChatModel]:
    """OpenAI models when `OPENAI_API_KEY` is set, offline fakes otherwise."""
    if os.environ.get("OPENAI_API_KEY"):
        from langchain_openai import ChatOpenAI, OpenAIEmbeddings

        chat_model = os.environ.get("OPENAI_CHAT_MODEL", "gpt-4o-mini")
        return OpenAIEmbeddings(model="text-embedding-3-small"), ChatOpenAI(model=chat_model)
    fake = FakeListChatModel(responses=[
        "(fake model) I would answer from the retrieved context shown in the prompt.",
    ])
    return DeterministicFakeEmbedding(size=64), fake


def make_store(embeddings: Embeddings, uri: str) -> MilvusVectorStore:
    """A store with `tenant` as partition key, on a Milvus Lite file (or any Milvus URI)."""
    return MilvusVectorStore(
        embeddings,
        collection_name="rag_example",
        connection_args={"uri": uri},
        partition_key_field="tenant",
        consistency_level="Strong",
    )


def load_corpus(store: MilvusVectorStore, documents: Sequence[Document] = CORPUS) -> IngestResult:
    """Chunk and write the documents (idempotent: running it again changes nothing)."""
    return ingest_documents(store, documents, chunk_size=500, chunk_overlap=50, progress=False)


async def ask_concurrently(chain: Runnable[str, str], questions: Sequence[str]) -> list[str]:
    """Answer several questions at once; the store coalesces their embeddings and searches."""
    return list(await asyncio.gather(*(chain.ainvoke(q) for q in questions)))


async def _async_demo(store: MilvusVectorStore, chain: Runnable[str, str]) -> None:
    try:
        for question, answer in zip(QUESTIONS, await ask_concurrently(chain, QUESTIONS),
                                    strict=True):
            print(f"[async] Q: {question}\n        A: {answer}")
    finally:
        await store.aclose()  # releases this event loop's client


def main() -> None:
    """Build a small store, then ask questions sync, async and per tenant."""
    embeddings, llm = make_models()
    with tempfile.TemporaryDirectory() as tmp:
        with make_store(embeddings, str(Path(tmp) / "rag.db")) as store:
            result = load_corpus(store)
            print(f"ingested {result.num_chunks} chunks from {result.num_sources} sources")

            chain = build_chain(store.as_retriever(search_kwargs={"k": 2}), llm)
            for question in QUESTIONS:
                print(f"[sync]  Q: {question}\n        A: {chain.invoke(question)}")

            for tenant, tenant_chain in build_tenant_chains(store, llm, ["acme", "globex"]).items():
                sources = [d.metadata["source"]
                           for d in tenant_retriever(store, tenant).invoke("opening hours")]
                answer = tenant_chain.invoke("When are you open?")
                print(f"[{tenant}] retrieved {sources}: {answer}")

            asyncio.run(_async_demo(store, chain))


if __name__ == "__main__":
    main()
