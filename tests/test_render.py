"""Rendering of answers, sources and documents as safe HTML (pure functions, no server)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

import pytest

from assistant.render import (
    answer_plain_text,
    esc,
    highlight,
    metrics_rows,
    quote_span,
    render_answer,
    render_documents,
    render_notice,
    render_sources,
    render_text_with_footnotes,
    source_id,
    stream_prefixes,
)
from assistant.schema import Answer, AnswerSentence, Citation, Passage

HOSTILE = '<script>window.__pwned=1</script> <img src=x onerror="window.__pwned=2"> [x](javascript:alert(1)) $x$'


class Tags(HTMLParser):
    """Collects start tags with their attributes, and the text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html_text: str) -> Tags:
    parser = Tags()
    parser.feed(html_text)
    parser.close()
    return parser


def citation(n: int, text: str, quote: str, passage_start: int = 100, **kw: str) -> Citation:
    offset = text.index(quote)
    return Citation(
        n=n, doc_id=kw.get("doc_id", f"doc{n}.txt"), chunk_id=f"doc{n}.txt::0", title=kw.get("title", f"Title {n}"),
        outlet=kw.get("outlet", "Xinhua"), date=kw.get("date", "2025-10-27"), source=f"doc{n}.txt", text=text,
        passage_start=passage_start, passage_end=passage_start + len(text), quote=quote,
        start=passage_start + offset, end=passage_start + offset + len(quote),
    )


def make_answer(**kw: object) -> Answer:
    c1 = citation(1, "Intro sentence. The Suzhou alliance was founded in 2024. Outro.",
                  "The Suzhou alliance was founded in 2024.")
    c2 = citation(2, "常州联盟于3月21日成立。其他内容。", "常州联盟于3月21日成立。", passage_start=0)
    values: dict[str, object] = dict(
        question="What is it?", standalone_question="What is the Suzhou alliance? What is it?",
        answer="The Suzhou alliance was founded in 2024. [1] 常州联盟于3月21日成立。[2]",
        abstained=False, language="en", citations=[c1, c2],
        sentences=[AnswerSentence("The Suzhou alliance was founded in 2024.", [1]),
                   AnswerSentence("常州联盟于3月21日成立。", [2])],
    )
    values.update(kw)
    return Answer(**values)  # type: ignore[arg-type]


@dataclass
class Doc:
    doc_id: str
    title: str
    outlet: str = ""
    date: str = ""
    language: str = "en"
    chunks: int = 1


def test_footnotes_link_to_their_sources() -> None:
    answer = make_answer()
    msg = render_answer(answer, turn=3)
    links = [a for tag, a in parse(msg).tags if tag == "a"]
    assert [a["href"] for a in links] == ["#src-3-1", "#src-3-2"]
    assert all("fn-ref" in (a.get("class") or "") for a in links)
    panel = render_sources(answer, turn=3)
    ids = [a["id"] for tag, a in parse(panel).tags if a.get("id")]
    assert ids == [source_id(3, 1), source_id(3, 2)]
    # every footnote target exists in the panel
    assert {a["href"].lstrip("#") for a in links} <= set(ids)  # type: ignore[union-attr]


def test_unknown_markers_stay_text() -> None:
    out = render_text_with_footnotes("See [1] and [7] and [1, 2].", valid=[1, 2], turn=1)
    assert out.count('class="fn-ref"') == 3  # [1], and both numbers of [1, 2]
    assert "&#91;7&#93;" in out


def test_quote_is_highlighted_inside_the_passage() -> None:
    answer = make_answer()
    panel = render_sources(answer, turn=1)
    marks = re.findall(r"<mark>(.*?)</mark>", panel)
    assert parse(marks[0]).text == ["The Suzhou alliance was founded in 2024."]
    assert parse(marks[1]).text == ["常州联盟于3月21日成立。"]
    text = "".join(parse(panel).text)
    assert "Intro sentence." in text and "Outro." in text  # the whole passage, not just the quote
    assert "Xinhua" in text and "2025-10-27" in text and "doc1.txt" in text and "Title 1" in text


def test_quote_found_by_search_when_offsets_are_off() -> None:
    c = citation(1, "aaa. bbb. ccc.", "bbb.")
    c.start += 1000
    assert quote_span(c) == (5, 9)
    c.quote = "not there"
    assert quote_span(c) is None
    assert "<mark>" not in highlight(c.text, quote_span(c))


