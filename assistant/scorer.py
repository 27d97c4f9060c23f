"""The learned sentence scorer: a logistic regression over the features ``answer.score_candidates``
computes for every candidate sentence, fitted by ``python -m assistant.train`` on the development
sets and shipped as JSON (``assistant/models/sentence_scorer.json``).

Scoring needs numpy only: scikit-learn is used to fit the model, never to answer.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cached_property, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

MODEL_FILE = "sentence_scorer.json"
ANSWERABILITY_FILE = "answerability.json"
PASSAGE_FILE = "passage_ranker.json"

# The features of one candidate sentence, in this order (``answer.sentence_features`` fills them).
# Sentence-level: what the sentence holds; question-level ones (the same for every candidate of a
# question) do not change the ranking, they calibrate the probability that the best one answers.
FEATURE_NAMES: tuple[str, ...] = (
    "coverage",  # IDF-weighted share of the question's terms (own or translated) in the sentence
    "focused",  # the same with the document's topic words discounted and focus words doubled
    "pairs",  # share of the question's adjacent word pairs found in the sentence
    "top_document",  # the sentence is in the top passage's document
    "typed",  # holds the kind of answer asked for (a date for "when", a number for "how many"...)
    "typed_missing",  # the question asks for a kind of answer and the sentence holds none
    "counts",  # "how many X": a number a few words before X
    "role",  # "who is the ROLE": the sentence names the role
    "expected_type",  # an asked-for fee, phone, e-mail or date is in the sentence
    "inverse_rank",  # 1 / (1 + rank of its passage)
    "passage_score",  # its passage's fused score relative to the top passage's
    "passage_score_zh",  # the same, for a Chinese question over Chinese text (char and title checks)
    "dense",  # its passage's dense similarity to the question
    "lead",  # first sentence of its passage
    "first_chunk",  # its passage opens its document
    "log_chars",  # log of its length in characters
    "coverage_gap",  # its coverage minus the best coverage among the candidates
    "focused_gap",  # its focused coverage minus the best among the candidates
    "hand_score_ratio",  # the hand-written score relative to the best candidate's
    "hand_best",  # the hand-written score ranks it first
    "cross_lingual",  # share of the index written in the other script than the question
    "coverage_cross",  # coverage times cross_lingual: translated coverage is coarser
    "best_dense",  # the best dense similarity of any passage (question-level)
    "best_coverage",  # the best coverage of any candidate (question-level)
    "asks_kind",  # the question asks for a kind of answer (question-level)
    "followup",  # the question leans on earlier turns (question-level)
    "chars",  # share of the question's Chinese characters in the sentence (paraphrases share characters)
    "novelty",  # log of the number of the sentence's tokens the question lacks (an answer adds something)
    "typed_date",  # "typed" for a "when" / "which year" question
    "typed_number",  # "typed" for a "how many" question
    "typed_why",  # "typed" for a "why" question
    "typed_org",  # "typed" for a "which company" question
    # Dense similarity between the question and the sentence itself (sentence vectors made at
    # ingest, ``assistant.sentences``): the paraphrase that shares no word ("chaired" / "hosted").
    "sentence_dense",  # cosine(question, sentence)
    "sentence_dense_gap",  # its cosine minus the best cosine among the candidates
    "best_sentence_dense",  # the best cosine of any candidate (question-level)
    "sentence_dense_cross",  # sentence_dense times cross_lingual (the default model is English-only)
    # A question about something its passage never says (SQuAD 2.0's unanswerable questions change
    # one word of an answerable one): the rarest of the question's own words it lacks.
    "missing_idf",  # highest IDF (over the index's highest) of a question word the sentence lacks
    "passage_missing_idf",  # the same for its whole passage's candidate sentences
    # What the question asks beyond its subject: a lead sentence names the subject (often the
    # document's title) without saying what was asked about it.
    "title_free_coverage",  # IDF-weighted share of the question's own words not in the title, in the sentence
    "title_free_chars",  # share of the question's Chinese characters not in the title, in the sentence
    # A sentence opening with a pronoun or "thus" (``answer._CONTINUES``) speaks of what the sentence
    # before it names ("It aims to establish a multi-level talent model", "它首先由莫瓦桑制得").
    "referent_coverage",  # coverage with the previous sentence's words when it opens so, else its own
    "referent_gap",  # referent_coverage minus the best among the candidates
    # "What did X not do?" answered by a sentence that negates nothing (``answer._NEGATION``).
    "negation_missing",  # the question holds a negation and the sentence none
)

FEATURE_INDEX: dict[str, int] = {name: i for i, name in enumerate(FEATURE_NAMES)}  # a feature's column

# The passage ranker's features, one row per fused passage (``retrieval.passage_features``): what
# each search found, the best sentence's similarity, and how the passage compares with the best one.
PASSAGE_FEATURE_NAMES: tuple[str, ...] = (
    "fused",  # its fused (RRF) score relative to the top passage's
    "dense",  # its dense similarity to the question (0 when dense search did not return it)
    "has_dense",  # dense search returned it
    "bm25",  # its BM25 score over the question's own words, relative to the best passage's
    "translated",  # its BM25 score over the translated words, relative to the best passage's
    "coverage",  # its best sentence's coverage, with the Chinese character, title and lead terms
    "chars",  # its best sentence's share of the question's Chinese characters (Chinese over Chinese)
    "title",  # the question names its document's title
    "first",  # it opens its document
    "sentence_dense",  # its best sentence's cosine with the question (the sentence store)
    "cross_dense",  # dense times the share of the index in the other script than the question
    "cross_sentence_dense",  # sentence_dense times the same
    "cross_translated",  # translated times the same
    "zh_chars",  # chars for a Chinese question
    "zh_coverage",  # coverage for a Chinese question
    "dense_gap",  # dense minus the best passage's
    "sentence_dense_gap",  # sentence_dense minus the best passage's
    "coverage_gap",  # coverage minus the best passage's
    "bm25_gap",  # bm25 minus the best passage's
    "inverse_rank",  # 1 / (1 + its rank by fused score and coverage)
    "hand_score",  # the hand-weighted fused score and coverage (lexicon/retrieval.toml) relative to the best
    "title_first",  # the question names its document's title and it opens the document
)

# The answerability model's features, one row per question (``answerability_row``): the sentence
# scorer's view of the best and second-best candidates, every feature of the best one, and the hand
# checks' findings, which the model weighs instead of obeying.
CHECK_NAMES: tuple[str, ...] = (
    "unknown_names",  # how many names of the question the corpus never mentions
    "types_missing",  # an asked-for fee, phone, e-mail or date is in no matching passage
    "count_missing",  # "how many X" and no best-matching sentence counts X
    "role_missing",  # "who is the ROLE" and no best-matching sentence names the role
)
ANSWERABILITY_NAMES: tuple[str, ...] = (
    "best_logit",  # the sentence scorer's log-odds for the best candidate
    "second_logit",  # ... for the second best (the first when alone)
    "logit_gap",
    "candidates_log",  # log(1 + number of candidates)
    *(f"best_{n}" for n in FEATURE_NAMES),
    # SQuAD 2.0's unanswerable questions change one word of an answerable one: the best sentence
    # covers the question well, or means nearly the same, and lacks one rare word of it.
    "near_miss",  # the best candidate's coverage times its missing_idf
    "near_miss_dense",  # its sentence_dense times its missing_idf
    *CHECK_NAMES,
)


@dataclass(frozen=True)
class SentenceScorer:
    """Weights of a logistic regression over ``names``, some or all of ``FEATURE_NAMES`` in any
    order (standardized inside: the weights apply to ``(x - mean) / scale``), and the probability
    below which the answer abstains. ``probabilities`` takes the extractor's full feature rows."""

    names: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    intercept: float
    threshold: float
    meta: dict[str, Any]
    known: tuple[str, ...] = FEATURE_NAMES  # the extractor's columns, in order

    @classmethod
    def from_dict(cls, data: dict[str, Any], known: tuple[str, ...] = FEATURE_NAMES) -> SentenceScorer:
        names = tuple(data["features"])
        unknown = [n for n in names if n not in known]
        if unknown or not names or len(set(names)) != len(names):
            raise ValueError(f"model features {names} must be distinct names of the extractor's {known}")
        arrays = [np.asarray(data[k], dtype=float) for k in ("mean", "scale", "weights")]
        if any(a.shape != (len(names),) or not np.all(np.isfinite(a)) for a in arrays):
            raise ValueError("model mean, scale and weights must be finite, one per feature")
        intercept, threshold = float(data["intercept"]), float(data["threshold"])
        if not (math.isfinite(intercept) and 0.0 <= threshold <= 1.0):
            raise ValueError("model intercept must be finite and threshold within [0, 1]")
        extra = {k: v for k, v in data.items() if k not in {"features", "mean", "scale", "weights", "intercept"}}
        return cls(names, arrays[0], arrays[1], arrays[2], intercept, threshold, extra, known)

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": list(self.names),
            "mean": [round(float(v), 6) for v in self.mean],
            "scale": [round(float(v), 6) for v in self.scale],
            "weights": [round(float(v), 6) for v in self.weights],
            "intercept": round(self.intercept, 6),
            **{k: v for k, v in self.meta.items() if k != "threshold"},
            "threshold": round(self.threshold, 6),
        }

    @cached_property
    def columns(self) -> list[int]:
        """Where the model's features sit in the extractor's rows (``known`` order)."""
        return [self.known.index(n) for n in self.names]

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """P(the sentence answers the question), one per row of ``features`` (``known`` columns); for the
        answerability model, P(the documents answer the question), one per ``answerability_row``."""
        x = features[:, self.columns]
        z = ((x - self.mean) / self.scale) @ self.weights + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -30.0, 30.0)))


