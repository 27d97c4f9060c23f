"""Sentence-aware chunking for Chinese and English with exact source spans.

We do not use llama-index's ``SentenceSplitter``: its punkt-based splitting is English-only (it does
not split on 。！？；, and packs by tokenizer tokens in a way that loses exact character offsets). Our
chunks are runs of whole sentences with ``source_text[chunk.start:chunk.end] == chunk.text``.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from .errors import ConfigError
from .schema import Chunk, Document, Span

# Closing quotes and brackets that belong to the sentence they end.
_CLOSERS = "\"'”’」』）)]》"
# Chinese terminators (and the ellipsis) end a sentence wherever they stand. Three ASCII dots do
# not: they are the English ellipsis ("Reproductive Choice...[and] 2008"), cut by ``_EN_END`` only
# when white space and no lower-case word follow.
_ZH_END = re.compile(r"(?:[。！？；!?]|…+)[" + re.escape(_CLOSERS) + r"]*")
# An English full stop ends a sentence only when white space follows.
_EN_END = re.compile(r"[.!?][" + re.escape(_CLOSERS) + r"]*(?=\s)")
# ASCII , ; : between two digits belong to a number ("30,000", "10:30"), not a clause boundary.
_CLAUSE_END = re.compile(r"(?:[，；：、]|[,;:](?!\d)|(?<!\d)[,;:])\s*")
_ABBREVIATIONS = frozenset(
    "co ltd inc corp llc plc mr mrs ms dr prof st no nos vs etc e.g i.e jr sr dept univ gov govt approx "
    "fig figs vol jan feb mar apr jun jul aug sep sept oct nov dec u.s u.k p.r.c".split()
)
_ENUMERATOR = re.compile(r"\s*\d{1,3}")
_WORD_BEFORE = re.compile(r"([A-Za-z][A-Za-z.]*)$")
_LATIN_WORD = re.compile(r"[A-Za-z0-9]+(?:[.,'’-][A-Za-z0-9]+)*")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
# A Latin word or a number that a hard cut must not split ("2.744", "2.5+1.5", "92.3%", "30,000").
_UNBREAKABLE = re.compile(r"[A-Za-z0-9]+(?:[.,'’+-][A-Za-z0-9]+)*%?")
# An inline list item: " - " after the source's reference marks ("...framework [1][3] - The program")
# or after a short heading ("Group 1: Collaboration and Talent Development - Ice Wheel has...").
_INLINE_BULLET = re.compile(r"\s+[-–]\s+(?=[A-Z\"“‘'\u4e00-\u9fff])")
_HEADING_CHARS = 60


@dataclass(frozen=True)
class ChunkerSettings:
    """How documents are cut into chunks; recorded in the index manifest.

    ``max_tokens`` is an estimate of the embedding model's word pieces (a Latin word counts ~1.3,
    a Chinese character 1); all-MiniLM-L6-v2 reads up to 256 pieces. 200 was measured best on
    eval/gold.jsonl (top-1 supporting passage: 128 -> en 0.86 / zh 0.61, 200 -> 0.88 / 0.68).

    ``max_tokens_zh`` is the limit for documents in Chinese (``Document.language == "zh"``): the
    default model reads Chinese poorly, so there a chunk is mostly a unit of lexical search, which
    gains from longer passages (docs/experiments.md, "chunk size on Chinese text").
    """

    max_tokens: int = 200
    overlap_sentences: int = 1
    min_tokens: int = 24
    max_tokens_zh: int = 300

    def __post_init__(self) -> None:
        for name, value in (("max_tokens", self.max_tokens), ("max_tokens_zh", self.max_tokens_zh)):
            if not 16 <= value <= 4096:
                raise ConfigError(f"{name} must be between 16 and 4096, got {value}")
        if not 0 <= self.overlap_sentences <= 5:
            raise ConfigError(f"overlap_sentences must be between 0 and 5, got {self.overlap_sentences}")
        if not 0 <= self.min_tokens < min(self.max_tokens, self.max_tokens_zh):
            raise ConfigError(
                f"min_tokens must be >= 0 and below max_tokens ({self.max_tokens}) and max_tokens_zh "
                f"({self.max_tokens_zh}), got {self.min_tokens}"
            )

    def limit(self, language: str) -> int:
        """The chunk size for a document in ``language``."""
        return self.max_tokens_zh if language == "zh" else self.max_tokens

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def estimate_tokens(text: str) -> float:
    """A cheap estimate of the number of word pieces of ``text`` (no tokenizer needed)."""
    return 1.3 * len(_LATIN_WORD.findall(text)) + len(_CJK.findall(text))


_LONGEST_ABBREVIATION = max(len(a) for a in _ABBREVIATIONS)


def _is_abbreviation(text: str, dot: int) -> bool:
    """True when the word before the full stop at ``dot`` is an abbreviation or a capital initial.

    The word starts at the first letter of the run of ASCII letters and dots that ends at the stop
    (what ``_WORD_BEFORE`` matches). It is found by scanning back over that run only: searching from
    the start of the text for every full stop made sentence splitting quadratic (a 1 MB file took hours).
    """
    end = dot - 1 if dot > 0 and text[dot - 1] == "\n" else dot  # ``$`` also matches before a final newline
    k, first = end, -1
    while k > 0:
        ch = text[k - 1]
        if ch != "." and not ("a" <= ch <= "z" or "A" <= ch <= "Z"):
            break
        k -= 1
        if ch != ".":
            first = k
            if end - first > _LONGEST_ABBREVIATION:
                return False
    if first < 0:
        return False
    word = text[first:end].lower()
    if word in _ABBREVIATIONS:
        return True
    # Single capital initials ("J. Smith") are not sentence ends.
    return len(word) == 1 and text[first].isupper()


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[Span]:
    """Sentence spans of ``text[start:end]``, absolute, stripped of surrounding white space.

    Splits at line breaks, at 。！？；… and at . ! ? followed by white space, but never inside a
    number (2.744, 92.3%) or after an abbreviation (Co., Ltd.).
    """
    end = len(text) if end is None else end
    cuts: set[int] = set()
    newlines: list[int] = []
    pos = start
    while True:
        nl = text.find("\n", pos, end)
        if nl < 0:
            break
        newlines.append(nl)
        pos = nl + 1
    for m in _ZH_END.finditer(text, start, end):
        cuts.add(m.end())
    for m in _EN_END.finditer(text, start, end):
        if text[m.start()] == "." and _is_abbreviation(text, m.start()):
            continue
        # "1. Creating a platform": a list number opening a line is not a sentence of its own.
        # (The line start by bisection: scanning back to it for every stop was quadratic on long lines.)
        before = bisect_left(newlines, m.start())
        line_start = newlines[before - 1] + 1 if before else start
        if text[m.start()] == "." and _ENUMERATOR.fullmatch(text, line_start, m.start()):
            continue
        nxt = _next_visible(text, m.end(), end)
        # "...the U.S. economy": a lower-case continuation means the stop was not a sentence end.
        if text[m.start()] == "." and nxt is not None and text[nxt].islower():
            continue
        cuts.add(m.end())
    cuts.update(newlines)
    spans: list[Span] = []
    prev = start
    for cut in sorted(cuts) + [end]:
        if cut <= prev:
            continue
        span = _strip(text, prev, cut)
        if span is not None:
            spans.append(span)
        prev = cut
    return spans


def inline_items(text: str, span: Span) -> tuple[list[Span], list[Span]]:
    """The list items run together in one sentence ``span`` of ``text``, and the headings before them.

    News digests write "Group 1: Forum Highlights - The forum was hosted by Wu Jing [2]. - Shao
    Weijun stressed... [2]" on one line: each item is what a citation should quote, without its
    heading. Returns ``([span], [])`` when the sentence holds no such list. Linear in the span.
    """
    items: list[Span] = []
    headings: list[Span] = []
    prev = span.start
    for m in _INLINE_BULLET.finditer(text, span.start, span.end):
        at = m.start()
        if at <= span.start:
            continue
        if text[at - 1] == "]":
            piece = _strip(text, prev, at)
            if piece is not None:
                items.append(piece)
            prev = at
            continue
        # A heading: short, ending no sentence; it may follow the last item's reference marks
        # directly ("...projects [5] Group 2 - The training class...").
        head = prev
        mark = text.rfind("]", prev, at)
        if mark >= 0:
            head = mark + 1
        if at - head > _HEADING_CHARS or text[at - 1] in ".!?。":
            continue
        if head > prev:
            piece = _strip(text, prev, head)
            if piece is not None:
                items.append(piece)
        heading = _strip(text, head, at)
        if heading is not None:
            headings.append(heading)
        prev = at
    if not headings and not items:
        return [span], []
    last = _strip(text, prev, span.end)
    if last is not None:
        items.append(last)
    return items, headings


def _next_visible(text: str, pos: int, end: int) -> int | None:
    while pos < end and text[pos].isspace():
        pos += 1
    return pos if pos < end else None


_BULLET = "-–•·*"


def _strip(text: str, start: int, end: int) -> Span | None:
    while start < end and text[start].isspace():
        start += 1
    # A list bullet ("- The gourd industry…") is not part of the sentence a citation quotes.
    while start + 1 < end and text[start] in _BULLET and text[start + 1].isspace():
        start += 2
        while start < end and text[start].isspace():
            start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start >= end:
        return None
    return Span(start, end)


def _split_long(text: str, span: Span, max_tokens: int) -> list[Span]:
    """Cut an over-long sentence at clause marks (，；, ;), then hard, so no piece exceeds the budget."""
    if estimate_tokens(text[span.start : span.end]) <= max_tokens:
        return [span]
    pieces: list[Span] = []
    prev = span.start
    for m in _CLAUSE_END.finditer(text, span.start, span.end):
        pieces.append(Span(prev, m.end()))
        prev = m.end()
    pieces.append(Span(prev, span.end))
    out: list[Span] = []
    cur: Span | None = None
    for piece in pieces:
        merged = Span(cur.start, piece.end) if cur else piece
        if cur is not None and estimate_tokens(text[merged.start : merged.end]) > max_tokens:
            out.append(cur)
            cur = piece
        else:
            cur = merged
    if cur is not None:
        out.append(cur)
    result: list[Span] = []
    for piece in out:
        result.extend(_hard_split(text, piece, max_tokens))
    return [s for p in result if (s := _strip(text, p.start, p.end)) is not None]


def _hard_split(text: str, span: Span, max_tokens: int) -> list[Span]:
    if estimate_tokens(text[span.start : span.end]) <= max_tokens:
        return [span]
    # No clause marks left: cut at white space near the budget (in characters, ~4 per piece for
    # Latin text, 1 for Chinese), never in the middle of a word.
    out = []
    pos = span.start
    while pos < span.end:
        limit = pos + max(16, int(max_tokens * (1 if _CJK.search(text, pos, min(pos + 50, span.end)) else 4)))
        if limit >= span.end:
            out.append(Span(pos, span.end))
            break
        cut = text.rfind(" ", pos + 1, limit)
        cut = _word_boundary(text, pos, limit, span.end) if cut <= pos else cut
        out.append(Span(pos, cut))
        pos = cut
    return out


def _word_boundary(text: str, pos: int, limit: int, end: int) -> int:
    """``limit``, unless it falls inside a Latin word or a number ("2.744", "92.3%", "IoT"): then the
    start of that word (or its end, when the word starts the piece)."""
    for m in _UNBREAKABLE.finditer(text, pos, end):
        if m.start() >= limit:
            break
        if m.start() < limit < m.end():
            return m.start() if m.start() > pos else m.end()
    return limit


class _SkipIndex:
    """Whether a sentence overlaps a boilerplate span, by bisection over the merged spans (a linear
    scan per sentence was quadratic in a file with many boilerplate lines)."""

    def __init__(self, skip: Iterable[Span]) -> None:
        merged: list[list[int]] = []
        for s in sorted((s for s in skip if s.start < s.end), key=lambda s: s.start):
            if merged and s.start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], s.end)
            else:
                merged.append([s.start, s.end])
        self.starts = [m[0] for m in merged]
        self.ends = [m[1] for m in merged]

    def overlaps(self, span: Span) -> bool:
        i = bisect_right(self.ends, span.start)
        return i < len(self.starts) and self.starts[i] < span.end


def document_sentences(source: str, doc: Document, settings: ChunkerSettings) -> list[list[Span]]:
    """Runs of indexable sentences of ``doc``; boilerplate lines break a run and are left out."""
    runs: list[list[Span]] = [[]]
    skip = _SkipIndex(doc.skip)
    for sentence in split_sentences(source, doc.offset, doc.end):
        if skip.overlaps(sentence):
            if runs[-1]:
                runs.append([])
            continue
        runs[-1].extend(_split_long(source, sentence, settings.limit(doc.language)))
    return [run for run in runs if run]


def chunk_document(doc: Document, settings: ChunkerSettings | None = None, source: str | None = None) -> list[Chunk]:
    """Pack whole sentences of ``doc`` into chunks of at most ``settings.limit(doc.language)``
    estimated word pieces, with sentence overlap.

    ``source`` is the file's source text; by default it is rebuilt from the document itself (then
    offsets are still absolute, since the document knows where it starts).
    """
    settings = settings or ChunkerSettings()
    if source is None:
        source = " " * doc.offset + doc.text
    chunks: list[Chunk] = []
    meta = doc.metadata()
    limit = settings.limit(doc.language)
    for run in document_sentences(source, doc, settings):
        i = 0
        while i < len(run):
            j = i
            cost = 0.0
            while j < len(run):
                c = estimate_tokens(source[run[j].start : run[j].end])
                if j > i and cost + c > limit:
                    break
                cost += c
                j += 1
            # A short tail chunk is folded into the previous one rather than left alone.
            if chunks and j == len(run) and i > 0 and cost < settings.min_tokens and chunks[-1].doc_id == doc.doc_id:
                prev = chunks[-1]
                if prev.sentences and prev.sentences[-1].end <= run[i].start and prev.start >= run[0].start:
                    sentences = prev.sentences + [s for s in run[i:j] if s.start >= prev.sentences[-1].end]
                    chunks[-1] = _make_chunk(source, doc, prev.index, sentences, meta)
                    break
            chunks.append(_make_chunk(source, doc, len(chunks), run[i:j], meta))
            if j >= len(run):
                break
            i = max(i + 1, j - settings.overlap_sentences)
    return chunks


def _make_chunk(source: str, doc: Document, index: int, sentences: list[Span], meta: dict[str, object]) -> Chunk:
    start, end = sentences[0].start, sentences[-1].end
    metadata = dict(meta)
    page_starts = doc.extra.get("page_starts")
    if isinstance(page_starts, list) and page_starts:  # a PDF: the pages this chunk spans
        metadata["pages"] = page_field(page_starts, start, end)
    return Chunk(
        doc_id=doc.doc_id,
        index=index,
        text=source[start:end],
        start=start,
        end=end,
        sentences=list(sentences),
        metadata=metadata,
    )


def page_field(page_starts: Sequence[tuple[int, int]], start: int, end: int) -> str:
    """The pages a span ``[start, end)`` of a PDF's text lies on, as stored with its chunk:
    ``"offset:page;offset:page"`` (the page holding ``start`` first, then each page that begins inside)."""
    kept: list[tuple[int, int]] = []
    for offset, number in page_starts:
        if offset <= start:
            kept = [(offset, number)]
        elif offset < end:
            kept.append((offset, number))
        else:
            break
    return ";".join(f"{o}:{n}" for o, n in kept)


def page_at(field: object, position: int) -> int | None:
    """The page number at ``position`` of the source text, from a chunk's ``page_field``; None if unknown."""
    if not isinstance(field, str) or not field:
        return None
    page = None
    for item in field.split(";"):
        offset, _, number = item.partition(":")
        if not offset.isdigit() or not number.isdigit():
            return None
        if int(offset) <= position:
            page = int(number)
    return page
