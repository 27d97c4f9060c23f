"""Pure scoring functions: text folding, evidence support, per-question scores and aggregates.

Definitions (all rates in [0, 1]; ``None`` where the denominator is 0):

* A text *supports* a gold item when, after ``fold``, it contains one of the evidence quotes, or
  shares with one of them a common substring at least 60 % as long as that quote (a chunk boundary may
  cut a quote) and at least ``MIN_PARTIAL_CHARS`` long (or the whole quote, if shorter), so that
  a 4-character quote does not "match" any passage containing 3 of its characters.
* Retrieval: ``rank`` is the 1-based rank of the first supporting passage among the top 10 retrieved.
  ``hit@1``, ``hit@k`` and ``mrr@10`` (reciprocal rank, 0 beyond rank 10) are means over answerable
  questions, whether or not the answer abstained.
* A citation *supports* when its ``quote`` (the cited sentence(s); its passage ``text`` if the quote
  is empty) supports the item. Citations of an abstained answer are not counted.
  ``citation_precision`` is MICRO-averaged: supporting citations / all citations, summed over
  answerable, non-abstained answers, so an answer with 5 citations weighs 5 times one with 1
  (this is "what share of the citations a user sees are right"). ``citation_precision_passage`` is the
  same with support judged on the whole cited passage instead of the quote.
* ``citation_recall``: share of answerable questions whose answer has >= 1 supporting citation.
* ``answer_accuracy``: share of answerable questions (with a non-empty ``answer_contains``) whose answer
  contains every ``answer_contains`` string (folded) and did not abstain.
* ``abstention_recall``: unanswerable questions abstained / unanswerable questions;
  ``abstention_precision``: unanswerable abstained / all abstained;
  ``false_abstention_rate``: answerable abstained / answerable.
* ``median_quote_chars``: median (``statistics.median``) length in characters of the cited quotes of
  non-abstained answers; ``citations_per_answer``: mean citation count over non-abstained answers.
* ``latency_p50_ms`` / ``latency_p95_ms``: NEAREST-RANK percentiles (the smallest value with at least
  p % of the values at or below it; always an observed latency) over all questions.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from difflib import SequenceMatcher
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assistant.evaluation.gold import GoldItem

__all__ = [
    "MAX_RANK",
    "METRICS",
    "MIN_PARTIAL_CHARS",
    "PARTIAL_RATIO",
    "MetricInfo",
    "QuestionScore",
    "aggregate",
    "by_tag",
    "fold",
    "longest_common_substring",
    "percentile",
    "score_record",
    "supports",
]

PARTIAL_RATIO = 0.6
MIN_PARTIAL_CHARS = 10
MAX_RANK = 10

_WS = re.compile(r"\s+")


def fold(text: str) -> str:
    """Case-fold, collapse every run of white space to one space, and strip."""
    return _WS.sub(" ", text.casefold()).strip()


def longest_common_substring(a: str, b: str) -> int:
    """Length of the longest common substring of ``a`` and ``b`` (no junk heuristics)."""
    if not a or not b:
        return 0
    matcher = SequenceMatcher(None, a, b, autojunk=False)
    return matcher.find_longest_match(0, len(a), 0, len(b)).size


def _needed_chars(quote_len: int, ratio: float, min_chars: int) -> int:
    """Common-substring length a quote of ``quote_len`` folded characters needs (float-safe ceil)."""
    return max(math.ceil(ratio * quote_len - 1e-9), min(min_chars, quote_len))


def _may_share(quote: str, passage: str, needed: int) -> bool:
    """Exact, fast pre-check: a common substring of length ``needed`` contains a whole aligned block
    ``quote[i*b:(i+1)*b]`` with ``b = (needed + 1) // 2``, so if no block occurs, there is none."""
    b = max(1, (needed + 1) // 2)
    return any(quote[i : i + b] in passage for i in range(0, len(quote) - b + 1, b))


def supports(
    passage_text: str,
    evidence: Iterable[str],
    *,
    ratio: float = PARTIAL_RATIO,
    min_chars: int = MIN_PARTIAL_CHARS,
) -> bool:
    """True if the passage contains an evidence quote, or >= ``ratio`` of one as a common substring.

    Both sides are folded first. The partial rule also needs ``min(min_chars, len(quote))`` characters.
    """
    fp = fold(passage_text)
    if not fp:
        return False
    quotes = [fq for fq in (fold(q) for q in evidence) if fq]
    if any(fq in fp for fq in quotes):
        return True
    for fq in quotes:
        needed = _needed_chars(len(fq), ratio, min_chars)
        if needed > len(fp) or not _may_share(fq, fp, needed):
            continue
        if longest_common_substring(fq, fp) >= needed:
            return True
    return False


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (``0 < p <= 100``) of ``values``; ``None`` when empty."""
    if not values:
        return None
    if not 0 < p <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {p}")
    ordered = sorted(values)
    rank = math.ceil(p / 100 * len(ordered) - 1e-9)
    return float(ordered[max(rank, 1) - 1])


@dataclass
class QuestionScore:
    """The scores of one answered question (``None`` = not applicable, e.g. unanswerable)."""

    id: str
    answerable: bool
    k: int
    abstained: bool
    rank: int | None = None  # rank (1-based, <= 10) of the first supporting retrieved passage
    hit_at_1: bool | None = None
    hit_at_k: bool | None = None
    reciprocal_rank: float | None = None
    n_citations: int = 0
    n_supporting_citations: int = 0  # judged on the quote
    n_supporting_passages: int = 0  # judged on the whole cited passage
    citation_precision: float | None = None
    has_supporting_citation: bool | None = None
    answer_correct: bool | None = None
    quote_lengths: list[int] = field(default_factory=list)
    latency_ms: float = 0.0
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the fields."""
        return asdict(self)


def score_record(item: GoldItem, record: Mapping[str, Any], k: int) -> QuestionScore:
    """Score one saved answer record (see ``runner.answer_to_record``) against its gold item."""
    if not 1 <= k <= MAX_RANK:
        raise ValueError(f"k must be between 1 and {MAX_RANK}, got {k}")
    abstained = bool(record.get("abstained", False))
    citations: list[Mapping[str, Any]] = [] if abstained else list(record.get("citations") or [])
    score = QuestionScore(
        id=item.id,
        answerable=item.answerable,
        k=k,
        abstained=abstained,
        n_citations=len(citations),
        quote_lengths=[len(str(c.get("quote") or "")) for c in citations],
        latency_ms=float(record.get("latency_ms") or 0.0),
        error=str(record.get("error") or ""),
    )
    if not item.answerable:
        return score
    evidence = item.evidence
    retrieved = list(record.get("retrieved") or [])[:MAX_RANK]
    for i, passage in enumerate(retrieved, start=1):
        if supports(str(passage.get("text") or ""), evidence):
            score.rank = i
            break
    score.hit_at_1 = score.rank == 1
    score.hit_at_k = score.rank is not None and score.rank <= k
    score.reciprocal_rank = 1.0 / score.rank if score.rank is not None else 0.0
    for c in citations:
        text = str(c.get("text") or "")
        quote = str(c.get("quote") or "") or text
        if supports(quote, evidence):
            score.n_supporting_citations += 1
        if supports(text, evidence):
            score.n_supporting_passages += 1
    if citations:
        score.citation_precision = score.n_supporting_citations / len(citations)
    score.has_supporting_citation = score.n_supporting_citations > 0
    if item.answer_contains:
        answer = fold(str(record.get("answer") or ""))
        score.answer_correct = not abstained and all(fold(a) in answer for a in item.answer_contains)
    return score


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def aggregate(scores: Sequence[QuestionScore]) -> dict[str, float | None]:
    """Aggregate per-question scores into the metrics described in the module docstring."""
    answerable = [s for s in scores if s.answerable]
    unanswerable = [s for s in scores if not s.answerable]
    answered = [s for s in scores if not s.abstained]
    cited = [s for s in answerable if not s.abstained]
    quote_lengths = [n for s in answered for n in s.quote_lengths]
    latencies = [s.latency_ms for s in scores]
    graded = [s.answer_correct for s in answerable if s.answer_correct is not None]
    abstained = [s for s in scores if s.abstained]
    return {
        "n": len(scores),
        "n_answerable": len(answerable),
        "n_unanswerable": len(unanswerable),
        "n_abstained": len(abstained),
        "n_errors": sum(1 for s in scores if s.error),
        "hit@1": _mean([float(bool(s.hit_at_1)) for s in answerable]),
        "hit@k": _mean([float(bool(s.hit_at_k)) for s in answerable]),
        "mrr@10": _mean([s.reciprocal_rank or 0.0 for s in answerable]),
        "citation_precision": _ratio(sum(s.n_supporting_citations for s in cited), sum(s.n_citations for s in cited)),
        "citation_precision_passage": _ratio(
            sum(s.n_supporting_passages for s in cited), sum(s.n_citations for s in cited)
        ),
        "citation_recall": _mean([float(bool(s.has_supporting_citation)) for s in answerable]),
        "answer_accuracy": _mean([float(g) for g in graded]),
        "abstention_recall": _ratio(sum(1 for s in unanswerable if s.abstained), len(unanswerable)),
        "abstention_precision": _ratio(sum(1 for s in abstained if not s.answerable), len(abstained)),
        "false_abstention_rate": _ratio(sum(1 for s in answerable if s.abstained), len(answerable)),
        "median_quote_chars": float(statistics.median(quote_lengths)) if quote_lengths else None,
        "citations_per_answer": _mean([float(s.n_citations) for s in answered]),
        "latency_p50_ms": percentile(latencies, 50),
        "latency_p95_ms": percentile(latencies, 95),
    }


def by_tag(items: Sequence[GoldItem], scores: Sequence[QuestionScore]) -> dict[str, dict[str, float | None]]:
    """``aggregate`` overall (key ``"all"``) and per tag (tags in sorted order); matched by id."""
    tags_of = {item.id: item.tags for item in items}
    result = {"all": aggregate(scores)}
    groups: dict[str, list[QuestionScore]] = {}
    for s in scores:
        for tag in tags_of.get(s.id, []):
            groups.setdefault(tag, []).append(s)
    for tag in sorted(groups):
        if tag != "all":
            result[tag] = aggregate(groups[tag])
    return result


@dataclass(frozen=True)
class MetricInfo:
    """How to show a metric: label, kind (``rate``, ``ms``, ``count``, ``chars``, ``number``), meaning."""

    key: str
    label: str
    kind: str
    description: str


METRICS: tuple[MetricInfo, ...] = (
    MetricInfo("hit@1", "hit@1", "rate", "first retrieved passage supports the evidence (answerable)"),
    MetricInfo("hit@k", "hit@k", "rate", "a supporting passage within the top k (answerable)"),
    MetricInfo("mrr@10", "MRR@10", "rate", "mean reciprocal rank of the first supporting passage (answerable)"),
    MetricInfo(
        "citation_precision",
        "citation precision",
        "rate",
        "supporting citations / all citations, micro-averaged (answerable, not abstained; judged on quote)",
    ),
    MetricInfo(
        "citation_precision_passage",
        "citation precision (passage)",
        "rate",
        "as citation precision, judged on the whole cited passage",
    ),
    MetricInfo("citation_recall", "citation recall", "rate", "answerable questions with >= 1 supporting citation"),
    MetricInfo("answer_accuracy", "answer accuracy", "rate", "answer contains every key fact (answerable)"),
    MetricInfo("abstention_recall", "abstention recall", "rate", "unanswerable questions abstained"),
    MetricInfo(
        "abstention_precision",
        "abstention precision",
        "rate",
        "abstentions that were on unanswerable questions",
    ),
    MetricInfo(
        "false_abstention_rate",
        "false abstention",
        "rate",
        "answerable questions abstained (lower is better)",
    ),
    MetricInfo("citations_per_answer", "citations / answer", "number", "mean citations per non-abstained answer"),
    MetricInfo("median_quote_chars", "median quote chars", "chars", "median length of cited quotes"),
    MetricInfo("latency_p50_ms", "latency p50 (ms)", "ms", "nearest-rank median latency"),
    MetricInfo("latency_p95_ms", "latency p95 (ms)", "ms", "nearest-rank 95th percentile latency"),
    MetricInfo("n", "questions", "count", "questions scored"),
    MetricInfo("n_answerable", "answerable", "count", "answerable questions"),
    MetricInfo("n_unanswerable", "unanswerable", "count", "unanswerable questions"),
    MetricInfo("n_abstained", "abstained", "count", "answers that abstained"),
    MetricInfo("n_errors", "errors", "count", "questions whose ask() raised (recorded, scored as misses)"),
)


def format_metric(value: float | None, kind: str, missing: str = "—", ms_unit: str = "") -> str:
    """A metric value as text: rates with 3 decimals, ms and counts as integers, ``missing`` for None."""
    if value is None:
        return missing
    if kind == "count":
        return str(int(value))
    if kind == "ms":
        return f"{value:.0f}{ms_unit}"
    if kind == "rate":
        return f"{value:.3f}"
    if kind == "chars":
        return f"{value:.1f}"
    return f"{value:.2f}"
