"""Saved conversations: the compact record round-trips, malformed browser data is refused, Markdown export."""

from __future__ import annotations

import json
from typing import Any

from assistant.schema import Answer, AnswerSentence, Citation, Passage
from assistant.transcript import WINDOW, restore, slim, to_markdown


def _answer(q: str = "When was it founded?", lang: str = "en") -> Answer:
    text = "Intro. " * 100 + "It was founded in 2021 by six colleges. " + "More. " * 100
    start = text.index("It was")
    quote = "It was founded in 2021 by six colleges."
    cit = Citation(n=1, doc_id="a.txt", chunk_id="a.txt::0", title="Kestrel", outlet="Daily", date="2025-01-02",
                   source="a.txt", text=text, passage_start=1000, passage_end=1000 + len(text), quote=quote,
                   start=1000 + start, end=1000 + start + len(quote))
    return Answer(question=q, standalone_question=q, answer=f"{quote} [1]", abstained=False, language=lang,
                  citations=[cit], sentences=[AnswerSentence(text=quote, citations=[1])],
                  retrieved=[Passage("a.txt::0", "a.txt", text, 1000, 1000 + len(text), 0.9)])


def test_slim_round_trips_what_the_ui_shows() -> None:
    answer = _answer()
    saved = json.loads(json.dumps(slim(answer)))  # as the browser gives it back
    back = restore(saved)
    assert back is not None
    assert (back.answer, back.question, back.abstained) == (answer.answer, answer.question, False)
    c, orig = back.citations[0], answer.citations[0]
    assert (c.quote, c.start, c.end, c.doc_id, c.title) == (orig.quote, orig.start, orig.end, orig.doc_id, orig.title)
    # The kept passage window still holds the quote at the same absolute offset.
    assert c.text[c.start - c.passage_start: c.end - c.passage_start] == c.quote
    assert len(c.text) == len(c.quote) + 2 * WINDOW
    quotes_only = restore(json.loads(json.dumps(slim(answer, keep_passages=False))))
    assert quotes_only is not None and quotes_only.citations[0].text == orig.quote
    assert back.retrieved == []  # retrieved passages are not saved in the browser


def test_restore_refuses_malformed_browser_data() -> None:
    good = slim(_answer())
    bad: list[Any] = [None, "x", [], {}, {**good, "answer": 5}, {**good, "citations": "x"},
                      {**good, "citations": [{**good["citations"][0], "start": -1}]},
                      {**good, "citations": [{**good["citations"][0], "n": True}]},
                      {**good, "question": "q" * 5000}, {**good, "citations": [good["citations"][0]] * 21}]
    for item in bad:
        assert restore(item) is None, str(item)[:80]
    assert restore({**good, "language": "<script>"}).language == "en"  # type: ignore[union-attr]


def test_markdown_export_has_every_turn_with_footnotes() -> None:
    md = to_markdown([_answer(), _answer("Who founded it?")], title="Conversation")
    assert md.startswith("# Conversation\n")
    assert md.count("## Question ") == 2
    assert "It was founded in 2021 by six colleges. [^1-1]" in md and "[^2-1]" in md
    assert "\n[^1-1]: Kestrel (Daily, 2025-01-02) — `a.txt`, chars" in md
    zh = to_markdown([_answer("它是什么时候成立的？", "zh")], title="对话记录")
    assert "## 问题 1: 它是什么时候成立的？" in zh
    # HTML in documents or questions stays text in a viewer that renders it (fifth security review).
    hostile = to_markdown([_answer("<img src=x onerror=alert(1)> when?")], title="Conversation")
    assert "## Question 1: &lt;img src=x onerror=alert(1)&gt; when?" in hostile and "<img" not in hostile
