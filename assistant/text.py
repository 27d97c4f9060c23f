"""Tokenization for BM25 and lexical overlap, for Chinese, English and mixed text.

English runs are lower-cased, stop words are dropped, British spellings become American
(``lexicon/en_spelling.toml``: programme -> program, centre -> center, -ise -> -ize, -our -> -or)
and the rest is Snowball-stemmed (PyStemmer);
Chinese runs are folded to simplified characters (OpenCC ``t2s``), segmented with jieba, and the
character bigrams of each stop-word-free stretch are added (so that a question still meets a
passage that jieba segmented differently). Numbers are kept as tokens, with
thousands separators removed. The heavy resources (jieba's dictionary, the OpenCC tables, the
stemmer) are created once, lazily, and ``warm_up()`` creates them ahead of the first query.
"""

from __future__ import annotations

import logging
import marshal
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

from .lexicons import words

__all__ = [
    "EN_STOPWORDS",
    "ZH_STOPWORDS",
    "american",
    "cjk_chars",
    "content_words",
    "detect_language",
    "has_cjk",
    "segment_zh",
    "split_scripts",
    "stem",
    "to_simplified",
    "tokenize",
    "warm_up",
]

# --- scripts -------------------------------------------------------------------------------------

# CJK ideographs only (unified, extension A, compatibility, extensions B..H, and 〇): CJK punctuation
# and full-width forms are deliberately *not* here, so they fall into the "other" runs and are dropped
# (or, for full-width letters and digits, NFKC-folded to ASCII) like any punctuation.
_CJK_CLASS = "\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_CJK_RUN_RE = re.compile(f"[{_CJK_CLASS}]+")
_CJK_CHAR_RE = re.compile(f"[{_CJK_CLASS}]")
# Lone UTF-16 surrogates (a JSON "\\ud800" escape, a broken PDF text map, a Python str from an API
# caller): not encodable as UTF-8, so the tokenizers, the embedding model and Chroma fail on them.
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def has_cjk(text: str) -> bool:
    """True when ``text`` holds a Chinese character."""
    return _CJK_CHAR_RE.search(text) is not None


def replace_surrogates(text: str) -> str:
    """Lone surrogates replaced one for one by U+FFFD (offsets into the text are unchanged)."""
    return _SURROGATE_RE.sub("\ufffd", text)


def has_surrogates(text: str) -> bool:
    return _SURROGATE_RE.search(text) is not None


# Latin words for language detection (ASCII and full-width letters; digits do not count).
_LATIN_WORD_RE = re.compile(r"[A-Za-z\uff21-\uff3a\uff41-\uff5a]+")

# A token in a non-CJK run: either a number with decimal/thousands separators that is not glued to
# a letter ("30,000", "92.3"), or a run of letters/digits with inner apostrophes ("China's", "5G").
_OTHER_TOKEN_RE = re.compile(r"\d+(?:[.,]\d+)+(?![^\W_])|[^\W_]+(?:['\u2019][^\W_]+)*")
_THOUSANDS_RE = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?")

# Share of Chinese units above which a text is "zh", below which it is "en"; in between "mixed".
# A latin word counts _LATIN_WORD_UNITS units: a Chinese word is ~1.5-2 characters, so counting each
# English word as 1.5 puts both scripts on a similar "word" scale.
_LATIN_WORD_UNITS = 1.5
_ZH_SHARE = 0.6
_EN_SHARE = 0.3

# --- stop words ----------------------------------------------------------------------------------

# The lists live in assistant/lexicon/en.toml and zh.toml (with the reasons behind them).
EN_STOPWORDS: frozenset[str] = words("en", "stopwords")
# Upper-case stop words that are acronyms in this domain (IT, US, WHO): kept when written in capitals.
_ACRONYM_STOPWORDS: frozenset[str] = words("en", "acronym_stopwords")
# Chinese function words, pronouns, particles and question words, compared against jieba's words.
ZH_STOPWORDS: frozenset[str] = words("zh", "stopwords")

# --- lazy singletons -----------------------------------------------------------------------------

