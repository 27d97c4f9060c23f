"""Grounded, extractive answers: the best sentences of the top passages, each with its citation [n].

No LLM is needed: sentences are scored against the question (IDF-weighted coverage of its terms,
including dictionary-translated ones, plus the passage's dense similarity and fused rank), the best
few are quoted verbatim with exact source spans, and the assistant abstains when the evidence is
too weak.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .errors import ConfigError
from .retrieval import LexicalIndex, QueryTerms
from .schema import Answer, AnswerSentence, Citation, Passage, Span
from .text import tokenize

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "abstain": "I could not find this in the alliance documents.",
        "related": "Possibly related passages:",
        "sources": "Sources",
        "searched": "Searched for",
        "empty": "Please ask a question.",
        "llm_failed": "The language model did not answer; this is the extractive answer.",
        "unsupported": "(not supported by the cited passage)",
    },
    "zh": {
        "abstain": "在联盟文档中没有找到相关内容。",
        "related": "可能相关的段落：",
        "sources": "来源",
        "searched": "检索内容",
        "empty": "请输入问题。",
        "llm_failed": "语言模型没有响应，以下为摘录式回答。",
        "unsupported": "（引用的段落不支持此句）",
    },
}


def messages(language: str) -> dict[str, str]:
    """Fixed texts in the question's language (Chinese for "zh" and "mixed" questions)."""
    return MESSAGES["zh" if language in ("zh", "mixed") else "en"]


