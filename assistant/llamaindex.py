"""Our hybrid search as a llama-index retriever: ``HybridRetriever``.

For people who build with llama-index: ``HybridRetriever(assistant.retriever)`` is a
``llama_index.core.retrievers.BaseRetriever`` over an index built by ``assistant ingest``, usable in a
``RetrieverQueryEngine``, a ``ContextChatEngine`` or anything else that takes a retriever. Each result
is a ``NodeWithScore`` whose ``TextNode`` holds the chunk text and, as metadata, its ``doc_id``,
``title``, ``source`` file, ``outlet``, ``date``, ``language``, ``chunk_id``, its character span
(``start``/``end`` in the source text) and its PDF ``page`` where the document has pages. The LLM mode
of the assistant (``assistant.llm``) answers through a ``ContextChatEngine`` over this retriever.

Why our own retrieval and not llama-index's parts: its ``BM25Retriever`` tokenizes with a regular
expression (``\\b\\w\\w+\\b``; the ``tokenizer`` argument is deprecated and ignored), so a Chinese clause
is one token and Chinese questions find nothing by words; and ``QueryFusionRetriever``'s reciprocal-rank
fusion ignores ``retriever_weights``, while ours weighs dense, BM25 and dictionary-translated BM25 per
question language. This module imports llama-index at its top; nothing on the default (extractive)
path imports it, so a plain question never pays for loading llama-index.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.callbacks import CallbackManager
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode

from .chunking import page_at
from .retrieval import Retriever, validate_filters
from .schema import Passage, Span
from .store import sentences_of

__all__ = ["NODE_METADATA", "HybridRetriever", "NumberedPassages", "node_for", "passage_of", "search_passages"]

# The metadata a node shows (to an LLM prompt too): the rest of the chunk's stored fields ride along
# under "chunk" for passage_of, hidden from prompts and embeddings.
NODE_METADATA = ("doc_id", "title", "source", "outlet", "date", "language", "chunk_id", "start", "end", "page")
_HIDDEN = ("chunk", "chunk_id", "start", "end", "language", "doc_id")


def search_passages(
    retriever: Retriever, question: str, filters: Mapping[str, Any] | None = None, k: int | None = None
) -> list[Passage]:
    """The passages ``retriever.search`` finds for ``question``, best first.

    ``search`` returns them as a list, or (before the question analysis of issue 15, item 1 lands) as the
    first of a (passages, terms, best dense similarity) triple: both are read.
    """
    found: Any = retriever.search(question, filters, k)
    return list(found[0] if isinstance(found, tuple) else found)


def node_for(passage: Passage) -> NodeWithScore:
    """``passage`` as a llama-index ``NodeWithScore`` (node id = chunk id, score = fused score)."""
    meta = passage.metadata
    shown: dict[str, Any] = {
        "doc_id": passage.doc_id,
        "title": str(meta.get("title", "")),
        "source": str(meta.get("source", "")),
        "outlet": str(meta.get("outlet", "")),
        "date": str(meta.get("date", "")),
        "language": str(meta.get("language", "")),
        "chunk_id": passage.chunk_id,
        "start": passage.start,
        "end": passage.end,
    }
    page = page_at(meta.get("pages"), passage.start)
    if page is not None:
        shown["page"] = page
    shown["chunk"] = dict(meta)
    node = TextNode(
        id_=passage.chunk_id,
        text=passage.text,
        metadata=shown,
        excluded_llm_metadata_keys=[k for k in shown if k in _HIDDEN],
        excluded_embed_metadata_keys=list(shown),
    )
    return NodeWithScore(node=node, score=passage.score)


def passage_of(result: NodeWithScore | TextNode) -> Passage:
    """The ``Passage`` a node of ``node_for`` was made from (text, span, sentences and stored metadata)."""
    node = result.node if isinstance(result, NodeWithScore) else result
    score = float(result.score or 0.0) if isinstance(result, NodeWithScore) else 0.0
    meta = dict(node.metadata.get("chunk") or {})
    text = node.get_content(metadata_mode=MetadataMode.NONE)
    start = int(node.metadata.get("start") or meta.get("start") or 0)
    end = int(node.metadata.get("end") or meta.get("end") or start + len(text))
    sentences: list[Span] = sentences_of(meta) if meta else []
    return Passage(
        chunk_id=str(node.metadata.get("chunk_id", node.node_id)),
        doc_id=str(node.metadata.get("doc_id", meta.get("doc_id", ""))),
        text=text,
        start=start,
        end=end,
        score=score,
        metadata=meta,
        sentences=sentences,
    )


class HybridRetriever(BaseRetriever):
    """A llama-index retriever over our hybrid search (dense + BM25 + translated BM25, weighted RRF).

    ``retriever``: an ``assistant.retrieval.Retriever`` (``Assistant.retriever``, or one built over a
    ``Store`` and ``Embedder``). ``filters``: as for ``Assistant.ask`` (``doc_id``, ``source``,
    ``outlet``, ``language``, ``date_from``, ``date_to``), checked here. ``k``: passages per query (the
    retriever's ``top_k`` by default). ``found``: the passages this search already gave for the one
    question the retriever will be asked (the first ``k`` are returned without searching again): the
    LLM mode hands its chat engine the passages of the extractive answer, so generating the reply
    reads no index and the question is searched once.
    """

    def __init__(
        self,
        retriever: Retriever,
        filters: Mapping[str, Any] | None = None,
        k: int | None = None,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
        found: Sequence[Passage] | None = None,
    ) -> None:
        if k is not None and k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        self.retriever = retriever
        self.filters = validate_filters(filters) or None
        self.k = k
        self.found = None if found is None else list(found)
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        if self.found is not None:
            return [node_for(p) for p in self.found[: self.k]]
        return [node_for(p) for p in search_passages(self.retriever, query_bundle.query_str, self.filters, self.k)]


class NumberedPassages(BaseNodePostprocessor):
    """Turns retrieved nodes into the numbered passages of a prompt (the LLM mode's node postprocessor).

    Keeps the first ``top`` nodes, appends the ``pinned`` passages not among them (the passages the
    extractive answer cites), and replaces each node by one whose text is ``format(n, passage)`` with no
    metadata, so the context the chat engine builds is exactly our numbered, delimited passages.
    ``given`` holds the passages in prompt order after a call, for checking the reply's citations.
    """

    top: int = 5
    _format: Callable[[int, Passage], str] = PrivateAttr()
    _pinned: list[Passage] = PrivateAttr(default_factory=list)
    _given: list[Passage] = PrivateAttr(default_factory=list)

    def __init__(self, format: Callable[[int, Passage], str], top: int = 5, pinned: Sequence[Passage] = ()) -> None:  # noqa: A002
        super().__init__(top=top)  # type: ignore[call-arg]  # a field of this pydantic model
        self._format = format
        self._pinned = list(pinned)

    @classmethod
    def class_name(cls) -> str:
        return "NumberedPassages"

    @property
    def given(self) -> list[Passage]:
        return list(self._given)

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        chosen = [passage_of(n) for n in nodes[: self.top]]
        ids = {p.chunk_id for p in chosen}
        for p in self._pinned:
            if p.chunk_id not in ids:
                chosen.append(p)
                ids.add(p.chunk_id)
        self._given = chosen
        return [
            NodeWithScore(node=TextNode(id_=p.chunk_id, text=self._format(n, p)), score=p.score)
            for n, p in enumerate(chosen, start=1)
        ]
