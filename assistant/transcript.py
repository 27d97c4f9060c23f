"""Conversations as data: a compact record of each turn, read back strictly, and exported as Markdown.

The web UI keeps the conversation in the browser (``slim`` records in localStorage) so it survives a
reload without the server storing anything; ``restore`` reads such a record back and refuses anything
malformed (it came from a browser). ``to_markdown`` writes a conversation with its footnotes and
sources, for the UI's export and the terminal chat's ``/export FILE``.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

from . import strings
from .schema import Answer, AnswerSentence, Citation, Passage

WINDOW = 200  # characters of the cited passage kept on each side of the quote
MAX_TEXT = 4000  # any one text field read back from a browser
MAX_ITEMS = 20  # citations, sentences or related passages per answer


def slim(answer: Answer, keep_passages: bool = True) -> dict[str, Any]:
    """What a saved turn needs to be shown again: the answer, its sentences and citations (passage text
    cut to ``WINDOW`` characters around each quote; none when ``keep_passages`` is False)."""
    cits = []
    for c in answer.citations:
        rel = max(0, c.start - c.passage_start)
        lo = max(0, rel - WINDOW) if keep_passages else rel
        hi = min(len(c.text), rel + len(c.quote) + WINDOW) if keep_passages else rel + len(c.quote)
        cits.append({"n": c.n, "doc_id": c.doc_id, "chunk_id": c.chunk_id, "title": c.title, "outlet": c.outlet,
                     "date": c.date, "source": c.source, "text": c.text[lo:hi], "passage_start": c.passage_start + lo,
                     "passage_end": c.passage_start + hi, "quote": c.quote, "start": c.start, "end": c.end,
                     "page": c.page})
    related = [{"doc_id": p.doc_id, "title": p.title, "text": p.text[:300] if keep_passages else "",
                "outlet": str(p.metadata.get("outlet", "")), "date": str(p.metadata.get("date", ""))}
               for p in answer.related]
    return {"question": answer.question, "standalone_question": answer.standalone_question,
            "answer": answer.answer, "abstained": answer.abstained, "language": answer.language,
            "sentences": [{"text": s.text, "citations": list(s.citations), "supported": s.supported}
                          for s in answer.sentences],
            "citations": cits, "related": related}


def _text(value: Any, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise ValueError("bad text")
    return value


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 10**9:
        raise ValueError("bad number")
    return value


def _items(value: Any) -> list[Any]:
    if not isinstance(value, list) or len(value) > MAX_ITEMS:
        raise ValueError("bad list")
    return value


def restore(data: Any) -> Answer | None:
    """An ``Answer`` from a ``slim`` record, or None when anything in it is malformed."""
    try:
        if not isinstance(data, dict):
            return None
        citations = [
            Citation(n=_int(c["n"]), doc_id=_text(c["doc_id"], 500), chunk_id=_text(c.get("chunk_id", ""), 600),
                     title=_text(c.get("title", "")), outlet=_text(c.get("outlet", ""), 500),
                     date=_text(c.get("date", ""), 50), source=_text(c.get("source", ""), 500), text=_text(c["text"]),
                     passage_start=_int(c["passage_start"]), passage_end=_int(c["passage_end"]),
                     quote=_text(c["quote"]), start=_int(c["start"]), end=_int(c["end"]),
                     page=None if c.get("page") is None else _int(c["page"]))
            for c in _items(data.get("citations", []))
        ]
        sentences = [AnswerSentence(text=_text(s["text"]), citations=[_int(n) for n in _items(s.get("citations", []))],
                                    supported=bool(s.get("supported", True)))
                     for s in _items(data.get("sentences", []))]
        related = [Passage(chunk_id="", doc_id=_text(p["doc_id"], 500), text=_text(p.get("text", "")), start=0,
                           end=0, score=0.0, metadata={"title": _text(p.get("title", "")),
                                                       "outlet": _text(p.get("outlet", ""), 500),
                                                       "date": _text(p.get("date", ""), 50)})
                   for p in _items(data.get("related", []))]
        language = data.get("language", "en")
        return Answer(question=_text(data["question"]), standalone_question=_text(data["standalone_question"]),
                      answer=_text(data["answer"], 20_000), abstained=bool(data["abstained"]),
                      language=language if language in ("en", "zh", "mixed") else "en",
                      citations=citations, sentences=sentences, related=related)
    except (KeyError, TypeError, ValueError):
        return None


def _footnoted(text: str, turn: int, numbers: Iterable[int]) -> str:
    for n in sorted(set(numbers), reverse=True):
        text = text.replace(f"[{n}]", f"[^{turn}-{n}]")
    return text


def _md_text(value: str) -> str:
    """Document or visitor text as Markdown text: HTML in it stays text in a viewer that renders HTML."""
    return html.escape(value.strip(), quote=False)


def _md_code(value: str) -> str:
    """A document id as a code span (a backtick inside would end it)."""
    return "`" + value.replace("`", "'") + "`"


def to_markdown(turns: Sequence[Answer], title: str = "Conversation") -> str:
    """A conversation as Markdown: each question, its answer with footnotes, and the quoted sources.
    Text from documents and questions is escaped for viewers that render HTML."""
    lang = turns[0].language if turns else "en"
    words = strings.section("export", lang)
    lines = [f"# {title}", ""]
    for i, answer in enumerate(turns, start=1):
        lines += [f"## {words['question']} {i}: {_md_text(answer.question)}", ""]
        if answer.standalone_question.strip() != answer.question.strip():
            lines += [f"*{words['searched']}: {_md_text(answer.standalone_question)}*", ""]
        lines += [_footnoted(_md_text(answer.answer), i, (c.n for c in answer.citations)), ""]
        for c in answer.citations:
            where = ", ".join(x for x in (c.outlet, c.date) if x)
            head = _md_text(f"{c.title or c.doc_id}" + (f" ({where})" if where else ""))
            page = f", p. {c.page}" if c.page else ""
            where_in = f"{_md_code(c.doc_id)}{page}, chars {c.start}–{c.end}"
            lines.append(f"[^{i}-{c.n}]: {head} — {where_in}: “{_md_text(c.quote)}”")
        if answer.abstained and answer.related:
            lines.append("")
            lines.append(words["related"])
            lines += [f"- {_md_text(p.title or p.doc_id)} ({_md_code(p.doc_id)})" for p in answer.related]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
