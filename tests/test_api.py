"""The JSON API and server helpers, against a real server (uvicorn in a thread) over the sample corpus."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from ui_fixtures import SAMPLE_DOCS, LiveServer, open_assistant, sample_index, serve_app  # noqa: F401

from assistant.cli import load_ui
from assistant.errors import DocumentError
from assistant.server import ReadWriteLock, check_password, sanitize_filename, save_upload

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def assistant(sample_index: Any) -> Any:  # noqa: F811 - pytest fixture injection
    return open_assistant(sample_index)


@pytest.fixture(scope="module")
def server(assistant: Any) -> Iterator[LiveServer]:
    yield from serve_app(assistant, admin_password="")


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def check_citations(answer: dict[str, Any]) -> None:
    """Citations are numbered 1..n, and each quote is a substring of its passage."""
    cits = answer["citations"]
    assert [c["n"] for c in cits] == list(range(1, len(cits) + 1))
    for c in cits:
        assert c["quote"] and c["quote"] in c["text"]
        assert f"[{c['n']}]" in answer["answer"]


def test_ask_english(client: httpx.Client) -> None:
    r = client.post("/api/ask", json={"question": "What is the Suzhou alliance?"})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert not answer["abstained"] and answer["citations"]
    check_citations(answer)
    assert any(c["doc_id"].startswith("001_") for c in answer["citations"])
    assert set(answer) >= {"question", "standalone_question", "answer", "language", "sentences", "related",
                           "retrieved", "latency_ms", "mode", "confidence"}


def test_ask_chinese(client: httpx.Client) -> None:
    r = client.post("/api/ask", json={"question": "常州检验检测认证产教联盟是什么时候成立的？"})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["language"] == "zh"
    assert not answer["abstained"]
    check_citations(answer)
    assert "March 21" in answer["answer"]


def test_ask_about_two_subjects_respectively(client: httpx.Client) -> None:
    question = "常州检验检测认证联盟和上海智能新能源汽车产教融合共同体分别有哪些企业参与牵头？"
    r = client.post("/api/ask", json={"question": question})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert not answer["abstained"]
    check_citations(answer)
    assert {c["doc_id"][:4] for c in answer["citations"]} >= {"000_", "002_"}  # one source per subject
    assert any(n.startswith("answered per subject:") for n in answer["notes"])


def test_ask_follow_up_with_history_and_k(client: httpx.Client) -> None:
    r = client.post("/api/ask", json={"question": "How many training bases will it establish?",
                                      "history": ["What is the Suzhou alliance?"], "k": 3})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["standalone_question"] != answer["question"]
    assert "Suzhou" in answer["standalone_question"]
    assert len(answer["retrieved"]) <= 3
    check_citations(answer)


def test_ask_with_filters(client: httpx.Client) -> None:
    doc = "000_7e88f567a7bc938b.txt"
    r = client.post("/api/ask", json={"question": "What are the priorities of the alliance?",
                                      "filters": {"doc_id": doc, "language": "en"}})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert {p["doc_id"] for p in answer["retrieved"]} == {doc}
    assert all(c["doc_id"] == doc for c in answer["citations"])
    r = client.post("/api/ask", json={"question": "联盟", "filters": {"date_from": "2025-10-27",
                                                                     "date_to": "2025-10-27"}})
    assert r.status_code == 200, r.text
    assert all(p["metadata"]["date"] == "2025-10-27" for p in r.json()["retrieved"])


def test_ask_absent_topic_abstains(client: httpx.Client) -> None:
    r = client.post("/api/ask", json={"question": "What is the recipe for chocolate cake?"})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["abstained"] and not answer["citations"]
    assert answer["related"]


def test_documents(client: httpx.Client) -> None:
    r = client.get("/api/documents")
    assert r.status_code == 200
    body = r.json()
    assert body["count"] == SAMPLE_DOCS == len(body["documents"])
    doc = body["documents"][0]
    assert {"doc_id", "title", "outlet", "date", "language", "chunks"} <= set(doc)
    assert "path" not in doc  # server paths stay private
    assert sum(d["chunks"] for d in body["documents"]) > SAMPLE_DOCS


def test_health(client: httpx.Client) -> None:
    r = client.get("/api/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["documents"] == SAMPLE_DOCS
    assert body["chunks"] >= SAMPLE_DOCS
    assert body["model"] == "all-MiniLM-L6-v2"


BAD_BODIES: list[tuple[str, Any, int]] = [
    ("not json", b"{question: nope", 400),
    ("array", [], 400),
    ("string", "What?", 400),
    ("missing question", {}, 422),
    ("question not a string", {"question": 42}, 422),
    ("question null", {"question": None}, 422),
    ("empty question", {"question": ""}, 422),
    ("blank question", {"question": "   \n"}, 422),
    ("history not a list", {"question": "q", "history": "earlier"}, 422),
    ("history of numbers", {"question": "q", "history": [1, 2]}, 422),
    ("filters not an object", {"question": "q", "filters": "doc"}, 422),
    ("unknown filter", {"question": "q", "filters": {"author": "x"}}, 422),
    ("filter of wrong type", {"question": "q", "filters": {"doc_id": 3}}, 422),
    ("bad date", {"question": "q", "filters": {"date_from": "yesterday"}}, 422),
    ("k as string", {"question": "q", "k": "5"}, 422),
    ("k zero", {"question": "q", "k": 0}, 422),
    ("k bool", {"question": "q", "k": True}, 422),
    ("k huge", {"question": "q", "k": 10**9}, 422),
    ("unknown field", {"question": "q", "temperature": 0.1}, 422),
]


@pytest.mark.parametrize(("label", "body", "status"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_malformed_requests_get_json_errors(client: httpx.Client, label: str, body: Any, status: int) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = client.post("/api/ask", content=content, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    error = r.json()["error"]
    assert isinstance(error, str) and error
    assert "Traceback" not in r.text


def test_error_messages_name_the_field(client: httpx.Client) -> None:
    r = client.post("/api/ask", json={"question": "q", "filters": {"author": "x"}})
    assert "filters.author" in r.json()["error"]
    r = client.post("/api/ask", json={"question": ""})
    assert r.json()["error"] == "question: must not be empty"


def test_body_size_limit(client: httpx.Client) -> None:
    big = json.dumps({"question": "x" * (70 * 1024)}).encode()
    r = client.post("/api/ask", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "too large" in r.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit still holds
        for i in range(0, len(big), 8192):
            yield big[i : i + 8192]

    r = client.post("/api/ask", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_wrong_method_and_unknown_route(client: httpx.Client) -> None:
    r = client.get("/api/ask")
    assert r.status_code == 405 and r.json()["error"]
    r = client.get("/api/nothing-here")
    assert r.status_code == 404 and r.json()["error"]
    r = client.post("/api/health")
    assert r.status_code == 405


def test_concurrent_questions(client: httpx.Client, server: LiveServer) -> None:
    questions = [
        "What is the Suzhou alliance?",
        "常州检验检测认证产教联盟是什么时候成立的？",
        "What are the five strategic focus areas of the Changzhou alliance?",
        "南海区产教联盟的目标是什么？",
    ] * 2

    def ask(q: str) -> int:
        with httpx.Client(base_url=server.url, timeout=60) as c:
            return c.post("/api/ask", json={"question": q}).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(ask, questions)) == [200] * len(questions)


def test_ui_and_gradio_client_api(server: LiveServer) -> None:
    r = httpx.get(server.url + "/", timeout=30)
    assert r.status_code == 200 and "<html" in r.text.lower()
    from gradio_client import Client

    client = Client(server.url + "/", verbose=False, download_files=False)
    result = client.predict("What is the Suzhou alliance?", api_name="/ask")
    assert result["citations"] and result["citations"][0]["n"] == 1


def test_management_handlers_recheck_the_session_flag(assistant: Any, tmp_path: Path) -> None:
    """Hidden controls are not enough: called without a login, staff handlers refuse and change nothing."""
    blocks = load_ui().build_app(assistant, admin_password="s3cret")
    fns = {f.name: f.fn for f in blocks.fns.values()}
    upload_file = tmp_path / "new.txt"
    upload_file.write_text("The Omega alliance was founded yesterday.", encoding="utf-8")
    before = [d.doc_id for d in assistant.documents()]
    assert "login" in fns["upload"]([str(upload_file)], "en")[0].lower()
    assert "login" in fns["delete"](before[0], True, "en")[0].lower()
    assert "login" in fns["reindex"](True, "en")[0].lower()
    assert [d.doc_id for d in assistant.documents()] == before
    assert not (Path(assistant.config.corpus_dir) / "new.txt").exists()
    # A direct call has no session to hold a login: the right password grants nothing either.
    assert "Staff login required" in fns["login"]("s3cret", "en")[1]
    assert "Wrong password" in fns["login"]("wrong", "en")[1]
    assert "login" in fns["reindex"](True, "en")[0].lower()


def test_management_controls_absent_without_password(assistant: Any) -> None:
    ui = load_ui()

    def elem_ids(blocks: Any) -> set[str]:
        return {getattr(b, "elem_id", None) or "" for b in blocks.blocks.values()}

    assert {"staff-password", "upload", "delete-btn"} <= elem_ids(ui.build_app(assistant, admin_password="pw"))
    off = elem_ids(ui.build_app(assistant, admin_password=""))
    assert not off & {"staff", "staff-password", "upload", "upload-btn", "delete-btn", "reindex-btn"}


@pytest.mark.parametrize(("name", "expected"), [
    ("report.txt", "report.txt"),
    ("../../etc/passwd.txt", "passwd.txt"),
    ("..\\..\\win.MD", "win.md"),
    ("产教融合 报告（2025）.pdf", "产教融合 报告（2025）.pdf"),
    ("a..b...txt", "a.b.txt"),
    ("we<ird>|na:me?.html", "we_ird_na_me_.html"),
    ("tab\tand\nnewline.docx", "tabandnewline.docx"),
    (".hidden.jsonl", "hidden.jsonl"),
])
def test_sanitize_filename(name: str, expected: str) -> None:
    assert sanitize_filename(name) == expected


@pytest.mark.parametrize("name", ["", "..", "/", ".txt", "noext", "evil.exe", "x.txt.sh", "....txt"])
def test_sanitize_filename_rejects(name: str) -> None:
    with pytest.raises(DocumentError):
        sanitize_filename(name)


def test_save_upload_limits_and_location(tmp_path: Path) -> None:
    src = tmp_path / "upload.bin"
    src.write_bytes(b"x" * 100)
    corpus = tmp_path / "corpus"
    saved = save_upload(src, "../escape/合作 协议.txt", corpus)
    assert saved == (corpus / "合作 协议.txt").resolve() and saved.read_bytes() == b"x" * 100
    with pytest.raises(DocumentError, match="limit"):
        save_upload(src, "big.txt", corpus, limit=10)
    src.write_bytes(b"")
    with pytest.raises(DocumentError, match="empty"):
        save_upload(src, "empty.txt", corpus)
    assert sorted(p.name for p in corpus.iterdir()) == ["合作 协议.txt"]


def test_check_password() -> None:
    assert check_password("pw", "pw")
    assert not check_password("pw ", "pw")
    assert not check_password("", "")
    assert not check_password("anything", None)
    assert not check_password(None, "pw")


def test_read_write_lock_excludes_writers() -> None:
    lock = ReadWriteLock()
    events: list[str] = []

    def writer() -> None:
        with lock.write():
            events.append("w")

    with lock.read():
        t = threading.Thread(target=writer)
        t.start()
        t.join(0.2)
        assert events == []  # the writer waits for the reader
    t.join(2)
    assert events == ["w"]
