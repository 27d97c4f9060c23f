"""Loading files into documents: text, Markdown, HTML, PDF, DOCX and JSON Lines.

Every document keeps the character offset of its text inside the file's *source text* (see
``source_text``), so a citation can point back into the original file. A file that cannot be read is
reported as a ``DocumentError`` with its path and reason; the caller skips it and carries on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, DocumentError, LinesSkippedError
from .schema import Document, Span
from .text import detect_language, replace_surrogates

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx", ".jsonl")
# Larger files are reported and skipped: reading them whole would not bound memory, and embedding
# them (tens of thousands of chunks) would take hours on a CPU. Split big collections into files.
# The limit is ASSISTANT_MAX_FILE_MB (config.Settings), read when a file is checked, never at import.


def max_file_bytes() -> int:
    """The size limit of one file, from ``ASSISTANT_MAX_FILE_MB`` (default 20) as it is now."""
    from .config import Settings  # here, not at import: config imports modules that import this one

    return Settings.from_env(only={"max_file_mb"}).max_file_bytes


def __getattr__(name: str) -> Any:
    # MAX_FILE_BYTES was a constant computed at import; code that reads it by that name
    # (``documents.MAX_FILE_BYTES``, ``from .documents import MAX_FILE_BYTES``) gets the current limit.
    if name == "MAX_FILE_BYTES":
        return max_file_bytes()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# What one file may expand to. A DOCX is a zip and a PDF holds deflated streams: a file far under the
# size limit can inflate to gigabytes (a 428 KB DOCX held 382 MB of XML and took ingest to 6.4 GB).
# A file over any of these is reported and skipped like any broken file. Functions take them as a
# ``Limits`` (these are its defaults), so a settings object can pass other values.
MAX_EXPANDED_BYTES = 64 * 1024 * 1024  # a DOCX's unzipped members; a PDF's decoded page contents, in all
MAX_COMPRESSION_RATIO = 100.0  # a zip member over 1 MB: DOCX XML compresses 5-20:1, a zip bomb ~1000:1
MAX_DOC_CHARS = 5_000_000  # text extracted from one PDF or DOCX (~2,500 dense pages)
MAX_CHUNKS_PER_FILE = 20_000  # what one file may add to the index (about the largest text file allowed)
MAX_PDF_PAGES = 5_000
# Parsed elements are what python-docx and BeautifulSoup hold in memory (about 350 and 600 bytes each,
# measured): a 0.8 MB DOCX of 63 MB of empty paragraphs, within the zip limits, took 3.5 GB, and an
# 18 MB HTML file of empty tags 3.7 GB. A 5-million-character DOCX holds about 0.4 million elements.
MAX_DOCX_ELEMENTS = 1_000_000  # XML elements in all of a DOCX's parts, counted streaming before parsing
MAX_HTML_TAGS = 500_000  # tags (counted as "<") in an HTML file
MAX_PDF_STREAM_BYTES = 16 * 1024 * 1024  # any one decoded PDF stream (pypdf's own default is 75 MB)
PDF_FORMS_PER_PAGE = 100  # form XObjects text extraction enters on one page (pypdf's default: 5,000)
# Content operations text extraction may run over a whole PDF: about one per 10 bytes of the decoded
# content the expansion limit allows, counted as they run, so that content parsed more than once
# (forms drawn repeatedly, forms inside forms) is bounded like content that is there once.
PDF_BYTES_PER_OPERATION = 10
_RATIO_FLOOR = 1024 * 1024  # smaller members may compress well (a repetitive styles.xml) and cost nothing


# Page furniture scraped along with the articles: never indexed (compared after stripping
# white space and the trailing "|" of a share bar, case-folded).
BOILERPLATE_LINES = frozenset(
    {"workflow", "icon", "search documents", "扫一扫在手机打开当前页", "分享到", "返回顶部", "打印本页", "关闭窗口"}
)

# "Zhong Guo Xin Wen Wang· 2025-10-28 05:25": an outlet and a publication time under a headline.
OUTLET_LINE = re.compile(
    r"^\s*(?P<outlet>[^\n]{1,80}?)\s*[·•・]\s*(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[ T]+(?P<time>\d{1,2}:\d{2}(?::\d{2})?))?\s*$"
)
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[A-Za-z]+")
_SENTENCE_END = re.compile(r"[.!?。！？]")
# Control characters other than tab/newline/carriage return make a text file look like binary junk.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class Limits:
    """What one file may expand to (defaults: the ``MAX_*`` constants above); over any, it is skipped."""

    expanded_bytes: int = MAX_EXPANDED_BYTES
    compression_ratio: float = MAX_COMPRESSION_RATIO
    doc_chars: int = MAX_DOC_CHARS
    chunks_per_file: int = MAX_CHUNKS_PER_FILE
    pdf_pages: int = MAX_PDF_PAGES
    pdf_stream_bytes: int = MAX_PDF_STREAM_BYTES
    docx_elements: int = MAX_DOCX_ELEMENTS
    html_tags: int = MAX_HTML_TAGS

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not value > 0:
                raise ConfigError(f"the document limit {name} must be above 0, got {value!r}")


@dataclass
class LoadResult:
    """Documents read from a set of paths, plus the files that were skipped and why."""

    documents: list[Document] = field(default_factory=list)
    errors: list[DocumentError] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- decoding


def decode_bytes(data: bytes, path: str = "<bytes>") -> str:
    """Decode a text file: UTF-8 (with or without BOM), GB18030/GBK, Big5, UTF-16; never crash.

    Raises ``DocumentError`` for content that is not text (binary junk), never for a stray bad byte.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    # NUL bytes in an otherwise textual file are dropped rather than rejecting the whole file.
    if data.count(b"\x00") > max(16, len(data) // 20):
        raise DocumentError(path, "binary content (many NUL bytes), not a text file")
    data = data.replace(b"\x00", b"")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    text = _decode_mixed_lines(data)
    if text is None:
        text = _decode_legacy(data)
    if text is None:
        text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd") + len(_CONTROL.findall(text))
    if len(text) and bad / len(text) > 0.1:
        raise DocumentError(path, "undecodable or binary content (not UTF-8, GB18030 or Big5 text)")
    return text


_ASCII = bytes(range(128))


def _decode_mixed_lines(data: bytes) -> str | None:
    """A mostly UTF-8 file with some lines in another encoding (a paragraph pasted from a GBK page),
    decoded line by line; None when most non-ASCII lines are not UTF-8 (decode the file as a whole).

    Decoding such a file as a whole picked GB18030 and turned every UTF-8 line into mojibake.
    """
    lines = data.splitlines(keepends=True)
    decoded: list[str | None] = []
    utf8 = other = 0  # non-ASCII bytes in lines that are valid UTF-8, and in the others
    for line in lines:
        high = len(line.translate(None, _ASCII))
        try:
            decoded.append(line.decode("utf-8"))
            utf8 += high
        except UnicodeDecodeError:
            decoded.append(None)
            other += high
    if utf8 <= other:
        return None
    return "".join(d if d is not None else _decode_line(line) for d, line in zip(decoded, lines, strict=True))


def _decode_line(line: bytes) -> str:
    """One line that is not UTF-8: GB18030 or Big5 when it is valid in one, else UTF-8 with replacements."""
    best = _best_chinese_decoding(line)
    return best if best is not None else line.decode("utf-8", errors="replace")


def _best_chinese_decoding(data: bytes) -> str | None:
    """The more plausible of the GB18030 and Big5 decodings that succeed; None when neither does."""
    candidates: list[tuple[float, str]] = []
    for encoding in ("gb18030", "big5"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        candidates.append((_chinese_plausibility(text), text))
    return max(candidates, key=lambda c: c[0])[1] if candidates else None


def _decode_legacy(data: bytes) -> str | None:
    """Pick between GB18030 and Big5 (the two legacy encodings of Chinese text we expect)."""
    best = _best_chinese_decoding(data)
    if best is None:
        from charset_normalizer import from_bytes

        match = from_bytes(data).best()
        if match is None:
            return _decode_lenient(data)
        # Mostly valid text with a few broken bytes: decode with the detected encoding, replacing.
        return data.decode(match.encoding, errors="replace")
    return best


# The most frequent Chinese characters (simplified and traditional forms): text decoded with the right
# codec is dense in them; the wrong codec yields rare characters.
_COMMON_CHARS = frozenset(
    "的一是不了人我在有他这中大来上个国到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好"
    "都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实"
    "回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世"
    "气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死"
    "常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交"
    "爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保达办运武半候七必城父"
    "強這個們來為國說時會過後對於與學發經長問還進動種實現點當將於職業產業聯盟教育融合區縣"
)


def _decode_lenient(data: bytes) -> str | None:
    """Text with a few stray bad bytes (strict decoding failed): the most plausible codec, replacing them."""
    best: tuple[float, str] | None = None
    for encoding in ("utf-8", "gb18030", "big5"):
        text = data.decode(encoding, errors="replace")
        bad = text.count("\ufffd")
        if not text or bad > max(3, len(text) // 100):
            continue  # too many invalid sequences: not this encoding (or not text at all)
        score = _chinese_plausibility(text) - bad / len(text)
        if best is None or score > best[0]:
            best = (score, text)
    return best[1] if best else None


def _chinese_plausibility(text: str) -> float:
    cjk = _CJK.findall(text)
    if not cjk:
        return 0.0
    return sum(1 for c in cjk if c in _COMMON_CHARS) / len(cjk)


# --------------------------------------------------------------------------- source text


def too_large_reason(size: int) -> str:
    """The reason given for a file over ``max_file_bytes()`` (``ASSISTANT_MAX_FILE_MB``)."""
    return f"file too large ({size / 1048576:.1f} MB; the limit is {round(max_file_bytes() / 1048576, 2):g} MB)"


def _size(n: float) -> str:
    return f"{n / 1048576:.1f} MB" if n >= 1048576 else f"{n / 1024:.0f} KB"


def source_text(path: Path, limits: Limits | None = None, pages: list[tuple[int, int]] | None = None) -> str:
    """The text every offset of this file's documents refers to.

    Plain text, Markdown and JSON Lines: the decoded file. HTML: the visible text. PDF: the text of
    the pages joined by blank lines. DOCX: the paragraphs (and table cells) joined by newlines.
    PDF and DOCX are refused when they expand beyond ``limits`` (text files are bounded by their size).
    """
    limits = limits or Limits()
    suffix = path.suffix.lower()
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DocumentError(str(path), f"cannot read: {exc.strerror or exc}") from exc
    if size == 0:
        raise DocumentError(str(path), "empty file")
    if size > max_file_bytes():
        raise DocumentError(str(path), too_large_reason(size))
    if suffix == ".pdf":
        return replace_surrogates(_pdf_text(path, limits, pages))
    if suffix == ".docx":
        return replace_surrogates(_docx_text(path, limits))
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DocumentError(str(path), f"cannot read: {exc.strerror or exc}") from exc
    text = decode_bytes(data, str(path))
    if suffix in (".html", ".htm"):
        tags = text.count("<")  # an upper bound, counted before a tree is built
        if tags > limits.html_tags:
            raise DocumentError(str(path), f"HTML holds {tags:,} tags; the limit is {limits.html_tags:,}")
        return replace_surrogates(_html_text(text))
    return text


def _pdf_configuration(limits: Limits) -> AbstractContextManager[object]:
    """pypdf's own limits on decoded streams, lowered to ours for this thread (pypdf >= 7 keeps them in a
    context variable; older versions have module constants, which we leave alone: our page-content
    budget still applies)."""
    try:
        from pypdf import apply_configuration
    except ImportError:  # pypdf < 7
        return nullcontext()
    cap = limits.pdf_stream_bytes
    return apply_configuration(
        zlib_maximum_output_length=cap,
        lzw_maximum_output_length=cap,
        run_length_maximum_output_length=cap,
        brotli_maximum_output_length=cap,
        array_based_stream_maximum_output_length=cap,
        jbig2_maximum_output_length=cap,
        image_maximum_buffer_size=cap,
        # A form XObject drawn again and again is parsed again each time (the security review's 3 KB
        # PDF drew a 1 MB form 5,000 times a page, pypdf's default cap); headers and logos need a few.
        xform_maximum_invocations_per_extraction=PDF_FORMS_PER_PAGE,
    )


def _pdf_content_bytes(page: Any, budget: int) -> int:
    """Decoded size of a page's content streams and of the form XObjects it draws directly (what text
    extraction will parse), counted without keeping them (pypdf would cache every page's); a count over
    ``budget`` may stop early."""
    from pypdf.generic import ArrayObject, StreamObject

    streams: list[Any] = []
    contents = page.get("/Contents")
    contents = contents.get_object() if contents is not None else None
    if isinstance(contents, ArrayObject):
        streams.extend(c.get_object() for c in contents)
    elif contents is not None:
        streams.append(contents)
    resources = page.get("/Resources")
    xobjects = resources.get_object().get("/XObject") if resources is not None else None
    if xobjects is not None:
        for ref in xobjects.get_object().values():
            obj = ref.get_object()
            if isinstance(obj, StreamObject) and obj.get("/Subtype") == "/Form":
                streams.append(obj)
    total = 0
    for stream in streams:
        if isinstance(stream, StreamObject) and total <= budget:
            total += _decoded_size(stream, budget - total)
    return total


def _decoded_size(stream: Any, budget: int) -> int:
    """A stream's decoded size. FlateDecode alone (nearly every content stream) is inflated 1 MB at a
    time and stops past ``budget``: decoding a whole 6 MB stream at once peaked at 19 MB of heap."""
    import zlib

    from pypdf.filters import decode_stream_data

    filters = stream.get("/Filter")
    filters = filters.get_object() if filters is not None else None
    if isinstance(filters, list) and len(filters) == 1:
        filters = filters[0]
    if filters == "/FlateDecode" and stream.get("/DecodeParms") is None:
        inflater = zlib.decompressobj()
        data: bytes = stream._data  # the raw stream bytes (pypdf's own decoders read this attribute)
        size = 0
        try:
            while data and size <= budget:
                size += len(inflater.decompress(data, 1 << 20))
                data = inflater.unconsumed_tail
        except zlib.error:
            pass  # damaged: pypdf's decoder knows how to recover what it can
        else:
            return size
    return len(decode_stream_data(stream))


class _ExtractionBudget:
    """Counts what pypdf's text extraction does, as it does it, and stops it (``DocumentError``) past
    the file's limits: the measured page contents bound what a page holds once, not how often its
    forms are drawn, and a page's text is only complete (and checked) after all of it was parsed."""

    def __init__(self, path: str, limits: Limits) -> None:
        self.path = path
        self.limits = limits
        self.operations = 0
        self.max_operations = max(limits.expanded_bytes // PDF_BYTES_PER_OPERATION, 1)
        self.chars = 0

    def operation(self, operator: Any, operands: Any, cm: Any, tm: Any) -> None:
        self.operations += 1
        if self.operations > self.max_operations:
            raise DocumentError(
                self.path,
                f"PDF text extraction runs over {self.max_operations:,} content operations (forms drawn "
                f"over and over?); the limit follows from {_size(self.limits.expanded_bytes)} of page content",
            )

    def text(self, text: Any, cm: Any, tm: Any, font: Any, size: Any) -> None:
        self.chars += len(text or "")
        if self.chars > self.limits.doc_chars:  # stop at once: the rest would only be thrown away
            raise DocumentError(self.path, _too_many_chars("PDF", self.limits))


def _pdf_text(path: Path, limits: Limits, pages: list[tuple[int, int]] | None = None) -> str:
    """The text of the pages joined by blank lines; ``pages`` receives (offset, page number) of each
    non-empty page, 1-based, so a citation can name its page."""
    from pypdf import PdfReader
    from pypdf.errors import LimitReachedError, PdfReadError

    texts: list[str] = []
    try:
        with _pdf_configuration(limits):
            reader = PdfReader(str(path))
            if reader.is_encrypted:
                try:
                    ok = reader.decrypt("")
                except Exception as exc:  # pypdf raises several types for unsupported encryption
                    raise DocumentError(str(path), "encrypted PDF (password required)") from exc
                if not ok:
                    raise DocumentError(str(path), "encrypted PDF (password required)")
            n = len(reader.pages)
            if n > limits.pdf_pages:
                raise DocumentError(str(path), f"PDF has {n:,} pages; the limit is {limits.pdf_pages:,}")
            # Measure the decoded page contents before extracting any text: extraction parses them in
            # pure Python (a 5 MB page took 2.5 s), and a 0.3 MB file inflated to 200 MB of them.
            expanded = 0
            for number, page in enumerate(reader.pages, start=1):
                expanded += _pdf_content_bytes(page, limits.expanded_bytes - expanded)
                if expanded > limits.expanded_bytes:
                    raise DocumentError(
                        str(path),
                        f"PDF page content expands to more than {_size(limits.expanded_bytes)} when decoded "
                        f"(by page {number} of {n}); the limit is {_size(limits.expanded_bytes)}",
                    )
            budget = _ExtractionBudget(str(path), limits)
            for page in reader.pages:
                text = (page.extract_text(visitor_operand_before=budget.operation, visitor_text=budget.text)
                        or "").strip()
                texts.append(text)
    except DocumentError:
        raise
    except LimitReachedError as exc:  # pypdf's own guards (stream sizes, parsing work, page tree...)
        raise DocumentError(str(path), f"PDF exceeds a safety limit of the PDF reader ({exc})") from exc
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        raise DocumentError(str(path), f"broken PDF ({type(exc).__name__}: {exc})") from exc
    except Exception as exc:  # a truncated PDF can fail in many ways inside pypdf
        raise DocumentError(str(path), f"broken PDF ({type(exc).__name__}: {exc})") from exc
    text = "\n\n".join(p for p in texts if p)
    if pages is not None:
        offset = 0
        for number, page_text in enumerate(texts, start=1):
            if page_text:
                pages.append((offset, number))
                offset += len(page_text) + 2
    if not text.strip():
        raise DocumentError(str(path), "PDF has no extractable text (scanned images?)")
    return text


def _too_many_chars(kind: str, limits: Limits) -> str:
    return f"{kind} holds more than {limits.doc_chars:,} characters of text, the limit (split it into smaller files)"


def _check_zip(path: Path, limits: Limits) -> None:
    """Refuse a zip bomb from the zip directory alone, before python-docx inflates or parses anything.

    The declared sizes can be trusted: Python's zipfile never returns more than a member's declared
    ``file_size`` (a member that inflates further fails its CRC check), and python-docx reads through it.
    """
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise DocumentError(str(path), f"not a valid DOCX file ({type(exc).__name__}: {exc})") from exc
    total = sum(m.file_size for m in members)
    if total > limits.expanded_bytes:
        raise DocumentError(
            str(path),
            f"DOCX expands to {_size(total)} when unzipped; the limit is {_size(limits.expanded_bytes)} "
            "(a zip bomb?)",
        )
    for m in members:
        if m.file_size > _RATIO_FLOOR and m.file_size > limits.compression_ratio * max(m.compress_size, 1):
            raise DocumentError(
                str(path),
                f"DOCX part {m.filename} is compressed {m.file_size / max(m.compress_size, 1):.0f}:1; "
                f"the limit is {limits.compression_ratio:g}:1 (a zip bomb?)",
            )


def _check_elements(path: Path, limits: Limits) -> None:
    """Refuse a DOCX whose XML parts hold more elements than ``limits.docx_elements``, counted by a
    streaming parse that keeps nothing (python-docx builds every part's whole tree)."""
    import zipfile
    import zlib

    from lxml import etree

    elements = 0
    with zipfile.ZipFile(path) as archive:
        for member in archive.infolist():
            if not member.filename.endswith((".xml", ".rels")):
                continue
            with archive.open(member) as fh:
                try:
                    for _, element in etree.iterparse(fh, events=("end",), resolve_entities=False, no_network=True):
                        elements += 1
                        if elements > limits.docx_elements:
                            raise DocumentError(
                                str(path), f"DOCX holds more than {limits.docx_elements:,} XML elements, the limit"
                            )
                        element.clear()
                        while element.getprevious() is not None:  # drop what was read: memory stays flat
                            del element.getparent()[0]
                except (etree.XMLSyntaxError, zipfile.BadZipFile, zlib.error, EOFError) as exc:
                    reason = f"not a valid DOCX file (broken {member.filename}: {type(exc).__name__}: {exc})"
                    raise DocumentError(str(path), reason) from exc


def _docx_text(path: Path, limits: Limits) -> str:
    import zipfile

    import docx

    _check_zip(path, limits)
    _check_elements(path, limits)
    try:
        document = docx.Document(str(path))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise DocumentError(str(path), f"not a valid DOCX file ({type(exc).__name__}: {exc})") from exc
    except Exception as exc:  # python-docx raises its own PackageNotFoundError and others
        raise DocumentError(str(path), f"not a valid DOCX file ({type(exc).__name__}: {exc})") from exc
    parts: list[str] = []
    chars = 0

    def add(part: str) -> None:
        nonlocal chars
        chars += len(part) + 1
        if chars > limits.doc_chars:
            raise DocumentError(str(path), _too_many_chars("DOCX", limits))
        parts.append(part)

    for p in document.paragraphs:
        add(p.text)
    for table in document.tables:
        for row in table.rows:
            add(" | ".join(cell.text for cell in row.cells))
    text = "\n".join(parts)
    if not text.strip():
        raise DocumentError(str(path), "DOCX holds no text")
    return text


def _html_text(html: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    # Read the <title> before <head> (which holds it) is dropped with the other invisible parts.
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(["script", "style", "noscript", "template", "head"]):
        tag.decompose()
    text = soup.get_text("\n")
    lines = [re.sub(r"[ \t\u3000]+", " ", line).strip() for line in text.splitlines()]
    body = "\n".join(line for line in lines if line)
    return f"{title}\n{body}" if title and not body.startswith(title) else body


# --------------------------------------------------------------------------- splitting into documents


@dataclass
class _Line:
    start: int
    end: int  # end of the line's text, without the newline
    text: str

    @property
    def stripped(self) -> str:
        return self.text.strip()


def _lines(text: str) -> list[_Line]:
    lines = []
    pos = 0
    for raw in text.splitlines(keepends=True):
        body = raw.rstrip("\r\n")
        lines.append(_Line(pos, pos + len(body), body))
        pos += len(raw)
    return lines


def is_boilerplate(line: str) -> bool:
    """True for page furniture lines ("Workflow", "icon", "扫一扫在手机打开当前页  |", ...)."""
    key = line.strip().strip("|").strip().casefold()
    return key in BOILERPLATE_LINES


def _is_headline(line: str) -> bool:
    """A short line that is mostly Chinese: the headline of an article in a digest."""
    s = line.strip()
    if not s or len(s) > 80:
        return False
    cjk = len(_CJK.findall(s))
    latin = len(_LATIN_WORD.findall(s))
    return cjk >= 4 and cjk >= 2 * latin


def _title_from_text(text: str) -> str:
    for line in text.splitlines():
        s = line.strip().lstrip("#").strip()
        if not s or is_boilerplate(s):
            continue
        if len(s) <= 200 and not s.endswith((".", "。")) or len(s) <= 120:
            return s
        m = _SENTENCE_END.search(s, 20)
        first = s[: m.end()] if m else s
        return first if len(first) <= 120 else first[:117].rstrip() + "…"
    return ""


def _trimmed_span(text: str, start: int, end: int, lines: list[_Line]) -> tuple[int, int]:
    """Shrink [start, end) so it neither starts nor ends with white space or boilerplate lines."""
    inside = [ln for ln in lines if ln.start >= start and ln.end <= end and ln.stripped]
    content = [ln for ln in inside if not is_boilerplate(ln.text)]
    if not content:
        return start, start
    first, last = content[0], content[-1]
    s = first.start + (len(first.text) - len(first.text.lstrip()))
    e = last.start + len(last.text.rstrip())
    return s, e


def _skip_spans(lines: list[_Line], start: int, end: int) -> list[Span]:
    return [Span(ln.start, ln.end) for ln in lines if start <= ln.start and ln.end <= end and is_boilerplate(ln.text)]


def split_text(text: str, rel: str) -> list[Document]:
    """Split a plain-text file into documents: one per article of a digest, else one."""
    lines = _lines(text)
    outlets = {i: m for i, ln in enumerate(lines) if (m := OUTLET_LINE.match(ln.text))}
    if len(outlets) >= 2:
        docs = _split_digest(text, rel, lines, outlets)
        if docs:
            return docs
    start, end = _trimmed_span(text, 0, len(text), lines)
    if end <= start:
        return []
    body = text[start:end]
    return [
        Document(
            doc_id=rel,
            text=body,
            source=rel,
            offset=start,
            title=_title_from_text(body),
            language=detect_language(body),
            skip=_skip_spans(lines, start, end),
        )
    ]


def _split_digest(text: str, rel: str, lines: list[_Line], outlets: dict[int, re.Match[str]]) -> list[Document]:
    content = [i for i, ln in enumerate(lines) if ln.stripped and not is_boilerplate(ln.text)]
    starts: list[int] = []
    for pos, i in enumerate(content):
        if i in outlets or not _is_headline(lines[i].text):
            continue
        nxt = content[pos + 1] if pos + 1 < len(content) else None
        if nxt is None:
            continue
        # A headline followed by another headline is a section label (e.g. "产教融合" above the list).
        if nxt in outlets or not _is_headline(lines[nxt].text):
            starts.append(i)
    docs: list[Document] = []
    position = {i: pos for pos, i in enumerate(content)}
    for k, i in enumerate(starts):
        stop = lines[starts[k + 1]].start if k + 1 < len(starts) else len(text)
        # Only the article's own lines are looked at (scanning every line per article was quadratic).
        region = lines[i : starts[k + 1]] if k + 1 < len(starts) else lines[i:]
        start, end = _trimmed_span(text, lines[i].start, stop, region)
        if end <= start:
            continue
        pos = position[i]
        outlet_idx = content[pos + 1] if pos + 1 < len(content) else None
        outlet = date = ""
        extra: dict[str, Any] = {}
        if outlet_idx is not None and outlet_idx in outlets:
            m = outlets[outlet_idx]
            outlet, date = m.group("outlet").strip(), m.group("date")
            if m.group("time"):
                extra["time"] = m.group("time")
        body = text[start:end]
        docs.append(
            Document(
                doc_id=f"{rel}#{k + 1}",
                text=body,
                source=rel,
                offset=start,
                title=lines[i].stripped,
                outlet=outlet,
                date=date,
                language=detect_language(body),
                skip=_skip_spans(region, start, end),
                extra=extra,
            )
        )
    return docs


_RECORD_FIELDS = ("title", "outlet", "date", "language")
# Chunk metadata the pipeline sets itself: a record's own field of these names would be taken for it
# (``"pages": "0:999"`` made a JSONL document's citations say "p. 999"; fifth security review).
_RESERVED_FIELDS = frozenset({"pages", "page_starts", "line", "time", "doc_offset", "doc_hash", "chunk_index",
                              "start", "end", "sentences", "date_num", "generation", "kind"})


def _split_jsonl(text: str, rel: str, bad: list[str]) -> list[Document]:
    """One document per JSON line: ``{"text": ..., "title": ..., "outlet": ..., "date": ...}``.

    Offsets of a JSONL document refer to its own ``text`` value (``extra["line"]`` says which line).
    Lines that give no document are described in ``bad``. A line whose id repeats an earlier line's is
    one of them: the first keeps the id (two documents with one id would collide in the index).
    """
    docs: list[Document] = []
    first_line: dict[str, int] = {}  # doc_id -> the line that gave it
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            bad.append(f"line {n}: invalid JSON ({exc.msg})")
            continue
        except RecursionError:  # "[[[[…" nested deeper than the parser's recursion limit
            bad.append(f"line {n}: invalid JSON (nested too deeply)")
            continue
        if not isinstance(record, dict):
            bad.append(f"line {n}: not a JSON object")
            continue
        if "\\u" in line:  # a "\\ud800" escape decodes to a lone surrogate: replace it (same length)
            record = {
                replace_surrogates(k): replace_surrogates(v) if isinstance(v, str) else v for k, v in record.items()
            }
        body = record.get("text", record.get("content"))
        if not isinstance(body, str) or not body.strip():
            bad.append(f"line {n}: no 'text' string")
            continue
        key = str(record.get("id", n))
        doc_id = f"{rel}#{key}"
        if doc_id in first_line:  # also an explicit id equal to an earlier id-less line's number
            bad.append(f"line {n}: duplicate id {key!r} (first on line {first_line[doc_id]})")
            continue
        first_line[doc_id] = n
        meta = {k: v for k, v in record.items() if k not in ("text", "content") and isinstance(v, str | int | float)}
        docs.append(
            Document(
                doc_id=doc_id,
                text=body,
                source=rel,
                offset=0,
                title=str(record.get("title", "")) or _title_from_text(body),
                outlet=str(record.get("outlet", "")),
                date=_iso_date(str(record.get("date", ""))),
                language=str(record.get("language", "")) or detect_language(body),
                extra={"line": n, **{k: v for k, v in meta.items()
                                     if k not in _RECORD_FIELDS and k not in _RESERVED_FIELDS}},
            )
        )
    return docs


def _iso_date(value: str) -> str:
    m = re.search(r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})", value)
    if not m:
        return ""
    y, mo, d = (int(g) for g in m.groups())
    return f"{y:04d}-{mo:02d}-{d:02d}"


# --------------------------------------------------------------------------- public entry points


def relative_name(path: Path, root: Path | None) -> str:
    """The path as stored in doc ids: relative to the corpus root when inside it, POSIX separators."""
    path = path.resolve()
    if root is not None:
        try:
            return path.relative_to(root.resolve()).as_posix()
        except ValueError:
            pass
    return path.as_posix()


def link_name(path: Path, root: Path | None) -> str:
    """Like ``relative_name``, but naming a symlink itself rather than its target (for error reports)."""
    link = path.parent.resolve() / path.name
    if root is not None:
        try:
            return link.relative_to(root.resolve()).as_posix()
        except ValueError:
            pass
    return link.as_posix()


def load_file(
    path: Path,
    root: Path | None = None,
    limits: Limits | None = None,
    problems: list[DocumentError] | None = None,
) -> list[Document]:
    """Read one file into documents. Raises ``DocumentError`` with the reason when it cannot.

    A file read in part (JSONL lines that were skipped: invalid, no text, a repeated id) appends one
    ``DocumentError`` naming the file and those lines to ``problems``, so the caller can report it.
    """
    suffix = path.suffix.lower()
    rel = relative_name(path, root)
    if suffix not in SUPPORTED_SUFFIXES:
        raise DocumentError(rel, f"unsupported file type '{suffix or path.name}'")
    pages: list[tuple[int, int]] = []
    try:
        text = source_text(path, limits, pages)
    except DocumentError as exc:
        raise DocumentError(rel, exc.reason) from exc
    bad: list[str] = []
    docs = _split_jsonl(text, rel, bad) if suffix == ".jsonl" else split_text(text, rel)
    for doc in docs if pages else []:
        doc.extra["page_starts"] = pages  # each chunk keeps the pages it spans (chunking.page_field)
    if not docs and bad:
        raise DocumentError(rel, "; ".join(bad[:3]))
    if not docs:
        raise DocumentError(rel, "no text content (empty or white space only)")
    if bad and problems is not None:
        more = f"; and {len(bad) - 3} more" if len(bad) > 3 else ""
        problems.append(
            LinesSkippedError(
                rel,
                f"{len(bad)} line{'s' * (len(bad) > 1)} skipped, the other {len(docs)} indexed: "
                + "; ".join(bad[:3])
                + more,
            )
        )
    return docs


def iter_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Supported files under the given paths, in a stable order; README.md files are skipped."""
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                # Hidden folders (the corpus's .trash and .versions among them) hold no documents.
                hidden = any(part.startswith(".") for part in child.relative_to(path).parts[:-1])
                if child.is_file() and not hidden and not _ignored(child):
                    yield child
        else:
            yield path


def _ignored(path: Path) -> bool:
    name = path.name
    if name.startswith(".") or name.lower() == "readme.md":
        return True
    return path.suffix.lower() not in SUPPORTED_SUFFIXES


def alias_owners(files: Iterable[Path]) -> dict[Path, Path]:
    """Files that are another listed file under a second name (a symlink to it), each mapped to that file:
    the one not a symlink when there is one, else the first. Indexing both would give every document
    twice under one id."""
    files = list(files)
    owners: dict[Path, Path] = {}
    for f in files:
        try:
            key = f.resolve()
        except (OSError, RuntimeError):  # a symlink loop: reported when the file is read
            continue
        current = owners.get(key)
        if current is None or (current.is_symlink() and not f.is_symlink()):
            owners[key] = f
    aliases: dict[Path, Path] = {}
    for f in files:
        try:
            owner = owners.get(f.resolve(), f)
        except (OSError, RuntimeError):
            continue
        if owner != f:
            aliases[f] = owner
    return aliases


def load_paths(paths: Iterable[Path], root: Path | None = None, limits: Limits | None = None) -> LoadResult:
    """Load every supported file under ``paths``; broken files, aliases of other files and files read
    in part are collected in ``errors``."""
    result = LoadResult()
    files = list(dict.fromkeys(iter_files(paths)))
    aliases = alias_owners(files)
    for path in files:
        result.files.append(relative_name(path, root))
        if root is not None and path.is_symlink() and not path.resolve().is_relative_to(root.resolve()):
            result.errors.append(DocumentError(link_name(path, root), "symlink points outside the corpus"))
            continue
        if path in aliases:
            result.errors.append(DocumentError(link_name(path, root), f"alias of {link_name(aliases[path], root)}"))
            continue
        try:
            result.documents.extend(load_file(path, root, limits, result.errors))
        except DocumentError as exc:
            result.errors.append(exc)
    return result

