"""The web UI in a real headless Chromium (Playwright, sync API) against live servers.

Debian's ``chromium`` package is used (``apt-get install chromium``; ``.ci/run`` installs it). Without
it these tests skip locally and fail on CI (env ``CI=true``). Screenshots of every step go to
``tests/artifacts/``; with ``UPDATE_SCREENSHOTS=1`` the chat screenshot also refreshes
``docs/screenshot-chat.png``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ui_fixtures import ROOT, SAMPLE_DOCS, LiveServer, build_index, ci, open_assistant, serve_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
PASSWORD = "staff-pw-for-tests"
TIMEOUT = 30_000  # ms, for anything that waits on the server
HOSTILE = ('Hostile notice <script>window.__pwned=1</script> about the Zeta Robotics Academy.\n'
           'The Zeta Robotics Academy <img src=x onerror="window.__pwned=2"> trains welders in Xiamen.\n')


def _unavailable(reason: str) -> None:
    if ci():
        pytest.fail(f"browser tests cannot run on CI: {reason}")
    pytest.skip(reason)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium driven by Playwright."""
    path = shutil.which("chromium") or CHROMIUM
    if not Path(path).exists():
        _unavailable("Debian chromium is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed")
    with sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        except Exception as exc:  # a broken or incompatible browser binary
            _unavailable(f"chromium at {path} does not start: {exc}")
        yield b
        b.close()


