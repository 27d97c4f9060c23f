"""Safe HTML for the web UI: answers with clickable footnotes, the sources panel, the document list.

Pure functions, no Gradio. Every piece of document or user text goes through ``esc``, which escapes
HTML *and* the characters Markdown or LaTeX would act on (the chat window renders Markdown), so a
document containing ``<script>`` or ``[x](javascript:…)`` is shown as text. The HTML we emit has no
newline characters: a Markdown renderer treats such a ``<div>`` block as raw HTML and leaves it alone.

Anchor ids are ``src-{turn}-{n}`` for the citations of turn ``turn`` and ``rel-{turn}-{i}`` for its
"possibly related" passages; footnotes ``[n]`` in the answer link to them.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from . import strings
from .answer import messages
from .schema import Answer, Citation, Passage

# HTML's special characters and those Markdown (and KaTeX's $…$) would interpret, as entities: one
# pass, so an entity we write is never escaped again.
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}
_ESCAPES.update({c: f"&#{ord(c)};" for c in "\\`*_[]{}()#+-!|~$:"})
_ESCAPE_TABLE = str.maketrans(_ESCAPES)
# "[1]", "[1, 2]" or "[1][2]" after a sentence; full-width commas too.
_MARKERS = re.compile(r"\[(\d{1,3}(?:\s*[,，]\s*\d{1,3})*)\]")
# The end of a sentence with the citation markers that follow it: where streaming may pause.
_SENTENCE_END = re.compile(r"[.!?。！？]+[\"'”’」』)）]*(?:\s*\[\d{1,3}(?:\s*[,，]\s*\d{1,3})*\])*\s*")



def ui_text(lang: str) -> dict[str, str]:
    """The sources panel's and document table's fixed texts in ``lang`` (from ``strings.toml``)."""
    return strings.section("sources", lang)


def esc(text: object) -> str:
    """Escape ``text`` for HTML and neutralize Markdown/LaTeX syntax; newlines become ``<br>``."""
    escaped = str(text).translate(_ESCAPE_TABLE)
    return escaped.replace("\r\n", "\n").replace("\n", "<br>")


def source_id(turn: int, n: int) -> str:
    """Anchor id of citation ``n`` of turn ``turn``."""
    return f"src-{turn}-{n}"


def related_id(turn: int, i: int) -> str:
    """Anchor id of related passage ``i`` (1-based) of turn ``turn``."""
    return f"rel-{turn}-{i}"


def quote_span(citation: Citation) -> tuple[int, int] | None:
    """Where the quote sits inside the passage text: by its offsets, else by search; None if absent."""
    text, quote = citation.text, citation.quote
    if not quote:
        return None
    start = citation.start - citation.passage_start
    if 0 <= start and text[start : start + len(quote)] == quote:
        return start, start + len(quote)
    found = text.find(quote)
    if found >= 0:
        return found, found + len(quote)
    return None


def doc_request(c: Citation) -> str:
    """What "open the document" of a citation sends back to the server: [doc_id, start, end] as JSON."""
    return json.dumps([c.doc_id, c.start, c.end], ensure_ascii=False)


def esc_attr(text: str) -> str:
    """``text`` for a double-quoted HTML attribute (no Markdown escaping: attributes are not rendered)."""
    return html.escape(text, quote=True)


def highlight(text: str, span: tuple[int, int] | None) -> str:
    """Escaped ``text`` with ``span`` wrapped in ``<mark>``."""
    if span is None:
        return esc(text)
    s, e = span
    return f"{esc(text[:s])}<mark>{esc(text[s:e])}</mark>{esc(text[e:])}"


def stream_prefixes(text: str) -> list[str]:
    """Growing prefixes of ``text``, one more sentence (with its citation markers) each time."""
    cuts = [m.end() for m in _SENTENCE_END.finditer(text) if 0 < m.end() < len(text)]
    prefixes = [text[:c].rstrip() for c in cuts]
    prefixes.append(text)
    return [p for i, p in enumerate(prefixes) if p and (i == 0 or p != prefixes[i - 1])]


def _footnote(n: int, turn: int) -> str:
    target = source_id(turn, n)
    return f'<a class="fn-ref" href="#{target}" data-target="{target}">{n}</a>'


def render_text_with_footnotes(text: str, valid: Iterable[int], turn: int) -> str:
    """Escaped ``text`` with each ``[n]`` marker of a known citation turned into a footnote link."""
    known = set(valid)
    out: list[str] = []
    pos = 0
    for m in _MARKERS.finditer(text):
        numbers = [int(x) for x in re.split(r"\s*[,，]\s*", m.group(1))]
        if not all(n in known for n in numbers):
            continue
        out.append(esc(text[pos : m.start()]))
        links = ",".join(_footnote(n, turn) for n in numbers)
        out.append(f'<sup class="fn">&#91;{links}&#93;</sup>')
        pos = m.end()
    out.append(esc(text[pos:]))
    return "".join(out)


def _meta_line(parts: Sequence[str]) -> str:
    return " · ".join(p for p in parts if p)


def render_answer(answer: Answer, turn: int, text: str | None = None) -> str:
    """The chat message for ``answer``: "searched for", the answer with footnotes, related passages.

    ``text`` is a prefix of ``answer.answer`` while streaming; fixed texts follow the answer's language.
    """
    msg = messages(answer.language)
    lab = ui_text(answer.language)
    body = answer.answer if text is None else text
    state = "complete" if text is None else "streaming"  # lets tests and scripts wait for the end
    parts = [f'<div class="answer {state}">']
    if answer.standalone_question.strip() != answer.question.strip():
        parts.append(f'<div class="searched">{esc(msg["searched"])}: <q>{esc(answer.standalone_question)}</q></div>')
    cls = "answer-text abstained" if answer.abstained else "answer-text"
    parts.append(f'<div class="{cls}">{render_text_with_footnotes(body, (c.n for c in answer.citations), turn)}</div>')
    unsupported = [s for s in answer.sentences if not s.supported]
    if unsupported and text is None:
        parts.append(f'<div class="note">{len(unsupported)} × {esc(lab["unsupported"])}</div>')
    if answer.abstained and answer.related and text is None:
        parts.append(f'<div class="related"><div class="related-head">{esc(msg["related"])}</div><ul>')
        for i, p in enumerate(answer.related, start=1):
            target = related_id(turn, i)
            title = p.title or p.doc_id
            snippet = p.text[:160] + ("…" if len(p.text) > 160 else "")
            parts.append(
                f'<li><a class="rel-ref" href="#{target}" data-target="{target}">{esc(title)}</a> '
                f'<span class="doc-id">&#40;{esc(p.doc_id)}&#41;</span>: '
                f'<span class="snippet">{esc(snippet)}</span></li>'
            )
        parts.append("</ul></div>")
    parts.append("</div>")
    return "".join(parts)


def _citation_html(c: Citation, turn: int, lab: Mapping[str, str]) -> str:
    meta = _meta_line(
        [
            esc(c.outlet),
            esc(c.date),
            f'<code class="doc-id">{esc(c.doc_id)}</code>',
            f"{esc(lab['chars'])} {c.start}–{c.end}",
            f'<span class="page">{esc(lab["page"].format(n=c.page))}</span>' if c.page else "",
        ]
    )
    return (
        f'<div class="src" id="{source_id(turn, c.n)}">'
        f'<div class="src-head"><span class="src-n">&#91;{c.n}&#93;</span> '
        f'<span class="src-title">{esc(c.title or c.doc_id)}</span></div>'
        f'<div class="src-meta">{meta} · <a class="open-doc" data-doc="{esc_attr(doc_request(c))}">'
        f'{esc(lab["open_doc"])}</a></div>'
        f'<blockquote class="src-text">{highlight(c.text, quote_span(c))}</blockquote>'
        "</div>"
    )


def _related_html(p: Passage, i: int, turn: int) -> str:
    meta = _meta_line(
        [
            esc(p.metadata.get("outlet", "")),
            esc(p.metadata.get("date", "")),
            f'<code class="doc-id">{esc(p.doc_id)}</code>',
        ]
    )
    return (
        f'<div class="src related-src" id="{related_id(turn, i)}">'
        f'<div class="src-head"><span class="src-title">{esc(p.title or p.doc_id)}</span></div>'
        f'<div class="src-meta">{meta}</div>'
        f'<blockquote class="src-text">{esc(p.text)}</blockquote>'
        "</div>"
    )


def render_sources(answer: Answer | None, turn: int, lang: str = "en") -> str:
    """The sources panel: each citation with title, outlet, date, doc id and its quote in ``<mark>``."""
    lab = ui_text(lang)
    if answer is None or (not answer.citations and not (answer.abstained and answer.related)):
        return f'<div class="sources-panel empty">{esc(lab["no_sources"])}</div>'
    parts = ['<div class="sources-panel">']
    if answer.citations:
        parts.append(f'<div class="panel-head">{esc(lab["sources"])}</div>')
        parts.extend(_citation_html(c, turn, lab) for c in answer.citations)
    if answer.abstained and answer.related:
        parts.append(f'<div class="panel-head">{esc(lab["related"])}</div>')
        parts.extend(_related_html(p, i, turn) for i, p in enumerate(answer.related, start=1))
    parts.append("</div>")
    return "".join(parts)


def answer_plain_text(answer: Answer, lang: str | None = None) -> str:
    """Plain text to copy: the answer, then its numbered sources with their quotes."""
    msg = messages(lang or answer.language)
    lines = []
    if answer.standalone_question.strip() != answer.question.strip():
        lines.append(f"{msg['searched']}: {answer.standalone_question}")
    lines.append(answer.answer)
    if answer.citations:
        lines += ["", f"{msg['sources']}:"]
        for c in answer.citations:
            where = ", ".join(x for x in (c.outlet, c.date) if x)
            lines.append(f"[{c.n}] {c.title or c.doc_id}" + (f" ({where})" if where else "") + f" — {c.doc_id}")
            lines.append(f"    “{c.quote}”")
    if answer.abstained and answer.related:
        lines += ["", msg["related"]]
        lines += [f"- {p.title or p.doc_id} ({p.doc_id})" for p in answer.related]
    return "\n".join(lines)


class DocLike(Protocol):
    """What the document table needs of a ``store.DocRecord``."""

    doc_id: str
    title: str
    outlet: str
    date: str
    language: str
    chunks: int


def render_documents(docs: Sequence[DocLike], lang: str = "en") -> str:
    """The indexed documents as an escaped HTML table."""
    lab = ui_text(lang)
    if not docs:
        return f'<div class="docs-table empty">{esc(lab["no_docs"])}</div>'
    head = "".join(f"<th>{esc(lab[k])}</th>" for k in ("doc", "title", "outlet", "date", "language", "chunks"))
    rows = "".join(
        f"<tr><td><code>{esc(d.doc_id)}</code></td><td>{esc(d.title)}</td><td>{esc(d.outlet)}</td>"
        f'<td>{esc(d.date)}</td><td>{esc(d.language)}</td><td class="num">{int(d.chunks)}</td></tr>'
        for d in docs
    )
    total = sum(int(d.chunks) for d in docs)
    return (
        f'<div class="docs-table"><div class="docs-count">{len(docs)} {esc(lab["documents"])} · {total} '
        f"{esc(lab['n_chunks'])}</div>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>"
    )


def render_notice(text: str, kind: str = "error") -> str:
    """An inline message (error, info) as escaped HTML."""
    kind = kind if kind in ("error", "info", "ok") else "error"
    return f'<div class="notice notice-{kind}">{esc(text)}</div>'


def metrics_rows(metrics: Mapping[str, Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Evaluation metrics as (header, rows) for a table: one row per metric, one column per tag."""
    groups = list(metrics)
    keys: list[str] = []
    for group in groups:
        keys.extend(k for k in metrics[group] if k not in keys)
    rows = []
    for key in keys:
        row = [key]
        for group in groups:
            value = metrics[group].get(key)
            row.append("" if value is None else (f"{value:.3f}" if isinstance(value, float) else str(value)))
        rows.append(row)
    return ["metric", *groups], rows


