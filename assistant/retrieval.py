"""Hybrid bilingual retrieval: dense (Chroma) + BM25 (bm25s) + dictionary-translated BM25, fused by RRF.

Why not llama-index's ``BM25Retriever`` as is: its default tokenizer is English-only (a Chinese clause
becomes one token) and it takes no per-term weights, which query translation needs. We use bm25s (the
library under ``BM25Retriever``) to build and persist the BM25 score matrix, and score weighted queries
against that matrix ourselves. ``assistant.llamaindex.HybridRetriever`` wraps the whole search as a
llama-index ``BaseRetriever`` for use in llama-index pipelines and chat engines.
"""

from __future__ import annotations

import hashlib
import json
import marshal
import math
import re
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .embedding import Embedder
from .errors import ConfigError
from .lexicons import lexicon, words
from .recorder import Recorder
from .schema import CorpusStats, Passage, Query, Retrieved, Span
from .schema import QueryTerms as QueryTerms  # re-exported: the types moved to schema
from .schema import TermGroup as TermGroup
from .schema import merge_weighted as merge_weighted
from .scorer import PASSAGE_FEATURE_NAMES, shipped_passage_ranker
from .sentences import Key, SentenceVectors, candidate_spans, hash_key
from .store import Store, date_number, sentences_of
from .text import (
    cached_tokens,
    cjk_chars,
    detect_language,
    has_cjk,
    has_surrogates,
    jieba_words,
    segment_zh,
    to_simplified,
    tokenize,
)
from .translate import translate_en_to_zh_groups, translate_zh_to_en_groups

FILTER_KEYS = ("doc_id", "source", "outlet", "language", "date_from", "date_to")
# Version of the saved BM25 index: a tokenizer change makes saved indexes stale, and they are rebuilt
# from Chroma's texts. 4: British spellings made American (3 was a reverted tokenizer's). 5: ids and
# tokens saved as marshal data, not pickles (loading a pickle runs what it holds: whoever could write
# the index folder could run code in the assistant).
LEXICAL_FORMAT = 5


# --------------------------------------------------------------------------- pure maths


def rrf(
    rankings: Mapping[str, Sequence[str]], weights: Mapping[str, float] | None = None, k: int = 60
) -> list[tuple[str, float]]:
    """Weighted reciprocal-rank fusion: ``score(d) = sum_r w_r / (k + rank_r(d))``, ranks from 1.

    Returns (id, score) sorted by score descending, ties broken by first appearance.
    """
    if k < 0:
        raise ValueError(f"rrf k must be >= 0, got {k}")
    scores: dict[str, float] = {}
    for name, ranking in rankings.items():
        w = 1.0 if weights is None else weights.get(name, 1.0)
        if w == 0:
            continue
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + w / (k + rank)
    order = {item: i for i, item in enumerate(scores)}
    return sorted(scores.items(), key=lambda kv: (-kv[1], order[kv[0]]))


def bigrams(tokens: Sequence[str]) -> frozenset[tuple[str, str]]:
    """Adjacent token pairs."""
    return frozenset(zip(tokens, tokens[1:], strict=False))


# --------------------------------------------------------------------------- settings


# Weights, depths and question patterns, as data (assistant/lexicon/retrieval.toml, with the
# measurements behind them).
_SETTINGS: dict[str, Any] = lexicon("retrieval")["settings"]
_QUERY: dict[str, float] = lexicon("retrieval")["query"]
_PATTERNS: dict[str, str] = lexicon("retrieval")["patterns"]