_lock = threading.RLock()
_jieba: Any = None  # the jieba module once initialised (typed Any: jieba ships no type hints)
_opencc: Any = None
_opencc_trigger: frozenset[str] | None = None  # characters t2s can change; None = always convert
_stemmer: Any = None
_stem_lock = threading.Lock()  # PyStemmer objects are not thread-safe


class _MarshalOfBytes:
    """What jieba calls ``marshal`` (its module global): ``load`` reads the whole file, then ``loads``.
    jieba reads its prefix-dictionary cache (9 MB) with ``marshal.load(file)``, which reads a file object
    in small pieces: 0.61-0.73 s CPU for ``jieba.initialize()`` against 0.22-0.25 s (4 runs each,
    interleaved, separate processes). The same file, the same checks; only the reading changes."""

    @staticmethod
    def load(f: Any) -> Any:
        return marshal.loads(f.read())

    dump = staticmethod(marshal.dump)


def _get_jieba() -> Any:
    """jieba with its dictionary loaded and its log quietened, initialised once per process."""
    global _jieba
    if _jieba is None:
        with _lock:
            if _jieba is None:
                import jieba

                jieba.setLogLevel(logging.WARNING)  # it logs "Building prefix dict..." at INFO
                if getattr(jieba, "marshal", None) is marshal:  # only where jieba uses the standard module
                    jieba.marshal = _MarshalOfBytes
                jieba.initialize()
                _jieba = jieba
    return _jieba


def _get_opencc() -> Any:
    """The OpenCC t2s converter (slow to build, so built once)."""
    global _opencc, _opencc_trigger
    if _opencc is None:
        with _lock:
            if _opencc is None:
                from opencc import OpenCC

                cc = OpenCC("t2s")
                cc.convert("")  # loads the tables now rather than on the first real call
                _opencc_trigger = _trigger_chars(cc)
                _opencc = cc
    return _opencc


def _trigger_chars(cc: Any) -> frozenset[str] | None:
    """Characters occurring in any t2s table key, so text without them can skip conversion.

    Most input is already simplified; skipping the pure-Python converter for it saves ~40 us per
    sentence. Reads the converter's loaded tables; if their layout is not the expected one (another
    version of the package), returns None and every text is converted.
    """
    try:
        chars: set[str] = set()
        stack: list[Any] = list(cc._dict_chain_data)
        while stack:
            item = stack.pop()
            if isinstance(item, tuple) and len(item) == 3 and isinstance(item[2], dict):
                for key in item[2]:
                    chars.update(key)
            elif isinstance(item, list):
                stack.extend(item)
            else:
                return None
        return frozenset(chars) if chars else None
    except Exception:  # any surprise (another package version) just disables the fast path
        return None


def _get_stemmer() -> Any:
    global _stemmer
    if _stemmer is None:
        with _lock:
            if _stemmer is None:
                import Stemmer

                _stemmer = Stemmer.Stemmer("english")
    return _stemmer


def warm_up() -> None:
    """Load jieba's dictionary, the OpenCC tables and the stemmer now, so the first query is fast."""
    _get_jieba()
    _get_opencc()
    stem("warming")


# --- public helpers ------------------------------------------------------------------------------


def split_scripts(text: str) -> list[tuple[str, str]]:
    """Split text into maximal runs of CJK ideographs ("zh") and everything else ("other").

    The substrings concatenate back to ``text``.
    """
    runs: list[tuple[str, str]] = []
    pos = 0
    for m in _CJK_RUN_RE.finditer(text):
        if m.start() > pos:
            runs.append(("other", text[pos : m.start()]))
        runs.append(("zh", m.group()))
        pos = m.end()
    if pos < len(text):
        runs.append(("other", text[pos:]))
    return runs


def detect_language(text: str) -> str:
    """Return "zh", "en" or "mixed" from the share of CJK characters vs latin words.

    Each CJK character is one unit and each latin word 1.5 units; a Chinese share of at least 0.6 is
    "zh", at most 0.3 is "en". Text with neither script (empty, digits, emoji) is "en".
    """
    zh = len(_CJK_CHAR_RE.findall(text))
    en = len(_LATIN_WORD_RE.findall(text)) * _LATIN_WORD_UNITS
    if zh + en == 0:
        return "en"
    share = zh / (zh + en)
    if share >= _ZH_SHARE:
        return "zh"
    if share <= _EN_SHARE:
        return "en"
    return "mixed"


