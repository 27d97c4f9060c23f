"""Grounded, extractive answers: the best sentences of the top passages, each with its citation [n].

No LLM is needed: sentences are scored against the question (IDF-weighted coverage of its terms,
including dictionary-translated ones, plus the passage's dense similarity and fused rank), the best
few are quoted verbatim with exact source spans, and the assistant abstains when the evidence is
too weak.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np

from . import strings
from .chunking import inline_items
from .errors import ConfigError
from .lexicons import lexicon, words
from .recorder import Recorder
from .retrieval import analyse, bigrams, term_coverage, top_idf
from .schema import Answer, AnswerSentence, Citation, CorpusStats, Passage, Query, QueryTerms, Retrieved, Span
from .scorer import FEATURE_INDEX as _AT
from .scorer import answerability_row, shipped_answerability, shipped_scorer
from .text import EN_STOPWORDS, cached_tokens, has_cjk, segment_zh, to_simplified, tokenize


def _patterns(table: str) -> dict[str, tuple[re.Pattern[str], re.Pattern[str]]]:
    """Name -> (what a question asking for it looks like, what a sentence holding it looks like), in
    file order, from one table of ``lexicon/patterns.toml`` (case-insensitive unless marked)."""
    out = {}
    for name, entry in lexicon("patterns")[table].items():
        flags = 0 if entry.get("case_sensitive") else re.I
        out[name] = (re.compile(entry["asks"], re.I), re.compile(entry["holds"], flags))
    return out


def _alternatives(language: str, key: str) -> str:
    """A regex alternation of one ordered word list of ``language``'s lexicon (escaped, in file order)."""
    return "|".join(re.escape(str(w)).replace("\\ ", " ") for w in lexicon(language)[key])  # a space is a space


# The answers' fixed texts live with every other fixed text in strings.toml (section "answer").
MESSAGES: dict[str, dict[str, str]] = {lang: strings.section("answer", lang) for lang in strings.LANGUAGES}


def answer_language(language: str) -> str:
    """The language of an answer's fixed texts for a detected language: "zh" for "zh" and "mixed"."""
    return "zh" if language in ("zh", "mixed") else "en"


def messages(language: str) -> dict[str, str]:
    """Fixed texts in the question's language (Chinese for "zh" and "mixed" questions)."""
    return MESSAGES[answer_language(language)]


# Weights, cutoffs and question patterns, as data (assistant/lexicon/answer.toml, with the
# measurements behind them).
_SETTINGS: dict[str, Any] = lexicon("answer")["settings"]
_LIMITS: dict[str, float] = lexicon("answer")["limits"]
_PATTERNS: dict[str, str] = lexicon("answer")["patterns"]
_TYPE_CUTOFF: float = _SETTINGS["type_cutoff"]
_BEST_MATCHING = int(_LIMITS["best_matching"])  # sentences an asked-for fee, count or role must be in
_NAME_CHECK_SHARE: float = _LIMITS["name_check_script_share"]


# Which hand rules may abstain beside the learned probability (``AnswerSettings.abstain_rules``).
ABSTAIN_RULES = ("all", "checks", "types", "names", "none")


