"""Loading files into documents: every format, every encoding, broken files, the digest and its metadata.

Every fixture file is generated here under tmp_path (GBK/Big5/BOM texts, a reportlab PDF, a python-docx
DOCX, HTML with scripts, and broken files); the repository's corpus is only read.
"""

from __future__ import annotations

import json
import random
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import CORPUS, CORPUS_DOCS, CORPUS_FILES, DIGEST

from assistant.documents import (
    SUPPORTED_SUFFIXES,
    decode_bytes,
    is_boilerplate,
    iter_files,
    load_file,
    load_paths,
    source_text,
    split_text,
)
from assistant.errors import AssistantError, DocumentError

ZH = "产教融合联盟在常州成立。\n联盟由职业院校和企业共同发起，推动人才培养与产业需求对接。\n学校与企业共建实训基地。\n"
ZH_TRADITIONAL = "產教融合聯盟在臺北成立。\n聯盟由職業學校與企業共同發起，推動人才培養與產業需求對接。\n"
EN = "The alliance was founded in Changzhou.\nSchools and companies train talent together.\n"
MIXED = "产教融合联盟在常州成立，推动人才培养。\nThe alliance was founded in Changzhou by schools and companies.\n"


def assert_offsets(path: Path, docs: list) -> None:
    """The offset invariant of every document of a file."""
    src = source_text(path)
    for doc in docs:
        assert src[doc.offset : doc.offset + len(doc.text)] == doc.text, doc.doc_id


# --------------------------------------------------------------------------- fixture builders