def to_simplified(text: str) -> str:
    """Convert traditional Chinese characters to simplified (OpenCC t2s); other text is unchanged."""
    if not text:
        return text
    cc = _get_opencc()
    trigger = _opencc_trigger
    if trigger is not None and trigger.isdisjoint(text):
        return text
    return str(cc.convert(text))


# British -> American: whole words, word beginnings, -ise endings, the ending rule's shortest stem,
# and the -ise words (and endings) it leaves alone.
_Spelling = tuple[dict[str, str], list[tuple[str, str]], list[tuple[str, str]], int, tuple[str, ...], frozenset[str]]


@lru_cache(maxsize=1)
def _spelling() -> _Spelling:
    """British -> American spelling data (``lexicon/en_spelling.toml``), read once."""
    import tomllib
    from importlib import resources

    data = tomllib.loads((resources.files("assistant") / "lexicon" / "en_spelling.toml").read_text(encoding="utf-8"))
    suffixes = data["suffixes"]
    return (
        dict(data["words"]),
        sorted(data["prefixes"].items(), key=lambda kv: -len(kv[0])),  # longest first: "kilometre" before "metre"
        [(a, b) for a, b in suffixes["rules"]],
        int(suffixes["min_stem"]),
        tuple(suffixes["exception_endings"]),
        frozenset(suffixes["exceptions"]),
    )


@lru_cache(maxsize=65536)
def american(word: str) -> str:
    """The American spelling of a lower-case English word ("programmes" -> "programs", "centre" ->
    "center", "organised" -> "organized"), or the word itself: British and American texts then
    share their tokens."""
    words, prefixes, rules, min_stem, endings, exceptions = _spelling()
    if word in words:
        return words[word]
    for british, us in prefixes:
        if word.startswith(british):
            return us + word[len(british) :]
    for british, us in rules:
        if word.endswith(british):
            base = word[: -len(british)]
            ise = base + "ise"
            if len(base) >= min_stem and ise not in exceptions and not ise.endswith(endings):
                return base + us
            break
    return word


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """Snowball English stem of one lower-case word (cached: vocabularies are small)."""
    stemmer = _get_stemmer()
    with _stem_lock:
        return str(stemmer.stemWord(word))


def segment_zh(text: str) -> list[str]:
    """jieba's precise-mode segmentation of the CJK runs of ``text`` after folding to simplified.

    Non-CJK runs are skipped. Used for dictionary translation, where each word is a unit of meaning;
    for indexing use ``tokenize``.
    """
    jieba = _get_jieba()
    words: list[str] = []
    for kind, run in split_scripts(unicodedata.normalize("NFKC", text)):
        if kind == "zh":
            words.extend(jieba.lcut(to_simplified(run)))
    return words


def jieba_words(text: str) -> list[str]:
    """jieba's precise-mode words of the whole of ``text`` (every script, spaces kept), folded to
    simplified; joined, they give ``to_simplified(text)``."""
    return list(_get_jieba().lcut(to_simplified(text)))


# --- tokenization --------------------------------------------------------------------------------


def _zh_search(run: str) -> list[str]:
    """jieba search mode: the words plus the dictionary sub-words of long words (measured, not used)."""
    return list(_get_jieba().lcut_for_search(run))


def _zh_words_bigrams(run: str) -> list[str]:
    """jieba's words (stop words dropped) plus the character bigrams of each stop-word-free stretch.

    The bigrams make matching robust to segmentation disagreements between a question and a
    passage (jieba cuts 智能网联 as 智能网|联, so a question saying 网联 would otherwise never match)
    and cover the sub-words of long words. Bigrams do not cross a stop word, so 哪些重 yields no 些重.
    """
    out: list[str] = []
    span: list[str] = []

    def flush() -> None:
        # every bigram occurrence counts (BM25 term frequency), except where it *is* a two-character
        # word at the same position, which was already emitted as that word
        pos = 0
        word_at: set[int] = set()
        for w in span:
            if len(w) == 2:
                word_at.add(pos)
            pos += len(w)
        joined = "".join(span)
        out.extend(joined[i : i + 2] for i in range(len(joined) - 1) if i not in word_at)
        span.clear()

    for word in _get_jieba().lcut(run):
        if word in ZH_STOPWORDS or word.isspace():
            flush()
            continue
        out.append(word)
        span.append(word)
    flush()
    return out


