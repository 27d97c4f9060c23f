"""Ingest safety: documents that expand without bound, duplicate ids and aliases, and questions during an upload.

Every hostile file is generated here (a DOCX and a PDF "bomb", a JSONL with repeated ids, symlink aliases);
the index is a real Chroma store and the embeddings come from the real packaged model.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
import tracemalloc
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import CORPUS_FILES, DIGEST, copy_corpus

from assistant.config import Config
from assistant.core import Assistant
from assistant.documents import Limits, load_file, load_paths
from assistant.embedding import Embedder
from assistant.errors import DocumentError
from assistant.ingest import STAGING, IngestReport, StagedVectors, ingest
from assistant.server import ReadWriteLock
from assistant.store import Store

MB = 1024 * 1024
SMALL = [name for name in CORPUS_FILES if name != DIGEST][:2]  # two single-article sample files

# --------------------------------------------------------------------------- generated bombs

_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
)
_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Target="word/document.xml" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"/></Relationships>'
)


def docx_bomb(path: Path, expanded: int) -> int:
    """A valid DOCX whose document.xml is ``expanded`` bytes of repeated paragraphs, streamed through
    ZIP_DEFLATED (the test never holds the XML); returns the real uncompressed size of document.xml."""
    head = f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="{_W}"><w:body>'.encode()
    block = (b"<w:p><w:r><w:t>" + b"Bomb text " * 50 + b"</w:t></w:r></w:p>") * 1000
    written = 0
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", _CONTENT_TYPES)
        z.writestr("_rels/.rels", _RELS)
        with z.open("word/document.xml", "w", force_zip64=True) as fh:
            fh.write(head)
            written += len(head)
            while written < expanded:
                fh.write(block)
                written += len(block)
            fh.write(b"</w:body></w:document>")
            written += len(b"</w:body></w:document>")
    return written


def pdf_bomb(path: Path, pages: int, per_page: int) -> int:
    """A hand-made PDF whose pages each draw ``per_page`` bytes of long text strings from one deflated
    content stream (about 1,000:1); returns the total decompressed content size."""
    line = b"(" + b"A" * 4000 + b") Tj\n"
    filler = line * max(1, min(per_page, MB) // len(line))
    streams = []
    total = 0
    for i in range(pages):
        z = zlib.compressobj(9)
        parts = [z.compress(f"BT /F1 12 Tf 72 720 Td (Bomb page {i}) Tj\n".encode())]
        done = 0
        while done < per_page:
            parts.append(z.compress(filler))
            done += len(filler)
        parts += [z.compress(b"ET\n"), z.flush()]
        streams.append(b"".join(parts))
        total += done
    objects: list[bytes] = [
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        f"<< /Type /Pages /Count {pages} /Kids [{' '.join(f'{3 + 2 * i} 0 R' for i in range(pages))}] >>".encode(),
    ]
    for i, data in enumerate(streams):
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 1 0 R >> >> "
            f"/Contents {4 + 2 * i} 0 R >>".encode()
        )
        objects.append(f"<< /Length {len(data)} /Filter /FlateDecode >>\nstream\n".encode() + data + b"\nendstream")
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    write_pdf(path, objects, root=len(objects))
    return total


def write_pdf(path: Path, objects: list[bytes], root: int) -> None:
    """A PDF file of ``objects`` (numbered from 1) with its cross-reference table; ``root``: the catalog's."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root {root} 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(bytes(out))


