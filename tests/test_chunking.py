"""Sentence splitting and chunking: exact spans, numbers and abbreviations kept whole, on examples, on the
whole sample corpus, and on arbitrary mixed Chinese/English text (hypothesis)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from conftest import CORPUS, CORPUS_DOCS, DIGEST
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant.chunking import (
    ChunkerSettings,
    chunk_document,
    document_sentences,
    estimate_tokens,
    inline_items,
    split_sentences,
)
from assistant.documents import is_boilerplate, load_paths, source_text, split_text
from assistant.errors import ConfigError
from assistant.schema import Chunk, Document, Span


def sentences(text: str, start: int = 0, end: int | None = None) -> list[str]:
    return [text[s.start : s.end] for s in split_sentences(text, start, end)]


# --------------------------------------------------------------------------- sentence splitting


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello world. This is it! Really? Yes.", ["Hello world.", "This is it!", "Really?", "Yes."]),
        ("中文句子。另一个！问号？分号；省略…结束", ["中文句子。", "另一个！", "问号？", "分号；", "省略…", "结束"]),
        ("六六……好的。", ["六六……", "好的。"]),
        ("First line\nSecond line\r\nThird", ["First line", "Second line", "Third"]),
        ("Growth was 2.744 million... Then more.", ["Growth was 2.744 million...", "Then more."]),
        # Three ASCII dots are the English ellipsis: a cut only before white space and a new sentence.
        ("It cited Reproductive Choice...[and] 2008 rules.", ["It cited Reproductive Choice...[and] 2008 rules."]),
        ("Choice... and more.", ["Choice... and more."]),
        ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
        ("他说：“好。”然后走了。", ["他说：“好。”", "然后走了。"]),
        ("《联盟章程》发布！（全文）见下。", ["《联盟章程》发布！", "（全文）见下。"]),
        ("  padded sentence.   \n\n   ", ["padded sentence."]),
        ("", []),
        (" \n\t\u3000\n", []),
    ],
)
def test_split_sentences_examples(text: str, expected: list[str]) -> None:
    assert sentences(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Shandong has 547 vocational schools with 2.744 million students.",
        'It features a new "2.5+1.5" innovative practical training system.',
        "Students achieved a 92.3% rate of employment in related fields.",
        "学生就业率达到92.3%，在校生2.744万人。",
        "The area covers 30,000 acres and 1.6 billion RMB of output at 3.14 per unit.",
        "Fujian Torch Electronic Technology Co., Ltd. and Chongqing Pingwei Industrial Co., Ltd. will engage.",
        "Dr. Smith met Prof. Wang at No. 5 Road, e.g. near the U.S. consulate, i.e. downtown.",
        "J. Smith visited Acme Inc. yesterday.",
        "The U.S. economy grew.",
    ],
)
def test_no_split_inside_numbers_or_abbreviations(text: str) -> None:
    assert sentences(text) == [text]


def test_numbers_and_abbreviations_in_context() -> None:
    text = (
        "Shandong has 547 vocational schools with 2.744 million students. The rate is 92.3%. "
        "Partners include Fujian Torch Electronic Technology Co., Ltd. and Haier. "
        'It uses a "2.5+1.5" system! 就业率92.3%。在校生2.744万人；成效显著。'
    )
    assert sentences(text) == [
        "Shandong has 547 vocational schools with 2.744 million students.",
        "The rate is 92.3%.",
        "Partners include Fujian Torch Electronic Technology Co., Ltd. and Haier.",
        'It uses a "2.5+1.5" system!',
        "就业率92.3%。",
        "在校生2.744万人；",
        "成效显著。",
    ]


def test_a_numbered_list_item_is_one_sentence() -> None:
    """ "1. Creating ..." used to be split into a sentence "1." and the item (corpus file 000 has such lists)."""
    text = "five strategic focus areas:\n1. Creating a platform\n2. Enhancing partnerships\n12. Item twelve. Next one."
    assert sentences(text) == [
        "five strategic focus areas:",
        "1. Creating a platform",
        "2. Enhancing partnerships",
        "12. Item twelve.",
        "Next one.",
    ]
    # ...but a number ending a sentence in running text still ends it.
    assert sentences("The rate rose by 3. Then it fell.") == ["The rate rose by 3.", "Then it fell."]
    # The line start is found inside the [start, end) window too.
    text = "ab\n1. Cd"
    assert sentences(text, 3) == ["1. Cd"]


def test_split_sentences_window_is_absolute() -> None:
    text = "Ignored. Kept one. Kept two! Ignored too."
    start, end = text.index("Kept one"), text.index(" Ignored too")
    spans = split_sentences(text, start, end)
    assert [text[s.start : s.end] for s in spans] == ["Kept one.", "Kept two!"]
    assert spans[0].start == start


# --------------------------------------------------------------------------- inline list items


def items(text: str) -> tuple[list[str], list[str]]:
    found, heads = inline_items(text, Span(0, len(text)))
    return [text[s.start : s.end] for s in found], [text[s.start : s.end] for s in heads]


def test_inline_items_split_a_digest_line_at_its_bullets_and_headings() -> None:
    line = (
        "Group 1 - The class is a key initiative [1][3] - The program aims to cultivate students [3] "
        "Group 2 - It features a new system [5]"
    )
    assert items(line) == (
        [
            "The class is a key initiative [1][3]",
            "The program aims to cultivate students [3]",
            "It features a new system [5]",
        ],
        ["Group 1", "Group 2"],
    )
    assert items("Group 3: Practical Innovations - Representatives from six colleges shared practices [4].") == (
        ["Representatives from six colleges shared practices [4]."],
        ["Group 3: Practical Innovations"],
    )


@pytest.mark.parametrize(
    "text",
    [
        "A plain sentence with no list in it.",
        # a dash inside prose: a long clause before it is no heading, a full stop ends a sentence
        "The alliance brings together vocational schools and many other partners - Universities join too.",
        "It ended. - Then",
        "innovation chain - industry chain - talent chain",  # lower case after the dash
    ],
)
def test_inline_items_leave_ordinary_sentences_whole(text: str) -> None:
    assert items(text) == ([text], [])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet="ab ]-.G1:\u4e00", min_size=1, max_size=80).filter(lambda t: t.strip() == t))
def test_property_inline_items_are_exact_ordered_subspans(text: str) -> None:
    """On a (stripped) sentence: ordered, non-overlapping, stripped sub-spans."""
    span = Span(0, len(text))
    found, heads = inline_items(text, span)
    pieces = sorted(found + heads, key=lambda s: s.start)
    for a, b in zip(pieces, pieces[1:], strict=False):
        assert a.end <= b.start
    for s in pieces:
        assert 0 <= s.start < s.end <= len(text)
        assert not text[s.start].isspace() and not text[s.end - 1].isspace()


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"max_tokens": 15}, "got 15"),
        ({"max_tokens": 5000}, "got 5000"),
        ({"overlap_sentences": -1}, "got -1"),
        ({"overlap_sentences": 6}, "got 6"),
        ({"min_tokens": -3}, "got -3"),
        ({"max_tokens": 64, "min_tokens": 64}, "got 64"),
        ({"max_tokens_zh": 15}, "got 15"),
        ({"max_tokens_zh": 5000}, "got 5000"),
        ({"max_tokens_zh": 20, "min_tokens": 24}, "got 24"),
    ],
)
def test_chunker_settings_validation_names_the_bad_value(kwargs: dict[str, int], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        ChunkerSettings(**kwargs)
    message = str(info.value)
    assert needle in message
    assert next(iter(kwargs)) in message or "min_tokens" in message
    assert isinstance(info.value, ValueError)


def test_chunker_settings_round_trip() -> None:
    s = ChunkerSettings(max_tokens=128, overlap_sentences=2, min_tokens=10, max_tokens_zh=256)
    assert s.to_dict() == {"max_tokens": 128, "overlap_sentences": 2, "min_tokens": 10, "max_tokens_zh": 256}
    assert ChunkerSettings(**s.to_dict()) == s


def test_estimate_tokens() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("产教融合") == 4
    assert estimate_tokens("two words") == pytest.approx(2.6)
    assert estimate_tokens("2.744 million") == pytest.approx(2.6)  # a number is one word


# --------------------------------------------------------------------------- chunk invariants


def check_chunks(source: str, doc: Document, chunks: list[Chunk]) -> None:
    """The invariants every chunking must satisfy."""
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert c.doc_id == doc.doc_id
        assert c.chunk_id == f"{doc.doc_id}::{c.index}"
        assert source[c.start : c.end] == c.text
        assert doc.offset <= c.start < c.end <= doc.end
        assert c.sentences, c
        assert c.sentences[0].start == c.start and c.sentences[-1].end == c.end
        for s in c.sentences:
            assert c.start <= s.start < s.end <= c.end
            piece = source[s.start : s.end]
            assert piece == piece.strip() and piece
        for a, b in zip(c.sentences, c.sentences[1:], strict=False):
            assert a.end <= b.start
        assert c.metadata["doc_id"] == doc.doc_id
        for skip in doc.skip:  # boilerplate lines are in no sentence
            assert all(s.end <= skip.start or s.start >= skip.end for s in c.sentences)
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert a.start <= b.start and a.end <= b.end


def covered(chunks: list[Chunk]) -> set[int]:
    return {i for c in chunks for s in c.sentences for i in range(s.start, s.end)}


BULLETS = "-–•·*"


def ignorable(text: str, i: int) -> bool:
    """White space, or a list bullet ("- item"), which sentences leave out."""
    return text[i].isspace() or (text[i] in BULLETS and i + 1 < len(text) and text[i + 1].isspace())


@dataclass
class CorpusChunks:
    docs: list[Document]
    sources: dict[str, str]
    chunks: dict[str, list[Chunk]]


@pytest.fixture(scope="module")
def corpus_chunks() -> CorpusChunks:
    docs = load_paths([CORPUS], CORPUS).documents
    sources = {name: source_text(CORPUS / name) for name in {d.source for d in docs}}
    chunks = {d.doc_id: chunk_document(d, ChunkerSettings(), sources[d.source]) for d in docs}
    return CorpusChunks(docs, sources, chunks)


def test_every_chunk_of_the_sample_corpus_is_exact(corpus_chunks: CorpusChunks) -> None:
    assert len(corpus_chunks.docs) == CORPUS_DOCS
    total = 0
    for doc in corpus_chunks.docs:
        source = corpus_chunks.sources[doc.source]
        chunks = corpus_chunks.chunks[doc.doc_id]
        assert chunks, doc.doc_id
        check_chunks(source, doc, chunks)
        assert chunks[0].metadata == doc.metadata()
        total += len(chunks)
    assert total >= CORPUS_DOCS


def test_corpus_chunks_cover_every_word(corpus_chunks: CorpusChunks) -> None:
    """Nothing but white space, list bullets and boilerplate lines is left out of the chunks."""
    for doc in corpus_chunks.docs:
        source = corpus_chunks.sources[doc.source]
        seen = covered(corpus_chunks.chunks[doc.doc_id])
        skipped = {i for s in doc.skip for i in range(s.start, s.end)}
        missing = [i for i in range(doc.offset, doc.end) if not ignorable(source, i) and i not in seen | skipped]
        assert not missing, (doc.doc_id, source[missing[0] : missing[0] + 40])


def test_corpus_chunks_never_hold_boilerplate(corpus_chunks: CorpusChunks) -> None:
    all_text = "\n".join(c.text for cs in corpus_chunks.chunks.values() for c in cs)
    for line in ("Workflow", "icon", "Search documents", "扫一扫在手机打开当前页"):
        assert not re.search(rf"(^|\n){re.escape(line)}\s*\|?\s*($|\n)", all_text), line
    assert "扫一扫" not in all_text and "Search documents" not in all_text and "Workflow" not in all_text
    for cs in corpus_chunks.chunks.values():
        for c in cs:
            assert not any(is_boilerplate(line) for line in c.text.splitlines())


def test_corpus_sentences_keep_numbers_and_abbreviations_whole(corpus_chunks: CorpusChunks) -> None:
    spans: set[tuple[int, int, str]] = set()
    for doc in corpus_chunks.docs:
        for c in corpus_chunks.chunks[doc.doc_id]:
            spans.update((s.start, s.end, doc.source) for s in c.sentences)
    texts = {corpus_chunks.sources[src][a:b] for a, b, src in spans}
    for whole in ("2.744 million", '"2.5+1.5"', "92.3%", "Fujian Torch Electronic Technology Co., Ltd. and"):
        assert any(whole in t for t in texts), whole
    for t in texts:
        assert not re.fullmatch(r"\d{1,3}\.", t), t  # no list number alone
        assert not t.endswith(("Co.", "Co.,")), t  # "Co., Ltd." is never a sentence end
    digest = corpus_chunks.sources[DIGEST]
    for a, _, src in spans:
        if src == DIGEST and 0 < a:
            assert not (digest[a - 1].isdigit() and digest[a].isdigit()), digest[a - 5 : a + 5]


def test_corpus_chunks_respect_the_budget_and_overlap(corpus_chunks: CorpusChunks) -> None:
    settings = ChunkerSettings()
    for doc in corpus_chunks.docs:
        chunks = corpus_chunks.chunks[doc.doc_id]
        limit = settings.max_tokens_zh if doc.language == "zh" else settings.max_tokens
        for c in chunks:
            if len(c.sentences) > 1:
                assert estimate_tokens(c.text) <= limit + settings.min_tokens + 5
        for a, b in zip(chunks, chunks[1:], strict=False):
            # one sentence of overlap, unless the previous chunk is a single (over-long) sentence
            assert b.sentences[0] == a.sentences[-1] or len(a.sentences) == 1, (doc.doc_id, a.index)


def test_digest_chunks_carry_article_metadata(corpus_chunks: CorpusChunks) -> None:
    first = corpus_chunks.chunks[f"{DIGEST}#1"]
    assert first[0].text.startswith("产教融合“破题”人才瓶颈 山东职教赋能区域经济提质增效")
    for c in first:
        assert c.metadata["outlet"] == "Zhong Guo Xin Wen Wang"
        assert c.metadata["date"] == "2025-10-28"
        assert c.metadata["title"] == "产教融合“破题”人才瓶颈 山东职教赋能区域经济提质增效"
    assert all(c.metadata["outlet"] == "" for c in corpus_chunks.chunks[f"{DIGEST}#7"])


def test_chunking_without_source_gives_the_same_chunks(corpus_chunks: CorpusChunks) -> None:
    for doc in corpus_chunks.docs:
        rebuilt = chunk_document(doc)
        assert [(c.start, c.end, c.text) for c in rebuilt] == [
            (c.start, c.end, c.text) for c in corpus_chunks.chunks[doc.doc_id]
        ]


@pytest.mark.parametrize("overlap", [0, 1, 2])
def test_overlap_setting(overlap: int) -> None:
    text = " ".join(f"Sentence number {i} talks about the alliance and its schools." for i in range(30))
    doc = Document("d", text, "d.txt")
    chunks = chunk_document(doc, ChunkerSettings(max_tokens=40, overlap_sentences=overlap, min_tokens=0))
    check_chunks(text, doc, chunks)
    assert len(chunks) > 3
    for a, b in zip(chunks, chunks[1:], strict=False):
        shared = [s for s in b.sentences if s in a.sentences]
        assert len(shared) == overlap
        assert estimate_tokens(a.text) <= 40


def test_chinese_documents_get_their_own_chunk_size() -> None:
    zh = "".join(f"第{i}句讲联盟和学校的合作培养。" for i in range(40))
    en = " ".join(f"Sentence number {i} talks about the alliance and its schools." for i in range(40))
    settings = ChunkerSettings(max_tokens=60, max_tokens_zh=120, overlap_sentences=0, min_tokens=0)
    for text, language, limit in ((zh, "zh", 120), (en, "en", 60)):
        doc = Document("d", text, "d.txt", language=language)
        chunks = chunk_document(doc, settings)
        check_chunks(text, doc, chunks)
        sizes = [estimate_tokens(c.text) for c in chunks]
        assert max(sizes) <= limit
        assert max(sizes) > limit - 20  # packed up to its own limit, not the other one
    # A document of mixed or unknown language takes the general size.
    assert max(estimate_tokens(c.text) for c in chunk_document(Document("d", zh, "d.txt"), settings)) <= 60


def test_short_tail_is_folded_into_the_previous_chunk() -> None:
    text = " ".join(f"Sentence number {i} talks about the alliance and its schools." for i in range(7)) + " Tail."
    doc = Document("d", text, "d.txt")
    chunks = chunk_document(doc, ChunkerSettings(max_tokens=40, overlap_sentences=0, min_tokens=8))
    check_chunks(text, doc, chunks)
    assert chunks[-1].text.endswith("Tail.")
    assert chunks[-1].text != "Tail."


def test_overlong_sentence_is_cut_at_clauses_not_inside_numbers() -> None:
    """Clause cuts at "," used to fall inside "6,000" (one chunk ended "6," and the next began "000")."""
    text = " ".join(f"the school trained {i},000 students and {i}.5 teachers" for i in range(1, 60)) + "."
    doc = Document("d", text, "d.txt")
    chunks = chunk_document(doc, ChunkerSettings(max_tokens=64, min_tokens=8))
    check_chunks(text, doc, chunks)
    assert len(chunks) > 3
    for c in chunks:
        assert estimate_tokens(c.text) <= 64 + 8
        for s in c.sentences:
            assert not re.search(r"\d,$", text[s.start : s.end]), text[s.start : s.end]
            assert not text[s.start].isdigit() or not text[s.start - 1 : s.start] == ","


def test_overlong_chinese_sentence_is_cut_at_clause_marks() -> None:
    clause = "职业院校与企业共同建设实训基地并联合培养技术技能人才"
    text = "，".join([clause] * 20) + "。"
    doc = Document("d", text, "d.txt")
    chunks = chunk_document(doc, ChunkerSettings(max_tokens=64, overlap_sentences=0, min_tokens=0))
    check_chunks(text, doc, chunks)
    assert len(chunks) > 1
    for c in chunks:
        assert estimate_tokens(c.text) <= 64
        assert c.text.endswith(("，", "。"))


def test_boilerplate_line_breaks_the_run_and_is_never_chunked() -> None:
    text = (
        "The alliance was founded in Changzhou. It trains technicians.\n"
        "扫一扫在手机打开当前页  |\n"
        "Schools and companies share training bases. Students benefit."
    )
    [doc] = split_text(text, "x.txt")
    assert doc.skip
    runs = document_sentences(text, doc, ChunkerSettings())
    assert len(runs) == 2
    chunks = chunk_document(doc, ChunkerSettings(), text)
    check_chunks(text, doc, chunks)
    assert all("扫一扫" not in c.text for c in chunks)
    assert "Students benefit." in chunks[-1].text


def test_chunk_offsets_are_absolute_for_a_document_deep_in_a_file() -> None:
    prefix = "Other article.\n" * 50
    body = "第一句。第二句！Third sentence here."
    source = prefix + body
    doc = Document("f.txt#2", body, "f.txt", offset=len(prefix))
    chunks = chunk_document(doc, ChunkerSettings(), source)
    check_chunks(source, doc, chunks)
    assert chunks[0].start == len(prefix)
    assert [source[s.start : s.end] for s in chunks[0].sentences] == ["第一句。", "第二句！", "Third sentence here."]


# --------------------------------------------------------------------------- property tests

_ZH = "产教融合联盟职业院校企业人才培养山东常州学生就业率万人年"
_WORDS = ["alliance", "school", "Shandong", "the", "AI", "IoT", "Co.,", "Ltd.", "U.S.", "Dr.", "e.g.", "Inc."]
_PUNCT = '. ! ? 。 ！ ？ ； … …… ... , ， 、 : ： “ ” " ( ) 》'.split() + ["- "]
_SPACE = [" ", " ", " ", "  ", "\n", "\r\n", "\t", "\u3000", "\n\n", " \n "]


@st.composite
def number_token(draw: st.DrawFn) -> str:
    a = draw(st.integers(0, 9999))
    b = draw(st.integers(0, 999))
    return draw(st.sampled_from([f"{a}.{b}", f"{a}.{b}%", f"{a % 10}.{b % 10}+{b % 7}.{a % 10}", f"{a},{b:03d}"]))


@st.composite
def mixed_text(draw: st.DrawFn) -> tuple[str, list[tuple[int, int]]]:
    """Mixed zh/en text, plus the spans of the numbers (with a decimal point or thousands comma) in it."""
    parts: list[str] = []
    numbers: list[tuple[int, int]] = []
    pos = 0
    for _ in range(draw(st.integers(0, 60))):
        kind = draw(st.sampled_from(["zh", "zh", "word", "num", "int", "punct", "space", "space"]))
        if kind == "zh":
            piece = draw(st.text(alphabet=_ZH, min_size=1, max_size=8))
        elif kind == "word":
            piece = draw(st.sampled_from(_WORDS))
        elif kind == "num":
            piece = draw(number_token())
            # a number is a number only when no digit touches it from either side
            if not (parts and parts[-1][-1:].isdigit()):
                numbers.append((pos, pos + len(piece)))
        elif kind == "int":
            piece = str(draw(st.integers(0, 999)))
        elif kind == "punct":
            piece = draw(st.sampled_from(_PUNCT))
        else:
            piece = draw(st.sampled_from(_SPACE))
        parts.append(piece)
        pos += len(piece)
    text = "".join(parts)
    numbers = [(a, b) for a, b in numbers if b == len(text) or not text[b].isdigit()]
    return text, numbers


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mixed_text())
def test_property_sentence_spans(sample: tuple[str, list[tuple[int, int]]]) -> None:
    text, numbers = sample
    spans = split_sentences(text)
    for s in spans:
        piece = text[s.start : s.end]
        assert piece, s
        assert not piece[0].isspace() and not piece[-1].isspace()  # stripped
        assert "\n" not in piece  # line breaks always end a sentence
    for a, b in zip(spans, spans[1:], strict=False):
        assert a.end <= b.start  # ordered, non-overlapping
    # Only white space (and list bullets) is left between sentences: nothing is lost.
    seen = {i for s in spans for i in range(s.start, s.end)}
    assert all(ignorable(text, i) for i in range(len(text)) if i not in seen)
    # A number is never cut in two.
    for a, b in numbers:
        assert any(s.start <= a and b <= s.end for s in spans), text[a:b]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mixed_text(),
    st.integers(0, 40),
    st.integers(16, 80),
    st.integers(0, 3),
    st.integers(0, 12),
)
def test_property_chunk_spans(
    sample: tuple[str, list[tuple[int, int]]], lead: int, max_tokens: int, overlap: int, min_tokens: int
) -> None:
    body, numbers = sample
    source = "x" * lead + "\n" + body + "\n tail"
    doc = Document("p.txt#1", body, "p.txt", offset=lead + 1)
    chunks = chunk_document(doc, ChunkerSettings(max_tokens, overlap, min_tokens), source)
    check_chunks(source, doc, chunks)
    seen = covered(chunks)
    assert all(ignorable(source, i) for i in range(doc.offset, doc.end) if i not in seen)
    if not body.strip():
        assert chunks == []
    # Even an over-long sentence cut at clause marks or hard-cut keeps every number whole.
    sents = [x for c in chunks for x in c.sentences]
    for a, b in numbers:
        a, b = a + doc.offset, b + doc.offset
        assert any(x.start <= a and b <= x.end for x in sents), source[a:b]


def test_span_rejects_inverted_ranges() -> None:
    with pytest.raises(ValueError, match=r"\[5, 3\)"):
        Span(5, 3)
    assert len(Span(2, 9)) == 7


def test_page_field_and_page_at_exact() -> None:
    from assistant.chunking import page_at, page_field

    starts = [(0, 1), (100, 2), (250, 4)]  # page 3 was empty
    assert page_field(starts, 10, 90) == "0:1"
    assert page_field(starts, 90, 120) == "0:1;100:2"
    assert page_field(starts, 100, 300) == "100:2;250:4"
    assert page_field(starts, 260, 300) == "250:4"
    field = page_field(starts, 90, 300)
    assert [page_at(field, pos) for pos in (90, 99, 100, 249, 250, 999)] == [1, 1, 2, 2, 4, 4]
    assert page_at("", 5) is None and page_at(None, 5) is None and page_at("x:1", 5) is None