def render_document(title: str, doc_id: str, chunks: Sequence[tuple[str, Mapping[str, Any]]], quote_start: int,
                    quote_end: int, lang: str = "en") -> str:
    """A whole document as indexed, with the cited span highlighted (``<mark id="doc-quote">``).

    ``chunks`` are (text, metadata with absolute ``start``/``end``) in order; text between chunks that
    the index left out (headings, boilerplate) shows as a gap.
    """
    if not chunks:
        return f'<div class="doc-view empty">{esc(ui_text(lang)["no_doc"])}</div>'
    parts = [f'<div class="doc-view"><div class="panel-head">{esc(title or doc_id)}</div>'
             f'<div class="src-meta"><code class="doc-id">{esc(doc_id)}</code></div><div class="doc-text">']
    previous_end: int | None = None
    for text, meta in chunks:
        start = int(meta.get("start", 0))
        if previous_end is not None and start > previous_end:
            parts.append("\n")
        if previous_end is not None and start < previous_end:  # overlapping chunks: show each character once
            cut = previous_end - start
            text, start = text[cut:], previous_end
        lo, hi = max(quote_start, start) - start, min(quote_end, start + len(text)) - start
        if lo < hi:
            mark_id = ' id="doc-quote"' if quote_start >= start else ""
            parts.append(f"{esc(text[:lo])}<mark{mark_id}>{esc(text[lo:hi])}</mark>{esc(text[hi:])}")
        else:
            parts.append(esc(text))
        previous_end = start + len(text)
    parts.append("</div></div>")
    return "".join(parts)