@dataclass(frozen=True)
class AnswerSettings:
    """How many sentences to quote and when to abstain; defaults from lexicon/answer.toml."""

    max_sentences: int = _SETTINGS["max_sentences"]
    max_chars: int = _SETTINGS["max_chars"]
    passages: int = _SETTINGS["passages"]
    # A further sentence is quoted only when it scores at least ``relative_cutoff`` of the best one
    # and adds at least ``min_gain`` of the question's coverage the quoted ones lack.
    relative_cutoff: float = _SETTINGS["relative_cutoff"]
    min_gain: float = _SETTINGS["min_gain"]
    min_coverage: float = _SETTINGS["min_coverage"]  # the hand-written abstention floor...
    min_dense: float = _SETTINGS["min_dense"]  # ...unless the best passage is this similar
    duplicate_overlap: float = _SETTINGS["duplicate_overlap"]
    follow_continuation: bool = _SETTINGS["follow_continuation"]  # quote a sentence's continuation...
    continuation_chars: int = _SETTINGS["continuation_chars"]  # ...when both fit in this many characters
    # "How many X" needs a best-matching sentence counting X, "who is the ROLE of X" one naming the
    # role (``missing_count``, ``missing_role``).
    check_counts: bool = _SETTINGS["check_counts"]
    type_cutoff: float = _SETTINGS["type_cutoff"]
    topic_share: float = _SETTINGS["topic_share"]
    topic_discount: float = _SETTINGS["topic_discount"]
    # The hand-written sentence score: focused coverage + these weights times word pairs, top
    # document, answer kind, rank, dense similarity, passage score (Chinese over Chinese) and
    # "how many X" counts (across languages); focus words count 1 + ``focus_weight``.
    pair_weight: float = _SETTINGS["pair_weight"]
    focus_weight: float = _SETTINGS["focus_weight"]
    document_weight: float = _SETTINGS["document_weight"]
    type_weight: float = _SETTINGS["type_weight"]
    rank_weight: float = _SETTINGS["rank_weight"]
    dense_weight: float = _SETTINGS["dense_weight"]
    passage_weight: float = _SETTINGS["passage_weight"]
    count_weight: float = _SETTINGS["count_weight"]
    # Choose sentences by the learned scorer's probability (``scorer.shipped_scorer``) instead of the
    # hand-written score above (which stays one of its features and the fallback without a model).
    learned: bool = True
    # With the learned scorer, abstain when the best sentence's probability of answering is below
    # the model's threshold (chosen in training for a stated false-abstention rate), or below
    # ``abstain_threshold`` when set; ``abstain_rules`` says which hand rules still apply beside it:
    # "all", "checks" (all but the coverage and similarity floors, which the probability replaces),
    # "names" (only: the question names something the corpus never mentions) or "none".
    learned_abstention: bool = True
    # With a shipped answerability model (``scorer.shipped_answerability``), its probability that the
    # documents answer the question decides instead of the best sentence's probability.
    answerability: bool = True
    answerability_threshold: float | None = None  # the model's own when None
    abstain_threshold: float | None = None
    abstain_rules: str = "checks"

    def __post_init__(self) -> None:
        if not 1 <= self.max_sentences <= 20:
            raise ConfigError(f"max_sentences must be between 1 and 20, got {self.max_sentences}")
        if not 50 <= self.max_chars <= 10000:
            raise ConfigError(f"max_chars must be between 50 and 10000, got {self.max_chars}")
        if not 1 <= self.passages <= 50:
            raise ConfigError(f"passages must be between 1 and 50, got {self.passages}")
        for name in (
            "relative_cutoff",
            "min_gain",
            "pair_weight",
            "focus_weight",
            "document_weight",
            "type_weight",
            "rank_weight",
            "dense_weight",
            "passage_weight",
            "count_weight",
            "min_coverage",
            "min_dense",
            "duplicate_overlap",
            "type_cutoff",
            "topic_share",
            "topic_discount",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be between 0 and 1, got {value}")
        for key in ("abstain_threshold", "answerability_threshold"):
            value = getattr(self, key)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ConfigError(f"{key} must be between 0 and 1, got {value}")
        if self.abstain_rules not in ABSTAIN_RULES:
            raise ConfigError(f"abstain_rules must be one of {', '.join(ABSTAIN_RULES)}, got {self.abstain_rules!r}")

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
    tokens: frozenset[str] = frozenset()
    topic: frozenset[str] = frozenset()  # what its document is about (see ``_topics``)
    features: tuple[float, ...] = ()  # ``scorer.FEATURE_NAMES``, for the learned scorer and training
    probability: float | None = None  # the learned scorer's P(answers the question), when it scored


# The sources' own reference marks ("... 1.6 billion RMB [1][4].") would read as our citations.
_SOURCE_REFS = re.compile(r"\s*(?:\[\d{1,3}\])+")


def display_text(sentence: str) -> str:
    """A quoted sentence as shown in the answer: the source's own "[1][4]" reference marks removed
    (the citation's ``quote`` keeps the exact text)."""
    return _SOURCE_REFS.sub("", sentence).strip()


_MARKDOWN_HEADING = re.compile(r"\s*#{1,6}[ \t]+[^\n]*\s*")
_LABEL_CHARS = re.compile(r"[\W_]+")
_SENTENCE_STOPS = (".", "。", "!", "！", "?", "？")


def _label(text: str) -> str:
    """``text`` folded to its letters and digits, lower-cased: how a heading compares with a title."""
    return _LABEL_CHARS.sub("", unicodedata.normalize("NFKC", text)).lower()


@lru_cache(maxsize=4096)
def _title_label(title: str) -> str:
    return _label(title)  # cached: every sentence of a passage is compared with the same title


_HEADLINE_CJK = int(_LIMITS["headline_chinese_chars"])
_HEADLINE_WORDS = int(_LIMITS["headline_words"])


def is_heading(sentence: str, title: str = "") -> bool:
    """Whether a sentence is only a heading: a Markdown heading line, or the document's title again
    without a sentence's closing stop (a plain-text file's title may be its first sentence, which
    stays quotable), unless the title is a headline as long as a sentence.

    A heading names what follows and states nothing, so it is never quoted as an answer ("# 青石巷"
    would otherwise "answer" 青石巷在哪里, covering the question's one content word).
    """
    if _MARKDOWN_HEADING.fullmatch(sentence):
        return True
    if sentence.rstrip().endswith(_SENTENCE_STOPS):
        return False
    label = _label(sentence)
    if not label or label != _title_label(title):
        return False
    # the title again: a heading, unless it is a headline as long as a sentence, which states something
    return len(_CJK_CHAR.findall(sentence)) < _HEADLINE_CJK and len(sentence.split()) < _HEADLINE_WORDS


def passage_items(passage: Passage, sentence: Span) -> list[Span]:
    """The list items of one sentence of ``passage`` (absolute spans; see ``chunking.inline_items``):
    a digest's bullets run together are quoted one by one, without their headings."""
    offset = passage.start
    return [
        Span(a + offset, b + offset) for a, b in _items(passage.text, sentence.start - offset, sentence.end - offset)
    ]


@lru_cache(maxsize=65536)
def _items(text: str, start: int, end: int) -> tuple[tuple[int, int], ...]:
    # Cached: the same chunks come back question after question, and chunks never change.
    items, _ = inline_items(text, Span(start, end))
    return tuple((sp.start, sp.end) for sp in items)


@lru_cache(maxsize=4096)
def _title_tokens(title: str) -> frozenset[str]:
    """Tokens of a title, with the dictionary translation of a Chinese one: a digest titles its
    English articles in Chinese, and a Chinese question's translated terms must see the topic too."""
    tokens = set(tokenize(title))
    if has_cjk(title):
        from .translate import translate_zh_to_en

        tokens.update(t for t, _ in translate_zh_to_en(title))
    return frozenset(tokens)


def _topics(
    sentences: Sequence[tuple[Passage, int, Span, str, Sequence[str], frozenset[str]]], share: float
) -> dict[str, frozenset[str]]:
    """Per document, the tokens of its title and those found in at least ``share`` of its candidate
    sentences: what the document is about, as opposed to what one sentence says."""
    by_doc: dict[str, list[frozenset[str]]] = {}
    titles: dict[str, frozenset[str]] = {}
    for passage, _, _, _, _, toks in sentences:
        by_doc.setdefault(passage.doc_id, []).append(toks)
        if passage.doc_id not in titles:
            titles[passage.doc_id] = _title_tokens(str(passage.metadata.get("title", "")))
    topics: dict[str, frozenset[str]] = {}
    for doc_id, sets in by_doc.items():
        common: frozenset[str] = frozenset()
        if len(sets) >= 3:
            counts: dict[str, int] = {}
            for toks in sets:
                for t in toks:
                    counts[t] = counts.get(t, 0) + 1
            common = frozenset(t for t, c in counts.items() if c / len(sets) >= share)
        topics[doc_id] = titles[doc_id] | common
    return topics


# A negation in either language (lexicon ``negations``; English "n't" too).
_NEGATION = re.compile(
    rf"\b(?:{_alternatives('en', 'negations')})\b|n['\u2019]t\b|{_alternatives('zh', 'negations')}", re.I
)


# What kind of answer a question wants, and what a sentence holding one looks like. Unlike
# ``ANSWER_TYPES`` (which decides abstention) this only breaks ties between sentences (and gives the
# learned scorer its "typed" features).
ANSWER_KINDS: dict[str, tuple[re.Pattern[str], re.Pattern[str]]] = _patterns("kinds")  # lexicon/patterns.toml


# "Which company / 哪个单位" wants an organization's name: a run of capitalized words ending in an
# organization word ("Changzhou Vocational Institute of Engineering", "SAIC Group") or Chinese ending
# in one (上汽集团). Only names the question does not already hold count (``names_new_org``).
_ASKS_ORG = re.compile(_PATTERNS["asks_org"])
_ORG_EN = re.compile(_PATTERNS["org_en"].replace("{suffixes}", _alternatives("en", "organization_suffixes")))
_ORG_ZH = re.compile(rf"[\u4e00-\u9fff]{{2,}}?(?:{_alternatives('zh', 'organization_suffixes')})")


def names_new_org(sentence: str, known: frozenset[str]) -> bool:
    """True when ``sentence`` names an organization with a word outside ``known`` (the question's
    tokens and their translations): the answer to "which company", not the subject asked about."""
    for m in list(_ORG_EN.finditer(sentence)) + list(_ORG_ZH.finditer(sentence)):
        if set(tokenize(m.group(0))) - known:
            return True
    return False


# "When was the article about X published?", "那篇报道是哪家媒体发的？": a question about the document
# itself. Its source line ("Zhong Guo Xin Wen Wang· 2025-10-28 05:25", which the loader reads into the
# document's outlet and date) answers it; the sentences that match the question's words only say
# what the article is about, and the learned scorer, trained on questions about what texts say,
# has never seen such a question.
_ASKS_SOURCE = re.compile(_PATTERNS["asks_source"], re.I)


def asks_source(question: str) -> bool:
    """Whether ``question`` asks when or where the document itself was published."""
    return _ASKS_SOURCE.search(question) is not None


def source_line(candidates: Sequence[Candidate], doc_id: str) -> Candidate | None:
    """The candidate sentence of document ``doc_id`` that is its source line: it holds the outlet and
    the date the loader read for the document (None when no candidate does)."""
    for cand in candidates:
        meta = cand.passage.metadata
        outlet, date = str(meta.get("outlet") or ""), str(meta.get("date") or "")
        if cand.passage.doc_id == doc_id and outlet and date and outlet in cand.text and date in cand.text:
            return cand
    return None


def answer_kind(question: str) -> str | None:
    """ "year", "when", "why", "number", "purpose" or "org" when the question asks for a year, a date,
    a cause, a quantity, an aim or an organization, else None."""
    for kind, (asks, _) in ANSWER_KINDS.items():
        if asks.search(question):
            return kind
    if _ASKS_ORG.search(question):
        return "org"
    return None


_CJK_CHAR = re.compile(r"[\u3400-\u9fff]")
# Characters of question words and particles: they say what is asked, not what the answer is about.
_QUESTION_CHARS = frozenset(str(lexicon("zh")["question_chars"]))


def score_candidates(
    passages: Sequence[Passage],
    query: Query,
    lexical: CorpusStats,
    settings: AnswerSettings,
    best_dense: float = 0.0,
    sentence_dense: Mapping[tuple[str, int, int], float] | None = None,
) -> list[Candidate]:
    """Score every sentence of the top passages for ``query`` (its ``answer_terms``, answer kind,
    expected types, role and counted words); best first.

    ``best_dense`` is the best dense similarity of any chunk to the question; ``sentence_dense``
    the question's cosine similarity to each sentence, by (doc_id, start, end)
    (``Retriever.sentence_similarities``); a sentence it lacks counts 0.

    With ``settings.learned`` and a shipped model (``scorer.shipped_scorer``) the score is the
    model's probability that the sentence answers the question, from the features of
    ``scorer.FEATURE_NAMES``. Otherwise (and as one of those features) the hand-written score:
    coverage of the question with the document's topic words discounted (the sentence that names
    the alliance again matters less than the one that says what was asked about it), plus the
    question's word pairs found in order, being in the top passage's document and holding the kind
    of answer asked for (a number, a date), weighted as in ``AnswerSettings``.
    """
    terms, question = query.answer_terms, query.asks
    negated = _NEGATION.search(question) is not None
    sentences = []
    for rank, passage in enumerate(passages[: settings.passages]):
        spans = passage.sentences or [Span(passage.start, passage.end)]
        for index, sentence in enumerate(spans):
            for span in passage_items(passage, sentence):
                text = passage.span_text(span)
                sequence = cached_tokens(text)
                if sequence and not is_heading(text, passage.title):
                    sentences.append((passage, rank, span, text, sequence, frozenset(sequence), index))
    topics = _topics([s[:6] for s in sentences], settings.topic_share)
    top_doc = passages[0].doc_id if passages else ""
    wanted = query.kind
    zh_share = lexical.script_share("zh") if terms.language == "zh" else 0.0
    passage_weight = settings.passage_weight * zh_share
    other_script = 1.0 - lexical.script_share("zh" if terms.language == "zh" else "en")
    count_weight = settings.count_weight * other_script if wanted == "number" else 0.0
    counted = query.counted if wanted == "number" else frozenset()
    known = frozenset(t for t, _ in terms.all_terms) | frozenset(tokenize(question)) if wanted == "org" else frozenset()
    role = query.role
    types = [ANSWER_TYPES[t][1] for t in query.types]
    top_score = max((p.score for p in passages[: settings.passages]), default=0.0) or 1.0
    question_chars = set(_CJK_CHAR.findall(to_simplified(question))) - _QUESTION_CHARS
    question_tokens = frozenset(t for t, _ in terms.all_terms)
    top = top_idf(lexical)
    own_idf = sorted(
        {(t, (lexical.term_idf(t) if lexical.has_term(t) else top) / top) for t, w in terms.tokens if w > 0},
        key=lambda x: -x[1],
    )
    passage_tokens: dict[str, set[str]] = {}
    for passage, _, _, _, _, toks, _ in sentences:
        passage_tokens.setdefault(passage.chunk_id, set()).update(toks)
    # By title: the question's own words (IDF-weighted) and Chinese characters that it does not hold.
    title_free: dict[str, tuple[dict[str, float], dict[str, float]]] = {}
    for passage, *_ in sentences:
        title = passage.title or ""
        if title not in title_free:
            words = set(cached_tokens(title))
            title_free[title] = (
                {t: w for t, w in own_idf if t not in words},
                {c: 1.0 for c in question_chars - set(_CJK_CHAR.findall(to_simplified(title)))},
            )
    kinds = [wanted in ("when", "year"), wanted == "number", wanted == "why", wanted == "org"]
    out: list[Candidate] = []
    rows: list[list[float]] = []
    for i, (passage, rank, span, text, sequence, toks, index) in enumerate(sentences):
        cov = term_coverage(terms, toks, lexical)
        referent = cov
        if i > 0 and sentences[i - 1][0] is passage and _CONTINUES.match(text):
            referent = term_coverage(terms, toks | sentences[i - 1][5], lexical)
        focused = term_coverage(terms, toks, lexical, topics[passage.doc_id], settings.topic_discount)
        pairs = len(terms.bigrams & bigrams(sequence)) / len(terms.bigrams) if terms.bigrams else 0.0
        dense = max(passage.scores.get("dense", 0.0), 0.0)
        shown = display_text(text)
        if wanted == "org":
            # Only in the top passage's document: elsewhere a sentence naming its own college ("as
            # the leading unit of the community") outranked the asked-about community's sentences.
            typed = passage.doc_id == top_doc and names_new_org(text, known)
        else:
            typed = wanted is not None and ANSWER_KINDS[wanted][1].search(shown) is not None
        counting = bool(counted) and counts(text, counted)
        relative = passage.score / top_score
        sim = max(sentence_dense.get((passage.doc_id, span.start, span.end), 0.0), 0.0) if sentence_dense else 0.0
        free_words, free_chars = title_free[passage.title or ""]
        text_chars = set(to_simplified(text)) if question_chars else set()
        score = (
            focused
            + settings.pair_weight * pairs
            + settings.document_weight * (passage.doc_id == top_doc)
            + settings.type_weight * typed
            + settings.rank_weight / (1 + rank)
            + settings.dense_weight * dense
            + passage_weight * relative
            + count_weight * counting
        )
        rows.append(
            [
                cov,
                focused,
                pairs,
                float(passage.doc_id == top_doc),
                float(typed),
                float(wanted is not None and not typed),
                float(counting),
                float(names_role(text, toks, role)),
                float(any(t.search(shown) for t in types)),
                1.0 / (1 + rank),
                relative,
                relative * zh_share,
                dense,
                float(index == 0),
                float(passage.chunk_id.endswith("::0")),
                math.log1p(len(text)),
                cov,  # coverage_gap, focused_gap, hand_score_ratio and hand_best: filled below
                focused,
                score,
                0.0,
                other_script,
                cov * other_script,
                best_dense,
                0.0,  # best_coverage: below
                float(wanted is not None),
                float(query.followup),
                len(question_chars & text_chars) / len(question_chars) if question_chars else 0.0,
                math.log1p(len(toks - question_tokens)),
                *(float(typed and k) for k in kinds),
                sim,
                sim,  # sentence_dense_gap and best_sentence_dense: below
                0.0,
                sim * other_script,
                first_missing(own_idf, toks) * (1.0 - other_script),
                first_missing(own_idf, passage_tokens[passage.chunk_id]) * (1.0 - other_script),
                weighted_share(free_words, toks),
                weighted_share(free_chars, text_chars),
                referent,
                referent,  # referent_gap: below
                float(negated and _NEGATION.search(text) is None),
            ]
        )
        out.append(Candidate(passage, rank, span, text, cov, score, toks, topics[passage.doc_id]))
    if not out:
        return out
    features = np.asarray(rows, dtype=float)
    # The columns filled with a candidate's own value above become relative to all candidates here.
    for name in ("coverage_gap", "focused_gap", "sentence_dense_gap", "referent_gap"):
        features[:, _AT[name]] -= features[:, _AT[name]].max()
    best_score = features[:, _AT["hand_score_ratio"]].max()
    features[:, _AT["hand_score_ratio"]] = features[:, _AT["hand_score_ratio"]] / best_score if best_score > 0 else 0.0
    features[int(np.argmax([c.score for c in out])), _AT["hand_best"]] = 1.0
    features[:, _AT["best_coverage"]] = features[:, _AT["coverage"]].max()
    features[:, _AT["best_sentence_dense"]] = features[:, _AT["sentence_dense"]].max()
    # The probability is computed whenever a model ships (abstention reads it); it ranks only with
    # ``settings.learned``.
    model = shipped_scorer() if settings.learned or settings.learned_abstention else None
    probabilities = model.probabilities(features) if model is not None else None
    for i, cand in enumerate(out):
        cand.features = tuple(float(v) for v in features[i])
        if probabilities is not None:
            cand.probability = float(probabilities[i])
            if settings.learned:
                cand.score = cand.probability
    out.sort(key=lambda c: -c.score)
    return out


def weighted_share(weights: Mapping[str, float], present: Collection[str]) -> float:
    """The share of ``weights``' total that the keys found in ``present`` carry (0 without weight)."""
    total = sum(weights.values())
    return sum(w for k, w in weights.items() if k in present) / total if total > 0 else 0.0


def first_missing(terms: Sequence[tuple[str, float]], tokens: set[str] | frozenset[str]) -> float:
    """The first of ``terms`` (by falling weight) that ``tokens`` lack: its weight, else 0."""
    return next((w for t, w in terms if t not in tokens), 0.0)


def _overlap(a: str, b: str) -> float:
    ta, tb = set(tokenize(a)), set(tokenize(b))
    if not ta or not tb:
        return 0.0
    return len(ta & tb) / min(len(ta), len(tb))


def select(
    candidates: Sequence[Candidate],
    settings: AnswerSettings,
    terms: QueryTerms | None = None,
    lexical: CorpusStats | None = None,
) -> list[Candidate]:
    """The best sentence, and further ones only when they score close to it and cover question
    terms it lacks (``terms``; words of the candidate document's topic count less, as in scoring);
    no near-duplicates, within the sentence and character budgets."""
    if not candidates:
        return []
    best = candidates[0].score
    chosen: list[Candidate] = []
    chars = 0
    covered: frozenset[str] = frozenset()
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
        if chosen and terms is not None and lexical is not None:
            # Measured with the candidate document's topic words discounted, as in scoring: a second
            # sentence that only repeats what the document is about ("cold chain logistics") adds
            # nothing. Citation precision, eval/gold.jsonl 0.899 -> 0.907, CMRC 2018 trial
            # (1,000) 0.730 -> 0.734, DRCD dev 0.825 -> 0.828, SQuAD 1.1 dev 0.714 -> 0.711.
            topic, discount = cand.topic, settings.topic_discount
            gain = term_coverage(terms, covered | cand.tokens, lexical, topic, discount) - term_coverage(
                terms, covered, lexical, topic, discount
            )
            if gain < settings.min_gain:
                continue  # says nothing about the question the quoted sentences do not
        chosen.append(cand)
        covered |= cand.tokens
        chars += len(cand.text)
        if len(chosen) >= settings.max_sentences:
            break
    return chosen


# A sentence opening with one of these continues the one before it ("It consumes 4 kg of steam per
# kWh.", "其中…"): what the question matched is often said in the first, the answer in the second.
_CONTINUES = re.compile(
    rf"(?:{_alternatives('en', 'continuation_words')})\b|(?:{_alternatives('zh', 'continuation_words')})"
)


# A sentence ending in a colon announces the next; one ending in a Chinese semicolon (which the
# splitter treats as a sentence end, ``chunking.split_sentences``) goes on in it: "...拆分成两家公司：
# 一家名为...；" "另一家名为...".
_ANNOUNCES = (":", "：", "；")


def with_continuation(cand: Candidate, taken: Sequence[Candidate], max_chars: int = 300) -> Candidate:
    """``cand`` extended over the next sentence of its passage when that one continues it (opens
    with a pronoun or "Thus", see ``_CONTINUES``, or follows a sentence ending in a colon, which
    announces it: "...outlined five focus areas:"), is not quoted already and the two together stay
    within ``max_chars``: one citation, whose
    quote holds both (top sentence or its continuation supporting: CMRC 2018 trial 0.70 -> 0.71,
    SQuAD dev 0.72 -> 0.73; no change on eval/gold.jsonl)."""
    spans = cand.passage.sentences
    after = [sp for sp in spans if sp.start >= cand.span.end]
    if not after:
        return cand
    nxt = min(after, key=lambda sp: sp.start)
    if not (_CONTINUES.match(cand.passage.span_text(nxt)) or cand.text.rstrip().endswith(_ANNOUNCES)):
        return cand
    if nxt.end - cand.span.start > max_chars:
        return cand  # a quote should stay short enough to read
    doc = cand.passage.doc_id
    if any(c.passage.doc_id == doc and c.span.start < nxt.end and nxt.start < c.span.end for c in taken):
        return cand
    span = Span(cand.span.start, nxt.end)
    return replace(cand, span=span, text=cand.passage.span_text(span))


# Expected answer types: a question asking for one of these is only answerable when the passages
# that answer it hold something of that type. (Fees, phone numbers, e-mail addresses and deadlines
# are the "plausible but absent" facts students ask for most.)
ANSWER_TYPES: dict[str, tuple[re.Pattern[str], re.Pattern[str]]] = _patterns("types")  # lexicon/patterns.toml


# A money word alone ("How have salaries changed?") does not ask for an amount; with one of these it does.
_AMOUNT_CUE = re.compile(_PATTERNS["amount_cue"], re.I)


def expected_types(question: str) -> list[str]:
    """Answer types the question asks for (phone, email, money, date, year); usually none."""
    found = [name for name, (asks, _) in ANSWER_TYPES.items() if asks.search(question)]
    if "money" in found and not _AMOUNT_CUE.search(question):
        found.remove("money")
    return found


def best_matching(
    candidates: Sequence[Candidate], cutoff: float = _TYPE_CUTOFF, sentences: int = _BEST_MATCHING
) -> list[Candidate]:
    """The best-matching sentences (``candidates`` best first): at most ``sentences``, scoring at
    least ``cutoff`` of the best. An asked-for fee, count or role must be in one of them."""
    if not candidates:
        return []
    return [c for c in candidates if c.score >= cutoff * candidates[0].score][:sentences]


def missing_types(
    question: str,
    passages: Sequence[Passage],
    top: int = 2,
    candidates: Sequence[Candidate] = (),
    cutoff: float = _TYPE_CUTOFF,
    sentences: int = _BEST_MATCHING,
) -> list[str]:
    """Expected answer types that none of the ``top`` passages contains, or (given ``candidates``,
    best first) that none of the best-matching sentences (at most ``sentences``, scoring at least
    ``cutoff`` of the best) contains: "When is the application deadline for the class?" over a
    passage that dates the class's founding, not a deadline."""
    return types_missing(expected_types(question), passages, top, candidates, cutoff, sentences)


def types_missing(
    types: Sequence[str],
    passages: Sequence[Passage],
    top: int = 2,
    candidates: Sequence[Candidate] = (),
    cutoff: float = _TYPE_CUTOFF,
    sentences: int = _BEST_MATCHING,
) -> list[str]:
    """``missing_types`` for answer types already found in the question (``Query.types``)."""
    texts = [p.text for p in passages[:top]]
    best = [c.text for c in best_matching(candidates, cutoff, sentences)]
    return [
        t
        for t in types
        if not any(ANSWER_TYPES[t][1].search(x) for x in texts)
        or (candidates and not any(ANSWER_TYPES[t][1].search(x) for x in best))
    ]


# "How many students...", "多少名会员", "几所职业院校": the thing counted. A sentence answers such a question
# only when it counts that thing ("over 2,000 training sessions", "35 colleges"), not when it holds any
# number ("a 70-year history"): such questions had been answered by a date or a percentage.
_COUNT_EN = re.compile(_PATTERNS["count_en"], re.I)
_COUNT_ZH = re.compile(_PATTERNS["count_zh"])
_COUNT_ZH_BEFORE = re.compile(_PATTERNS["count_zh_before"])
_MEASURE_WORDS = words("zh", "count_measure_words")
_NUMBER = _PATTERNS["number"]
_NUMBER_RE = re.compile(_NUMBER, re.I)
# Not brackets: "68,511 (43.3%) had children", "4 kg (8.8 lb) of steam".
_PHRASE_END = re.compile(r"[,;:!?，；：。！？、]|\.(?:\s|$)")
_COUNT_WINDOW = int(_LIMITS["count_window"])  # words (or 8 Chinese characters) between a number and what it counts


def counted_tokens(question: str) -> frozenset[str]:
    """Tokens (in both languages, with dictionary synonyms) of what a "how many" question counts."""
    from .translate import translate_en_to_zh, translate_zh_to_en

    m = _COUNT_EN.search(question)
    noun = ""
    if m:
        # "how many training sessions": both words; "how many students are": the first only
        second = m.group(2) or ""
        noun = m.group(1) + ("" if not second or second.lower() in EN_STOPWORDS else " " + second)
    if not noun:
        mz = _COUNT_ZH.search(question)
        words = [w for w in segment_zh(mz.group(1)) if w not in _MEASURE_WORDS] if mz else []
        if mz and not words:  # "成员单位一共有多少家": only a measure word after it, the noun before
            before = _COUNT_ZH_BEFORE.search(question)
            words = [w for w in segment_zh(before.group(1)) if w not in _MEASURE_WORDS] if before else []
        noun = " ".join(words)
    if not noun:
        return frozenset()
    tokens = set(tokenize(noun))
    if has_cjk(noun):
        chinese = noun.split()
    else:
        chinese = [t for t, _ in translate_en_to_zh(noun)[:3]]
        tokens.update(chinese)
    for word in chinese:  # back to English: "enterprises" -> 企业 -> company, firm, enterprise
        tokens.update(t for t, _ in translate_zh_to_en(word)[:6])
    return frozenset(tokens)


def counts(sentence: str, counted: frozenset[str]) -> bool:
    """True when a number in ``sentence`` stands within a few words before what ``counted`` names
    (not a source's own reference mark: "[2] Students")."""
    sentence = display_text(sentence)
    for m in _NUMBER_RE.finditer(sentence):
        # A count and its noun stand in one phrase: "founded in 1920, with multiple campuses" counts
        # no campuses.
        after = _PHRASE_END.split(sentence[m.end() : m.end() + 80], maxsplit=1)[0]
        words = re.findall(r"[A-Za-z][A-Za-z'-]*", after)[:_COUNT_WINDOW]
        if any(t in counted for w in words for t in tokenize(w)):
            return True
        zh = re.match(r"\s*[^\W\d_A-Za-z]{1,8}", after)
        if zh and any(t in counted for t in tokenize(zh.group(0))):
            return True
    return False


def missing_count(
    question: str, candidates: Sequence[Candidate], cutoff: float = _TYPE_CUTOFF, sentences: int = _BEST_MATCHING
) -> bool:
    """True when a "how many" question's best-matching sentences count nothing of what it asks about."""
    if not candidates or answer_kind(question) != "number":
        return False
    return count_missing(counted_tokens(question), candidates, cutoff, sentences)


def count_missing(
    counted: frozenset[str],
    candidates: Sequence[Candidate],
    cutoff: float = _TYPE_CUTOFF,
    sentences: int = _BEST_MATCHING,
) -> bool:
    """``missing_count`` for what a "how many" question counts, already found (``Query.counted``)."""
    if not counted or not candidates:
        return False
    return not any(counts(c.text, counted) for c in best_matching(candidates, cutoff, sentences))


# "Who is the general manager of X?", "首任会长是谁？": a question about the holder of a named role is
# answered only by a sentence that names that role ("The first president of the association, Ji
# Junjie"), not by one that merely mentions X.
_ROLES_EN = _alternatives("en", "roles")
_ROLE_EN = re.compile(_PATTERNS["role_en"].replace("{roles}", _ROLES_EN), re.I)
_ROLE_ZH = re.compile(f"({_alternatives('zh', 'roles')})")
_ASKS_WHO_ZH = re.compile(_PATTERNS["asks_who_zh"])
_ROLE_VERBS: dict[str, list[str]] = lexicon("en")["role_verbs"]
_ROLE_VERB_EN = re.compile(_PATTERNS["role_verb_en"].replace("{verbs}", "|".join(_ROLE_VERBS)), re.I)
# "Vice President Tian Zhongbao" names a vice president, not the president a question asks about:
# a role after one of the lexicons' ``role_modifiers`` is another role.
_MODIFIED_ROLE = re.compile(
    rf"\b({_alternatives('en', 'role_modifiers')})[\s-]+(?:{_ROLES_EN})\b"
    rf"|({_alternatives('zh', 'role_modifiers')})(?:{_alternatives('zh', 'roles')})",
    re.I,
)
_MODIFIERS = frozenset(str(w).lower() for language in ("en", "zh") for w in lexicon(language)["role_modifiers"])


def names_role(text: str, tokens: Collection[str], role: frozenset[str]) -> bool:
    """Whether a sentence (``tokens`` its tokens) names the role asked about (``asked_role``), not
    only a deputy's or a former holder's, unless the question asks for that (its role holds the
    modifier)."""
    if not role or role.isdisjoint(tokens):
        return False
    if not role.isdisjoint(_MODIFIERS):
        return True
    plain = _MODIFIED_ROLE.sub(" ", to_simplified(text))
    return not role.isdisjoint(cached_tokens(plain))


def asked_role(question: str) -> frozenset[str]:
    """Tokens (both languages) of the role whose holder a "who" question asks for; empty if none."""
    from .translate import translate_en_to_zh, translate_zh_to_en

    # a question asking for a deputy keeps the modifier with the role, and every mention counts
    modifiers = frozenset((m.group(1) or m.group(2)).lower() for m in _MODIFIED_ROLE.finditer(to_simplified(question)))
    m = _ROLE_EN.search(question)
    if m:
        role = m.group(1)
        tokens = set(tokenize(role)) | {t for t, _ in translate_en_to_zh(role)[:3]}
        return frozenset(tokens) | modifiers
    m = _ROLE_VERB_EN.search(question)
    if m:
        role_words = _ROLE_VERBS[m.group(1).lower()]
        return frozenset(
            {t for w in role_words for t in tokenize(w)} | {t for w in role_words for t, _ in translate_en_to_zh(w)[:3]}
        )
    if _ASKS_WHO_ZH.search(question):
        mz = _ROLE_ZH.search(question)
        if mz:
            role = mz.group(1)
            return frozenset(set(tokenize(role)) | {t for t, _ in translate_zh_to_en(role)[:6]}) | modifiers
    return frozenset()


def missing_role(
    question: str, candidates: Sequence[Candidate], cutoff: float = _TYPE_CUTOFF, sentences: int = _BEST_MATCHING
) -> bool:
    """True when a question asking who holds a role gets best-matching sentences that never name it."""
    return role_missing(asked_role(question), candidates, cutoff, sentences)


def role_missing(
    role: frozenset[str], candidates: Sequence[Candidate], cutoff: float = _TYPE_CUTOFF, sentences: int = _BEST_MATCHING
) -> bool:
    """``missing_role`` for the role a question asks about, already found (``Query.role``)."""
    if not role or not candidates:
        return False
    return not any(names_role(c.text, c.tokens, role) for c in best_matching(candidates, cutoff, sentences))


def unknown_names(names: Sequence[str], lexical: CorpusStats) -> list[str]:
    """Names from the question none of whose tokens (or, for Chinese, translations) the corpus has."""
    from .translate import translate_en_to_zh, translate_zh_to_en

    out = []
    for name in names:
        if name.isupper() and len(name) <= 6:
            continue  # an acronym ("NEV") may abbreviate words the corpus spells out
        # The name itself, or its dictionary translation (the corpus may be in the other script).
        # (Only tokens in the other script: the dictionary passes an unknown word through as itself,
        # "Anaheim" -> "anaheim", which is no translation.)
        cjk = has_cjk(name)
        translated = [
            t for t, _ in (translate_zh_to_en(name) if cjk else translate_en_to_zh(name)) if has_cjk(t) != cjk
        ]
        if not translated and lexical.script_share("zh" if cjk else "en") < _NAME_CHECK_SHARE:
            # Mostly written in the other script, and the dictionary cannot translate the name (most
            # proper names): its absence from the index says nothing. XQuAD English questions over
            # Chinese text abstained on 15% of their answerable questions through this alone.
            continue
        tokens = translated + tokenize(name)
        if tokens and not any(lexical.has_term(t) for t in tokens):
            out.append(name)
    return out


def _weak_match(candidates: Sequence[Candidate], best_dense: float, settings: AnswerSettings) -> str | None:
    """The hand-written floor: too little coverage and too little similarity."""
    # The best-covering sentence of the best-scoring one's passage decides: the sentence that says
    # what was asked ("five strategic focus areas:") may name little of what it is about.
    best = candidates[0]
    cov = max(c.coverage for c in candidates if c.passage.chunk_id == best.passage.chunk_id)
    if cov < settings.min_coverage and best_dense < settings.min_dense:
        return f"weak match (coverage {cov:.2f}, similarity {best_dense:.2f})"
    return None


@dataclass(frozen=True)
class Checks:
    """What the hand checks find for a question: names the corpus never mentions, asked-for types
    (fee, phone, e-mail, date, year) no matching passage holds, "how many X" with nothing counting X, "who
    is the ROLE" with no sentence naming the role."""

    unknown: tuple[str, ...]
    missing: tuple[str, ...]
    count: bool
    role: bool

    def values(self) -> tuple[float, ...]:
        """As the answerability model reads them (``scorer.CHECK_NAMES``)."""
        return (float(len(self.unknown)), float(bool(self.missing)), float(self.count), float(self.role))


def run_checks(
    query: Query,
    candidates: Sequence[Candidate],
    passages: Sequence[Passage],
    lexical: CorpusStats,
    settings: AnswerSettings,
) -> Checks:
    """The hand checks' findings for ``query`` over its scored ``candidates`` (best first)."""
    counted = query.counted if query.kind == "number" else frozenset()
    return Checks(
        tuple(unknown_names(query.names, lexical)),
        tuple(types_missing(query.types, passages, candidates=candidates, cutoff=settings.type_cutoff)),
        bool(settings.check_counts and count_missing(counted, candidates, settings.type_cutoff)),
        bool(settings.check_counts and role_missing(query.role, candidates, settings.type_cutoff)),
    )


def answerability(candidates: Sequence[Candidate], checks: Checks) -> float | None:
    """The shipped answerability model's P(the documents answer the question), or None without a
    model (or without the sentence scorer's probabilities)."""
    model = shipped_answerability()
    if model is None or not candidates or any(c.probability is None for c in candidates):
        return None
    features = np.asarray([c.features for c in candidates], dtype=float)
    probabilities = np.asarray([c.probability for c in candidates], dtype=float)
    return float(model.probabilities(answerability_row(features, probabilities, checks.values())[None, :])[0])


def abstain_reason(
    query: Query,
    candidates: Sequence[Candidate],
    passages: Sequence[Passage],
    best_dense: float,
    lexical: CorpusStats,
    settings: AnswerSettings,
    checks: Checks | None = None,
) -> str | None:
    """Why the documents do not hold the answer to ``query``, or None when they seem to.

    With the learned models, abstain when the answerability model's probability (or, without that
    model, the best sentence's probability of answering) is below its threshold; without them (or
    with ``abstain_rules`` "all"), when no sentence covers enough of the question and no passage is
    close in meaning. Unless ``abstain_rules`` is "none" or "names", also when the question names
    something the corpus never mentions, when it asks for a fee, phone number, e-mail address or
    date and the passages that match it hold none, or when it asks how many X or who holds a role
    and no best-matching sentence counts X or names the role (``run_checks``).
    """
    if not candidates:
        return "no passage matches the question"
    checks = checks or run_checks(query, candidates, passages, lexical, settings)
    model = shipped_scorer()
    p = max((c.probability for c in candidates if c.probability is not None), default=None)
    learned = settings.learned_abstention and p is not None and model is not None
    if learned:
        assert p is not None and model is not None
        judge = shipped_answerability() if settings.answerability else None
        answerable = answerability(candidates, checks) if judge is not None else None
        if judge is not None and answerable is not None:
            value, threshold, what = answerable, settings.answerability_threshold, "the documents seem not to answer"
        else:
            judge, value, threshold, what = model, p, settings.abstain_threshold, "no sentence seems to answer"
        threshold = judge.threshold if threshold is None else threshold
        if value < threshold:
            return f"{what} (probability {value:.2f} < {threshold:.2f})"
        if settings.abstain_rules == "none":
            return None
        if settings.abstain_rules == "names":
            return f"the documents never mention {', '.join(checks.unknown)}" if checks.unknown else None
        if settings.abstain_rules == "types":
            return f"the matching passages hold no {', '.join(checks.missing)}" if checks.missing else None
    if not (learned and settings.abstain_rules == "checks"):
        # With the model, "checks" drops this floor: the probability replaces it.
        weak = _weak_match(candidates, best_dense, settings)
        if weak:
            return weak
    if checks.missing:
        return f"the matching passages hold no {', '.join(checks.missing)}"
    # Over text mostly in Chinese the name, count and role checks are no rules, only the
    # answerability model's features: there jieba's guesses at names ("叶有") and the dictionary's
    # glosses of English names ("Seaman" -> 水手) are too noisy. On the development sets they
    # abstained wrongly on 54 answerable questions over Chinese text and rightly on none
    # (docs/experiments.md, 2026-12-03).
    if lexical.script_share("en") < _NAME_CHECK_SHARE:
        return None
    if checks.unknown:
        return f"the documents never mention {', '.join(checks.unknown)}"
    if checks.count:
        return "the matching sentences count nothing the question asks about"
    if checks.role:
        return "the matching sentences name no holder of the role asked about"
    return None


def citation_for(n: int, passage: Passage, quote: str, start: int, end: int, score: float = 0.0) -> Citation:
    """Citation number ``n`` of ``passage`` with its supporting ``quote`` at ``[start, end)``."""
    meta = passage.metadata
    return Citation(
        n=n,
        doc_id=passage.doc_id,
        chunk_id=passage.chunk_id,
        title=str(meta.get("title", "")),
        outlet=str(meta.get("outlet", "")),
        date=str(meta.get("date", "")),
        source=str(meta.get("source", "")),
        text=passage.text,
        passage_start=passage.start,
        passage_end=passage.end,
        quote=quote,
        start=start,
        end=end,
        score=round(score, 4),
    )


def build_citation(n: int, cand: Candidate) -> Citation:
    return citation_for(n, cand.passage, cand.text, cand.span.start, cand.span.end, cand.score)


def cited_first(passages: Sequence[Passage], cited: Sequence[str]) -> list[Passage]:
    """The retrieved passages with the cited ones (by chunk id, in citation order) moved to the front:
    the sentence scores are the finer judgement of which passage answers the question."""
    rank = {cid: i for i, cid in enumerate(dict.fromkeys(cited))}
    return sorted(passages, key=lambda p: rank.get(p.chunk_id, len(rank)))


# Training (``assistant.train``) collects the scored candidates of every answer through this.
_CANDIDATES: Recorder[tuple[list[Candidate], float, Checks]] = Recorder("candidate_recorder")


def record_candidates() -> AbstractContextManager[list[tuple[list[Candidate], float, Checks]]]:
    """Within the block, every ``extractive_answer`` appends its candidates (best first), the best
    dense similarity and the hand checks' findings to the yielded list."""
    return _CANDIDATES.collect()


def extractive_answer(
    query: Query,
    passages: Sequence[Passage],
    lexical: CorpusStats,
    settings: AnswerSettings,
    sentence_dense: Mapping[tuple[str, int, int], float] | None = None,
) -> Answer:
    """Quote the best sentences answering ``query`` with citations [1]..[n], or abstain with
    "possibly related" passages. ``passages`` are what ``Retriever.retrieve`` found (its best dense
    similarity, when it is a ``Retrieved``, calibrates abstention); ``lexical`` gives the corpus
    statistics; ``sentence_dense`` the question's similarity to each sentence (``score_candidates``)."""
    best_dense = passages.best_dense if isinstance(passages, Retrieved) else 0.0
    passages = list(passages)
    question, standalone, terms = query.text, query.standalone, query.answer_terms
    language = answer_language(query.language)
    text = messages(language)
    candidates = score_candidates(passages, query, lexical, settings, best_dense, sentence_dense)
    checks = run_checks(query, candidates, passages, lexical, settings) if candidates else Checks((), (), False, False)
    _CANDIDATES.add((candidates, best_dense, checks))
    confidence = candidates[0].coverage if candidates else 0.0
    reason = abstain_reason(query, candidates, passages, best_dense, lexical, settings, checks)
    chosen = select(candidates, settings, terms, lexical) if reason is None else []
    if reason is None and query.source:
        # The best sentence finds the article; its source line says when and where it was published.
        line = source_line(candidates, (chosen or candidates)[0].passage.doc_id)
        chosen = [line] if line is not None else chosen
    if reason is None and not chosen:
        # The best sentences share no term with the question ("?!?!"): nothing to quote.
        reason = "no sentence shares a term with the question"
    if reason is not None:
        return Answer(
            question=question,
            standalone_question=standalone,
            answer=text["abstain"],
            abstained=True,
            language=language,
            related=passages[:3],
            retrieved=passages,
            confidence=round(confidence, 4),
            notes=[reason],
        )
    if settings.follow_continuation:
        chosen = [with_continuation(c, chosen, settings.continuation_chars) for c in chosen]
    # Present the chosen sentences in reading order within each passage, passages by relevance.
    first_rank: dict[str, int] = {}
    for c in chosen:
        first_rank.setdefault(c.passage.chunk_id, len(first_rank))
    chosen.sort(key=lambda c: (first_rank[c.passage.chunk_id], c.span.start))
    citations: list[Citation] = []
    sentences: list[AnswerSentence] = []
    for cand in chosen:
        n = len(citations) + 1
        citations.append(build_citation(n, cand))
        sentences.append(AnswerSentence(text=cand.text, citations=[n]))
    body = " ".join(f"{display_text(s.text)} [{s.citations[0]}]" for s in sentences)
    return Answer(
        question=question,
        standalone_question=standalone,
        answer=body,
        abstained=False,
        language=language,
        citations=citations,
        sentences=sentences,
        retrieved=cited_first(passages, [c.chunk_id for c in citations]),
        confidence=round(confidence, 4),
    )


# A subject counts as answered by the quotes holding at least this share of its (IDF-weighted) terms.
SUBJECT_COVERAGE: float = _LIMITS["subject_coverage"]


def covers_subjects(answer: Answer, subjects: Sequence[str], lexical: CorpusStats) -> bool:
    """Whether the quotes of ``answer`` name every one of ``subjects`` (directly or translated)."""
    if answer.abstained:
        return False
    quoted = frozenset(t for c in answer.citations for t in tokenize(c.quote))
    return all(term_coverage(analyse(s), quoted, lexical) >= SUBJECT_COVERAGE for s in subjects)


def combine_answers(question: str, parts: Sequence[tuple[str, Answer]], language: str) -> Answer:
    """One answer from the answers to a question's per-subject sub-questions (``chat.split_subjects``):
    their sentences in subject order, citations renumbered 1..n in order of first appearance (a
    sentence two subjects share is quoted once), a fixed-text line for each subject nothing was
    found about, and the retrieved passages interleaved by rank with the cited ones first."""
    text = messages(language)
    citations: list[Citation] = []
    sentences: list[AnswerSentence] = []
    body: list[str] = []
    seen: dict[tuple[str, int, int], int] = {}
    notes: list[str] = []
    for subject, part in parts:
        if part.abstained:
            body.append(text["part_missing"].format(subject=subject))
            notes.extend(f"{subject}: {n}" for n in part.notes)
            continue
        for sentence in part.sentences:
            numbers: list[int] = []
            for old in sentence.citations:
                cite = part.citations[old - 1]
                key = (cite.doc_id, cite.start, cite.end)
                if key not in seen:
                    seen[key] = len(citations) + 1
                    citations.append(replace(cite, n=seen[key]))
                numbers.append(seen[key])
            if any(s.citations == numbers for s in sentences):
                continue  # the same quote again, for another subject
            sentences.append(AnswerSentence(text=sentence.text, citations=numbers, supported=sentence.supported))
            body.append(f"{display_text(sentence.text)} " + "".join(f"[{n}]" for n in numbers))
    retrieved: list[Passage] = []
    ids: set[str] = set()
    for rank in range(max((len(a.retrieved) for _, a in parts), default=0)):
        for _, part in parts:
            if rank < len(part.retrieved) and part.retrieved[rank].chunk_id not in ids:
                ids.add(part.retrieved[rank].chunk_id)
                retrieved.append(part.retrieved[rank])
    answered = [a for _, a in parts if not a.abstained]
    return Answer(
        question=question,
        standalone_question=question,
        answer=" ".join(body),
        abstained=not answered,
        language=language,
        citations=citations,
        sentences=sentences,
        related=[] if answered else retrieved[:3],
        retrieved=cited_first(retrieved, [c.chunk_id for c in citations]),
        confidence=round(min((a.confidence for _, a in parts), default=0.0), 4),
        notes=[f"answered per subject: {', '.join(s for s, _ in parts)}", *notes],
    )
