"""Fuzzing (hypothesis, bounded) of the functions that read untrusted text: file decoding, document
splitting, the JSON Lines loader, the tokenizer, the dictionary translation and the follow-up rewriter.

Each property is "never crashes" (or "only ever raises ``DocumentError``") plus the invariant that
matters there. The chunker's own properties live in tests/test_chunking.py and are not repeated here.
Bounded: at most 100 examples per property, no deadline (the machine is shared and loaded).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from assistant import chunking
from assistant.chat import rewrite
from assistant.documents import decode_bytes, load_file, split_text
from assistant.errors import DocumentError
from assistant.text import tokenize
from assistant.translate import translate_en_to_zh, translate_zh_to_en

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --------------------------------------------------------------------------- strategies

# Characters that break naive text handling: CJK (simplified, traditional, extension A), full-width
# punctuation, emoji (with ZWJ sequences and flags), zero-width and bidi controls, C0/C1 controls,
# line and paragraph separators, the BOM, the replacement character, combining marks.
_SPECIAL = list(
    "产教融合联盟常州苏州職業學校與企業㐀䶵。，、；：？！“”‘’（）《》【】…—·\u3000"
    "\u200b\u200c\u200d\u2060\ufeff\u202e\u202d\u2028\u2029\ufffd\u0301\u00a0"
    "\x00\x01\x07\x08\x0b\x0c\x1b\x1f\x7f\x85\x9f"
) + ["🤖", "🇨🇳", "👩‍🔧", "😀", "𠀀", "\r\n", "\n", "\t"]
_WORDS = ["alliance", "Suzhou", "Co.", "Ltd.", "U.S.", "e.g.", "2.744", "92.3%", "30,000", "it", "its", "What about",
          "And", "呢", "其", "它", "他们", "该", "那里", "联盟", "Zhong Guo Xin Wen Wang· 2025-10-28 05:25", "icon",
          "Workflow", "扫一扫在手机打开当前页", "<script>alert(1)</script>", "'; DROP TABLE x; --", "{}", "[1]",
          "\n第一号产教融合联盟新闻标题\n", "\n苏州标准化联盟成立大会召开\n", "\nXin Hua Ri Bao· 2025-10-26\n"]


@st.composite
def hostile_text(draw: st.DrawFn, max_parts: int = 40) -> str:
    """Mixed scripts, emoji, control and zero-width characters, digest-like lines and plain unicode."""
    parts = draw(
        st.lists(
            st.one_of(
                st.sampled_from(_SPECIAL),
                st.sampled_from(_WORDS),
                st.text(max_size=12),  # any unicode (no surrogates)
                st.sampled_from([" ", "  ", "\n", "\n\n", ". ", "。"]),
            ),
            max_size=max_parts,
        )
    )
    return "".join(parts)


any_text = st.one_of(hostile_text(), st.text(max_size=200))


# --------------------------------------------------------------------------- decoding and splitting


def _encoded(text: str) -> list[bytes]:
    out = [text.encode("utf-8"), b"\xef\xbb\xbf" + text.encode("utf-8"), text.encode("utf-16")]
    for codec in ("gb18030", "big5"):
        out.append(text.encode(codec, errors="replace"))
    return out


@FUZZ
@given(st.one_of(st.binary(max_size=2000), any_text.map(lambda t: t.encode("utf-8", "surrogatepass")),
                 st.tuples(any_text, st.integers(0, 4), st.binary(max_size=8)).map(
                     lambda x: _encoded(x[0])[x[1]] + x[2])))
@example(b"")
@example(b"\x00" * 40)
@example(b"\xff\xfe")
@example(b"\xfe\xff\x00")
@example("产教融合".encode() + "联盟".encode("gbk") + b"\xff")
def test_decode_bytes_only_ever_raises_document_error(data: bytes) -> None:
    try:
        text = decode_bytes(data, "fuzz.txt")
    except DocumentError as exc:
        assert exc.path == "fuzz.txt" and exc.reason
        return
    assert isinstance(text, str)
    text.encode("utf-8")  # never a lone surrogate: the text goes on to the tokenizer and Chroma


@FUZZ
@given(any_text)
@example("Workflow\n产教融合\nicon\n标题一二三四五\nZhong Guo Xin Wen Wang· 2025-10-28 05:25\nBody.\n"
         "标题六七八九十\nXin Hua Ri Bao· 2025-10-26\nMore body.\n")
@example("\r\n\r\n  x  \r\n")
@example("\u2028a\u2029b\x85c\x1cd")
def test_split_text_offsets_point_into_the_text(text: str) -> None:
    docs = split_text(text, "fuzz.txt")
    ids = [d.doc_id for d in docs]
    assert len(set(ids)) == len(ids)
    for doc in docs:
        assert text[doc.offset : doc.end] == doc.text
        assert doc.text.strip()
        for span in doc.skip:
            assert doc.offset <= span.start <= span.end <= doc.end


def _reference_is_abbreviation(text: str, dot: int) -> bool:
    """The original definition (a regex search from the start of the text: quadratic, but the spec)."""
    m = re.search(r"([A-Za-z][A-Za-z.]*)$", text[:dot])
    if not m:
        return False
    word = m.group(1).lower()
    return word in chunking._ABBREVIATIONS or (len(word) == 1 and text[m.start()].isupper())


@FUZZ
@given(st.lists(st.sampled_from(["co", "Co", "ltd", "J", "e", "g", "u", "s", "x", "approx", "Mr", ".", "..", " ", "\n",
                                 "a" * 7, "1", "中"]), max_size=30).map("".join))
@example("a" + "." * 70 + "co.")
@example(" ..co.")
@example("co\n.")
def test_abbreviation_check_matches_its_reference(text: str) -> None:
    """The linear ``_is_abbreviation`` (it replaced a regex search from offset 0 that made sentence
    splitting quadratic) agrees with the original definition at every full stop."""
    for i, ch in enumerate(text):
        if ch == ".":
            assert chunking._is_abbreviation(text, i) == _reference_is_abbreviation(text, i), (text, i)


# --------------------------------------------------------------------------- the JSON Lines loader

_json_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), any_text)
_json_value = st.recursive(_json_scalar, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                                  st.dictionaries(any_text, inner, max_size=4)),
                           max_leaves=12)
_record = st.fixed_dictionaries(
    {},
    optional={
        "text": st.one_of(any_text, _json_value),
        "content": _json_value,
        "title": _json_value,
        "outlet": _json_value,
        "date": st.one_of(st.sampled_from(["2025-10-28", "2025年3月21日", "2025/13/45", "٢٠٢٥-١٠-٠١", "0000-00-00"]),
                          _json_value),
        "id": _json_value,
        "language": _json_value,
        "region": _json_value,
    },
)
_jsonl_line = st.one_of(
    _record.map(lambda r: json.dumps(r, ensure_ascii=False)),
    _record.map(json.dumps),  # ASCII escapes, incl. \\u escapes of astral characters
    _json_value.map(json.dumps),
    any_text.map(lambda t: t.replace("\n", " ")),
    st.sampled_from(['{"text": "lone \\ud800 surrogate", "id": "\\udc00"}', "[" * 5000, '{"text": ' * 3000,
                     '{"text": "ok"} trailing', "NaN", '{"text": "x", "text": 5}', '{"text": "\\u0000"}']),
)


@pytest.fixture(scope="module")
def jsonl_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-jsonl")


@FUZZ
@given(st.lists(_jsonl_line, min_size=1, max_size=6))
def test_jsonl_loader_only_ever_raises_document_error(jsonl_dir: Path, lines: list[str]) -> None:
    path = jsonl_dir / "records.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
    try:
        docs = load_file(path, jsonl_dir)
    except DocumentError as exc:
        assert exc.path == "records.jsonl" and exc.reason
        return
    assert docs
    for doc in docs:
        assert doc.doc_id.startswith("records.jsonl#") and doc.source == "records.jsonl"
        assert doc.text.strip() and doc.offset == 0
        for value in (doc.text, doc.doc_id, doc.title, doc.outlet, doc.date, doc.language):
            value.encode("utf-8")  # lone surrogates from "\\ud800" escapes are replaced
        assert doc.date == "" or re.fullmatch(r"\d{4}-\d{2}-\d{2}", doc.date)


# --------------------------------------------------------------------------- tokenizer, translation, rewrite


@FUZZ
@given(any_text)
@example("\x00" * 10)
@example("🤖" * 50)
@example("产" * 3000)
def test_tokenize_never_crashes(text: str) -> None:
    tokens = tokenize(text)
    assert all(isinstance(t, str) and t for t in tokens)


@FUZZ
@given(any_text)
@example("產教融合聯盟\u200b的\x00目标")
@example("ＡＢＣ１２３")
def test_translate_zh_to_en_never_crashes(text: str) -> None:
    for word, weight in translate_zh_to_en(text):
        assert isinstance(word, str) and word and weight > 0


@FUZZ
@given(any_text)
@example("What's the alliance's co-operation?")
@example("it's ITS Its it")
def test_translate_en_to_zh_never_crashes(text: str) -> None:
    for word, weight in translate_en_to_zh(text):
        assert isinstance(word, str) and word and weight > 0


@FUZZ
@given(any_text, st.lists(any_text, max_size=4))
@example("它呢？", ["常州检验检测认证产教联盟是什么时候成立的？"])
@example("What about Suzhou?", ["", "  ", "What is the Changzhou alliance?"])
@example("And its goals?", ["\x00", "🤖"])
def test_rewrite_never_crashes(question: str, history: list[str]) -> None:
    result = rewrite(question, history)
    assert result.question == question.strip()
    assert isinstance(result.standalone, str)
    if not history:
        assert result.standalone == question.strip()