@pytest.fixture(scope="module")
def ui_assistant(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """An assistant over a writable copy of the sample corpus (staff tests add documents to it)."""
    return open_assistant(build_index(tmp_path_factory.mktemp("browser")))


@pytest.fixture(scope="module")
def public_server(ui_assistant: Any) -> Iterator[LiveServer]:
    """The app without a staff password: management is off."""
    yield from serve_app(ui_assistant, admin_password="")


@pytest.fixture(scope="module")
def staff_server(ui_assistant: Any) -> Iterator[LiveServer]:
    """The same assistant served with a staff password."""
    yield from serve_app(ui_assistant, admin_password=PASSWORD)


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context (own Gradio session) in English; page errors fail the test."""
    locale = getattr(request, "param", "en-US")
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale=locale,
                                  permissions=["clipboard-read", "clipboard-write"])
    context.set_default_timeout(TIMEOUT)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))

    def on_dialog(dialog: Any) -> None:
        errors.append(f"dialog: {dialog.message}")
        dialog.dismiss()

    pg.on("dialog", on_dialog)
    yield pg
    context.close()
    assert not errors, errors


# --------------------------------------------------------------------------- helpers


def shot(page: Any, name: str, full_page: bool = False) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def open_app(page: Any, server: LiveServer) -> None:
    page.goto(server.url + "/")
    page.wait_for_selector("#question textarea")


def ask(page: Any, question: str) -> Any:
    """Ask through the UI and wait for the complete answer; returns the answer's locator."""
    before = page.locator("#chatbot .answer.complete").count()
    errors = page.locator("#chatbot .notice-error").count()
    page.fill("#question textarea", question)
    page.click("#ask-btn")
    page.wait_for_function(
        f"document.querySelectorAll('#chatbot .answer.complete').length > {before}"
        f" || document.querySelectorAll('#chatbot .notice-error').length > {errors}"
    )
    if page.locator("#chatbot .notice-error").count() > errors:
        pytest.fail(f"the UI reported an error for {question!r}: "
                    f"{page.locator('#chatbot .notice-error').last.inner_text()}")
    return page.locator("#chatbot .answer.complete").last


def open_tab(page: Any, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def log_in(page: Any, password: str) -> None:
    open_tab(page, "Documents")
    if not page.locator("#staff-password input").is_visible():
        page.locator("#staff").get_by_text("Staff").first.click()
    page.fill("#staff-password input", password)
    page.click("#staff-login")


def upload(page: Any, files: list[Path]) -> str:
    """Upload files as staff and wait for the ingest report; returns the status text."""
    page.set_input_files("#upload input[type=file]", [str(f) for f in files])
    for f in files:  # Gradio uploads the files first: slow when the 2 cores are busy (the suite's load)
        page.locator("#upload").get_by_text(f.name).first.wait_for(timeout=90_000)
    page.click("#upload-btn")
    page.locator("#staff-status .notice-ok", has_text="added").wait_for(timeout=90_000)
    text: str = page.inner_text("#staff-status")
    return text


# --------------------------------------------------------------------------- tests


def test_answer_with_footnotes_and_highlighted_source(page: Any, public_server: LiveServer) -> None:
    open_app(page, public_server)
    answer = ask(page, "What is the Suzhou alliance?")
    footnotes = answer.locator("a.fn-ref")
    assert footnotes.count() >= 1
    assert "Suzhou" in answer.inner_text()
    assert page.locator("#sources .src").count() >= 1
    shot(page, "01-answer")

    target = footnotes.last.get_attribute("href").lstrip("#")
    footnotes.last.click()
    active = page.locator("#sources .src.active")
    active.wait_for()
    assert active.get_attribute("id") == target
    quote = active.locator("mark").inner_text()
    assert quote and quote.split()[0] in answer.inner_text()
    assert active.locator(".src-meta").inner_text().strip()  # doc id (and outlet/date when known)
    shot(page, "02-footnote-source")

    # Copy: each answer's own copy link puts "answer + numbered sources" on the clipboard.
    page.locator("#chatbot a.copy-answer").last.click()
    page.wait_for_function("navigator.clipboard.readText().then(t => t.length > 0)")
    copied_text = page.evaluate("navigator.clipboard.readText()")
    assert "Sources:" in copied_text and "[1]" in copied_text
    assert copied_text.splitlines()[0].split("[1]")[0].strip() in answer.inner_text()


def test_follow_up_shows_searched_for_then_clear(page: Any, public_server: LiveServer) -> None:
    open_app(page, public_server)
    first = ask(page, "What is the Suzhou alliance?")
    assert first.locator(".searched").count() == 0
    follow = ask(page, "How many training bases will it establish?")
    searched = follow.locator(".searched").inner_text()
    assert searched.startswith("Searched for") and "Suzhou" in searched
    assert "14" in follow.inner_text()
    follow.locator("a.fn-ref").first.click()
    page.locator("#sources .src.active mark").wait_for()
    shot(page, "03-follow-up")
    # A footnote of the earlier answer still shows that answer's own source (issue 16: every footnote works).
    first_ref = page.locator("#chatbot .answer.complete").first.locator("a.fn-ref").first  # `first` is lazy: .last
    target = first_ref.get_attribute("data-target") or first_ref.get_attribute("href").lstrip("#")
    first_ref.click()
    page.wait_for_function(f"document.querySelector('#sources .src.active')?.id === '{target}'")
    assert page.locator(f"#turn-1 #{target}").count() == 1
    if os.environ.get("UPDATE_SCREENSHOTS"):  # the README's screenshot
        (ROOT / "docs").mkdir(exist_ok=True)
        page.screenshot(path=str(ROOT / "docs" / "screenshot-chat.png"))
    page.click("#clear-btn")
    page.wait_for_function("document.querySelectorAll('#chatbot .answer').length === 0")
    assert page.locator("#sources .src").count() == 0


def test_absent_topic_abstains_with_related_passages(page: Any, public_server: LiveServer) -> None:
    open_app(page, public_server)
    answer = ask(page, "What is the recipe for chocolate cake?")
    assert "could not find" in answer.locator(".answer-text.abstained").inner_text()
    assert "Possibly related passages" in answer.inner_text()
    assert answer.locator(".related li").count() >= 1
    assert page.locator("#sources .related-src").count() >= 1
    answer.locator("a.rel-ref").first.click()
    page.locator("#sources .related-src.active").wait_for()
    shot(page, "04-abstention")


def test_friendly_error_for_a_bad_filter(page: Any, public_server: LiveServer) -> None:
    open_app(page, public_server)
    page.locator("#filters").get_by_text("Filters").first.click()
    page.fill("#filter-from input, #filter-from textarea", "yesterday")
    page.fill("#question textarea", "What is the Suzhou alliance?")
    page.click("#ask-btn")
    notice = page.locator("#chatbot .notice-error")
    notice.wait_for()
    assert "date_from" in notice.inner_text()
    assert "Traceback" not in page.content()
    shot(page, "05-error")


@pytest.mark.parametrize("page", ["zh-CN"], indirect=True)
def test_chinese_browser_gets_chinese_labels_and_toggle(page: Any, public_server: LiveServer) -> None:
    open_app(page, public_server)
    page.wait_for_function("document.querySelector('#ask-btn').innerText.trim() === '提问'")
    answer = ask(page, "常州检验检测认证产教联盟是什么时候成立的？")
    assert answer.locator("a.fn-ref").count() >= 1
    assert "来源" in page.inner_text("#sources")
    shot(page, "06-chinese")
    page.locator("#lang-toggle").get_by_text("English").click()
    page.wait_for_function("document.querySelector('#ask-btn').innerText.trim() === 'Ask'")
    assert "Sources" in page.inner_text("#sources")


def test_no_password_means_no_management_controls(page: Any, public_server: LiveServer) -> None:
    open_app(page, public_server)
    open_tab(page, "Documents")
    page.wait_for_selector("#docs-table table")
    assert f"{SAMPLE_DOCS} documents" in page.inner_text("#docs-table .docs-count")
    for selector in ("#staff", "#staff-password", "#upload", "#upload-btn", "#delete-btn", "#reindex-btn"):
        assert page.locator(selector).count() == 0, selector
    assert "Staff" not in page.inner_text("body")
    shot(page, "07-documents-public")


def test_staff_upload_is_then_cited(page: Any, staff_server: LiveServer, ui_assistant: Any, tmp_path: Path) -> None:
    open_app(page, staff_server)
    open_tab(page, "Documents")
    assert page.locator("#upload").count() == 0  # hidden until a correct password
    log_in(page, "not the password")
    page.locator("#staff-status .notice-error").wait_for()
    assert page.locator("#upload").count() == 0
    log_in(page, PASSWORD)
    page.locator("#upload-btn").wait_for()
    doc = tmp_path / "麒麟 海事 alliance.txt"
    doc.write_text("The Qilin Maritime Skills Alliance was founded in Ningbo on 5 May 2024 by twelve shipyards "
                   "and three colleges.\nIts members train marine engineers and offer 300 apprenticeships a year.\n",
                   encoding="utf-8")
    status = upload(page, [doc])
    assert "1 added" in status
    assert (Path(ui_assistant.config.corpus_dir) / doc.name).is_file()  # saved in the corpus folder
    page.wait_for_function("document.querySelector('#docs-table').innerText.includes('麒麟 海事 alliance.txt')")
    shot(page, "08-staff-upload", full_page=True)

    open_tab(page, "Chat")
    answer = ask(page, "When was the Qilin Maritime Skills Alliance founded?")
    assert "2024" in answer.inner_text()
    assert "麒麟 海事 alliance.txt" in page.inner_text("#sources")
    shot(page, "09-uploaded-cited")

    # Delete it again, with its file: gone from the table, the corpus folder and the answers.
    open_tab(page, "Documents")
    page.locator("#delete-doc input").fill("麒麟")
    page.get_by_role("option", name="麒麟 海事 alliance.txt").first.click()
    page.locator("#delete-file input").check()
    page.click("#delete-btn")
    page.locator("#staff-status .notice-ok", has_text="Deleted").wait_for()
    page.wait_for_function("!document.querySelector('#docs-table').innerText.includes('麒麟')")
    assert not (Path(ui_assistant.config.corpus_dir) / doc.name).exists()
    shot(page, "10-staff-delete")


def test_hostile_document_is_shown_as_text(page: Any, staff_server: LiveServer, tmp_path: Path) -> None:
    open_app(page, staff_server)
    log_in(page, PASSWORD)
    page.locator("#upload-btn").wait_for()
    doc = tmp_path / "hostile-notice.txt"
    doc.write_text(HOSTILE, encoding="utf-8")
    upload(page, [doc])
    page.wait_for_function("document.querySelector('#docs-table').innerText.includes('Zeta Robotics')")
    table = page.inner_text("#docs-table")
    assert "<script>window.__pwned=1</script>" in table  # the title, as text

    open_tab(page, "Chat")
    answer = ask(page, "What does the Zeta Robotics Academy do?")
    sources = page.inner_text("#sources")
    assert "<script>window.__pwned=1</script>" in sources
    assert '<img src=x onerror="window.__pwned=2">' in sources
    assert "<script>window.__pwned=1</script>" in answer.inner_text() or "onerror" in answer.inner_text()
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("#chatbot img[src='x'], #sources img[src='x'], #docs-table img").count() == 0
    assert page.locator("#chatbot script, #sources script").count() == 0
    shot(page, "11-hostile-inert")
    open_tab(page, "Documents")
    assert page.evaluate("typeof window.__pwned") == "undefined"


def test_evaluation_tab_runs_a_gold_file(page: Any, staff_server: LiveServer, tmp_path: Path) -> None:
    """Evaluation is a staff tool: log in, then run a gold file."""
    lines = (ROOT / "eval" / "gold.jsonl").read_text(encoding="utf-8").splitlines()
    items = [json.loads(line) for line in lines if line.strip()]
    gold = tmp_path / "gold-small.jsonl"
    gold.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items[:3]), encoding="utf-8")
    open_app(page, staff_server)
    log_in(page, PASSWORD)
    page.locator("#staff-status .notice-ok").wait_for()
    open_tab(page, "Evaluation")
    page.set_input_files("#gold-file input[type=file]", str(gold))
    page.locator("#gold-file").get_by_text("gold-small.jsonl").first.wait_for()
    page.click("#run-eval")
    page.locator("#eval-report iframe.eval-report").wait_for(timeout=60_000)
    assert "3 questions" in page.inner_text("#eval-status")
    assert page.locator("#eval-metrics").get_by_text("all").count() >= 1
    frame = page.frame_locator("#eval-report iframe.eval-report")
    assert frame.locator("table").count() >= 1
    assert frame.locator("svg").count() >= 1  # the charts
    shot(page, "12-evaluation-metrics")
    page.locator("#eval-report iframe.eval-report").scroll_into_view_if_needed()
    shot(page, "13-evaluation-report")  # a viewport shot: full-page shots leave iframes blank


