"""Names in Chinese text as jieba's part-of-speech tagger finds them, without importing ``jieba.posseg``.

``chat.entities`` needs, for every Chinese question, the words ``jieba.posseg.lcut`` tags as a place,
person, organization or other proper noun (``ns nr nt nz nrt``), two characters or longer. Importing
``jieba.posseg`` builds a word -> tag table of all 349k lines of jieba's dictionary and loads the
tagger's HMM tables: ~0.3-0.4 s (over 1 s on a loaded machine) on the first Chinese question of every
process, and ~40 MB kept for good.

``name_words`` gives the same words in the same order from smaller data: the dictionary words whose tag is
a name tag (~111k) and the HMM tables, taken once from ``jieba.posseg`` itself and cached with ``marshal``
in ``$ASSISTANT_CACHE_DIR`` (``jieba-names-v1-<key>.marshal``, keyed by jieba's version and the
dictionary file's path, size and modification time, so an edited dictionary is never read stale); a
process loads the file in ~30 ms. Segmentation is jieba's own (``jieba.dt``: its prefix dictionary and
route, the one ``text`` initialised); the walk over the route and the HMM tagging of runs of single
characters that jieba does not know repeat ``jieba.posseg.POSTokenizer``'s HMM mode (jieba 0.42, MIT
licence) keeping only what can be a name. ``tests/test_zh_names.py`` compares it with
``jieba.posseg.lcut`` on the gold questions and the sample corpus.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .atomic import write_atomic
from .text import _get_jieba

NAME_FLAGS = frozenset(("ns", "nr", "nt", "nz", "nrt"))
_FORMAT = 1

# jieba.posseg's block patterns (HMM mode).
_HAN_INTERNAL = re.compile("([\u4e00-\u9fd5a-zA-Z0-9+#&\\._]+)")
_HAN_DETAIL = re.compile("([\u4e00-\u9fd5]+)")
# Characters of a text that go through the HMM at most: each costs the HMM's states squared (~4 ms
# for a character outside its table), so 2,000 rare characters took 7.7 s. A question's unknown runs
# are names of a few characters; past the budget, runs are left untagged (no names).
MAX_HMM_CHARS = 40  # development questions send at most 38
_MIN_FLOAT = -3.14e100
_MIN_INF = float("-inf")

_State = tuple[str, str]  # (B/M/E/S, part-of-speech tag)


class _Tables:
    """The name words of jieba's dictionary and the tagger's HMM tables."""

    def __init__(self, names: frozenset[str], hmm: tuple[Any, Any, Any, Any]) -> None:
        self.names = names
        self.char_state, self.start, self.trans, self.emit = hmm


_tables: _Tables | None = None
_lock = threading.Lock()
_user_tags: dict[str, str] = {}  # words added with jieba.add_word(tag=...) since start-up


def _dict_path(tokenizer: Any) -> Path:
    import jieba

    if tokenizer.dictionary is None or tokenizer.dictionary == jieba.DEFAULT_DICT:
        return Path(jieba.__file__).resolve().parent / jieba.DEFAULT_DICT_NAME
    return Path(os.path.abspath(tokenizer.dictionary))


def _cache_file(tokenizer: Any) -> tuple[Path | None, tuple[object, ...]]:
    import jieba

    from .config import Settings

    path = _dict_path(tokenizer)
    try:
        st = path.stat()
    except OSError:
        return None, ()
    key = (_FORMAT, getattr(jieba, "__version__", "?"), str(path), st.st_size, st.st_mtime_ns)
    try:
        cache = Settings.from_env(only={"cache_dir"}).cache_dir
    except Exception:  # a bad ASSISTANT_CACHE_DIR is reported by the command itself; here: no cache
        return None, key
    digest = hashlib.sha256(repr(key).encode("utf-8")).hexdigest()[:16]
    return cache / f"jieba-names-v{_FORMAT}-{digest}.marshal", key


def _build(tokenizer: Any) -> tuple[list[str], tuple[Any, Any, Any, Any]]:
    """From ``jieba.posseg`` itself (the slow import, once per dictionary)."""
    from jieba.posseg import POSTokenizer, char_state_tab, prob_emit, prob_start, prob_trans

    pos = POSTokenizer(tokenizer)
    names = sorted(w for w, t in pos.word_tag_tab.items() if t in NAME_FLAGS and len(w) >= 2)
    return names, (char_state_tab.P, prob_start.P, prob_trans.P, prob_emit.P)


def _load(tokenizer: Any) -> _Tables:
    cache_file, key = _cache_file(tokenizer)
    if cache_file is not None:
        try:
            # Our own file, in the user's cache directory; loads() of the bytes: load() of the file
            # object reads it in small pieces, 8x slower.
            stored_key, names, hmm = marshal.loads(cache_file.read_bytes())
            if stored_key == key and isinstance(names, str) and isinstance(hmm, tuple) and len(hmm) == 4:
                return _Tables(frozenset(names.split("\n")), hmm)
        except Exception:  # missing, truncated, corrupt or foreign file: build it again
            pass
    words, hmm = _build(tokenizer)
    if cache_file is not None:
        _write(cache_file, (key, "\n".join(words), hmm))
    return _Tables(frozenset(words), hmm)


def _write(cache_file: Path, data: Any) -> None:
    """Atomically (temp file + rename): a concurrent reader never sees half a file."""
    try:
        write_atomic(cache_file, marshal.dumps(data))
        # Files of earlier formats go; another dictionary's file stays: two installs on one machine
        # (each with its own jieba) would otherwise delete each other's and rebuild on every start.
        for old in cache_file.parent.glob("jieba-names-v*.marshal"):
            if not old.name.startswith(f"jieba-names-v{_FORMAT}-"):
                old.unlink(missing_ok=True)
    except OSError:
        pass  # a read-only cache directory only costs the build on each start


def _get_tables() -> _Tables:
    global _tables
    if _tables is None:
        with _lock:
            if _tables is None:
                _tables = _load(_get_jieba().dt)
    return _tables


def warm_up() -> None:
    """Load jieba and the name tables now (the first Chinese question would otherwise pay it)."""
    _get_tables()


def name_words(text: str, hmm_chars: int = MAX_HMM_CHARS) -> list[str]:
    """The words of ``text`` that ``jieba.posseg.lcut`` tags ns, nr, nt, nz or nrt, two characters or
    longer, in order: ``[w for w, f in jieba.posseg.lcut(text) if f in NAME_FLAGS and len(w) >= 2]``,
    as long as the HMM reads at most ``hmm_chars`` characters; past that, runs
    of characters outside the dictionary give no names."""
    tokenizer = _get_jieba().dt
    tables = _get_tables()
    if tokenizer.user_word_tag_tab:  # posseg moves these into its table on each cut; so do we
        _user_tags.update(tokenizer.user_word_tag_tab)
    found: list[str] = []
    budget = [hmm_chars]  # spent by every run the HMM reads
    for block in _HAN_INTERNAL.split(text):
        if _HAN_INTERNAL.match(block):  # anything else gets tags x, m or eng: never a name
            found.extend(w for w, f in _cut_dag(block, tokenizer, tables, budget)
                         if f in NAME_FLAGS and len(w) >= 2)
    return found


def _is_name(word: str, tables: _Tables) -> bool:
    if word in _user_tags:
        return _user_tags[word] in NAME_FLAGS
    return word in tables.names


def _cut_dag(sentence: str, tokenizer: Any, tables: _Tables, budget: list[int]) -> Iterator[tuple[str, str]]:
    """``POSTokenizer.__cut_DAG`` for words of two characters or more: (word, "name" or "") pairs,
    except HMM words, which carry their own tag (within ``budget[0]`` HMM characters; spent here)."""
    dag = tokenizer.get_DAG(sentence)
    route: dict[int, tuple[float, int]] = {}
    tokenizer.calc(sentence, dag, route)
    x, buf, n = 0, "", len(sentence)
    while x < n:
        y = route[x][1] + 1
        word = sentence[x:y]
        if y - x == 1:
            buf += word
        else:
            if len(buf) > 1 and not tokenizer.FREQ.get(buf):
                yield from _cut_detail(buf, tables, budget)
            buf = ""  # one character, or known characters tagged one by one: never a name here
            yield word, ("nr" if _is_name(word, tables) else "")  # any name flag: only membership counts
        x = y
    if len(buf) > 1 and not tokenizer.FREQ.get(buf):
        yield from _cut_detail(buf, tables, budget)


def _cut_detail(sentence: str, tables: _Tables, budget: list[int]) -> Iterator[tuple[str, str]]:
    for block in _HAN_DETAIL.split(sentence):
        if _HAN_DETAIL.match(block):  # the rest are numbers (m), Latin (eng) or other (x)
            if len(block) > budget[0]:
                budget[0] = 0
                yield block, "x"
                continue
            budget[0] -= len(block)
            yield from _cut_hmm(block, tables)


def _cut_hmm(sentence: str, tables: _Tables) -> Iterator[tuple[str, str]]:
    """``POSTokenizer.__cut``: the HMM's words and tags for a run of Chinese characters."""
    route = _viterbi(sentence, tables)
    begin, nexti = 0, 0
    for i, char in enumerate(sentence):
        pos = route[i][0]
        if pos == "B":
            begin = i
        elif pos == "E":
            yield sentence[begin : i + 1], route[i][1]
            nexti = i + 1
        elif pos == "S":
            yield char, route[i][1]
            nexti = i + 1
    if nexti < len(sentence):
        yield sentence[nexti:], route[nexti][1]


