"""Shared value types of the pipeline: documents, chunks, citations and answers.

Every span is a pair of character offsets into the *source text* of a file: the decoded text of a
plain-text file, or the extracted text of a PDF/DOCX/HTML file (see ``documents.source_text``).
The invariant ``source_text[start:end] == text`` holds for chunks and quotes alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Span:
    """A half-open character range ``[start, end)`` in a source text."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if self.start < 0 or self.end < self.start:
            raise ValueError(f"invalid span [{self.start}, {self.end})")

    def __len__(self) -> int:
        return self.end - self.start


@dataclass
class Document:
    """One document: a whole file, or one article of a digest file, or one line of a JSONL file.

    ``text == source_text[offset:offset + len(text)]``; ``skip`` holds spans (absolute, in the source
    text) of boilerplate lines that stay in the text but are never indexed.
    """

    doc_id: str
    text: str
    source: str
    offset: int = 0
    title: str = ""
    outlet: str = ""
    date: str = ""  # ISO date (YYYY-MM-DD) or ""
    language: str = ""  # "zh", "en" or "mixed"
    skip: list[Span] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def end(self) -> int:
        return self.offset + len(self.text)

    def metadata(self) -> dict[str, Any]:
        """Flat metadata as stored with every chunk (str/int/float values only, for Chroma)."""
        meta: dict[str, Any] = {
            "doc_id": self.doc_id,
            "title": self.title,
            "source": self.source,
            "outlet": self.outlet,
            "date": self.date,
            "language": self.language,
            "doc_offset": self.offset,
        }
        for key, value in self.extra.items():
            if isinstance(value, str | int | float | bool) and key not in meta:
                meta[key] = value
        return meta


@dataclass
class Chunk:
    """A run of whole sentences of one document; ``start``/``end`` are absolute source-text offsets."""

    doc_id: str
    index: int
    text: str
    start: int
    end: int
    sentences: list[Span] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def chunk_id(self) -> str:
        return f"{self.doc_id}::{self.index}"


@dataclass
class Passage:
    """A retrieved chunk with its scores, as the answer stage sees it."""

    chunk_id: str
    doc_id: str
    text: str
    start: int
    end: int
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)
    sentences: list[Span] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)  # per retriever: dense, bm25, translated...

    @property
    def title(self) -> str:
        return str(self.metadata.get("title", ""))

    def span_text(self, span: Span) -> str:
        """The text of ``span`` (absolute offsets in the source file, inside this passage)."""
        return self.text[span.start - self.start : span.end - self.start]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sentences"] = [[s.start, s.end] for s in self.sentences]
        return d


@dataclass
class Citation:
    """A numbered source (1-based) behind one or more sentences of an answer."""

    n: int
    doc_id: str
    chunk_id: str
    title: str
    outlet: str
    date: str
    source: str
    text: str  # the whole passage the citation opens
    passage_start: int
    passage_end: int
    quote: str  # the supporting sentence(s) inside the passage
    start: int  # absolute span of the quote in the source text
    end: int
    score: float = 0.0
    page: int | None = None  # PDF page of the quote's start (1-based), when the document has pages

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AnswerSentence:
    """One sentence of an answer with the citation numbers that support it."""

    text: str
    citations: list[int] = field(default_factory=list)
    supported: bool = True


@dataclass
class Answer:
    """What ``Assistant.ask`` returns; JSON-serializable through ``to_dict``."""

    question: str
    standalone_question: str
    answer: str
    abstained: bool
    language: str
    citations: list[Citation] = field(default_factory=list)
    sentences: list[AnswerSentence] = field(default_factory=list)
    related: list[Passage] = field(default_factory=list)  # "possibly related" when abstaining
    retrieved: list[Passage] = field(default_factory=list)  # top passages in rank order
    latency_ms: float = 0.0
    mode: str = "extractive"  # or "llm"
    notes: list[str] = field(default_factory=list)
    confidence: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "standalone_question": self.standalone_question,
            "answer": self.answer,
            "abstained": self.abstained,
            "language": self.language,
            "citations": [c.to_dict() for c in self.citations],
            "sentences": [asdict(s) for s in self.sentences],
            "related": [p.to_dict() for p in self.related],
            "retrieved": [p.to_dict() for p in self.retrieved],
            "latency_ms": self.latency_ms,
            "mode": self.mode,
            "notes": list(self.notes),
            "confidence": self.confidence,
        }


