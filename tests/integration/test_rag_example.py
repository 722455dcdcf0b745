"""The RAG example (examples/rag_chain.py): retrieved chunks reach the prompt, per tenant too."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field

from langchain_milvus_ext import MilvusVectorStore

pytestmark = pytest.mark.lite

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "rag_chain.py"


def _load_example() -> ModuleType:
    name = "rag_chain_example"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


rag = _load_example()


class RecordingChatModel(BaseChatModel):
    """A chat model that records the prompt it is given and answers "recorded"."""

    prompts: list[str] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "recording"

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None,
                  **kwargs: Any) -> ChatResult:
        self.prompts.append("\n".join(str(m.content) for m in messages))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content="recorded"))])


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[MilvusVectorStore]:
    s: MilvusVectorStore = rag.make_store(DeterministicFakeEmbedding(size=16),
                                          str(tmp_path / "rag.db"))
    rag.load_corpus(s)
    try:
        yield s
    finally:
        s.close()


def _texts(docs: list[Document]) -> list[str]:
    return [d.page_content for d in docs]


def test_corpus_is_loaded_idempotently(store: MilvusVectorStore) -> None:
    assert len(store.get_pks("pk != ''")) == len(rag.CORPUS)
    rag.load_corpus(store)
    assert len(store.get_pks("pk != ''")) == len(rag.CORPUS)


def test_retrieved_chunks_reach_the_prompt(store: MilvusVectorStore) -> None:
    retriever = store.as_retriever(search_kwargs={"k": 2})
    llm = RecordingChatModel()
    chain = rag.build_chain(retriever, llm)
    question = "What is Milvus Lite?"
    expected = retriever.invoke(question)
    assert len(expected) == 2
    assert chain.invoke(question) == "recorded"
    prompt = llm.prompts[-1]
    assert question in prompt
    for doc in expected:
        assert doc.page_content in prompt
        assert f"[{doc.metadata['source']}]" in prompt
    others = [t for t in _texts(rag.CORPUS) if t not in _texts(expected)]
    assert not any(t in prompt for t in others)


async def test_retrieved_chunks_reach_the_prompt_async(store: MilvusVectorStore) -> None:
    retriever = store.as_retriever(search_kwargs={"k": 3})
    llm = RecordingChatModel()
    chain = rag.build_chain(retriever, llm)
    questions = ["How does HNSW work?", "Who is on call?"]
    answers = await rag.ask_concurrently(chain, questions)
    assert answers == ["recorded", "recorded"]
    assert len(llm.prompts) == 2
    for question in questions:
        expected = await retriever.ainvoke(question)
        prompt = next(p for p in llm.prompts if question in p)
        assert all(t in prompt for t in _texts(expected))
    assert await chain.ainvoke("one more") == "recorded"
    await store.aclose()


@pytest.mark.parametrize("tenant", ["acme", "globex"])
def test_tenant_chain_only_sees_its_tenant(store: MilvusVectorStore, tenant: str) -> None:
    llm = RecordingChatModel()
    chains = rag.build_tenant_chains(store, llm, ["acme", "globex"], k=10)
    mine = [d.page_content for d in rag.CORPUS if d.metadata["tenant"] == tenant]
    theirs = [d.page_content for d in rag.CORPUS if d.metadata["tenant"] != tenant]
    assert chains[tenant].invoke("When are you open?") == "recorded"
    prompt = llm.prompts[-1]
    assert all(t in prompt for t in mine)
    assert not any(t in prompt for t in theirs)


async def test_tenant_chain_async(store: MilvusVectorStore) -> None:
    llm = RecordingChatModel()
    chain = rag.build_tenant_chains(store, llm, ["globex"], k=10)["globex"]
    await chain.ainvoke("billing?")
    assert "Globex bills" in llm.prompts[-1] and "Acme" not in llm.prompts[-1]
    await store.aclose()


def test_main_runs_offline(monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    rag.main()
    out = capsys.readouterr().out
    assert "ingested 5 chunks from 5 sources" in out
    assert out.count("[sync]") == 2 and out.count("[async]") == 2
    assert "[acme] retrieved" in out and "[globex] retrieved" in out