def test_thumbs_down_with_a_comment_reaches_the_file_and_the_staff_tab(page: Any, staff_server: LiveServer,
                                                                       ui_assistant: Any) -> None:
    from assistant import feedback

    path = feedback.feedback_path(ui_assistant.config.index_dir)
    before = len(feedback.read(path))
    open_app(page, staff_server)
    ask(page, "What is the Suzhou alliance?")
    page.fill("#feedback-comment textarea", "should cite the founding article")
    page.locator("#chatbot button[aria-label='Dislike']").last.click()
    page.locator("#feedback-status .notice-ok").wait_for()
    items = feedback.read(path)
    assert len(items) == before + 1
    item = items[-1]
    assert item["rating"] == "down" and item["comment"] == "should cite the founding article"
    assert item["question"] == "What is the Suzhou alliance?" and item["citations"]
    shot(page, "14-feedback")
    log_in(page, PASSWORD)
    page.locator("#staff-feedback").get_by_text("should cite the founding article").wait_for()


def test_conversation_survives_a_reload_and_exports_as_markdown(page: Any, public_server: LiveServer) -> None:
    open_app(page, public_server)
    ask(page, "What is the Suzhou alliance?")
    ask(page, "How many training bases will it establish?")
    page.reload()
    page.wait_for_selector("#question textarea")
    page.wait_for_function("document.querySelectorAll('#chatbot .answer.complete').length === 2")
    assert "Suzhou" in page.inner_text("#chatbot")
    assert page.locator("#sources .turn-sources").count() == 2  # both turns' sources came back
    # A follow-up after the reload still knows the conversation.
    follow = ask(page, "When was it established?")
    assert "Suzhou" in follow.locator(".searched").inner_text()

    page.click("#export-btn")
    link = page.locator("#export-file a").first
    link.wait_for()
    with page.expect_download() as dl:
        link.click()
    text = Path(dl.value.path()).read_text(encoding="utf-8")
    assert text.count("## Question ") == 3 and "[^1-1]" in text and "\n[^1-1]: " in text
    shot(page, "15-export")

    page.click("#clear-btn")
    page.wait_for_function("document.querySelectorAll('#chatbot .answer').length === 0")
    page.reload()
    page.wait_for_selector("#question textarea")
    page.locator("#past-conversations input").click()
    page.get_by_role("option").filter(has_text="What is the Suzhou alliance?").first.click()
    page.click("#open-conversation")
    page.wait_for_function("document.querySelectorAll('#chatbot .answer.complete').length === 3")