@dataclass(frozen=True)
class RetrievalSettings:
    """Knobs of the hybrid search; validated on construction."""

    top_k: int = _SETTINGS["top_k"]
    dense_k: int = _SETTINGS["dense_k"]
    lexical_k: int = _SETTINGS["lexical_k"]
    rrf_k: int = _SETTINGS["rrf_k"]
    # Fusion weights (see lexicon/retrieval.toml): the two lexical weights follow the share of
    # indexed chunks written in the question's script; ``weights`` set explicitly (e.g. for a
    # multilingual model) replaces all of this.
    weights: Mapping[str, float] | None = None
    dense_weight: Mapping[str, float] = field(default_factory=lambda: dict(_SETTINGS["dense_weight"]))
    lexical_floor: float = _SETTINGS["lexical_floor"]
    translated_floor: float = _SETTINGS["translated_floor"]
    reranker: str | None = None  # a sentence-transformers CrossEncoder id or path; off by default
    rerank_top: int = _SETTINGS["rerank_top"]
    # The lexical rerank of the fused top passages by their best sentence's coverage, and its
    # Chinese character, definition, title and lead terms (lexicon/retrieval.toml); 0 turns one off.
    sentence_weight: float = _SETTINGS["sentence_weight"]
    sentence_depth: int = _SETTINGS["sentence_depth"]
    char_weight: float = _SETTINGS["char_weight"]
    definition_weight: float = _SETTINGS["definition_weight"]
    title_weight: float = _SETTINGS["title_weight"]
    lead_weight: float = _SETTINGS["lead_weight"]
    # Order those passages by the learned passage ranker's probability (``scorer.PASSAGE_FEATURE_NAMES``,
    # ``python -m assistant.train --passages``) instead of the hand-weighted sum above, when one ships.
    learned_ranking: bool = True
    learned_ranking_other_script: float = _SETTINGS["learned_ranking_other_script"]

    def __post_init__(self) -> None:
        for name in ("sentence_weight", "char_weight", "definition_weight", "title_weight", "lead_weight"):
            if not 0 <= getattr(self, name) <= 100:
                raise ConfigError(f"{name} must be between 0 and 100, got {getattr(self, name)}")
        for name in ("top_k", "dense_k", "lexical_k", "rerank_top", "sentence_depth"):
            value = getattr(self, name)
            if not 1 <= value <= 1000:
                raise ConfigError(f"{name} must be between 1 and 1000, got {value}")
        if not 0 <= self.rrf_k <= 1000:
            raise ConfigError(f"rrf_k must be between 0 and 1000, got {self.rrf_k}")
        if self.weights is not None:
            unknown = set(self.weights) - {"dense", "bm25", "translated"}
            if unknown:
                raise ConfigError(f"unknown fusion weights {sorted(unknown)}; known: dense, bm25, translated")
            bad = {k: v for k, v in self.weights.items() if v < 0}
            if bad:
                raise ConfigError(f"fusion weights must be >= 0, got {bad}")
        for name in ("lexical_floor", "translated_floor", "learned_ranking_other_script"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be between 0 and 1, got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["weights"] = dict(self.weights) if self.weights is not None else None
        d["dense_weight"] = dict(self.dense_weight)
        return d

    def weights_for(self, language: str, same_share: float) -> dict[str, float]:
        """Fusion weights for a question in ``language`` when ``same_share`` of the chunks are in its script."""
        if self.weights is not None:
            return dict(self.weights)
        lang = "zh" if language == "zh" else "en"
        return {
            "dense": self.dense_weight.get(lang, 0.0),
            "bm25": self.lexical_floor + (1 - self.lexical_floor) * same_share,
            "translated": self.translated_floor + (1 - self.translated_floor) * (1 - same_share),
        }


def validate_filters(filters: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check filter keys and values; dates must be YYYY-MM-DD. Raises ``ConfigError``."""
    if not filters:
        return {}
    out: dict[str, Any] = {}
    for key, value in filters.items():
        if key not in FILTER_KEYS:
            raise ConfigError(f"unknown filter '{key}'; known filters: {', '.join(FILTER_KEYS)}")
        if value in (None, "", []):
            continue
        if key in ("date_from", "date_to"):
            if not isinstance(value, str) or date_number(value) == 0:
                raise ConfigError(f"filter {key} must be a date YYYY-MM-DD, got {value!r}")
        elif isinstance(value, list | tuple):
            if not all(isinstance(v, str) for v in value):
                raise ConfigError(f"filter {key} must be a string or a list of strings, got {value!r}")
            value = list(value)
        elif not isinstance(value, str):
            raise ConfigError(f"filter {key} must be a string or a list of strings, got {value!r}")
        if any(has_surrogates(v) for v in (value if isinstance(value, list) else [value])):
            raise ConfigError(f"filter {key} is not valid Unicode text (lone surrogate): {value!r}")
        out[key] = value
    return out


def chroma_where(filters: Mapping[str, Any]) -> dict[str, Any] | None:
    """Translate validated filters to a Chroma ``where`` clause."""
    clauses: list[dict[str, Any]] = []
    for key in ("doc_id", "source", "outlet", "language"):
        if key in filters:
            v = filters[key]
            clauses.append({key: {"$in": v}} if isinstance(v, list) else {key: v})
    if "date_from" in filters:
        clauses.append({"date_num": {"$gte": date_number(filters["date_from"])}})
    if "date_to" in filters:
        clauses.append({"date_num": {"$lte": date_number(filters["date_to"])}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def matches(meta: Mapping[str, Any], filters: Mapping[str, Any]) -> bool:
    """The same filters, applied to one chunk's metadata in Python (for the lexical side)."""
    for key in ("doc_id", "source", "outlet", "language"):
        if key in filters:
            v = filters[key]
            if (meta.get(key) not in v) if isinstance(v, list) else (meta.get(key) != v):
                return False
    num = int(meta.get("date_num", 0) or 0)
    if "date_from" in filters and num < date_number(filters["date_from"]):
        return False
    if "date_to" in filters and (num == 0 or num > date_number(filters["date_to"])):
        return False
    return True


# --------------------------------------------------------------------------- lexical index


class LexicalIndex:
    """BM25 over our bilingual tokens, with the chunk texts and metadata kept beside it.

    Persisted under ``index_dir/lexical`` and tagged with the manifest generation it was built from;
    rebuilt from Chroma's stored documents when that generation is stale, never per query. Token lists
    are cached by chunk id, so a rebuild after an incremental ingest tokenizes only the new chunks.

    The BM25 score matrix (CSC arrays) and vocabulary are saved as they are and memory-mapped on load;
    the token lists are read only when a rebuild needs them. Re-running ``bm25s.BM25.index`` on every
    chunk's token list at start-up took most of a 100k-chunk cold start (~20 s) and kept ~0.6 GB of
    Python lists alive that no query reads.
    """

    def __init__(
        self,
        ids: list[str],
        texts: Sequence[str],  # a list, or chunk_records.Records read from disk on access
        metas: Sequence[dict[str, Any]],
        tokens: list[list[str]] | None,
        generation: str,
        matrix: tuple[dict[str, int], np.ndarray, np.ndarray, np.ndarray] | None = None,
        tokens_file: Path | None = None,
        char_df: dict[str, int] | None = None,
    ) -> None:
        self.ids = ids
        self.texts = texts
        self.metas = metas
        self._tokens = tokens
        self._tokens_file = tokens_file
        self.generation = generation
        self.position = {cid: i for i, cid in enumerate(ids)}
        self._language_counts: dict[str, int] | None = None
        self._char_df = char_df
        if matrix is not None:
            self.vocab, self._data, self._indices, self._indptr = matrix
        elif ids:
            import bm25s

            bm25 = bm25s.BM25()
            # An empty document would make bm25s choke; "" is its placeholder token.
            bm25.index([t or [""] for t in self.tokens], show_progress=False)
            self.vocab = dict(bm25.vocab_dict)
            self._data = np.asarray(bm25.scores["data"])
            self._indices = np.asarray(bm25.scores["indices"])
            self._indptr = np.asarray(bm25.scores["indptr"])
        else:
            self.vocab = {}
            self._data = self._indices = self._indptr = np.zeros(0)
        if ids and len(self._indptr):
            df = np.diff(self._indptr)
            n = len(ids)
            # Inverse document frequency per token, for sentence scoring in the answer stage.
            self.idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5))
        else:
            self.idf = np.zeros(0)

    @property
    def tokens(self) -> list[list[str]]:
        """Index tokens per chunk (for incremental rebuilds): read from disk, or recomputed, on first use."""
        if self._tokens is None:
            loaded: list[list[str]] | None = None
            if self._tokens_file is not None:
                try:
                    data = marshal.loads(self._tokens_file.read_bytes())  # plain values, never code
                    # Only the lists saved with these very chunk ids: a later save (another ingest) may
                    # have replaced the file since this index was loaded, with as many lists in
                    # other positions (a replaced document), which would silently mis-index chunks.
                    if isinstance(data, dict) and data.get("ids") == ids_digest(self.ids):
                        loaded = data["tokens"]
                except (OSError, ValueError, EOFError, TypeError):
                    loaded = None  # replaced by a newer save meanwhile: recompute below
            self._tokens = (
                loaded
                if loaded is not None
                else [chunk_tokens(t, m) for t, m in zip(self.texts, self.metas, strict=True)]
            )
        return self._tokens

    def __len__(self) -> int:
        return len(self.ids)

    def script_share(self, language: str) -> float:
        """Share of chunks written in the script of ``language`` ("zh" or else English); mixed counts half."""
        if not self.ids:
            return 1.0
        counts = self._language_counts
        if counts is None:
            counts = {}
            for meta in self.metas:
                lang = str(meta.get("language", "en"))
                counts[lang] = counts.get(lang, 0) + 1
            self._language_counts = counts
        key = "zh" if language == "zh" else "en"
        return (counts.get(key, 0) + 0.5 * counts.get("mixed", 0)) / len(self.ids)

    @property
    def char_df(self) -> dict[str, int]:
        """How many chunks hold each Chinese character (in their tokens): computed on first use, saved."""
        if self._char_df is None:
            df: dict[str, int] = {}
            for toks in self.tokens:
                for c in cjk_chars(toks):
                    df[c] = df.get(c, 0) + 1
            self._char_df = df
        return self._char_df

    def char_idf(self, char: str) -> float:
        """BM25-style IDF of one Chinese character over the chunks; an unseen one gets the highest."""
        n = len(self.ids)
        df = self.char_df.get(char, 0)
        return math.log(1.0 + (n - df + 0.5) / (df + 0.5))

    def has_term(self, term: str) -> bool:
        return term in self.vocab

    def term_idf(self, term: str) -> float:
        i = self.vocab.get(term)
        return float(self.idf[i]) if i is not None and i < len(self.idf) else 0.0

    def scores(self, terms: Iterable[tuple[str, float]]) -> np.ndarray:
        """BM25 score of every chunk for a weighted query: ``sum_t w_t * bm25(t, chunk)``."""
        out = np.zeros(len(self.ids), dtype=np.float32)
        for term, weight in terms:
            t = self.vocab.get(term)
            if t is None or t + 1 >= len(self._indptr) or weight == 0:
                continue
            lo, hi = self._indptr[t], self._indptr[t + 1]
            out[self._indices[lo:hi]] += weight * self._data[lo:hi]
        return out

    def top(
        self, terms: Sequence[tuple[str, float]], k: int, filters: Mapping[str, Any] | None = None
    ) -> list[tuple[int, float]]:
        """Best ``k`` chunk positions with a positive score, after filters."""
        if not terms or not self.ids:
            return []
        s = self.scores(terms)
        candidates = np.nonzero(s > 0)[0]
        if filters:
            candidates = np.array([i for i in candidates if matches(self.metas[int(i)], filters)], dtype=np.int64)
        if len(candidates) == 0:
            return []
        if len(candidates) > k:
            part = np.argpartition(-s[candidates], k - 1)[:k]
            candidates = candidates[part]
        order = candidates[np.argsort(-s[candidates], kind="stable")]
        return [(int(i), float(s[i])) for i in order]

    # ------------------------------------------------------------------ persistence

    _ARRAYS = ("data", "indices", "indptr")

    def save(self, directory: Path) -> None:
        """Write atomically: a half-written index is never picked up."""
        tmp = directory.with_name(directory.name + ".tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        from . import chunk_records

        # marshal, not pickle: loading it builds plain values and runs nothing (see LEXICAL_FORMAT).
        (tmp / "ids.marshal").write_bytes(marshal.dumps({"ids": list(self.ids)}))
        chunk_records.write(tmp, self.texts, self.metas)  # read one at a time by load()
        self.script_share("en")  # the language counts, saved: counting would read every chunk's metadata
        (tmp / "tokens.marshal").write_bytes(marshal.dumps({"ids": ids_digest(self.ids), "tokens": self.tokens}))
        for name, array in zip(self._ARRAYS, (self._data, self._indices, self._indptr), strict=True):
            np.save(tmp / f"bm25-{name}.npy", np.asarray(array))
        (tmp / "vocab.json").write_text(json.dumps(self.vocab, ensure_ascii=False), encoding="utf-8")
        (tmp / "chars.json").write_text(json.dumps(self.char_df, ensure_ascii=False), encoding="utf-8")
        (tmp / "meta.json").write_text(
            json.dumps(
                {
                    "generation": self.generation,
                    "chunks": len(self.ids),
                    "format": LEXICAL_FORMAT,
                    "languages": self._language_counts,
                }
            )
        )
        old = directory.with_name(directory.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        if directory.exists():
            directory.rename(old)
        tmp.rename(directory)
        if old.exists():
            shutil.rmtree(old)

    @classmethod
    def load(cls, directory: Path) -> LexicalIndex | None:
        """The saved index, or None when there is none or it is unreadable (or of an older format)."""
        try:
            meta = json.loads((directory / "meta.json").read_text())
            if meta.get("format") != LEXICAL_FORMAT:
                return None  # an index saved by an earlier version: rebuilt from Chroma
            data = marshal.loads((directory / "ids.marshal").read_bytes())  # plain values, never code
            if not isinstance(data, dict) or not isinstance(data.get("ids"), list):
                return None
            from . import chunk_records

            # The texts and metadata beside it, memory-mapped, decoded when read.
            data["texts"], data["metas"] = chunk_records.open_records(directory, len(data["ids"]))
            vocab = json.loads((directory / "vocab.json").read_text(encoding="utf-8"))
            arrays = [np.load(directory / f"bm25-{name}.npy", mmap_mode="r") for name in cls._ARRAYS]
            chars_file = directory / "chars.json"
            char_df = json.loads(chars_file.read_text(encoding="utf-8")) if chars_file.exists() else None
        except (OSError, ValueError, KeyError, EOFError, TypeError):
            return None
        data_, indices, indptr = arrays
        if (
            len(data["ids"]) != meta.get("chunks")
            or len(data_) != len(indices)
            or (len(indptr) and int(indptr[-1]) != len(data_))
        ):
            return None  # not what save() wrote: rebuilt from Chroma
        index = cls(
            data["ids"],
            data["texts"],
            data["metas"],
            None,
            str(meta["generation"]),
            matrix=(vocab, data_, indices, indptr),
            tokens_file=directory / "tokens.marshal",
            char_df=char_df if isinstance(char_df, dict) else None,
        )
        if isinstance(meta.get("languages"), dict):
            index._language_counts = meta["languages"]
        return index

    @classmethod
    def build(cls, store: Store, previous: LexicalIndex | None = None) -> LexicalIndex:
        """Rebuild from the chunks Chroma stores, reusing the token lists of ``previous``."""
        cache: dict[str, list[str]] = {}
        if previous is not None:
            cache = dict(zip(previous.ids, previous.tokens, strict=True))
        ids, texts, metas, tokens = [], [], [], []
        for cid, text, meta in store.iter_chunks():
            ids.append(cid)
            texts.append(text)
            metas.append(meta)
            toks = cache.get(cid)
            if toks is None:
                toks = chunk_tokens(text, meta)
            tokens.append(toks)
        return cls(ids, texts, metas, tokens, store.generation())


def ids_digest(ids: Sequence[str]) -> str:
    """A digest of chunk ids in order: what a saved list per chunk belongs to."""
    h = hashlib.sha256()
    for cid in ids:
        h.update(cid.encode("utf-8", "surrogatepass") + b"\0")
    return h.hexdigest()


def chunk_tokens(text: str, meta: Mapping[str, Any]) -> list[str]:
    """Index tokens of a chunk: its text plus its document's title, so that every chunk of an article
    can be found by the article's subject (a digest's Chinese headline stands only above chunk 0)."""
    title = str(meta.get("title", ""))
    return tokenize(title) + tokenize(text) if title and not text.startswith(title) else tokenize(text)


def lexical_dir(index_dir: Path) -> Path:
    return Path(index_dir) / "lexical"


def refresh_lexical(store: Store) -> LexicalIndex:
    """Bring the persisted lexical index in step with the store (called after every ingest)."""
    directory = lexical_dir(store.index_dir)
    previous = LexicalIndex.load(directory)
    store.reload()
    generation = store.generation()
    if previous is not None and previous.generation == generation:
        return previous
    index = LexicalIndex.build(store, previous)
    index.save(directory)
    return index


# --------------------------------------------------------------------------- the retriever


def _relative(group: Sequence[tuple[str, float]]) -> list[tuple[str, float]]:
    top = max((w for _, w in group), default=0.0)
    return [(t, w / top) for t, w in group] if top > 0 else []


# The words a Chinese question asks about sit next to its question word ("...核心合作企业有哪些",
# "实行什么导师制度", "由谁主持"): the sentence answering the question holds them (lexicon/retrieval.toml).
_FOCUS_ZH = re.compile(_PATTERNS["focus_zh"])


# A coverb before the question word ("以什么为食", "用什么", "为什么"): the words before it are the
# subject, what is asked for comes after. Matched as jieba words, not characters (方向 ends in 向).
# Focusing on the subject had quoted an article's first sentence ("蓝线裸顶鲷，又称…") for what it
# eats: CMRC 2018 trial (1,000) hit@1 0.897 -> 0.901, citation precision 0.726 -> 0.729; trial 300
# citation precision 0.717 -> 0.721; eval/gold.jsonl, SQuAD 1.1 dev and DRCD dev unchanged.
_COVERBS = words("zh", "coverbs")  # 为什么, one jieba word, is split in _mark_coverbs
_QUESTION_WORDS = words("zh", "question_words")


def _mark_coverbs(question: str) -> str:
    """``question`` with a clause mark around each coverb before a question word, so that the focus
    pattern does not take the subject before it ("蓝线裸顶鲷，以，什么为食")."""
    words = jieba_words(question)
    if sum(len(w) for w in words) != len(question):
        return question  # folding changed the length: offsets would not line up
    out: list[str] = []
    at = 0
    for i, word in enumerate(words):
        original = question[at : at + len(word)]
        at += len(word)
        after = words[i + 1] if i + 1 < len(words) else ""
        if word == "为什么":
            out.append("，" + original[0] + "，" + original[1:])
        elif word in _COVERBS and after[:2] in _QUESTION_WORDS:
            out.append("，" + original + "，")
        else:
            out.append(original)
    return "".join(out)


@lru_cache(maxsize=1024)
def focus_text(question: str) -> str:
    """The Chinese words next to the question word that name what is asked for ("" when none is found).

    Only Chinese: the same for English ("Which company...") cost SQuAD 1.1 dev a point of citation
    precision and gained nothing on eval/gold.jsonl.
    """
    if has_cjk(question):
        question = _mark_coverbs(to_simplified(question))  # "哪個產業體系" as "哪个产业体系"
    return " ".join(g for m in _FOCUS_ZH.finditer(question) for g in m.groups() if g)


# "Which two platforms…", "哪两个平台…": the number says how many answers are wanted, not a word the
# answer holds (lexicon/retrieval.toml).
_ANSWER_COUNT_EN = re.compile(_PATTERNS["answer_count_en"], re.IGNORECASE)
_ANSWER_COUNT_ZH = re.compile(_PATTERNS["answer_count_zh"])


def without_answer_count(question: str) -> str:
    """``question`` without the count of the answers it asks for ("Which two X" -> "Which X",
    "哪两个X" -> "哪个X")."""
    return _ANSWER_COUNT_ZH.sub("哪", _ANSWER_COUNT_EN.sub(r"\1", question))


# A Chinese question's character bigrams that are not words weigh this much (they repeat its words);
# light verbs (come, go, make...: high IDF in a small corpus, little meaning) this much. Measured:
# lexicon/retrieval.toml.
BIGRAM_WEIGHT: float = _QUERY["bigram_weight"]
LIGHT_VERB_WEIGHT: float = _QUERY["light_verb_weight"]
# A translated word whose glosses the index never saw weighs this share of an unseen word of the
# question's own language; a follow-up's carried-over terms this much when choosing sentences.
UNTRANSLATED_IDF_SHARE: float = _QUERY["untranslated_idf_share"]
CONTEXT_WEIGHT: float = _QUERY["context_weight"]
LIGHT_VERBS = words("en", "light_verbs")  # stems (assistant/lexicon/en.toml)


def analyse(question: str, focus_weight: float = 0.0, bigram_weight: float = BIGRAM_WEIGHT) -> QueryTerms:
    """Tokens of the question (weight 1 each, repeats summed) plus translated terms for the other script.

    Words next to the question word (``focus_text``) weigh ``1 + focus_weight``; light verbs
    ``LIGHT_VERB_WEIGHT``; Chinese character bigrams that are not words weigh ``bigram_weight`` (see
    ``BIGRAM_WEIGHT``).
    """
    language = detect_language(question)
    question = without_answer_count(question)
    sequence = tokenize(question)
    focus = focus_text(question) if focus_weight > 0 else ""
    focus_tokens = set(tokenize(focus))
    boost = 1.0 + focus_weight
    words = set(segment_zh(question)) if bigram_weight != 1.0 and has_cjk(question) else set()

    def weight(token: str) -> float:
        w = boost if token in focus_tokens else 1.0
        if token in LIGHT_VERBS:
            w *= LIGHT_VERB_WEIGHT
        return w * bigram_weight if words and token not in words and has_cjk(token) else w

    tokens = merge_weighted((t, weight(t)) for t in sequence)
    own = {t for t, _ in tokens}
    groups: list[TermGroup] = []
    focus_groups: list[frozenset[str]] = []
    if focus and language in ("zh", "mixed"):
        focus_groups += [frozenset(t for t, _ in g) for g in translate_zh_to_en_groups(focus)]

    def add(group: Sequence[tuple[str, float]]) -> None:
        alts = [(t, w) for t, w in group if t not in own]
        if alts:
            importance = sum(w for _, w in alts)
            if frozenset(t for t, _ in group) in focus_groups:
                importance *= boost
            groups.append((importance, _relative(alts)))

    if language in ("zh", "mixed"):
        for group in translate_zh_to_en_groups(question):
            add(group)
    if language in ("en", "mixed"):
        for group in translate_en_to_zh_groups(question):
            add(group)
    flat: dict[str, float] = {}
    for importance, alts in groups:
        total = sum(r for _, r in alts)
        for t, r in alts:
            flat[t] = flat.get(t, 0.0) + importance * r / total
    translated = sorted(flat.items(), key=lambda kv: -kv[1])
    return QueryTerms(language, tokens, translated, groups, bigrams(sequence))


def plain_query(text: str) -> Query:
    """``text`` as a query for search alone: its terms (``analyse``), no conversation, no focus."""
    terms = analyse(text)
    return Query(text=text, standalone=text, language=terms.language, terms=terms, answer_terms=terms, asks=text)


def top_idf(lexical: CorpusStats) -> float:
    """The IDF a term absent from the index would have: the highest the index can give."""
    return math.log(1.0 + (len(lexical) + 0.5) / 0.5) if len(lexical) else 1.0


def coverage(
    terms: Sequence[tuple[str, float]],
    tokens: set[str] | frozenset[str],
    lexical: CorpusStats,
    topic: frozenset[str] = frozenset(),
    discount: float = 0.0,
) -> float:
    """IDF-weighted share of the query terms found in ``tokens``. Terms absent from the index count
    with the highest IDF: a question about something the documents never mention is not covered.
    Terms in ``topic`` (what the whole document is about) weigh ``1 - discount``."""
    total = matched = 0.0
    top = top_idf(lexical)
    for term, weight in terms:
        idf = lexical.term_idf(term) if lexical.has_term(term) else top
        if term in topic:
            idf *= 1.0 - discount
        total += weight * idf
        if term in tokens:
            matched += weight * idf
    return matched / total if total > 0 else 0.0


def group_coverage(
    groups: Sequence[TermGroup],
    tokens: set[str] | frozenset[str],
    lexical: CorpusStats,
    topic: frozenset[str] = frozenset(),
    discount: float = 0.0,
) -> float:
    """Like ``coverage``, for translated words: a word counts as found when any of its glosses is
    (weighted by that gloss's relative weight)."""
    total = matched = 0.0
    top = top_idf(lexical)
    for importance, alts in groups:
        known = [(t, r) for t, r in alts if lexical.has_term(t)]
        # A word whose translations the index never saw may just be untranslatable (a name the
        # dictionary lacks), not absent: it weighs UNTRANSLATED_IDF_SHARE of an unseen word of the question's own.
        idf = (
            sum(r * lexical.term_idf(t) for t, r in known) / sum(r for _, r in known)
            if known
            else top * UNTRANSLATED_IDF_SHARE
        )
        if topic and any(t in topic for t, _ in alts):
            idf *= 1.0 - discount
        total += importance * idf
        best = max((r for t, r in alts if t in tokens), default=0.0)
        matched += importance * idf * best
    return matched / total if total > 0 else 0.0


def char_coverage(weights: Sequence[tuple[str, float]], chars: set[str] | frozenset[str]) -> float:
    """Weighted share of the characters ``weights`` lists that occur in ``chars`` (0 when none is listed)."""
    total = sum(w for _, w in weights)
    return sum(w for c, w in weights if c in chars) / total if total > 0 else 0.0


_DEFINITION_ZH = re.compile(_PATTERNS["definition_zh"])
_DEFINES_ZH = _PATTERNS["defines_zh"]  # after the subject: an aside, a comma, a copula


def definition_subject(question: str) -> str:
    """What a Chinese definition question asks to define ("什么是“乡里制”？" -> "乡里制"), else ""."""
    m = _DEFINITION_ZH.match(to_simplified(question.strip()))
    return next((g for g in m.groups() if g), "") if m else ""


@lru_cache(maxsize=4096)
def _title_chars(title: str) -> frozenset[str]:
    """The Chinese characters of a title's tokens (cached: the same titles come back query after query)."""
    return cjk_chars(tokenize(title))


_QUALIFIER = re.compile(_PATTERNS["qualifier"])


def title_named(title: str, question: str) -> bool:
    """Whether ``question`` names ``title`` (folded to simplified, a trailing bracketed qualifier
    dropped, at least two characters): "瓦士本市的地理位置在哪儿？" names "瓦士本市 (威斯康辛州)"."""
    name = _QUALIFIER.sub("", to_simplified(title)).strip()
    return len(name) >= 2 and name in to_simplified(question)


def defines(sentence: str, subject: str) -> bool:
    """Whether ``sentence`` reads as the definition of ``subject``: it opens with it, or says "X是/为/指"
    (lexicon/retrieval.toml ``defines_zh``)."""
    if not subject:
        return False
    text = to_simplified(sentence).lstrip()
    if text.startswith(subject):
        return True
    return re.search(re.escape(subject) + _DEFINES_ZH, text) is not None


def passage_features(
    passages: Sequence[Passage],
    sentence_similarities: Mapping[tuple[str, int, int], float],
    question: str,
    cross_lingual: float,
    chinese: bool,
) -> np.ndarray:
    """One ``scorer.PASSAGE_FEATURE_NAMES`` row per passage (in their order, after
    ``Retriever._sentence_rerank``); ``sentence_similarities`` by (doc_id, start, end), as
    ``Retriever.sentence_similarities`` gives them; ``cross_lingual``: the share of the index in the
    other script than the question."""
    if not passages:
        return np.zeros((0, len(PASSAGE_FEATURE_NAMES)))
    top_fused = max(p.scores.get("fused", 0.0) for p in passages) or 1.0
    top_hand = max(p.score for p in passages) or 1.0
    top_bm25 = max(p.scores.get("bm25", 0.0) for p in passages) or 1.0
    top_translated = max(p.scores.get("translated", 0.0) for p in passages) or 1.0
    by_doc: dict[str, list[tuple[int, int, float]]] = {}
    for (doc, start, end), sim in sentence_similarities.items():
        by_doc.setdefault(doc, []).append((start, end, sim))
    rows = []
    for rank, p in enumerate(passages):
        dense = p.scores.get("dense", 0.0)
        sentence = max((v for a, b, v in by_doc.get(p.doc_id, ()) if p.start <= a and b <= p.end), default=0.0)
        translated = p.scores.get("translated", 0.0) / top_translated
        coverage, chars = p.scores.get("coverage", 0.0), p.scores.get("char_coverage", 0.0)
        title, first = float(title_named(p.title, question)), float(p.metadata.get("chunk_index") == 0)
        rows.append(
            [
                p.scores.get("fused", 0.0) / top_fused,
                dense,
                float("dense" in p.scores),
                p.scores.get("bm25", 0.0) / top_bm25,
                translated,
                coverage,
                chars,
                title,
                first,
                sentence,
                cross_lingual * dense,
                cross_lingual * sentence,
                cross_lingual * translated,
                chars if chinese else 0.0,
                coverage if chinese else 0.0,
                0.0,
                0.0,
                0.0,
                0.0,
                1.0 / (1 + rank),
                p.score / top_hand,
                title * first,
            ]
        )
    x = np.asarray(rows, dtype=float)
    for name in ("dense", "sentence_dense", "coverage", "bm25"):
        column = x[:, PASSAGE_FEATURE_NAMES.index(name)]
        x[:, PASSAGE_FEATURE_NAMES.index(f"{name}_gap")] = column - column.max()
    return x


_PASSAGES: Recorder[tuple[np.ndarray, list[Passage]]] = Recorder("passage_recorder")


def record_passages() -> AbstractContextManager[list[tuple[np.ndarray, list[Passage]]]]:
    """Within the block, every learned ranking appends its passages' feature rows and the passages
    (in the order the rows describe) to the yielded list: the passage ranker's training data."""
    return _PASSAGES.collect()


def term_coverage(
    terms: QueryTerms,
    tokens: set[str] | frozenset[str],
    lexical: CorpusStats,
    topic: frozenset[str] = frozenset(),
    discount: float = 0.0,
) -> float:
    """How much of the question ``tokens`` cover: directly, or through the translation."""
    own = coverage(terms.tokens, tokens, lexical, topic, discount)
    if not terms.groups:
        return own
    return max(own, group_coverage(terms.groups, tokens, lexical, topic, discount))


class Retriever:
    """Dense + lexical + translated-lexical search over one store, fused with weighted RRF."""

    def __init__(self, store: Store, embedder: Embedder, settings: RetrievalSettings | None = None) -> None:
        self.store = store
        self.embedder = embedder
        self.settings = settings or RetrievalSettings()
        self._lexical: LexicalIndex | None = None
        self._lock = threading.Lock()
        self._checked = 0.0
        self._reranker: Any = None
        self._sentence_cache: dict[str, list[tuple[Span, frozenset[str]]]] = {}
        self._sentence_vectors: SentenceVectors | None = None
        # Vectors of sentences the store lacks (an index built before sentence vectors), made on the fly.
        self._encoded: OrderedDict[Key, np.ndarray] = OrderedDict()
        # The last question's sentence similarities, by content key: across languages the passage
        # ranker and then the answer stage ask for the same question's sentences.
        self._last_similarities: tuple[str, dict[Key, float]] = ("", {})

    # The store may be changed by another process (a shared Chroma server, or an ingest from the CLI
    # while the UI runs): we look at the manifest generation at most once a second.
    REFRESH_SECONDS = 1.0

    @property
    def lexical(self) -> LexicalIndex:
        now = time.monotonic()
        if self._lexical is None or now - self._checked > self.REFRESH_SECONDS:
            with self._lock:
                if self._lexical is None or now - self._checked > self.REFRESH_SECONDS:
                    self._checked = now
                    self._refresh()
        assert self._lexical is not None
        return self._lexical

    def _refresh(self) -> None:
        generation = self.store.stored_generation()
        if self._lexical is not None and self._lexical.generation == generation:
            return
        self.store.reload()
        directory = lexical_dir(self.store.index_dir)
        loaded = LexicalIndex.load(directory)
        # ``generation`` is exact: the recorded one when the index is clean, the manifest's own when not.
        if loaded is not None and loaded.generation == generation:
            self._lexical = loaded
            return
        self._lexical = LexicalIndex.build(self.store, loaded or self._lexical)
        try:
            self._lexical.save(directory)
        except OSError:
            pass  # a read-only index directory still answers from memory

    def invalidate(self) -> None:
        """Force a refresh on the next search (after an ingest in this process)."""
        self._checked = 0.0

    def search(self, question: str, filters: Mapping[str, Any] | None = None, k: int | None = None) -> list[Passage]:
        """Top passages for the text ``question`` (``retrieve`` of ``plain_query(question)``)."""
        return self.retrieve(plain_query(question), filters, k)

    def retrieve(self, query: Query, filters: Mapping[str, Any] | None = None, k: int | None = None) -> Retrieved:
        """Top passages for ``query`` (fused and re-ranked), with the best dense similarity of any chunk."""
        k = k or self.settings.top_k
        filters = validate_filters(filters)
        lexical = self.lexical
        question = query.standalone
        terms = query.terms
        weights = self.settings.weights_for(terms.language, lexical.script_share(terms.language))
        rankings: dict[str, list[str]] = {}
        found: dict[str, tuple[str, dict[str, Any]]] = {}
        per: dict[str, dict[str, float]] = {}

        best_dense = 0.0
        if weights.get("dense", 0) > 0 and len(lexical):
            qvec = self.embedder.encode_queries([query.standalone])[0]
            hits = self.store.query(qvec, self.settings.dense_k, chroma_where(filters))
            rankings["dense"] = [h[0] for h in hits]
            for cid, text, meta, sim in hits:
                found[cid] = (text, meta)
                per.setdefault(cid, {})["dense"] = sim
            best_dense = max((h[3] for h in hits), default=0.0)
        for name, weighted in (("bm25", terms.tokens), ("translated", terms.translated)):
            if weights.get(name, 0) <= 0 or not weighted:
                continue
            top = lexical.top(weighted, self.settings.lexical_k, filters)
            rankings[name] = [lexical.ids[i] for i, _ in top]
            for i, score in top:
                cid = lexical.ids[i]
                found.setdefault(cid, (lexical.texts[i], lexical.metas[i]))
                per.setdefault(cid, {})[name] = score
        fused = rrf(rankings, weights, self.settings.rrf_k)
        depth = max(k, self.settings.rerank_top if self.settings.reranker else k)
        if self.settings.sentence_weight > 0:
            depth = max(depth, self.settings.sentence_depth)
        passages = []
        for cid, score in fused[:depth]:
            text, meta = found[cid]
            passages.append(
                Passage(
                    chunk_id=cid,
                    doc_id=str(meta.get("doc_id", "")),
                    text=text,
                    start=int(meta.get("start", 0)),
                    end=int(meta.get("end", 0)),
                    score=score,
                    metadata=meta,
                    sentences=sentences_of(meta),
                    scores=per.get(cid, {}),
                )
            )
        if self.settings.sentence_weight > 0 and passages:
            passages = self._sentence_rerank(passages, terms, lexical, question)
            if self.settings.learned_ranking:
                passages = self._learned_rank(passages, terms, lexical, question)
        if self.settings.reranker and passages:
            passages = self._rerank(question, passages)
        return Retrieved(passages[:k], best_dense)

    @property
    def sentence_vectors(self) -> SentenceVectors:
        if self._sentence_vectors is None:
            self._sentence_vectors = SentenceVectors.of(self.store.index_dir, self.embedder)
        return self._sentence_vectors

    def sentence_similarities(self, question: str, passages: Sequence[Passage]) -> dict[tuple[str, int, int], float]:
        """Cosine similarity between ``question`` (one query encode, cached by the embedder) and every
        candidate sentence of ``passages``, by (doc_id, start, end). Vectors come from the index's
        sentence store (``assistant.sentences``); sentences it lacks are encoded here and kept in
        memory (float16, like the stored ones). The last question's similarities are kept too."""
        wanted: list[tuple[tuple[str, int, int], Key, str]] = []
        for p in passages:
            h = hash_key(str(p.metadata.get("doc_hash", "")))
            for sp in candidate_spans(p.text, p.start, p.sentences):
                wanted.append(((p.doc_id, sp.start, sp.end), (h, sp.start, sp.end), p.span_text(sp)))
        if not wanted:
            return {}
        asked, known = self._last_similarities
        if asked != question:
            known = {}
        todo = [(k, text) for _, k, text in wanted if k not in known]
        if todo:
            known = {**known, **self._similarities(question, todo)}
            self._last_similarities = (question, known)
        return {name: known[k] for name, k, _ in wanted if k in known}

    def _similarities(self, question: str, wanted: list[tuple[Key, str]]) -> dict[Key, float]:
        """``sentence_similarities`` for sentences by content key and text, without the cache."""
        qvec = np.asarray(self.embedder.encode_queries([question])[0], dtype=np.float32)
        found = self.sentence_vectors.lookup([k for k, _ in wanted])
        missing = {k: text for (k, text), v in zip(wanted, found, strict=True) if v is None and k not in self._encoded}
        if missing:
            vectors = self.embedder.encode_passages(list(missing.values()))
            for k, v in zip(missing, vectors, strict=True):
                self._encoded[k] = np.asarray(v, dtype=np.float16).astype(np.float32)
            while len(self._encoded) > 20000:
                self._encoded.popitem(last=False)
        out: dict[Key, float] = {}
        for (k, _), v in zip(wanted, found, strict=True):
            vec = v if v is not None else self._encoded.get(k)
            if vec is not None and len(vec) == len(qvec):
                out[k] = float(vec @ qvec)
        return out

    def sentence_tokens(self, passage: Passage) -> list[tuple[Span, frozenset[str]]]:
        """The passage's sentences with their token sets (cached per chunk: chunks are immutable)."""
        cached = self._sentence_cache.get(passage.chunk_id)
        if cached is None:
            spans = passage.sentences or [Span(passage.start, passage.end)]
            cached = [(span, frozenset(cached_tokens(passage.span_text(span)))) for span in spans]
            if len(self._sentence_cache) > 20000:
                self._sentence_cache.clear()
            self._sentence_cache[passage.chunk_id] = cached
        return cached

    def _sentence_rerank(
        self, passages: list[Passage], terms: QueryTerms, lexical: LexicalIndex, question: str = ""
    ) -> list[Passage]:
        top = max(p.score for p in passages) or 1.0
        share = lexical.script_share("zh") if terms.language == "zh" else 0.0
        char_weight = self.settings.char_weight * share
        title_weight = self.settings.title_weight * share
        question_chars = cjk_chars(t for t, _ in terms.tokens) if char_weight > 0 else frozenset()
        lead_weight = self.settings.lead_weight * share
        definition_weight = self.settings.definition_weight if terms.language == "zh" else 0.0
        subject = definition_subject(question) if definition_weight > 0 else ""
        for p in passages:
            sentences = self.sentence_tokens(p)
            covs = [term_coverage(terms, toks, lexical) for _, toks in sentences]
            if subject:
                for i, (span, _) in enumerate(sentences):
                    if defines(p.span_text(span), subject):
                        covs[i] += definition_weight
            best = max(covs, default=0.0)
            if question_chars:
                weights = [(c, lexical.char_idf(c)) for c in sorted(question_chars - _title_chars(p.title))]
                chars = max((char_coverage(weights, cjk_chars(toks)) for _, toks in sentences), default=0.0)
                p.scores["char_coverage"] = chars
                best += char_weight * chars
            if title_weight > 0 and title_named(p.title, question):
                best += title_weight
                if p.metadata.get("chunk_index") == 0:
                    best += lead_weight
            p.scores["coverage"] = best
            p.scores["fused"] = p.score
            p.score = p.score / top + self.settings.sentence_weight * best
        return sorted(passages, key=lambda p: -p.score)

    def _learned_rank(
        self, passages: list[Passage], terms: QueryTerms, lexical: LexicalIndex, question: str
    ) -> list[Passage]:
        """The passages by the shipped passage ranker's probability when enough of the index is in
        the other script (``learned_ranking_other_script``); as they are otherwise, or without a shipped
        ranker. Recorded for training within ``record_passages`` either way."""
        own_share = lexical.script_share("zh" if terms.language == "zh" else "en")
        model = shipped_passage_ranker()
        if model is not None and 1.0 - own_share < self.settings.learned_ranking_other_script:
            model = None  # within one language the hand order stands
        if model is None and not _PASSAGES.active:
            return passages  # nothing to rank or record: no sentence lookups on this path
        features = passage_features(
            passages, self.sentence_similarities(question, passages), question, 1.0 - own_share, terms.language == "zh"
        )
        _PASSAGES.add((features, list(passages)))
        if model is None:
            return passages
        probabilities = model.probabilities(features)
        for p, prob in zip(passages, probabilities, strict=True):
            p.scores["ranker"] = p.score = float(prob)
        return [passages[i] for i in np.argsort(-probabilities, kind="stable")]

    def _rerank(self, question: str, passages: list[Passage]) -> list[Passage]:
        if self._reranker is None:
            from sentence_transformers import CrossEncoder

            try:
                self._reranker = CrossEncoder(self.settings.reranker, device=self.embedder.settings.device)
            except Exception as exc:
                raise ConfigError(f"cannot load reranker '{self.settings.reranker}': {exc}") from exc
        scores = self._reranker.predict([(question, p.text) for p in passages], show_progress_bar=False)
        for p, s in zip(passages, scores, strict=True):
            p.scores["rerank"] = float(s)
        return sorted(passages, key=lambda p: -p.scores["rerank"])
