"""``assistant.HybridRetriever``, our hybrid search as a llama-index retriever, inside real llama-index engines.

The index is real (the sample corpus in Chroma, embedded with the packaged all-MiniLM-L6-v2: the
``indexed_corpus`` fixture); the LLM is not: ``tests/fake_llm_server.py`` is a FAKE OpenAI-compatible
endpoint on 127.0.0.1 that returns scripted replies, reached through llama-index's ``OpenAILike``.
"""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import IndexedCorpus, cli_env
from fake_llm_server import Behaviour, FakeLLMServer, prompt_text
from llama_index.core.chat_engine import ContextChatEngine
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import MetadataMode
from llama_index.llms.openai_like import OpenAILike

from assistant import HybridRetriever
from assistant.config import Config
from assistant.core import Assistant
from assistant.errors import ConfigError
from assistant.llamaindex import node_for, passage_of, search_passages

REPO = Path(__file__).resolve().parents[1]
SUZHOU_DOC = "001_19f0403027cb6d52.txt"
QUESTIONS = ["How many standardization training bases will Suzhou establish?", "苏州将建立多少个标准化培训基地？"]


@pytest.fixture(scope="module")
def assistant(indexed_corpus: IndexedCorpus) -> Assistant:
    return Assistant(Config(index_dir=indexed_corpus.index, corpus_dir=indexed_corpus.corpus))


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as srv:
        yield srv


def openai_like(server: FakeLLMServer) -> OpenAILike:
    return OpenAILike(model="fake", api_base=server.url, api_key="none", is_chat_model=True, max_retries=0, timeout=30)


@pytest.mark.parametrize("question", QUESTIONS)
def test_nodes_are_our_search_results(assistant: Assistant, indexed_corpus: IndexedCorpus, question: str) -> None:
    """Same passages, order and scores as ``Retriever.search``; exact spans; metadata for people and prompts."""
    retriever = HybridRetriever(assistant.retriever)
    assert isinstance(retriever, BaseRetriever)
    nodes = retriever.retrieve(question)
    passages = search_passages(assistant.retriever, question)
    assert [n.node.node_id for n in nodes] == [p.chunk_id for p in passages]
    assert len(nodes) == assistant.retriever.settings.top_k
    assert [n.score for n in nodes] == pytest.approx([p.score for p in passages])
    assert nodes[0].node.metadata["doc_id"] == SUZHOU_DOC  # the right article, in either language
    for hit, p in zip(nodes, passages, strict=True):
        meta = hit.node.metadata
        assert {"doc_id", "title", "source", "outlet", "date", "language", "chunk_id", "start", "end"} <= set(meta)
        source = (indexed_corpus.corpus / meta["source"]).read_text(encoding="utf-8")
        assert source[meta["start"] : meta["end"]] == hit.node.get_content(metadata_mode=MetadataMode.NONE) == p.text
        shown = hit.node.get_content(metadata_mode=MetadataMode.LLM)
        assert f"title: {meta['title']}" in shown and p.text in shown
        assert "chunk_id" not in shown and "sentences" not in shown and "doc_offset" not in shown
        back = passage_of(hit)
        assert (back.chunk_id, back.doc_id, back.text, back.start, back.end) == (
            p.chunk_id, p.doc_id, p.text, p.start, p.end
        )
        assert back.sentences == p.sentences and back.metadata == p.metadata


def test_page_of_a_pdf_chunk(assistant: Assistant) -> None:
    passages = search_passages(assistant.retriever, QUESTIONS[0])
    p = passages[0]
    p.metadata = {**p.metadata, "pages": f"{p.start}:3;{p.end + 10}:4"}
    assert node_for(p).node.metadata["page"] == 3
    assert "page" not in node_for(passages[1]).node.metadata  # plain text has no pages


def test_filters_and_k(assistant: Assistant) -> None:
    nodes = HybridRetriever(assistant.retriever, filters={"doc_id": SUZHOU_DOC}, k=2).retrieve(QUESTIONS[1])
    assert 1 <= len(nodes) <= 2 and {n.node.metadata["doc_id"] for n in nodes} == {SUZHOU_DOC}
    languages = {str(m.get("language")) for m in assistant.retriever.lexical.metas}
    for language in sorted(languages):  # the sample corpus is English: "zh" finds nothing
        nodes = HybridRetriever(assistant.retriever, filters={"language": language}).retrieve(QUESTIONS[1])
        assert nodes and {n.node.metadata["language"] for n in nodes} == {language}
    assert HybridRetriever(assistant.retriever, filters={"language": "xx"}).retrieve(QUESTIONS[1]) == []
    with pytest.raises(ConfigError):
        HybridRetriever(assistant.retriever, filters={"author": "x"})
    with pytest.raises(ValueError):
        HybridRetriever(assistant.retriever, k=0)