@pytest.mark.parametrize("page", ["zh-CN"], indirect=True)
def test_a_page_whose_address_changed_is_told_to_reload_and_keeps_its_conversation(
        page: Any, public_server: LiveServer) -> None:
    """A session acts only from the address that started it: a visitor whose address changes (another
    network) is told, in the browser's language, to reload; after the reload the conversation is back."""
    open_app(page, public_server)
    ask(page, "What is the Suzhou alliance?")
    seen = public_server.gate.seen
    for session in list(seen._seen):  # as if this page's requests now came from another network
        seen._seen[session] = "203.0.113.9"
    page.fill("#question textarea", "When was it established?")
    page.click("#ask-btn")
    page.get_by_text("此页面的会话来自另一个网络地址，请刷新页面。").wait_for()
    shot(page, "17-moved-address")
    page.reload()
    page.wait_for_selector("#question textarea")
    page.wait_for_function("document.querySelectorAll('#chatbot .answer.complete').length === 1")
    follow = ask(page, "When was it established?")
    assert "Suzhou" in follow.locator(".searched").inner_text()


def test_source_opens_the_whole_document_at_the_quote(page: Any, public_server: LiveServer) -> None:
    open_app(page, public_server)
    ask(page, "When was the Changzhou testing and certification alliance established?")
    source = page.locator("#sources .src").first
    quote = source.locator("mark").inner_text()
    passage = source.locator(".src-text").inner_text()
    source.locator("a.open-doc").click()
    mark = page.locator("#doc-view mark#doc-quote")
    mark.wait_for()
    assert mark.inner_text().strip() == quote.strip()
    whole = page.inner_text("#doc-view .doc-text")
    assert len(whole) > len(passage) and quote.strip() in whole
    assert page.evaluate("(() => { const m = document.querySelector('#doc-view #doc-quote');"
                         " const b = m.closest('.doc-text').getBoundingClientRect();"
                         " const r = m.getBoundingClientRect(); return r.top >= b.top - 1 && r.top <= b.bottom; })()")
    shot(page, "16-document-viewer")