def form_pdf(path: Path, form: bytes, draws: int, pages: int = 1) -> None:
    """A hand-made PDF whose pages each draw one deflated form XObject (content ``form``) ``draws``
    times: its bytes are counted once a page, but text extraction parses it at every draw (the fifth
    security review's 3 KB file drew a 1 MB form 5,000 times a page)."""

    def stream(data: bytes, extra: bytes = b"") -> bytes:
        z = zlib.compress(data, 9)
        return b"<< /Length %d /Filter /FlateDecode %s >>\nstream\n" % (len(z), extra) + z + b"\nendstream"

    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               f"<< /Type /Pages /Kids [{' '.join(f'{6 + i} 0 R' for i in range(pages))}] /Count {pages} >>".encode(),
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
               stream(form, b"/Type /XObject /Subtype /Form /BBox [0 0 600 800] "
                            b"/Resources << /Font << /F1 3 0 R >> >>"),
               stream(b"BT /F1 10 Tf 10 780 Td (Osprey report) Tj ET\n" + b"/X0 Do\n" * draws)]
    objects += [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 600 800] /Contents 5 0 R "
                b"/Resources << /Font << /F1 3 0 R >> /XObject << /X0 4 0 R >> >> >>"] * pages
    write_pdf(path, objects, root=1)


@contextlib.contextmanager
def measured() -> Iterator[dict[str, float]]:
    """Python-heap peak (tracemalloc) of the block, in ``result``. Its wall time is printed, never
    asserted: speed is the benchmarks' business, and a slow CI machine is not a failure (the memory
    peak is what separates a refused bomb from a parsed one: gigabytes before the fixes)."""
    result: dict[str, float] = {}
    tracemalloc.start()
    started = time.perf_counter()
    try:
        yield result
    finally:
        seconds = time.perf_counter() - started
        result["peak"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"\n{seconds:.2f} s, Python heap peak {result['peak'] / MB:.1f} MB")


def errors_by_path(report: IngestReport) -> dict[str, str]:
    return {e.path: e.reason for e in report.errors}


# --------------------------------------------------------------------------- 1. documents that expand


def test_docx_zip_bomb_is_skipped_before_parsing(tmp_path: Path, embedder: Embedder) -> None:
    """A 0.7 MB DOCX holding 200 MB of XML is refused from its zip directory (nothing is inflated or
    parsed): the Python heap stays far below the XML's size, the sample files are indexed and the bomb
    is reported with its reason."""
    corpus = copy_corpus(tmp_path / "corpus", SMALL)
    expanded = docx_bomb(corpus / "bomb.docx", 200 * MB)
    assert (corpus / "bomb.docx").stat().st_size < MB < expanded // 100
    store = Store(tmp_path / "index")
    with measured() as m:
        report = ingest([corpus], store, embedder, corpus_root=corpus)
    reason = errors_by_path(report)["bomb.docx"]
    assert "expands to" in reason and "the limit is" in reason, reason
    assert [e.path for e in report.errors] == ["bomb.docx"]
    assert report.added == len(SMALL)
    assert m["peak"] < expanded / 10  # before the fix: the whole XML was read (and parsed by lxml)


def test_docx_compressed_too_well_is_refused(tmp_path: Path) -> None:
    """Under the expanded-size limit, a member compressed far beyond any real document's ratio is refused
    too (a 30 MB document.xml in a 0.1 MB file); a real python-docx document still loads."""
    import docx

    expanded = docx_bomb(tmp_path / "dense.docx", 30 * MB)
    with measured() as m, pytest.raises(DocumentError) as info:
        load_file(tmp_path / "dense.docx", tmp_path)
    assert info.value.path == "dense.docx"
    assert "compressed" in info.value.reason and ":1" in info.value.reason, info.value.reason
    assert m["peak"] < expanded / 10

    document = docx.Document()
    document.add_paragraph("The Avocet alliance trains 30 welders a year. " * 200)
    document.save(str(tmp_path / "real.docx"))
    [doc] = load_file(tmp_path / "real.docx", tmp_path)
    assert doc.text.startswith("The Avocet alliance")