def make_pdf(path: Path, pages: list[list[str]]) -> Path:
    """A real PDF written by reportlab with the STSong-Light CID font (Chinese and Latin glyphs)."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    c = canvas.Canvas(str(path))
    for lines in pages:
        c.setFont("STSong-Light", 14)
        for i, line in enumerate(lines):
            c.drawString(72, 760 - 24 * i, line)
        c.showPage()
    c.save()
    return path


def make_docx(path: Path) -> Path:
    import docx

    document = docx.Document()
    document.add_heading("联盟章程", level=1)
    document.add_paragraph("第一条 本联盟由职业院校和企业组成。")
    document.add_paragraph("Article 2. Members share training resources.")
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "成员单位"
    table.rows[0].cells[1].text = "常州企业"
    document.save(str(path))
    return path


def junk_bytes(n: int = 4096, seed: int = 7) -> bytes:
    rnd = random.Random(seed)
    data = bytearray(rnd.randrange(256) for _ in range(n))
    for i in range(0, n, 97):  # sprinkle NULs, as in any binary file
        data[i] = 0
    return bytes(data)


def broken_truncated_pdf(d: Path) -> Path:
    whole = make_pdf(d / "whole.pdf", [["产教融合联盟年度报告", "The alliance trained 2,744 students."]]).read_bytes()
    (d / "whole.pdf").unlink()
    p = d / "truncated.pdf"
    p.write_bytes(whole[: len(whole) // 2])
    return p


def broken_junk_txt(d: Path) -> Path:
    p = d / "junk.txt"
    p.write_bytes(junk_bytes())
    return p


def broken_nul_txt(d: Path) -> Path:
    p = d / "nuls.txt"
    p.write_bytes(b"\x00\x01\x02\x00" * 500)
    return p


def broken_empty(d: Path) -> Path:
    p = d / "empty.txt"
    p.write_bytes(b"")
    return p


def broken_whitespace(d: Path) -> Path:
    p = d / "blank.md"
    p.write_text("  \n\t\n\u3000\u3000\n   \r\n", encoding="utf-8")
    return p


def broken_zip_docx(d: Path) -> Path:
    p = d / "fake.docx"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("hello.txt", "a zip file, but not a Word document")
    return p


def broken_textless_pdf(d: Path) -> Path:
    from reportlab.pdfgen import canvas

    p = d / "scan.pdf"
    c = canvas.Canvas(str(p))
    c.rect(72, 72, 200, 200, fill=1)  # an "image" only: nothing to extract
    c.showPage()
    c.save()
    return p


def broken_jsonl(d: Path) -> Path:
    p = d / "bad.jsonl"
    p.write_text('{"text": unquoted}\n[1, 2]\n{"title": "no text"}\n', encoding="utf-8")
    return p


def broken_unsupported(d: Path) -> Path:
    p = d / "table.xlsx"
    p.write_bytes(b"PK\x03\x04whatever")
    return p


BROKEN: dict[str, tuple[Callable[[Path], Path], str]] = {
    "truncated-pdf": (broken_truncated_pdf, "pdf"),
    "junk-txt": (broken_junk_txt, "binary"),
    "nul-txt": (broken_nul_txt, "binary"),
    "empty": (broken_empty, "empty"),
    "whitespace-only": (broken_whitespace, "no text"),
    "zip-as-docx": (broken_zip_docx, "docx"),
    "textless-pdf": (broken_textless_pdf, "no extractable text"),
    "jsonl-no-valid-line": (broken_jsonl, "line 1"),
    "unsupported": (broken_unsupported, "unsupported"),
}


# --------------------------------------------------------------------------- encodings


@pytest.mark.parametrize(
    ("encoding", "text", "prefix", "language"),
    [
        ("utf-8", ZH, b"", "zh"),
        ("utf-8", ZH, b"\xef\xbb\xbf", "zh"),  # UTF-8 with BOM
        ("gbk", ZH, b"", "zh"),
        ("gb18030", ZH + "㐀䶵𠀀\n", b"", "zh"),  # characters outside GBK
        ("big5", ZH_TRADITIONAL, b"", "zh"),
        ("utf-16", MIXED, b"", "mixed"),  # Python's utf-16 codec writes a BOM
        ("utf-8", EN, b"", "en"),
    ],
    ids=["utf8", "utf8-bom", "gbk", "gb18030", "big5", "utf16-bom", "english"],
)
def test_text_file_encodings_are_detected(
    tmp_path: Path, encoding: str, text: str, prefix: bytes, language: str
) -> None:
    path = tmp_path / "doc.txt"
    path.write_bytes(prefix + text.encode(encoding))
    assert source_text(path) == text  # BOM dropped, bytes decoded with the right codec
    [doc] = load_file(path, tmp_path)
    assert doc.text == text.strip()
    assert doc.doc_id == doc.source == "doc.txt"
    assert doc.title == text.splitlines()[0]
    assert doc.language == language
    assert "\ufeff" not in doc.text
    assert_offsets(path, [doc])


def test_gbk_and_big5_are_told_apart(tmp_path: Path) -> None:
    """Both byte strings are valid in both codecs; the plausible decoding must win each time."""
    gbk = ZH.encode("gbk")
    big5 = ZH_TRADITIONAL.encode("big5")
    assert decode_bytes(gbk) == ZH
    assert decode_bytes(big5) == ZH_TRADITIONAL


@pytest.mark.parametrize(
    ("encoding", "text"),
    [("utf-8", ZH * 3), ("gbk", ZH * 3), ("big5", ZH_TRADITIONAL * 3), ("utf-8", EN * 3)],
    ids=["utf8", "gbk", "big5", "english"],
)
@pytest.mark.parametrize("where", [0.0, 0.37, 0.5, 1.0])
def test_a_stray_bad_byte_never_rejects_a_text_file(encoding: str, text: str, where: float) -> None:
    data = text.encode(encoding)
    pos = int(len(data) * where)
    decoded = decode_bytes(data[:pos] + b"\xff" + data[pos:], "stray.txt")
    assert decoded.count("\ufffd") <= 3
    # Everything after the damage reads back (the decoder resynchronizes within a character or two).
    tail = text.strip()[-12:]
    assert tail in decoded or pos >= len(data) - 4
    if pos > 8:
        assert text[:3] in decoded


def test_nul_bytes_in_a_text_file_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "nul.txt"
    path.write_bytes(b"The alliance\x00 was founded.\n")
    [doc] = load_file(path, tmp_path)
    assert doc.text == "The alliance was founded."


def test_random_binary_junk_is_rejected_for_many_seeds() -> None:
    for seed in range(40):
        with pytest.raises(DocumentError) as info:
            decode_bytes(junk_bytes(1024, seed), "junk.txt")
        assert info.value.path == "junk.txt"
        assert "binary" in info.value.reason or "undecodable" in info.value.reason


# --------------------------------------------------------------------------- formats


def test_pdf_with_chinese_cid_font(tmp_path: Path) -> None:
    path = make_pdf(
        tmp_path / "report.pdf",
        [["产教融合联盟年度报告", "The alliance trained 2,744 students in 2025."], ["第二页：校企合作共建实训基地。"]],
    )
    src = source_text(path)
    assert "产教融合联盟年度报告" in src
    assert "The alliance trained 2,744 students in 2025." in src
    assert "第二页：校企合作共建实训基地。" in src
    assert src.index("年度报告") < src.index("第二页")  # pages in order
    [doc] = load_file(path, tmp_path)
    assert doc.doc_id == "report.pdf"
    assert doc.title == "产教融合联盟年度报告"
    assert doc.language in ("zh", "mixed")
    assert_offsets(path, [doc])


def test_docx_paragraphs_and_tables(tmp_path: Path) -> None:
    path = make_docx(tmp_path / "charter.docx")
    src = source_text(path)
    for piece in ("联盟章程", "第一条 本联盟由职业院校和企业组成。", "Article 2. Members share training resources."):
        assert piece in src.splitlines()
    assert "成员单位 | 常州企业" in src
    [doc] = load_file(path, tmp_path)
    assert doc.title == "联盟章程"
    assert_offsets(path, [doc])


@pytest.mark.parametrize("suffix", [".html", ".htm"])
def test_html_visible_text_only(tmp_path: Path, suffix: str) -> None:
    html = """<!doctype html>