def test_inside_a_retriever_query_engine(assistant: Assistant, fake_llm: FakeLLMServer) -> None:
    """A real ``RetrieverQueryEngine`` over ``HybridRetriever``, answering with the fake LLM."""
    fake_llm.reset()
    fake_llm.script(lambda body: "Fourteen bases." if "14 standardization training bases" in prompt_text(body) else "?")
    retriever = HybridRetriever(assistant.retriever, k=3)
    engine = RetrieverQueryEngine.from_args(retriever, llm=openai_like(fake_llm))
    response = engine.query(QUESTIONS[0])
    assert str(response) == "Fourteen bases."
    assert [n.node.node_id for n in response.source_nodes] == [n.node.node_id for n in retriever.retrieve(QUESTIONS[0])]
    assert len(fake_llm.requests) == 1
    prompt = prompt_text(fake_llm.last_request)
    top = response.source_nodes[0].node
    assert top.get_content(metadata_mode=MetadataMode.NONE) in prompt and f"title: {top.metadata['title']}" in prompt
    assert QUESTIONS[0] in prompt
    assert "chunk_id" not in prompt and "doc_offset" not in prompt


def test_inside_a_streaming_context_chat_engine(assistant: Assistant, fake_llm: FakeLLMServer) -> None:
    fake_llm.reset()
    fake_llm.script(Behaviour(reply="Suzhou will establish 14 standardization training bases.", chunk_delay=0.01))
    engine = ContextChatEngine.from_defaults(HybridRetriever(assistant.retriever), llm=openai_like(fake_llm))
    response = engine.stream_chat(QUESTIONS[1])
    tokens = list(response.response_gen)
    assert "".join(tokens) == "Suzhou will establish 14 standardization training bases." and len(tokens) > 3
    assert fake_llm.last_request["stream"] is True
    assert response.source_nodes[0].node.metadata["doc_id"] == SUZHOU_DOC
    assert "14 standardization training bases" in prompt_text(fake_llm.last_request, "system")


def readme_example() -> str:
    """The Python block of the README's "Use it from llama-index" section."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Use it from llama-index") :]
    m = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert m, "no python example in the README's llama-index section"
    return m.group(1)


def test_readme_example_runs(indexed_corpus: IndexedCorpus, fake_llm: FakeLLMServer) -> None:
    """The README's example, run as written but for the index path and the endpoint (the fake)."""
    code = readme_example()
    assert 'Assistant.open("index")' in code and "http://localhost:11434/v1" in code
    code = code.replace('Assistant.open("index")', f"Assistant.open({str(indexed_corpus.index)!r})")
    code = code.replace("http://localhost:11434/v1", fake_llm.url)
    fake_llm.reset()
    fake_llm.script("Suzhou will set up 14 standardization training bases.")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {"__name__": "readme_example"})
    lines = out.getvalue().splitlines()
    assert lines[-1] == "Suzhou will set up 14 standardization training bases."
    assert len(lines) >= 2 and all(re.match(r"\d\.\d{3} ", line) for line in lines[:-1]), lines
    assert len(fake_llm.requests) == 1


def test_the_package_exports_it_without_loading_llama_index_on_import() -> None:
    code = (
        "import sys, assistant\n"
        "assert 'llama_index' not in sys.modules\n"
        "from assistant import HybridRetriever\n"
        "from llama_index.core.retrievers import BaseRetriever\n"
        "assert issubclass(HybridRetriever, BaseRetriever) and 'HybridRetriever' in assistant.__all__\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


def test_retrieve_accepts_a_query_bundle(assistant: Assistant) -> None:
    from llama_index.core.schema import QueryBundle

    nodes: list[Any] = HybridRetriever(assistant.retriever).retrieve(QueryBundle(QUESTIONS[0]))
    assert nodes and nodes[0].node.metadata["doc_id"] == SUZHOU_DOC


def test_numbered_passages_keep_the_top_and_add_the_pinned(assistant: Assistant) -> None:
    """The LLM mode's postprocessor: the top nodes, then pinned passages not among them, numbered from 1."""
    from assistant.llamaindex import NumberedPassages
    from assistant.llm import format_passage

    passages = search_passages(assistant.retriever, QUESTIONS[0])
    numbered = NumberedPassages(format_passage, top=2, pinned=[passages[4], passages[0]])
    out = numbered.postprocess_nodes([node_for(p) for p in passages], query_str=QUESTIONS[0])
    assert [p.chunk_id for p in numbered.given] == [passages[0].chunk_id, passages[1].chunk_id, passages[4].chunk_id]
    assert [n.node.get_content(metadata_mode=MetadataMode.LLM) for n in out] == [
        format_passage(i, p) for i, p in enumerate(numbered.given, start=1)
    ]
    assert numbered.given[2].sentences == passages[4].sentences