def test_docx_and_html_of_millions_of_empty_elements_are_refused_before_parsing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """python-docx and BeautifulSoup hold every element in memory (about 350 and 600 bytes each): a
    0.8 MB DOCX of 63 MB of empty paragraphs, within the zip limits, took 3.5 GB, and an 18 MB HTML file
    of empty tags 3.7 GB (fifth security review). Both are counted first, streaming, and refused."""
    head = f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="{_W}"><w:body>'.encode()
    with zipfile.ZipFile(tmp_path / "paras.docx", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", _CONTENT_TYPES)
        z.writestr("_rels/.rels", _RELS)
        with z.open("word/document.xml", "w") as fh:
            fh.write(head)
            for _ in range(30):
                fh.write(b"<w:p/>" * 100_000)
            fh.write(b"</w:body></w:document>")
    loose = Limits(compression_ratio=1e6)  # as if padded under the ratio limit, as the review's file was
    import bs4
    import docx

    parsed: list[str] = []
    with monkeypatch.context() as patch:  # the parsers must not even be called
        patch.setattr(docx, "Document", lambda *a, **k: parsed.append("docx"))
        patch.setattr(bs4, "BeautifulSoup", lambda *a, **k: parsed.append("html"))
        with measured() as m, pytest.raises(DocumentError) as info:
            load_file(tmp_path / "paras.docx", tmp_path, limits=loose)
        assert info.value.reason == "DOCX holds more than 1,000,000 XML elements, the limit", info.value.reason
        assert m["peak"] < 50 * MB

        (tmp_path / "tags.html").write_text("<html><body>" + "x<b>" * 600_000 + "</body></html>", encoding="utf-8")
        with measured() as m, pytest.raises(DocumentError) as info:
            load_file(tmp_path / "tags.html", tmp_path)
        assert info.value.reason == "HTML holds 600,004 tags; the limit is 500,000", info.value.reason
        assert m["peak"] < 50 * MB
    assert parsed == []

    document = docx.Document()
    document.add_paragraph("The Avocet alliance trains 30 welders a year.")
    document.save(str(tmp_path / "real.docx"))
    (tmp_path / "real.html").write_text("<p>The Avocet alliance trains welders.</p>" * 100, encoding="utf-8")
    assert [d.doc_id for d in load_file(tmp_path / "real.docx", tmp_path)] == ["real.docx"]
    assert [d.doc_id for d in load_file(tmp_path / "real.html", tmp_path)] == ["real.html"]
    with pytest.raises(DocumentError, match="more than 100 XML elements"):
        load_file(tmp_path / "real.docx", tmp_path, limits=Limits(docx_elements=100))
    data = bytearray((tmp_path / "real.docx").read_bytes())  # a damaged part is reported, not raised
    with zipfile.ZipFile(tmp_path / "real.docx") as z:
        member = z.getinfo("word/document.xml")
    start = member.header_offset + 30 + len(member.filename) + len(member.extra) + 5
    data[start : start + 20] = bytes(b ^ 0x55 for b in data[start : start + 20])
    (tmp_path / "damaged.docx").write_bytes(bytes(data))
    with pytest.raises(DocumentError, match="not a valid DOCX file"):
        load_file(tmp_path / "damaged.docx", tmp_path)


def test_pdf_bomb_is_skipped_with_bounded_memory(tmp_path: Path, embedder: Embedder) -> None:
    """A 0.3 MB PDF whose 40 pages inflate to 200 MB of text operators (each page within pypdf's own
    75 MB stream limit) is refused with bounded memory; the other files are indexed."""
    corpus = copy_corpus(tmp_path / "corpus", SMALL)
    expanded = pdf_bomb(corpus / "bomb.pdf", pages=40, per_page=5 * MB)
    assert (corpus / "bomb.pdf").stat().st_size < MB
    store = Store(tmp_path / "index")
    with measured() as m:
        report = ingest([corpus], store, embedder, corpus_root=corpus)
    reason = errors_by_path(report)["bomb.pdf"]
    assert "limit" in reason, reason
    assert [e.path for e in report.errors] == ["bomb.pdf"]
    assert report.added == len(SMALL)
    assert m["peak"] < expanded / 10  # before the fix: 98 s and 1.1 GB, 239 M characters extracted


def test_a_pdf_form_drawn_over_and_over_is_stopped_as_it_is_extracted(tmp_path: Path) -> None:
    """A 3 KB PDF drawing a 1 MB text form 5,000 times ran text extraction for a projected half hour,
    its memory growing (fifth security review). The characters and content operations are now counted
    as extraction runs, and a page enters at most ``PDF_FORMS_PER_PAGE`` forms: refused with bounded memory."""
    words = b"Alliance training base text. " * (MB // 30)
    form_pdf(tmp_path / "forms.pdf", b"BT /F1 10 Tf 10 10 Td (" + words + b") Tj ET", draws=5000)
    assert (tmp_path / "forms.pdf").stat().st_size < 10_000
    with measured() as m, pytest.raises(DocumentError) as info:
        load_file(tmp_path / "forms.pdf", tmp_path)
    assert "more than 5,000,000 characters" in info.value.reason, info.value.reason
    assert m["peak"] < 200 * MB
    # Forms without text are parsed too, and their operations count: 20 pages x 90 draws of a form of
    # 2,000 drawing operations, where the limits allow 100,000 operations (1 MB of content).
    form_pdf(tmp_path / "drawing.pdf", b"0 0 m 1 1 l S\n" * 1000, draws=90, pages=20)
    with pytest.raises(DocumentError) as info:
        load_file(tmp_path / "drawing.pdf", tmp_path, limits=Limits(expanded_bytes=MB))
    assert "over 104,857 content operations" in info.value.reason, info.value.reason
    # A form drawn a few times (a letterhead) is read as before.
    form_pdf(tmp_path / "letterhead.pdf", b"BT /F1 10 Tf 10 10 Td (Avocet alliance letterhead) Tj ET", draws=2,
             pages=3)
    [doc] = load_file(tmp_path / "letterhead.pdf", tmp_path)
    assert doc.text.count("Avocet alliance letterhead") == 6 and "Osprey report" in doc.text


def test_pdf_pages_and_characters_are_capped(tmp_path: Path) -> None:
    """The page and character caps are parameters (``Limits``): a PDF over either is refused with a
    reason naming the limit; the same file loads under the defaults."""
    path = tmp_path / "small-bomb.pdf"
    pdf_bomb(path, pages=3, per_page=20_000)
    with pytest.raises(DocumentError) as info:
        load_file(path, tmp_path, limits=Limits(pdf_pages=2))
    assert "3 pages" in info.value.reason and "limit is 2" in info.value.reason, info.value.reason
    with pytest.raises(DocumentError) as info:
        load_file(path, tmp_path, limits=Limits(doc_chars=30_000))
    assert "more than 30,000 characters" in info.value.reason, info.value.reason
    [doc] = load_file(path, tmp_path)
    assert len(doc.text) > 50_000


def test_docx_characters_are_capped(tmp_path: Path) -> None:
    import docx

    document = docx.Document()
    for _ in range(50):
        document.add_paragraph("The Avocet alliance trains 30 welders a year. " * 20)
    document.save(str(tmp_path / "long.docx"))
    with pytest.raises(DocumentError) as info:
        load_file(tmp_path / "long.docx", tmp_path, limits=Limits(doc_chars=10_000))
    assert info.value.path == "long.docx" and "more than 10,000 characters" in info.value.reason
    result = load_paths([tmp_path], tmp_path, limits=Limits(expanded_bytes=1000))
    assert [(e.path, "expands to" in e.reason) for e in result.errors] == [("long.docx", True)]


def test_chunks_per_file_are_capped(tmp_path: Path, embedder: Embedder) -> None:
    """A file that would hold more chunks than the limit is skipped before anything is embedded; the
    other files are indexed, and documents the file held before stay."""
    corpus = copy_corpus(tmp_path / "corpus", SMALL)
    long_file = corpus / "long.txt"
    long_file.write_text("The Avocet alliance trains welders in Ningbo. " * 20, encoding="utf-8")
    store = Store(tmp_path / "index")
    first = ingest([corpus], store, embedder, corpus_root=corpus, limits=Limits(chunks_per_file=3))
    assert not first.errors and first.added == len(SMALL) + 1
    long_file.write_text("The Avocet alliance trains welders in Ningbo. " * 600, encoding="utf-8")
    embedded: list[int] = []
    report = ingest([corpus], store, embedder, corpus_root=corpus, limits=Limits(chunks_per_file=3),
                    progress=lambda stage, advance, total: embedded.append(total) if stage == "embed" else None)
    reason = errors_by_path(report)["long.txt"]
    assert "chunks" in reason and "the limit is 3" in reason, reason
    assert embedded == [0]  # nothing to embed: the long file was refused before embedding
    store.reload()
    assert "long.txt" in store.documents()  # its previous version stays indexed
    assert report.removed == 0 and report.unchanged == len(SMALL)


# --------------------------------------------------------------------------- 2. duplicates and aliases


def write_duplicates(corpus: Path) -> tuple[str, dict[str, str]]:
    """A JSONL file with a repeated id (and a line-number key that an explicit id repeats), plus two
    symlink aliases of a corpus file, one sorting before it; returns the aliased name and the expected
    skipped paths -> a phrase of their reason."""
    target = SMALL[0]
    (corpus / "records.jsonl").write_text(
        '{"id": "a", "text": "The Avocet alliance trains 30 welders in Ningbo."}\n'
        '{"id": "b", "text": "The Bittern alliance runs a logistics school in Wuhan."}\n'
        '{"id": "a", "text": "A second record that repeats the id a."}\n'
        '{"text": "The Curlew alliance has no id: it is keyed by its line number, 4."}\n'
        '{"id": 4, "text": "An explicit id 4 that repeats the key of line 4."}\n',
        encoding="utf-8",
    )
    (corpus / "0-alias.txt").symlink_to(target)  # sorts before its target
    (corpus / "z-alias.txt").symlink_to(corpus / target)
    return target, {"records.jsonl": "duplicate id", "0-alias.txt": f"alias of {target}",
                    "z-alias.txt": f"alias of {target}"}


def test_duplicate_ids_and_aliases_are_skipped_and_never_break_ingest(tmp_path: Path, embedder: Embedder) -> None:
    """Before the fix both raised chromadb's DuplicateIDError and every later ingest failed the same way.
    Now: two ingests in a row succeed, the good documents are all indexed once, and the repeated lines
    and the aliases are reported (path + reason) every time."""
    corpus = copy_corpus(tmp_path / "corpus", SMALL)
    target, skipped = write_duplicates(corpus)
    store = Store(tmp_path / "index")
    reports = [ingest([corpus], store, embedder, corpus_root=corpus) for _ in range(2)]
    for report in reports:
        errors = errors_by_path(report)
        assert set(errors) == set(skipped), errors
        for path, phrase in skipped.items():
            assert phrase in errors[path], (path, errors[path])
        assert "line 3" in errors["records.jsonl"] and "line 5" in errors["records.jsonl"]
    assert reports[0].added == len(SMALL) + 3
    assert (reports[1].added, reports[1].updated, reports[1].removed) == (0, 0, 0)
    store.reload()
    docs = store.documents()
    assert set(docs) == {*SMALL, "records.jsonl#a", "records.jsonl#b", "records.jsonl#4"}
    assert docs[target].source == target
    texts = {m["doc_id"]: t for _, t, m in store.iter_chunks()}
    assert texts["records.jsonl#a"].startswith("The Avocet")  # the first record with the id wins
    assert texts["records.jsonl#4"].startswith("The Curlew")
    got = store.chunks.get(include=[])
    assert len(got["ids"]) == len(set(got["ids"])) == sum(r.chunks for r in docs.values())


def test_a_file_that_fails_to_store_is_skipped_and_the_others_are_indexed(
    tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any one file failing in the store phase (here: Chroma refusing its chunks) is reported as skipped
    and never blocks the other files; the next ingest indexes it."""
    corpus = copy_corpus(tmp_path / "corpus", SMALL)
    (corpus / "refused.txt").write_text("The Dunlin alliance trains nurses in Xiamen.\n", encoding="utf-8")
    store = Store(tmp_path / "index")
    real = Store.add_chunk_groups

    def refuse(self: Store, groups: Any, embeddings: Any) -> None:
        if any(c.doc_id == "refused.txt" for chunks, _ in groups for c in chunks):
            raise ValueError("simulated Chroma failure")
        real(self, groups, embeddings)

    monkeypatch.setattr(Store, "add_chunk_groups", refuse)
    report = ingest([corpus], store, embedder, corpus_root=corpus)
    assert [e.path for e in report.errors] == ["refused.txt"]
    assert "simulated Chroma failure" in report.errors[0].reason
    store.reload()
    assert set(store.documents()) == set(SMALL)
    assert not store.dirty() and store.count() == sum(r.chunks for r in store.documents().values())
    monkeypatch.setattr(Store, "add_chunk_groups", real)
    again = ingest([corpus], store, embedder, corpus_root=corpus)
    assert not again.errors and again.added == 1 and again.unchanged == len(SMALL)


# --------------------------------------------------------------------------- 3. questions during an upload

UPLOAD_QUESTION = "Which valley does the Pelican harbour alliance train crane operators for?"
CORPUS_QUESTION = "常州检验检测认证产教联盟是什么时候成立的？"


def harbour_report(n_chars: int) -> str:
    """A long English report on a made-up topic no sample document mentions."""
    rnd = random.Random(3)
    ports = ["Qinzhou", "Beihai", "Fangcheng", "Zhanjiang", "Haikou", "Sanya"]
    lines = ["The Pelican harbour alliance trains crane operators for the Nanliu valley ports."]
    while sum(map(len, lines)) < n_chars:
        lines.append(
            f"In week {rnd.randrange(1, 53)} the {rnd.choice(ports)} terminal of the Pelican harbour alliance "
            f"certified {rnd.randrange(5, 90)} crane operators and {rnd.randrange(2, 40)} riggers, and its "
            f"simulator logged {rnd.randrange(100, 900)} hours of night shifts."
        )
    return "\n".join(lines) + "\n"


def test_questions_are_answered_while_an_upload_is_embedded(tmp_path: Path, embedder: Embedder) -> None:
    """``Assistant.ingest(paths, write_lock=guard.write)``: loading, chunking and embedding run outside the
    write lock, so questions asked under the read lock keep being answered; only the short publishing
    phase holds it. Readers never see half an ingest: before the write lock nobody retrieves the new
    document, after it everybody does."""
    corpus = copy_corpus(tmp_path / "corpus", [*SMALL, DIGEST])
    assistant = Assistant(Config.from_env(env={}, index_dir=tmp_path / "index", corpus_dir=corpus))
    assistant.embedder = assistant.retriever.embedder = embedder
    assert not assistant.ingest().errors
    top = assistant.ask(CORPUS_QUESTION).retrieved[0].doc_id
    upload = corpus / "pelican.txt"
    upload.write_text(harbour_report(200_000), encoding="utf-8")  # about 170 chunks: ~15 s of embedding

    guard = ReadWriteLock()
    times: dict[str, float] = {}
    failures: list[BaseException] = []
    reports: list[IngestReport] = []
    # Mid-embedding, the ingest waits until three questions have been answered (ordering by events,
    # not by timing: on a slow machine the embedding could otherwise end before any question).
    embedding, answered = threading.Event(), threading.Event()
    embedded_in_lock: list[str] = []

    @contextlib.contextmanager
    def write_lock() -> Iterator[None]:
        with guard.write():
            times["entered"] = time.monotonic()
            yield
            times["left"] = time.monotonic()

    def progress(stage: str, advance: int, total: int) -> None:
        if stage != "embed" or not advance:
            return
        if "entered" in times and "left" not in times:
            embedded_in_lock.append(f"{advance}/{total}")
        if not embedding.is_set():
            embedding.set()
            answered.wait(120)  # a hang guard: without the fix the questions wait on the write lock

    def run_ingest() -> None:
        try:
            reports.append(assistant.ingest([upload], progress=progress, write_lock=write_lock))
        except BaseException as exc:  # reported by the test thread
            failures.append(exc)

    asks: list[tuple[float, float, str, list[str]]] = []  # started, finished, question, retrieved doc ids
    worker = threading.Thread(target=run_ingest)
    times["started"] = time.monotonic()
    worker.start()
    question = during = 0
    while worker.is_alive():
        q = (CORPUS_QUESTION, UPLOAD_QUESTION)[question % 2]
        question += 1
        mid_embedding = embedding.is_set() and not answered.is_set()
        with guard.read():
            started = time.monotonic()
            answer = assistant.ask(q)
            asks.append((started, time.monotonic(), q, [p.doc_id for p in answer.retrieved]))
        if mid_embedding and "entered" not in times:
            during += 1
            if during == 3:
                answered.set()
        time.sleep(0.05)  # a steady stream of questions, leaving the embedding some CPU
    worker.join()
    assert not failures, failures
    [report] = reports
    assert report.added == 1 and not report.errors

    before = [a for a in asks if a[1] <= times["entered"]]
    after = [a for a in asks if a[0] >= times["left"]]
    print(f"\n{len(before)} questions answered in the {times['entered'] - times['started']:.1f} s before the "
          f"write lock, which was held {times['left'] - times['entered']:.2f} s; {len(asks)} in all")
    assert during >= 3  # answered while the upload was being embedded
    assert embedded_in_lock == []  # the write lock holds only the publishing, never the embedding
    for _, _, q, retrieved in before:  # nothing of the unfinished ingest is visible
        assert "pelican.txt" not in retrieved, q
    for _, _, q, retrieved in after:
        assert ("pelican.txt" in retrieved) if q == UPLOAD_QUESTION else retrieved[0] == top
    answer = assistant.ask(UPLOAD_QUESTION)
    assert answer.retrieved[0].doc_id == "pelican.txt" and not answer.abstained
    assert assistant.ask(CORPUS_QUESTION).retrieved[0].doc_id == top


# --------------------------------------------------------------------------- rebuilds in a long-running server


def open_fds() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


def test_a_server_rebuild_keeps_its_collections_and_gives_what_a_fresh_build_gives(
    tmp_path: Path, embedder: Embedder
) -> None:
    """A rebuild with a write lock (the server's) overwrites the Chroma collections in place: every
    delete-and-recreate leaked ~5.5 MB and 8 open files in a long-running server (chroma#3296).
    The result is what a fresh build of the same files gives; a file gone since is forgotten."""
    corpus = copy_corpus(tmp_path / "corpus", SMALL)
    (corpus / "gone.txt").write_text("The Godwit alliance trains welders in Fuzhou.\n", encoding="utf-8")
    store = Store(tmp_path / "index")
    lock = ReadWriteLock()
    assert not ingest([corpus], store, embedder, corpus_root=corpus).errors
    collections = (store.chunks.id, store.manifest.id)
    (corpus / "gone.txt").unlink()
    (corpus / SMALL[0]).write_text((corpus / SMALL[0]).read_text(encoding="utf-8") + "\nA new closing line.\n",
                                   encoding="utf-8")
    fds = []
    for _ in range(4):
        report = ingest([corpus], store, embedder, corpus_root=corpus, rebuild=True, write_lock=lock.write)
        assert not report.errors and report.added == len(SMALL)
        fds.append(open_fds())
    assert (store.chunks.id, store.manifest.id) == collections
    # Re-creating collections held 8 more files at every rebuild (24 over these 4). Chroma's SQLite pool
    # opens connections lazily, so a later rebuild may hold one or two more (seen: +1, +2, then flat):
    # less than one rebuild's leak is allowed.
    assert fds[-1] - fds[0] < 8, fds

    fresh = Store(tmp_path / "fresh")
    ingest([corpus], fresh, embedder, corpus_root=corpus)
    store.reload()
    assert {d: r.hash for d, r in store.documents().items()} == {d: r.hash for d, r in fresh.documents().items()}
    assert set(store.chunks.get(include=[])["ids"]) == set(fresh.chunks.get(include=[])["ids"])
    assert store.file_hashes().keys() == fresh.file_hashes().keys()
    assert not store.dirty()


@pytest.mark.parametrize("locked", [True, False], ids=["server", "command-line"])
def test_a_rebuild_keeps_the_documents_of_a_file_it_cannot_read_again(
    tmp_path: Path, embedder: Embedder, locked: bool
) -> None:
    """Nothing is lost: a file that became unreadable since the last ingest is reported, its documents
    stay (from the command line too, where the rebuild's reset used to come first)."""
    corpus = copy_corpus(tmp_path / "corpus", SMALL)
    store = Store(tmp_path / "index")
    ingest([corpus], store, embedder, corpus_root=corpus)
    before = {d: r.hash for d, r in store.documents().items()}
    (corpus / SMALL[1]).write_bytes(b"\x00\x01binary\x00" * 100)  # now many NUL bytes: not a text file
    lock = ReadWriteLock().write if locked else None
    report = ingest([corpus], store, embedder, corpus_root=corpus, rebuild=True, write_lock=lock)
    assert [e.path for e in report.errors] == [SMALL[1]]
    store.reload()
    assert {d: r.hash for d, r in store.documents().items()} == before
    assert store.count() == sum(r.chunks for r in store.documents().values())


# --------------------------------------------------------------------------- rebuilds from the command line


@pytest.mark.parametrize("locked", [False, True], ids=["command-line", "server"])
def test_a_rebuild_that_fails_half_way_keeps_the_index_it_was_replacing(
    tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch, locked: bool
) -> None:
    """Without a write lock (the command line) as with one (the server's) a rebuild publishes only at
    the end: a model that fails after the first batch leaves the old index answering, whole. What it
    embedded is not lost: the next rebuild (a restarted server's upgrade) goes on from there."""
    corpus = copy_corpus(tmp_path / "corpus", SMALL)
    store = Store(tmp_path / "index")
    ingest([corpus], store, embedder, corpus_root=corpus)
    before = {d: r.hash for d, r in store.documents().items()}
    ids = set(store.chunks.get(include=[])["ids"])
    calls: list[list[str]] = []
    real = Embedder.encode_passages

    def failing(self: Embedder, texts: Any, progress: Any = None) -> Any:
        calls.append(list(texts))
        if len(calls) > 1:
            raise RuntimeError("the model went away")
        return real(self, texts, progress)

    monkeypatch.setattr(Embedder, "encode_passages", failing)
    monkeypatch.setattr("assistant.ingest.EMBED_BATCH_CHUNKS", 1)  # one batch per document
    lock = ReadWriteLock().write if locked else None
    with pytest.raises(RuntimeError, match="went away"):
        ingest([corpus], store, embedder, corpus_root=corpus, rebuild=True, write_lock=lock)
    assert len(calls) == 2
    store.reload()
    assert {d: r.hash for d, r in store.documents().items()} == before
    assert set(store.chunks.get(include=[])["ids"]) == ids
    assert not store.dirty()

    # What it embedded is staged: the next rebuild encodes only the chunks it had not reached.
    staged = StagedVectors(store.index_dir, embedder.settings.model_name, embedder.reading_name)
    first = set(calls[0])  # the first document's chunks (its sentences were stored before)
    assert len(staged) == len(first) > 0
    vectors = store.chunks.get(include=["embeddings", "documents"])
    old = dict(zip(vectors["ids"], vectors["embeddings"], strict=True))
    encoded: list[str] = []

    def counting(self: Embedder, texts: Any, progress: Any = None) -> Any:
        encoded.extend(texts)
        return real(self, texts, progress)

    monkeypatch.setattr(Embedder, "encode_passages", counting)
    report = ingest([corpus], store, embedder, corpus_root=corpus, rebuild=True, write_lock=lock)
    assert not report.errors and encoded and not first & set(encoded)
    assert not (store.index_dir / STAGING).exists()  # published: nothing left to resume
    new = store.chunks.get(include=["embeddings"])
    assert set(new["ids"]) == ids
    for cid, vec in zip(new["ids"], new["embeddings"], strict=True):
        assert np.allclose(vec, old[cid], atol=1e-5)  # staged or encoded now, the same vectors