@dataclass(frozen=True)
class AnswerSettings:
    """How many sentences to quote and when to abstain (calibrated on eval/gold.jsonl)."""

    max_sentences: int = 4
    max_chars: int = 600
    passages: int = 5
    relative_cutoff: float = 0.6  # keep sentences scoring at least this share of the best one
    min_coverage: float = 0.35  # abstain below this IDF-weighted coverage of the question's terms...
    min_dense: float = 0.45  # ...unless the best passage is at least this similar (dense cosine)
    duplicate_overlap: float = 0.7

    def __post_init__(self) -> None:
        if not 1 <= self.max_sentences <= 20:
            raise ConfigError(f"max_sentences must be between 1 and 20, got {self.max_sentences}")
        if not 50 <= self.max_chars <= 10000:
            raise ConfigError(f"max_chars must be between 50 and 10000, got {self.max_chars}")
        if not 1 <= self.passages <= 50:
            raise ConfigError(f"passages must be between 1 and 50, got {self.passages}")
        for name in ("relative_cutoff", "min_coverage", "min_dense", "duplicate_overlap"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be between 0 and 1, got {value}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Candidate:
    """A sentence of a retrieved passage, scored against the question."""

    passage: Passage
    rank: int  # of its passage, from 0
    span: Span  # absolute, in the source text
    text: str
    coverage: float
    score: float


def coverage(terms: Sequence[tuple[str, float]], tokens: set[str], lexical: LexicalIndex) -> float:
    """IDF-weighted share of the query terms found in ``tokens`` (terms absent from the index count
    with the highest IDF: a question about something the documents never mention is not covered)."""
    total = matched = 0.0
    top_idf = math.log(1.0 + (len(lexical) + 0.5) / 0.5) if len(lexical) else 1.0
    for term, weight in terms:
        idf = lexical.term_idf(term) if term in lexical.vocab else top_idf
        total += weight * idf
        if term in tokens:
            matched += weight * idf
    return matched / total if total > 0 else 0.0


def sentence_text(passage: Passage, span: Span) -> str:
    return passage.text[span.start - passage.start : span.end - passage.start]


def score_candidates(
    passages: Sequence[Passage], terms: QueryTerms, lexical: LexicalIndex, settings: AnswerSettings
) -> list[Candidate]:
    """Score every sentence of the top passages; best first."""
    out: list[Candidate] = []
    for rank, passage in enumerate(passages[: settings.passages]):
        spans = passage.sentences or [Span(passage.start, passage.end)]
        dense = passage.scores.get("dense", 0.0)
        for span in spans:
            text = sentence_text(passage, span)
            toks = set(tokenize(text))
            if not toks:
                continue
            own = coverage(terms.tokens, toks, lexical)
            trans = coverage(terms.translated, toks, lexical) if terms.translated else 0.0
            cov = max(own, trans)
            # Coverage decides; the passage's rank and dense similarity break ties between sentences
            # that cover the question equally well.
            score = cov + 0.15 / (1 + rank) + 0.2 * max(dense, 0.0)
            out.append(Candidate(passage, rank, span, text, cov, score))
    out.sort(key=lambda c: -c.score)
    return out


def _overlap(a: str, b: str) -> float:
    ta, tb = set(tokenize(a)), set(tokenize(b))
    if not ta or not tb:
        return 0.0
    return len(ta & tb) / min(len(ta), len(tb))


def select(candidates: Sequence[Candidate], settings: AnswerSettings) -> list[Candidate]:
    """The best few sentences: no near-duplicates, within the sentence and character budgets."""
    if not candidates:
        return []
    best = candidates[0].score
    chosen: list[Candidate] = []
    chars = 0
    for cand in candidates:
        if cand.score < settings.relative_cutoff * best or cand.coverage <= 0:
            break
        if any(
            c.passage.doc_id == cand.passage.doc_id and c.span.start < cand.span.end and cand.span.start < c.span.end
            for c in chosen
        ):
            continue  # the same sentence again, through an overlapping chunk
        if any(_overlap(c.text, cand.text) >= settings.duplicate_overlap for c in chosen):
            continue
        if chosen and chars + len(cand.text) > settings.max_chars:
            continue
        chosen.append(cand)
        chars += len(cand.text)
        if len(chosen) >= settings.max_sentences:
            break
    return chosen


def should_abstain(candidates: Sequence[Candidate], best_dense: float, settings: AnswerSettings) -> bool:
    """Abstain when no sentence covers enough of the question and no passage is close in meaning."""
    if not candidates:
        return True
    top = candidates[0]
    return top.coverage < settings.min_coverage and best_dense < settings.min_dense


def build_citation(n: int, cand: Candidate) -> Citation:
    p = cand.passage
    meta = p.metadata
    return Citation(
        n=n,
        doc_id=p.doc_id,
        chunk_id=p.chunk_id,
        title=str(meta.get("title", "")),
        outlet=str(meta.get("outlet", "")),
        date=str(meta.get("date", "")),
        source=str(meta.get("source", "")),
        text=p.text,
        passage_start=p.start,
        passage_end=p.end,
        quote=cand.text,
        start=cand.span.start,
        end=cand.span.end,
        score=round(cand.score, 4),
    )


def extractive_answer(
    question: str,
    standalone: str,
    passages: list[Passage],
    terms: QueryTerms,
    best_dense: float,
    lexical: LexicalIndex,
    settings: AnswerSettings,
) -> Answer:
    """Quote the best sentences with citations [1]..[n], or abstain with "possibly related" passages."""
    language = "zh" if terms.language in ("zh", "mixed") else "en"
    text = messages(language)
    candidates = score_candidates(passages, terms, lexical, settings)
    confidence = candidates[0].coverage if candidates else 0.0
    if should_abstain(candidates, best_dense, settings):
        return Answer(
            question=question,
            standalone_question=standalone,
            answer=text["abstain"],
            abstained=True,
            language=language,
            related=passages[:3],
            retrieved=passages,
            confidence=round(confidence, 4),
        )
    chosen = select(candidates, settings)
    # Present the chosen sentences in reading order within each passage, passages by relevance.
    first_rank = {}
    for c in chosen:
        first_rank.setdefault(c.passage.chunk_id, len(first_rank))
    chosen.sort(key=lambda c: (first_rank[c.passage.chunk_id], c.span.start))
    citations: list[Citation] = []
    sentences: list[AnswerSentence] = []
    for cand in chosen:
        n = len(citations) + 1
        citations.append(build_citation(n, cand))
        sentences.append(AnswerSentence(text=cand.text, citations=[n]))
    body = " ".join(f"{s.text} [{s.citations[0]}]" for s in sentences)
    return Answer(
        question=question,
        standalone_question=standalone,
        answer=body,
        abstained=False,
        language=language,
        citations=citations,
        sentences=sentences,
        retrieved=passages,
        confidence=round(confidence, 4),
    )