def test_hostile_document_text_is_escaped_everywhere() -> None:
    c = citation(1, f"Before. {HOSTILE} After.", HOSTILE, title=HOSTILE, outlet=HOSTILE)
    related = Passage(chunk_id="h::0", doc_id="h<b>.txt", text=HOSTILE, start=0, end=len(HOSTILE), score=1.0,
                      metadata={"title": HOSTILE, "outlet": HOSTILE})
    answer = make_answer(answer=f"{HOSTILE} [1]", citations=[c], question=HOSTILE, standalone_question=HOSTILE + "?")
    abstained = make_answer(answer="I could not find this.", citations=[], abstained=True, related=[related])
    outputs = [
        render_answer(answer, 1), render_sources(answer, 1), render_answer(abstained, 2),
        render_sources(abstained, 2), render_documents([Doc(HOSTILE, HOSTILE, HOSTILE)]), render_notice(HOSTILE),
    ]
    for out in outputs:
        tags = parse(out).tags
        assert not [t for t, _ in tags if t in ("script", "img", "iframe")], out
        assert not any(k.startswith("on") for _, attrs in tags for k in attrs), out
        assert "javascript:" not in out and "<script" not in out
        # Markdown and LaTeX syntax is neutralized too: no raw brackets, parentheses or dollars.
        assert not re.search(r"[\[\]()$`*_]", re.sub(r"<[^>]*>", "", out)), out
        assert "\n" not in out  # one raw-HTML block for a Markdown renderer
    assert "<script>window.__pwned=1</script>" in "".join(parse(outputs[1]).text)  # shown as text


def test_abstention_shows_related_passages() -> None:
    related = [
        Passage(chunk_id=f"r{i}::0", doc_id=f"r{i}.txt", text=f"Related text {i}.", start=0, end=15, score=0.1,
                metadata={"title": f"Related {i}", "outlet": "Outlet", "date": "2025-01-01"})
        for i in (1, 2)
    ]
    answer = make_answer(answer="I could not find this in the alliance documents.", citations=[], sentences=[],
                         abstained=True, related=related, standalone_question="What is it?")
    msg = render_answer(answer, turn=2)
    text = " ".join(parse(msg).text)
    assert "Possibly related passages" in text and "Related 1" in text and "Related 2" in text
    assert "Searched for" not in text  # the standalone question equals the question
    hrefs = [a["href"] for t, a in parse(msg).tags if t == "a"]
    assert hrefs == ["#rel-2-1", "#rel-2-2"]
    panel = render_sources(answer, turn=2)
    assert 'id="rel-2-1"' in panel and "Related text 2." in panel
    zh = render_answer(make_answer(answer="在联盟文档中没有找到相关内容。", citations=[], abstained=True,
                                   related=related, language="zh", standalone_question="What is it?"), turn=1)
    assert "可能相关的段落" in zh


def test_searched_for_shown_only_when_rewritten() -> None:
    assert "Searched for" in render_answer(make_answer(), 1)
    same = make_answer(standalone_question="What is it?")
    assert "searched" not in render_answer(same, 1)
    assert "检索内容" in render_answer(make_answer(language="zh"), 1)


def test_stream_prefixes_grow_sentence_by_sentence() -> None:
    text = make_answer().answer
    prefixes = stream_prefixes(text)
    assert prefixes[-1] == text
    assert prefixes[0] == "The Suzhou alliance was founded in 2024. [1]"
    assert all(b.startswith(a) for a, b in zip(prefixes, prefixes[1:], strict=False))
    assert stream_prefixes("一句。两句。") == ["一句。", "一句。两句。"]
    assert stream_prefixes("") == []


def test_streaming_prefix_renders_partial_answer() -> None:
    answer = make_answer()
    partial = render_answer(answer, 1, text=stream_prefixes(answer.answer)[0])
    assert "2024" in partial and "常州" not in partial


def test_plain_text_for_copying() -> None:
    text = answer_plain_text(make_answer())
    assert text.splitlines()[0] == "Searched for: What is the Suzhou alliance? What is it?"
    assert "Sources:" in text
    assert "[1] Title 1 (Xinhua, 2025-10-27) — doc1.txt" in text
    assert "“The Suzhou alliance was founded in 2024.”" in text
    assert "<" not in text


def test_empty_panel_and_documents() -> None:
    assert "appear here" in render_sources(None, 0)
    assert "来源" in render_sources(None, 0, "zh") or "显示" in render_sources(None, 0, "zh")
    assert "No documents" in render_documents([])
    table = render_documents([Doc("a.txt", "A", "Xinhua", "2025-01-02", "zh", 3), Doc("b.txt", "B", chunks=2)])
    assert "2 documents · 5 chunks" in " ".join(parse(table).text)
    assert table.count("<tr>") == 3


@pytest.mark.parametrize("raw", ["a&b", "<>", '"', "'", "#1", "`x`", "中文"])
def test_esc_roundtrips_through_an_html_parser(raw: str) -> None:
    assert "".join(parse(esc(raw)).text) == raw


def test_metrics_rows() -> None:
    header, rows = metrics_rows({"all": {"n": 3, "recall": 0.5}, "zh": {"n": 1, "recall": None}})
    assert header == ["metric", "all", "zh"]
    assert rows == [["n", "3", "1"], ["recall", "0.500", ""]]


def test_streaming_and_complete_states() -> None:
    answer = make_answer()
    assert 'class="answer streaming"' in render_answer(answer, 1, text="The")
    assert 'class="answer complete"' in render_answer(answer, 1)