<html><head><title>常州联盟新闻</title>
<script>var secret = "SCRIPT_SHOULD_NOT_APPEAR";</script>
<style>body { color: STYLE_SHOULD_NOT_APPEAR; }</style></head>
<body>
<h1>常州成立产教融合联盟</h1>
<p>联盟由职业院校和企业共同发起。</p>
<script type="text/javascript">document.write("INLINE_SCRIPT_SHOULD_NOT_APPEAR");</script>
<p>It trains <b>2.744</b> million students.</p>
<noscript>NOSCRIPT_SHOULD_NOT_APPEAR</noscript>
</body></html>"""
    path = tmp_path / f"news{suffix}"
    path.write_text(html, encoding="utf-8")
    [doc] = load_file(path, tmp_path)
    assert "SHOULD_NOT_APPEAR" not in source_text(path)
    assert "<" not in doc.text and "document.write" not in doc.text
    assert "常州成立产教融合联盟" in doc.text
    assert "联盟由职业院校和企业共同发起。" in doc.text
    assert "2.744" in doc.text
    assert_offsets(path, [doc])


def test_html_title_is_kept(tmp_path: Path) -> None:
    """<title> lives in <head>; it used to be read after <head> was dropped, so it was always lost."""
    path = tmp_path / "page.html"
    path.write_text(
        "<html><head><title>Alliance News</title></head><body><p>Body text here.</p></body></html>", encoding="utf-8"
    )
    [doc] = load_file(path, tmp_path)
    assert doc.title == "Alliance News"
    assert doc.text == "Alliance News\nBody text here."


def test_gbk_html(tmp_path: Path) -> None:
    path = tmp_path / "gbk.html"
    path.write_bytes(
        "<html><body><p>产教融合联盟在常州成立。</p><p>学校与企业共建实训基地。</p></body></html>".encode("gbk")
    )
    [doc] = load_file(path, tmp_path)
    assert doc.text == "产教融合联盟在常州成立。\n学校与企业共建实训基地。"


def test_markdown_title_without_hashes(tmp_path: Path) -> None:
    path = tmp_path / "note.md"
    path.write_text("# Alliance charter\n\nMembers share resources.\n", encoding="utf-8")
    [doc] = load_file(path, tmp_path)
    assert doc.title == "Alliance charter"
    assert doc.text == "# Alliance charter\n\nMembers share resources."
    assert doc.language == "en"


def test_jsonl_one_document_per_line(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    lines = [
        {
            "id": "a1",
            "text": "常州成立产教融合联盟。",
            "title": "联盟成立",
            "outlet": "Chang Zhou Ri Bao",
            "date": "2025年3月21日",
            "region": "江苏",
        },
        {"text": "The alliance trains technicians.", "date": "2025/10/01"},
        {"content": "Second key name for the text.", "language": "en"},
    ]
    path.write_text(
        json.dumps(lines[0], ensure_ascii=False) + "\n\n" + "\n".join(json.dumps(x) for x in lines[1:]) + "\n",
        encoding="utf-8",
    )
    docs = load_file(path, tmp_path)
    assert [d.doc_id for d in docs] == ["records.jsonl#a1", "records.jsonl#3", "records.jsonl#4"]
    first, second, third = docs
    assert (first.title, first.outlet, first.date, first.language) == (
        "联盟成立",
        "Chang Zhou Ri Bao",
        "2025-03-21",
        "zh",
    )
    assert first.extra["region"] == "江苏" and first.extra["line"] == 1
    assert first.metadata()["region"] == "江苏"
    assert second.date == "2025-10-01" and second.title == "The alliance trains technicians."
    assert second.language == "en" and second.source == "records.jsonl"
    assert third.text == "Second key name for the text."
    for doc in docs:  # JSONL offsets refer to the document's own text value (documented)
        assert doc.offset == 0 and doc.text


def test_jsonl_fields_cannot_pose_as_what_the_pipeline_sets(tmp_path: Path) -> None:
    """A record's own "pages", "line" or "start" would be read as the pipeline's (its citations said
    "p. 999"; fifth security review): they are dropped, other fields are kept."""
    from assistant.chunking import chunk_document, page_at

    record = {"id": "r1", "text": "The alliance trains technicians in Ningbo.", "pages": "0:999", "line": 77,
              "start": 5, "sentences": "[[0, 1]]", "region": "Zhejiang"}
    (tmp_path / "r.jsonl").write_text(json.dumps(record) + "\n", encoding="utf-8")
    [doc] = load_file(tmp_path / "r.jsonl", tmp_path)
    meta = doc.metadata()
    assert meta["region"] == "Zhejiang" and meta["line"] == 1
    assert "pages" not in meta and "start" not in meta and "sentences" not in meta
    [chunk] = chunk_document(doc)
    assert page_at(chunk.metadata.get("pages"), chunk.start) is None


def test_jsonl_with_some_bad_lines_keeps_the_good_ones(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_text('{"text": "Good line."}\nnot json\n{"text": ""}\n{"text": "Another good line."}\n')
    assert [d.text for d in load_file(path, tmp_path)] == ["Good line.", "Another good line."]


# --------------------------------------------------------------------------- broken files


@pytest.mark.parametrize("kind", list(BROKEN))
def test_broken_file_raises_document_error_with_path_and_reason(tmp_path: Path, kind: str) -> None:
    make, needle = BROKEN[kind]
    path = make(tmp_path)
    with pytest.raises(DocumentError) as info:
        load_file(path, tmp_path)
    err = info.value
    assert isinstance(err, AssistantError)
    assert err.path == path.name
    assert err.reason and needle in err.reason.lower()
    assert str(err) == f"{path.name}: {err.reason}"
    assert "\n" not in str(err)


def test_load_paths_carries_on_past_every_broken_file(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    broken = sorted(make(corpus).name for make, _ in BROKEN.values() if make is not broken_unsupported)
    (corpus / "gbk.txt").write_bytes(ZH.encode("gbk"))
    (corpus / "big5.txt").write_bytes(ZH_TRADITIONAL.encode("big5"))
    make_pdf(corpus / "good.pdf", [["产教融合联盟年度报告"]])
    make_docx(corpus / "good.docx")
    (corpus / "README.md").write_text("# not a document\n")
    (corpus / ".hidden.txt").write_text("hidden\n")
    (corpus / "picture.png").write_bytes(b"\x89PNG")
    result = load_paths([corpus], corpus)
    assert sorted(e.path for e in result.errors) == broken
    assert all(e.reason for e in result.errors)
    assert sorted(d.doc_id for d in result.documents) == ["big5.txt", "gbk.txt", "good.docx", "good.pdf"]
    assert sorted(result.files) == sorted(broken + ["big5.txt", "gbk.txt", "good.docx", "good.pdf"])


def test_symlink_out_of_the_corpus_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("Outside the corpus.\n")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "link.txt").symlink_to(outside)
    (corpus / "ok.txt").write_text("Inside the corpus.\n")
    result = load_paths([corpus], corpus)
    assert [d.doc_id for d in result.documents] == ["ok.txt"]
    [err] = result.errors
    assert "outside the corpus" in err.reason


def test_iter_files_skips_readme_hidden_and_unsupported(tmp_path: Path) -> None:
    for name in ("a.txt", "b.md", "README.md", ".x.txt", "c.csv", "sub/d.jsonl", "sub/e.PDF"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    names = [p.relative_to(tmp_path).as_posix() for p in iter_files([tmp_path])]
    assert names == ["a.txt", "b.md", "sub/d.jsonl", "sub/e.PDF"]
    assert ".pdf" in SUPPORTED_SUFFIXES


# --------------------------------------------------------------------------- the sample corpus


DIGEST_ARTICLES = [
    ("产教融合“破题”人才瓶颈 山东职教赋能区域经济提质增效", "Zhong Guo Xin Wen Wang", "2025-10-28"),
    ("深化专业群产教融合 用科技与创新书写冷链物流新篇", "Jing Ji Ri Bao", "2025-10-27"),
    ("人工智能重塑技工教育新图景——全国百所院校无锡共话产教融合新路径", "Yang Zi Wan Bao Wang", "2025-10-27"),
    ("重庆理工大学:校企携手,共育电子信息材料领域卓越人才", "Huan Qiu Wang", "2025-10-27"),
    ("技工教育趋热,广西在发力", "Guang Xi Ri Bao", "2025-10-27"),
    ("企业里来了“科技副总”", "Xin Lang Cai Jing", "2025-10-27"),
    ("前瞻“十五五”:我国职业教育发展五大趋势", "", ""),  # no outlet line under this headline
    ("江苏科技大学举行科技创新与产业创新融合发展大会", "Xin Hua Ri Bao", "2025-10-26"),
    ("2025年全国工业互联网安全行业产教融合共同体年会举行", "Sou Hu Cai Jing", "2025-10-26"),
    ("助力“科创名城”产业升级,贡献“工程师摇篮”智慧,哈尔滨工业大学扬州校友会成立", "Yang Zi Wan Bao Wang", "2025-10-26"),
]


@pytest.fixture(scope="module")
def digest_docs() -> list:
    return load_file(CORPUS / DIGEST, CORPUS)


def test_digest_becomes_ten_articles(digest_docs: list) -> None:
    assert len(digest_docs) == 10
    assert [d.doc_id for d in digest_docs] == [f"{DIGEST}#{i}" for i in range(1, 11)]
    assert [(d.title, d.outlet, d.date) for d in digest_docs] == DIGEST_ARTICLES
    for doc in digest_docs:
        assert doc.source == DIGEST
        assert doc.text.startswith(doc.title + "\n")
        assert doc.language in ("en", "mixed")  # Chinese headline over an English summary


def test_digest_article_boundaries(digest_docs: list) -> None:
    src = source_text(CORPUS / DIGEST)
    assert_offsets(CORPUS / DIGEST, digest_docs)
    for a, b in zip(digest_docs, digest_docs[1:], strict=False):
        assert a.end < b.offset
        assert src[a.end : b.offset].strip() == ""  # nothing but the newline between two articles
    assert digest_docs[-1].end == len(src.rstrip())
    # The headline of the next article never leaks into the previous one.
    for a, b in zip(digest_docs, digest_docs[1:], strict=False):
        assert b.title not in a.text
    first = digest_docs[0]
    assert "Zhong Guo Xin Wen Wang· 2025-10-28 05:25" in first.text
    assert first.extra["time"] == "05:25"
    assert "Shandong has 547 vocational schools with 2.744 million students" in first.text
    assert "time" not in digest_docs[6].extra


def test_digest_page_furniture_is_outside_every_document(digest_docs: list) -> None:
    src = source_text(CORPUS / DIGEST)
    first_lines = src.splitlines()[:4]
    assert first_lines == ["Workflow", "产教融合", "icon", "Search documents"]
    assert digest_docs[0].offset == src.index(DIGEST_ARTICLES[0][0])
    for doc in digest_docs:
        for line in doc.text.splitlines():
            assert not is_boilerplate(line), (doc.doc_id, line)
        assert not doc.text.startswith(("Workflow", "产教融合\n"))


def test_whole_corpus_is_fourteen_documents() -> None:
    result = load_paths([CORPUS], CORPUS)
    assert result.errors == []
    assert result.files == CORPUS_FILES
    docs = result.documents
    assert len(docs) == CORPUS_DOCS
    assert len({d.doc_id for d in docs}) == CORPUS_DOCS
    by_id = {d.doc_id: d for d in docs}
    assert by_id[f"{DIGEST}#3"].title == DIGEST_ARTICLES[2][0]
    for name in CORPUS_FILES:
        file_docs = [d for d in docs if d.source == name]
        assert file_docs
        assert_offsets(CORPUS / name, file_docs)
    for doc in docs:
        assert doc.language in ("zh", "en", "mixed")
        assert doc.title and len(doc.title) <= 200
        assert doc.date == "" or (len(doc.date) == 10 and doc.date[4] == "-" and doc.date[7] == "-")
    single = [d for d in docs if "#" not in d.doc_id]
    assert sorted(d.doc_id for d in single) == [n for n in CORPUS_FILES if n != DIGEST]
    assert all(d.language == "en" and d.outlet == "" for d in single)


def test_trailing_share_bar_line_is_trimmed_from_a_single_document() -> None:
    path = CORPUS / "000_7e88f567a7bc938b.txt"
    [doc] = load_file(path, CORPUS)
    src = source_text(path)
    assert "扫一扫在手机打开当前页" in src
    assert "扫一扫" not in doc.text
    assert doc.text.endswith("sustainable development.")
    assert doc.title.startswith("On March 21, Changzhou unveiled")


def test_boilerplate_in_the_middle_is_recorded_as_skip_span() -> None:
    text = "First paragraph about the alliance.\n扫一扫在手机打开当前页  |\nSecond paragraph.\nicon\n"
    [doc] = split_text(text, "x.txt")
    assert doc.text == text.rstrip().removesuffix("icon").rstrip()
    spans = [text[s.start : s.end] for s in doc.skip]
    assert spans == ["扫一扫在手机打开当前页  |"]


def test_document_errors_name_the_file_inside_the_corpus_root(tmp_path: Path) -> None:
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "empty.txt").write_bytes(b"")
    with pytest.raises(DocumentError) as info:
        load_file(sub / "empty.txt", tmp_path)
    assert info.value.path == "sub/empty.txt"


def test_pdf_documents_and_chunks_know_their_pages(tmp_path: Path) -> None:
    from assistant.chunking import chunk_document, page_at

    pdf = make_pdf(tmp_path / "three.pdf", [["First page about welding."], [], ["Third page: 产教融合 in Suzhou."]])
    [doc] = load_file(pdf, tmp_path)
    assert doc.extra["page_starts"][0][1] == 1 and doc.extra["page_starts"][-1][1] == 3  # the empty page 2 is skipped
    text = source_text(pdf)
    chunks = chunk_document(doc, source=text)
    where = text.index("Third page")
    [chunk] = [c for c in chunks if c.start <= where < c.end]
    assert page_at(chunk.metadata["pages"], where) == 3
    first = text.index("First page")
    [chunk] = [c for c in chunks if c.start <= first < c.end]
    assert page_at(chunk.metadata["pages"], first) == 1