def _model_file(name: str) -> Path:
    return Path(str(resources.files("assistant") / "models" / name))


@lru_cache(maxsize=4)
def _shipped(name: str, known: tuple[str, ...]) -> SentenceScorer | None:
    """The package's model ``name`` over the ``known`` columns (loaded once), or None without one."""
    path = _model_file(name)
    if not path.is_file():
        return None
    return SentenceScorer.from_dict(json.loads(path.read_text(encoding="utf-8")), known)


def model_path() -> Path:
    """Where the shipped model lives inside the package."""
    return _model_file(MODEL_FILE)


def shipped_scorer() -> SentenceScorer | None:
    """The shipped model (loaded once), or None when the package has none."""
    return _shipped(MODEL_FILE, FEATURE_NAMES)


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1.0 - 1e-6)
    return math.log(p / (1.0 - p))


_COVERAGE, _SENTENCE_DENSE, _MISSING = (FEATURE_INDEX[n] for n in ("coverage", "sentence_dense", "missing_idf"))


def answerability_row(features: np.ndarray, probabilities: np.ndarray, checks: tuple[float, ...]) -> np.ndarray:
    """A question's ``ANSWERABILITY_NAMES`` row from its candidates' feature rows, their sentence
    scorer probabilities and the hand checks' findings (``CHECK_NAMES`` order)."""
    order = np.argsort(-probabilities, kind="stable")
    best = float(probabilities[order[0]])
    second = float(probabilities[order[1]]) if len(order) > 1 else best
    return np.asarray(
        [_logit(best), _logit(second), _logit(best) - _logit(second), math.log1p(len(order))]
        + [float(v) for v in features[order[0]]]
        + [
            float(features[order[0], _COVERAGE] * features[order[0], _MISSING]),
            float(features[order[0], _SENTENCE_DENSE] * features[order[0], _MISSING]),
        ]
        + [float(v) for v in checks],
        dtype=float,
    )


def answerability_path() -> Path:
    """Where the shipped answerability model lives inside the package."""
    return _model_file(ANSWERABILITY_FILE)


def shipped_answerability() -> SentenceScorer | None:
    """The shipped answerability model (loaded once), or None when the package has none."""
    return _shipped(ANSWERABILITY_FILE, ANSWERABILITY_NAMES)


def passage_ranker_path() -> Path:
    """Where the shipped passage ranker lives inside the package."""
    return _model_file(PASSAGE_FILE)


def shipped_passage_ranker() -> SentenceScorer | None:
    """The shipped passage ranker (loaded once), or None when the package has none."""
    return _shipped(PASSAGE_FILE, PASSAGE_FEATURE_NAMES)