# Which segmentation ``tokenize`` uses for CJK runs, chosen on the tiny ranking check in
# tests/test_text.py (10 Chinese passages, 30 questions, BM25): words + span bigrams ranked the
# relevant passage first for 30/30 questions (mean score margin 0.81), lcut_for_search for 29/30
# (0.75), words + all run bigrams for 30/30 (0.79) with ~1.5x the tokens, plain lcut for 28/30.
_zh_segment: Callable[[str], list[str]] = _zh_words_bigrams


def _zh_tokens(run: str, out: list[str]) -> None:
    for word in _zh_segment(to_simplified(run)):
        # the segmenters may return stop words and (for the measured alternatives) whitespace
        if word not in ZH_STOPWORDS and not word.isspace():
            out.append(word)


def _other_tokens(run: str, out: list[str]) -> None:
    for m in _OTHER_TOKEN_RE.finditer(run):
        raw = m.group()
        if raw[0].isdigit() and ("," in raw or "." in raw):
            if "," in raw and not _THOUSANDS_RE.fullmatch(raw):
                # "1,2" is a list, not a number: keep the parts
                out.extend(p for p in raw.split(",") if p)
            else:
                out.append(raw.replace(",", ""))
            continue
        if raw in _ACRONYM_STOPWORDS:
            out.append(raw.lower())
            continue
        word = raw.lower().replace("\u2019", "'")
        if word in EN_STOPWORDS:
            continue
        if "'" in word:
            # possessive "china's" -> "china"; other apostrophes ("o'clock") are just removed
            word = word[:-2] if word.endswith("'s") else word
            word = word.replace("'", "")
            if not word or word in EN_STOPWORDS:
                continue
        if len(word) == 1 and not word.isdigit():
            continue  # stray letters ("e.g.", "U.S.") carry no meaning on their own
        if word.isdigit() or any(c.isdigit() for c in word):
            out.append(word)  # "2023", "5g": stemming would be meaningless
        else:
            out.append(stem(american(word)))  # British and American spellings meet


def tokenize(text: str) -> list[str]:
    """Tokens of ``text`` for BM25: stemmed English content words, jieba words, numbers.

    Chinese is folded to simplified, segmented with jieba and completed with character bigrams (not
    across stop words); stop words and punctuation
    are dropped; "30,000" becomes "30000" and "92.3%" becomes "92.3".
    """
    if not text:
        return []
    text = unicodedata.normalize("NFKC", text)  # full-width letters/digits -> ASCII, compat ideographs
    out: list[str] = []
    for kind, run in split_scripts(text):
        if kind == "zh":
            _zh_tokens(run, out)
        else:
            _other_tokens(run, out)
    return out


@lru_cache(maxsize=16384)
def cached_tokens(text: str) -> tuple[str, ...]:
    """``tokenize`` of a stored sentence, cached: the passages' sentences are tokenized once for
    reranking and again for the answer, and jieba and OpenCC cost most of a Chinese answer's time."""
    return tuple(tokenize(text))


def cjk_chars(tokens: Iterable[str]) -> frozenset[str]:
    """The Chinese characters of ``tokens`` (e.g. of ``tokenize``: simplified, without stop words).

    Sentence reranking matches a question to a sentence character by character as well as word by
    word, for the paraphrases that share no word: 出生地 / 生于, 体重 / 公斤重.
    """
    return frozenset(c for t in tokens for c in t if _CJK_CHAR_RE.match(c))


def content_words(text: str) -> list[str]:
    """The tokens of ``text`` (see ``tokenize``) without repeats, in first-seen order."""
    return _dedupe(tokenize(text))


def _dedupe(tokens: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(tokens))