# --------------------------------------------------------------------------- questions


def merge_weighted(*groups: Iterable[tuple[str, float]]) -> list[tuple[str, float]]:
    """Sum the weights of repeated terms across groups, keeping first-seen order."""
    out: dict[str, float] = {}
    for group in groups:
        for term, w in group:
            out[term] = out.get(term, 0.0) + w
    return list(out.items())


# A group of alternative tokens standing for one word of the question (the glosses of one Chinese
# word), with the word's importance: (importance, [(token, relative weight), ...]).
TermGroup = tuple[float, list[tuple[str, float]]]


@dataclass
class QueryTerms:
    """A question analysed for lexical search: its own tokens and its dictionary translation.

    ``translated`` is the flat weighted query for BM25; ``groups`` keeps the translation per source
    word, so that coverage can count a word as found when any one of its glosses is.
    """

    language: str
    tokens: list[tuple[str, float]]
    translated: list[tuple[str, float]]
    groups: list[TermGroup] = field(default_factory=list)
    bigrams: frozenset[tuple[str, str]] = frozenset()  # adjacent token pairs of the question itself

    @property
    def all_terms(self) -> list[tuple[str, float]]:
        return merge_weighted(self.tokens, self.translated)

    def scaled(self, factor: float) -> QueryTerms:
        """The same terms with every weight multiplied by ``factor`` (for context carried over)."""
        return QueryTerms(
            self.language,
            [(t, w * factor) for t, w in self.tokens],
            [(t, w * factor) for t, w in self.translated],
            [(imp * factor, alts) for imp, alts in self.groups],
            self.bigrams,
        )

    def merged(self, other: QueryTerms) -> QueryTerms:
        return QueryTerms(
            self.language,
            merge_weighted(self.tokens, other.tokens),
            merge_weighted(self.translated, other.translated),
            self.groups + other.groups,
            self.bigrams,
        )


@dataclass(frozen=True)
class Query:
    """One question, analysed once (``query.analyse_query``), as retrieval and the answer stage see it.

    ``text`` is the question as asked; ``standalone`` what is searched for (a follow-up rewritten with
    the earlier turns, ``chat.rewrite``); ``asks`` the question whose answer kind and expected types
    apply (the standalone question of an elliptical follow-up, "What about Nanhai?"; else ``text``),
    in simplified characters.
    ``terms`` are the weighted search terms of ``standalone`` with their dictionary translations;
    ``answer_terms`` those that choose the answer's sentences (focus words weighted up; a follow-up's
    carried-over context at half weight). ``kind`` is the kind of answer asked for ("year", "when",
    "why", "number", "org" or None), ``types`` the asked-for fact types (phone, email, money, date, year),
    ``focus`` the words next to the question word, ``names`` the names the question mentions (which
    the corpus must mention too), ``role`` and ``counted`` the tokens of a "who is the ROLE" role
    and of what a "how many X" counts; ``source`` whether it asks when or where the document itself
    was published ("Which outlet reported on X?"), which its source line answers.
    """

    text: str
    standalone: str
    language: str
    terms: QueryTerms
    answer_terms: QueryTerms
    asks: str = ""
    kind: str | None = None
    types: tuple[str, ...] = ()
    focus: str = ""
    names: tuple[str, ...] = ()
    role: frozenset[str] = frozenset()
    counted: frozenset[str] = frozenset()
    followup: bool = False
    source: bool = False


class Retrieved(list[Passage]):
    """The passages ``Retriever.retrieve`` found, best first, with the best dense similarity of any
    chunk to the question (question-level: the nearest chunk may rank below the passages kept)."""

    def __init__(self, passages: Iterable[Passage] = (), best_dense: float = 0.0) -> None:
        super().__init__(passages)
        self.best_dense = best_dense


class CorpusStats(Protocol):
    """What the answer stage needs to know of the corpus (``retrieval.LexicalIndex`` provides it)."""

    def __len__(self) -> int: ...  # chunks indexed

    def script_share(self, language: str) -> float: ...  # share of chunks in the script of ``language``

    def term_idf(self, term: str) -> float: ...  # IDF of an index token (0 when unseen)

    def has_term(self, term: str) -> bool: ...  # whether any chunk holds the token