def test_pdf_citation_shows_its_page_and_opens_at_the_quote(page: Any, staff_server: LiveServer,
                                                            tmp_path: Path) -> None:
    from reportlab.pdfgen import canvas

    pdf = tmp_path / "osprey-report.pdf"
    c = canvas.Canvas(str(pdf))
    pages = [["The Osprey Maritime Alliance annual report.", "Chapter one describes its members in general."],
             ["The Osprey Maritime Alliance was founded in Qingdao in 2019 by nine shipyards.",
              "It trains marine welders every spring."],
             ["Chapter three lists the budget of the training centre."]]
    for lines in pages:
        for i, line in enumerate(lines):
            c.drawString(72, 760 - 20 * i, line)
        c.showPage()
    c.save()
    open_app(page, staff_server)
    log_in(page, PASSWORD)
    page.locator("#upload-btn").wait_for()
    assert "1 added" in upload(page, [pdf])
    open_tab(page, "Chat")
    answer = ask(page, "Where was the Osprey Maritime Alliance founded?")
    assert "Qingdao" in answer.inner_text()
    source = page.locator("#sources .src").first
    assert "osprey-report.pdf" in source.inner_text()
    assert source.locator(".page").inner_text() == "p. 2"
    source.locator("a.open-doc").click()
    mark = page.locator("#doc-view mark#doc-quote")
    mark.wait_for()
    assert "Qingdao" in mark.inner_text()
    shot(page, "17-pdf-page")