def _viterbi(obs: str, tables: _Tables) -> list[_State]:
    """``jieba.posseg.viterbi.viterbi``, step for step (ties break the same way)."""
    states, start_p, trans_p, emit_p = tables.char_state, tables.start, tables.trans, tables.emit
    v: list[dict[_State, float]] = [{}]
    mem_path: list[dict[_State, Any]] = [{}]
    all_states = trans_p.keys()
    for y in states.get(obs[0], all_states):
        v[0][y] = start_p[y] + emit_p[y].get(obs[0], _MIN_FLOAT)
        mem_path[0][y] = ""
    for t in range(1, len(obs)):
        v.append({})
        mem_path.append({})
        prev_states = [x for x in mem_path[t - 1].keys() if len(trans_p[x]) > 0]
        prev_expect_next = {y for x in prev_states for y in trans_p[x].keys()}
        obs_states: Any = set(states.get(obs[t], all_states)) & prev_expect_next
        if not obs_states:
            obs_states = prev_expect_next if prev_expect_next else all_states
        for y in obs_states:
            prob, state = max(
                (v[t - 1][y0] + trans_p[y0].get(y, _MIN_INF) + emit_p[y].get(obs[t], _MIN_FLOAT), y0)
                for y0 in prev_states
            )
            v[t][y] = prob
            mem_path[t][y] = state
    _, state = max((v[-1][y], y) for y in mem_path[-1].keys())
    route: list[Any] = [None] * len(obs)
    i = len(obs) - 1
    while i >= 0:
        route[i] = state
        state = mem_path[i][state]
        i -= 1
    return route
