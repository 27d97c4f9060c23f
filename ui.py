"""Gradio web UI: chat with cited sources, the document list, staff management and evaluation.

``build_app(assistant)`` returns the ``gr.Blocks``; ``create_app`` mounts it beside the library's
JSON API (``assistant/server.py``) and ``serve`` runs both (``assistant serve``, ``make run``).
HTML comes from ``assistant.render``, which escapes all document text. Run directly:
``python ui.py [--host H] [--port P]``.
"""

from __future__ import annotations

import atexit
import hashlib
import html
import json
import logging
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from math import ceil
from pathlib import Path
from typing import Any

import gradio as gr

from assistant import feedback
from assistant.core import MAX_QUESTION_CHARS
from assistant.corpus_files import VERSIONS, move_to_trash, restore, trashed
from assistant.errors import AssistantError, DocumentError
from assistant.render import (
    answer_plain_text,
    esc,
    metrics_rows,
    render_answer,
    render_document,
    render_documents,
    render_notice,
    render_sources,
    stream_prefixes,
)
from assistant.schema import Answer
from assistant.server import (
    MAX_UPLOAD_BYTES,
    UPLOAD_SUFFIXES,
    LoginThrottle,
    SavedUpload,
    admin_password,
    check_password,
    friendly_error,
    guard_for,
    store_upload,
)
from assistant.transcript import restore as restore_answer
from assistant.transcript import slim, to_markdown

log = logging.getLogger("assistant.ui")

STREAM_DELAY = 0.05  # seconds between streamed sentences
MAX_GOLD_BYTES = 5 * 1024 * 1024
MAX_TURNS = 50  # questions (and rendered messages: two per turn) a session keeps on the server

# (English, Chinese) for every label the language toggle changes.
TEXT: dict[str, tuple[str, str]] = {
    "title": ("## Industry–Education Alliance Assistant\nAsk in English or Chinese; every answer cites its "
              "sources.", "## 产教联盟智能助手\n可用中文或英文提问，每个回答都附有引用来源。"),
    "tab_chat": ("Chat", "问答"),
    "tab_docs": ("Documents", "文档"),
    "tab_eval": ("Evaluation", "评测"),
    "chatbot": ("Conversation", "对话"),
    "question": ("Your question", "你的问题"),
    "question_ph": ("e.g. What is the Suzhou standardized alliance?", "例如：常州检验检测认证产教联盟何时成立？"),
    "ask": ("Ask", "提问"),
    "clear": ("New conversation", "新对话"),
    "filters": ("Filters", "筛选"),
    "f_doc": ("Documents", "文档"),
    "f_outlet": ("Outlets", "媒体"),
    "f_language": ("Document language", "文档语言"),
    "f_from": ("From date (YYYY-MM-DD)", "起始日期（YYYY-MM-DD）"),
    "f_to": ("To date (YYYY-MM-DD)", "截止日期（YYYY-MM-DD）"),
    "sources": ("Sources", "来源"),
    "refresh": ("Refresh", "刷新"),
    "staff": ("Staff", "教职工管理"),
    "password": ("Staff password", "管理密码"),
    "login": ("Log in", "登录"),
    "logout": ("Log out", "退出"),
    "upload": ("Add documents (.txt .md .html .htm .pdf .docx .jsonl, up to 20 MB each)",
               "添加文档（.txt .md .html .htm .pdf .docx .jsonl，每个不超过 20 MB）"),
    "upload_btn": ("Upload and index", "上传并索引"),
    "delete_doc": ("Document to delete", "要删除的文档"),
    "delete_file": ("Also delete its file from the corpus folder", "同时从语料目录删除文件"),
    "delete_btn": ("Delete document", "删除文档"),
    "rebuild": ("Rebuild from scratch", "从头重建索引"),
    "reindex_btn": ("Re-index corpus", "重新索引语料"),
    "gold": ("Gold questions (JSONL)", "标准问题集（JSONL）"),
    "k": ("k (passages scored)", "k（评分的段落数）"),
    "run_eval": ("Run evaluation", "运行评测"),
    "past": ("Earlier conversations (kept in this browser)", "之前的对话（保存在本浏览器中）"),
    "open": ("Open", "打开"),
    "export": ("Export", "导出"),
    "export_file": ("Conversation as Markdown", "对话（Markdown）"),
    "fb_comment": ("Comment on an answer (optional, sent with 👍 / 👎 or a flag)",
                   "对回答的意见（可选，随 👍 / 👎 或标记一起提交）"),
    "restore": ("Trash (deleted and refused files)", "回收站（已删除或未能索引的文件）"),
    "restore_btn": ("Restore file", "恢复文件"),
    "metrics": ("Metrics", "指标"),
    "report_file": ("HTML report", "HTML 报告"),
    "lang": ("Language · 语言", "Language · 语言"),
}

MSG: dict[str, tuple[str, str]] = {
    "denied": ("Staff login required.", "需要管理员登录。"),
    "bad_password": ("Wrong password.", "密码错误。"),
    "logged_in": ("Logged in: management enabled.", "已登录：可以管理文档。"),
    "logged_out": ("Logged out.", "已退出。"),
    "no_files": ("Choose one or more files first.", "请先选择文件。"),
    "no_doc": ("Choose a document first.", "请先选择文档。"),
    "no_gold": ("Upload a gold JSONL file first.", "请先上传标准问题集 JSONL 文件。"),
    "empty_q": ("Please ask a question.", "请输入问题。"),
    "long_q": ("The question is too long (at most {n} characters).", "问题太长（最多 {n} 个字符）。"),
    "locked": ("Too many wrong passwords from this address; try again in {s} s.",
               "此地址密码错误次数过多，请 {s} 秒后再试。"),
    "no_trash": ("Choose a file from the trash first.", "请先从回收站选择文件。"),
    "nothing_to_export": ("Ask something first: there is nothing to export.", "请先提问：没有可导出的对话。"),
    "fb_thanks": ("Thank you: your feedback was recorded.", "谢谢，已记录你的反馈。"),
    "fb_failed": ("Your feedback could not be stored; please try again.", "反馈未能保存，请重试。"),
}

EXAMPLES_STUDENTS = [
    ["What is the Suzhou standardized industry-education alliance?"],
    ["常州检验检测认证产教联盟是什么时候成立的？"],
    ["Which fields will the Suzhou standardization training bases focus on?"],
    ["人工智能如何改变技工教育？"],
]
EXAMPLES_STAFF = [
    ["Which institutions co-lead the Changzhou testing and certification alliance?"],
    ["南海区产教联盟的目标是什么？"],
    ["What are the five strategic focus areas of the Changzhou alliance?"],
    ["“十五五”期间职业教育有哪些发展趋势？"],
]

CSS = """
.answer .searched{color:#5a6372;font-size:.85em;margin-bottom:.35em}
.answer .abstained{color:#7a4b00}
.answer .note{color:#8a5a00;font-size:.8em;margin-top:.3em}
.answer .related{margin-top:.5em;font-size:.9em}
.answer .related ul{margin:.2em 0;padding-left:1.2em}
sup.fn{font-size:.75em;white-space:nowrap}
.copy-row{margin-top:.4em;font-size:.8em}.copy-answer{cursor:pointer;color:#3b6ea8;text-decoration:none}
.copy-answer.copied::after{content:" ✓"}.copy-text{display:none}
.turn-sources{margin-bottom:.8em}
.hidden-control{display:none !important}
a.open-doc{cursor:pointer;color:#3b6ea8}
.doc-view .doc-text{white-space:pre-wrap;max-height:520px;overflow:auto;border:1px solid #dde1e6;border-radius:6px;
  padding:.5em .7em;font-size:.88em}
.doc-view mark{background:#ffe28a;color:#1d2330}.turn-head{color:#5a6372;font-size:.85em;margin:.4em 0 0}
a.fn-ref,a.rel-ref{cursor:pointer;text-decoration:none;font-weight:600}
.sources-panel{max-height:640px;overflow:auto}
.sources-panel.empty{color:#8a93a0;padding:.5em}
.panel-head{font-weight:700;margin:.3em 0}
.src{border:1px solid #dde1e6;border-radius:6px;padding:.5em .7em;margin:.5em 0;transition:background .4s}
.src.active,.src:target{border-color:#3b6ea8;box-shadow:0 0 0 2px #3b6ea855;background:#f3f7fc}
.src-head{font-weight:600}.src-n{color:#3b6ea8}
.src-meta{color:#5a6372;font-size:.8em;margin:.15em 0}
.src-text{position:relative;margin:.3em 0 0;padding:.3em .6em;border-left:3px solid #c3c9d2;font-size:.88em;
  max-height:16em;overflow:auto;color:inherit}
.src-text mark{background:#ffe28a;color:#1d2330}
.docs-table table{border-collapse:collapse;font-size:.88em;width:100%}
.docs-table th,.docs-table td{border:1px solid #dde1e6;padding:.3em .5em;text-align:left;vertical-align:top}
.docs-table td.num{text-align:right}
.docs-count{color:#5a6372;margin-bottom:.3em}
.notice{padding:.4em .7em;border-radius:5px;margin:.3em 0}
.notice-error{background:#fdecea;color:#8a1c12}.notice-info{background:#eef4fb}.notice-ok{background:#e8f5ec}
iframe.eval-report{width:100%;height:900px;border:1px solid #dde1e6;border-radius:6px;background:#fff}
"""

# Footnotes: scroll to the source in the panel and mark it, whatever the chat's Markdown does to links.
HEAD = """
<script>
document.addEventListener('click', function (e) {
  var c = e.target && e.target.closest ? e.target.closest('a.copy-answer') : null;
  if (c) {
    e.preventDefault();
    e.stopPropagation();
    var holder = c.parentElement ? c.parentElement.querySelector('.copy-text') : null;
    var text = holder ? holder.textContent : '';
    var done = function () {
      c.classList.add('copied');
      setTimeout(function () { c.classList.remove('copied'); }, 1500);
    };
    if (navigator.clipboard) { navigator.clipboard.writeText(text).then(done); }
    return;
  }
  var d = e.target && e.target.closest ? e.target.closest('a.open-doc') : null;
  if (d) {
    e.preventDefault();
    var box = document.querySelector('#doc-request textarea, #doc-request input');
    if (!box) return;
    box.value = d.getAttribute('data-doc') || '';
    box.dispatchEvent(new Event('input', {bubbles: true}));
    setTimeout(function () { document.querySelector('#doc-open').click(); }, 50);
    return;
  }
  var a = e.target && e.target.closest ? e.target.closest('a.fn-ref, a.rel-ref') : null;
  if (!a) return;
  var id = a.getAttribute('data-target') || (a.getAttribute('href') || '').replace(/^#/, '');
  var el = id ? document.getElementById(id) : null;
  e.preventDefault();
  e.stopPropagation();
  if (!el) return;
  document.querySelectorAll('.src.active').forEach(function (x) { x.classList.remove('active'); });
  el.classList.add('active');
  el.scrollIntoView({behavior: 'smooth', block: 'center'});
}, true);
// Scroll each passage so its highlighted quote is in view (once per rendered passage).
function revealMarks() {
  var quote = document.querySelector('#doc-view #doc-quote');
  if (quote && !quote.dataset.revealed) {
    quote.dataset.revealed = '1';
    var box = quote.closest('.doc-text');
    if (box) box.scrollTop = Math.max(0, quote.offsetTop - box.offsetTop - 40);
    quote.scrollIntoView({behavior: 'smooth', block: 'center'});
  }
  document.querySelectorAll('.src-text').forEach(function (box) {
    var m = box.querySelector('mark');
    if (!m || box.dataset.revealed) return;
    box.dataset.revealed = '1';
    box.scrollTop = Math.max(0, m.offsetTop - 24);
  });
}
var revealPending = false;
new MutationObserver(function () {
  if (revealPending) return;
  revealPending = true;
  requestAnimationFrame(function () { revealPending = false; revealMarks(); });
}).observe(document.documentElement, {childList: true, subtree: true});
</script>
"""

# Browser language by default: the first event of a page sets the toggle from navigator.language.
LANG_JS = "() => ((navigator.language || 'en').toLowerCase().startsWith('zh') ? 'zh' : 'en')"


def theme() -> gr.themes.Base:
    """The UI theme (passed to ``gr.mount_gradio_app`` or ``launch``)."""
    fonts = ["system-ui", "Noto Sans CJK SC", "WenQuanYi Zen Hei", "PingFang SC", "sans-serif"]
    return gr.themes.Soft(primary_hue="blue", font=fonts, font_mono=["ui-monospace", "monospace"])


def _configured_password() -> str | None:
    return admin_password()


def t(key: str, lang: str) -> str:
    """A label in ``lang``."""
    en, zh = TEXT[key] if key in TEXT else MSG[key]
    return zh if lang == "zh" else en


def bounded_conversation(messages: Any) -> list[dict[str, Any]]:
    """The server-side conversation, at most ``MAX_TURNS`` turns, as a fresh list."""
    if not isinstance(messages, list):
        return []
    return list(messages[-2 * MAX_TURNS:])


# Chatbot feedback: the two thumbs, and flags that are a thumbs-down with a reason.
FEEDBACK_OPTIONS = ("Like", "Dislike", "Wrong source", "Should have said not found")


def feedback_item(kept: Sequence[dict[str, Any]], index: Any, liked: Any, comment: Any) -> dict[str, Any] | None:
    """The feedback item for the answer at chat message ``index``, or None when it names no answer.

    Messages come in pairs (question, answer), so answer ``i`` is message ``2 i + 1``; ``kept`` is the
    server's record of each pair, so the browser's copy of the message is never used.
    """
    if isinstance(index, list | tuple):
        index = index[0] if index else None
    if not isinstance(index, int) or isinstance(index, bool) or index % 2 != 1:
        return None
    pair = index // 2
    if not 0 <= pair < len(kept):
        return None
    record = kept[pair]
    if liked is True or liked == "Like":
        rating, option = "up", ""
    elif liked is False or liked == "Dislike":
        rating, option = "down", ""
    elif isinstance(liked, str) and liked in FEEDBACK_OPTIONS:
        rating, option = "down", liked
    else:
        return None
    return feedback.make_item(rating, record["question"], record["history"], record["answer"], option,
                              comment if isinstance(comment, str) else "")


def render_feedback(items: Sequence[dict[str, Any]], lang: str) -> str:
    """Recent feedback for staff, newest first (all text escaped)."""
    zh = lang == "zh"
    if not items:
        return f'<div class="docs-count">{"还没有反馈。" if zh else "No feedback yet."}</div>'
    head = ("时间", "评价", "问题", "意见") if zh else ("Time", "Rating", "Question", "Comment")
    rows = []
    for item in reversed(items):
        rating = "👍" if item.get("rating") == "up" else "👎"
        if item.get("option"):
            rating += f" {item['option']}"
        rows.append(f"<tr><td>{esc(str(item.get('time', ''))[:16])}</td><td>{esc(rating)}</td>"
                    f"<td>{esc(str(item.get('question', ''))[:200])}</td><td>{esc(str(item.get('comment', ''))[:300])}"
                    "</td></tr>")
    title = "最近的反馈" if zh else "Recent feedback"
    return (f'<div class="docs-table"><div class="panel-head">{esc(title)}</div><table><tr>'
            + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>" + "".join(rows) + "</table></div>")


def parse_doc_request(request: Any) -> tuple[str, int, int] | None:
    """``[doc_id, start, end]`` from the browser, checked; None when malformed."""
    if not isinstance(request, str) or len(request) > 2000:
        return None
    try:
        value = json.loads(request)
    except ValueError:
        return None
    if (not isinstance(value, list) or len(value) != 3 or not isinstance(value[0], str) or not value[0]
            or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 10**9 for v in value[1:])):
        return None
    return value[0], value[1], value[2]


def all_sources(turns: Sequence[tuple[int, Answer]], lang: str) -> str:
    """The sources panel for a whole conversation: every turn's sources, newest first.

    Footnote ids carry the turn number, so ``[1]`` of an earlier answer finds its own source.
    """
    shown = [(n, a) for n, a in turns if a.citations or (a.abstained and a.related)]
    if not shown:
        return render_sources(None, 0, lang)
    parts = []
    for n, answer in reversed(shown):
        head = f"问题 {n}：" if lang == "zh" else f"Question {n}: "
        parts.append(f'<div class="turn-sources" id="turn-{n}"><div class="turn-head">{esc(head)}'
                     f'{esc(answer.question[:120])}</div>{render_sources(answer, n, lang)}</div>')
    return "".join(parts)


def copy_link(answer: Answer, lang: str) -> str:
    """A copy control under an answer: its text and numbered sources go to the clipboard (see ``HEAD``)."""
    label = "复制回答及来源" if lang == "zh" else "Copy answer with sources"
    # The text rides in a hidden element (the chat's sanitizer drops long data attributes); new lines as
    # character references, since a blank line would end the Markdown pass's HTML block.
    text = esc(answer_plain_text(answer, lang)).replace("\n", "&#10;")
    return (f'<div class="copy-row"><a class="copy-answer" role="button">{esc(label)}</a>'
            f'<span class="copy-text">{text}</span></div>')


def uploaded_file(path: Any) -> Path:
    """``path`` if Gradio stored it as an upload of this server, else ``DocumentError``.

    Handlers never trust a path sent by the browser: only files inside Gradio's upload folder are read.
    The error names the file, not the server's folders.
    """
    from gradio.utils import get_upload_folder

    if not isinstance(path, str | Path) or not str(path):
        raise DocumentError("upload", "not an uploaded file")
    file = Path(path)
    try:
        resolved = file.resolve(strict=True)
        resolved.relative_to(Path(get_upload_folder()).resolve())
    except (OSError, ValueError):
        raise DocumentError(file.name or "upload", "not an uploaded file") from None
    if not resolved.is_file():
        raise DocumentError(file.name or "upload", "not an uploaded file")
    return resolved


def build_filters(doc_ids: Sequence[str] | None, outlets: Sequence[str] | None, language: str | None,
                  date_from: str | None, date_to: str | None) -> dict[str, Any]:
    """The filter widgets' values as ``Assistant.ask`` filters (empty ones left out)."""
    filters: dict[str, Any] = {}
    if doc_ids:
        filters["doc_id"] = list(doc_ids)
    if outlets:
        filters["outlet"] = list(outlets)
    if language:
        filters["language"] = language
    if date_from and date_from.strip():
        filters["date_from"] = date_from.strip()
    if date_to and date_to.strip():
        filters["date_to"] = date_to.strip()
    return filters


def _progress_callback(progress: gr.Progress, lang: str) -> Callable[[str, int, int], None]:
    done: dict[str, int] = {}
    labels = {"files": ("Reading files", "读取文件"), "embed": ("Embedding chunks", "向量化段落")}

    def callback(stage: str, advance: int, total: int) -> None:
        done[stage] = done.get(stage, 0) + advance
        en, zh = labels.get(stage, (stage, stage))
        progress((done[stage], total or None), desc=zh if lang == "zh" else en)

    return callback


def _report_text(report: Any, lang: str) -> str:
    zh = lang == "zh"
    line = (f"新增 {report.added}，更新 {report.updated}，删除 {report.removed}，未变 {report.unchanged} 个文档"
            f"（{report.chunks_added} 个新段落，{report.seconds:.1f} 秒）。" if zh else
            f"{report.added} added, {report.updated} updated, {report.removed} removed, {report.unchanged} "
            f"unchanged documents ({report.chunks_added} new chunks, {report.seconds:.1f} s).")
    skipped = "; ".join(f"{e.path}: {e.reason}" for e in report.errors)
    if skipped:
        line += (" 跳过：" if zh else " Skipped: ") + skipped
    return line


class _ProgressAsker:
    """Wraps the assistant for ``run_eval``: a read lock per question and a progress bar."""

    def __init__(self, assistant: Any, progress: gr.Progress, total: int) -> None:
        self.assistant = assistant
        self.guard = guard_for(assistant)
        self.progress = progress
        self.total = total
        self.done = 0

    def ask(self, question: str, history: list[str] | None = None, filters: dict[str, Any] | None = None) -> Answer:
        self.progress((self.done, self.total), desc="evaluating")
        try:
            with self.guard.read():
                answer: Answer = self.assistant.ask(question, history=history, filters=filters)
            return answer
        finally:
            self.done += 1


def build_app(assistant: Any, admin_password: str | None = None) -> gr.Blocks:
    """The Gradio app over ``assistant``; staff controls exist only when a password is configured.

    ``admin_password`` None reads ``ASSISTANT_ADMIN_PASSWORD``; "" turns management off.
    """
    password = _configured_password() if admin_password is None else (admin_password or None)
    guard = guard_for(assistant)
    corpus_dir = Path(assistant.config.corpus_dir)
    throttle = LoginThrottle()  # per app: wrong staff passwords by client address
    feedback_file = feedback.feedback_path(assistant.config.index_dir)
    reports = ReportFiles()
    exports = ReportFiles(keep=50)
    # BrowserState encrypts with this; stable per index so a restart does not lose saved conversations.
    browser_secret = hashlib.sha256(str(Path(assistant.config.index_dir).resolve()).encode()).hexdigest()[:24]

    def session_from(restored: Sequence[Answer], ui_lang: str) -> tuple[Any, ...]:
        """Server-side session state (and the chat) rebuilt from answers: the outputs ``session_outputs``."""
        messages: list[dict[str, Any]] = []
        turns: list[tuple[int, Answer]] = []
        kept: list[dict[str, Any]] = []
        past: list[str] = []
        for n, answer in enumerate(restored, start=1):
            messages.append({"role": "user", "content": f'<div class="user-q">{esc(answer.question)}</div>'})
            messages.append({"role": "assistant", "content": render_answer(answer, n) + copy_link(answer, ui_lang)})
            turns.append((n, answer))
            kept.append({"question": answer.question, "history": list(past), "answer": answer.to_dict()})
            past.append(answer.question)
        return messages, messages, past, turns, kept, all_sources(turns, ui_lang)
    labelled: list[tuple[Any, str, str]] = []  # (component, property, TEXT key) for the language toggle

    def L(component: Any, prop: str, key: str) -> Any:  # noqa: N802 - reads as a wrapper in the layout
        labelled.append((component, prop, key))
        return component

    def doc_choices() -> tuple[list[tuple[str, str]], list[str]]:
        with guard.read():
            docs = assistant.documents()
        choices = [(f"{(d.title or d.doc_id)[:60]} — {d.doc_id}", d.doc_id) for d in docs]
        outlets = sorted({d.outlet for d in docs if d.outlet})
        return choices, outlets

    # delete_cache: files uploaded to Gradio (anonymous route) or made for download go after an hour.
    with gr.Blocks(title="Alliance Assistant · 产教联盟助手", analytics_enabled=False,
                   delete_cache=(600, 3600)) as demo:
        history = gr.State([])  # earlier questions of this conversation (server side, per session)
        # The rendered conversation, kept server side: the Chatbot is output-only, so no event ever takes a
        # message list (or a file inside one) from the browser.
        conversation = gr.State([])
        answers = gr.State([])  # (turn, answer) of this conversation, for the sources of every turn
        records = gr.State([])  # one per question/answer message pair: what feedback on that answer refers to
        # The conversation in the browser (localStorage), so a reload keeps it and the server stores nothing:
        # the current one with its sources, earlier ones with their quotes. Read back strictly (transcript).
        saved_current = gr.BrowserState([], storage_key="alliance-assistant-current", secret=browser_secret)
        saved_past = gr.BrowserState([], storage_key="alliance-assistant-past", secret=browser_secret)
        is_admin = gr.State(False)  # set only by a correct password, checked by every staff handler

        with gr.Row(equal_height=True):
            L(gr.Markdown(TEXT["title"][0], elem_id="title"), "value", "title")
            lang = L(gr.Radio([("English", "en"), ("中文", "zh")], value="en", label=TEXT["lang"][0],
                              elem_id="lang-toggle", scale=0, min_width=200), "label", "lang")

        with gr.Tabs():
            with L(gr.Tab(TEXT["tab_chat"][0], id="chat", elem_id="tab-chat"), "label", "tab_chat"):
                with gr.Row():
                    with gr.Column(scale=3):
                        chatbot = L(gr.Chatbot(elem_id="chatbot", height=520, latex_delimiters=[], buttons=[],
                                               feedback_options=FEEDBACK_OPTIONS, sanitize_html=True,
                                               label=TEXT["chatbot"][0], show_label=False),
                                    "label", "chatbot")
                        with gr.Row():
                            fb_comment = L(gr.Textbox(label=TEXT["fb_comment"][0], elem_id="feedback-comment",
                                                      max_lines=2, scale=5), "label", "fb_comment")
                            fb_status = gr.HTML(elem_id="feedback-status")
                        with gr.Row():
                            question = L(L(gr.Textbox(label=TEXT["question"][0], placeholder=TEXT["question_ph"][0],
                                                      elem_id="question", scale=5, lines=1, max_lines=4),
                                           "label", "question"), "placeholder", "question_ph")
                            ask_btn = L(gr.Button(TEXT["ask"][0], variant="primary", elem_id="ask-btn",
                                                  scale=1, min_width=80), "value", "ask")
                            clear_btn = L(gr.Button(TEXT["clear"][0], elem_id="clear-btn", scale=1, min_width=80),
                                          "value", "clear")
                        with gr.Row():
                            past_pick = L(gr.Dropdown([], label=TEXT["past"][0], elem_id="past-conversations",
                                                      scale=4), "label", "past")
                            open_btn = L(gr.Button(TEXT["open"][0], elem_id="open-conversation", scale=1,
                                                   min_width=80), "value", "open")
                            export_btn = L(gr.Button(TEXT["export"][0], elem_id="export-btn", scale=1,
                                                     min_width=80), "value", "export")
                        export_file = L(gr.File(label=TEXT["export_file"][0], interactive=False,
                                                elem_id="export-file", visible=False), "label", "export_file")
                        with L(gr.Accordion(TEXT["filters"][0], open=False, elem_id="filters"), "label", "filters"):
                            with gr.Row():
                                f_doc = L(gr.Dropdown([], multiselect=True, label=TEXT["f_doc"][0],
                                                      elem_id="filter-doc"), "label", "f_doc")
                                f_outlet = L(gr.Dropdown([], multiselect=True, label=TEXT["f_outlet"][0],
                                                         elem_id="filter-outlet"), "label", "f_outlet")
                            with gr.Row():
                                f_lang = L(gr.Dropdown([("—", ""), ("中文 zh", "zh"), ("English en", "en"),
                                                        ("mixed", "mixed")], value="", label=TEXT["f_language"][0],
                                                       elem_id="filter-language"), "label", "f_language")
                                f_from = L(gr.Textbox(label=TEXT["f_from"][0], placeholder="2025-01-01",
                                                      elem_id="filter-from"), "label", "f_from")
                                f_to = L(gr.Textbox(label=TEXT["f_to"][0], placeholder="2025-12-31",
                                                    elem_id="filter-to"), "label", "f_to")
                        gr.Examples(EXAMPLES_STUDENTS, inputs=[question], label="For students · 学生常见问题",
                                    elem_id="examples-students")
                        gr.Examples(EXAMPLES_STAFF, inputs=[question], label="For staff · 教职工常见问题",
                                    elem_id="examples-staff")
                    with gr.Column(scale=2):
                        sources = gr.HTML(render_sources(None, 0), elem_id="sources")
                        doc_view = gr.HTML(elem_id="doc-view")
                        # Driven by the sources panel's "open the document" links (see HEAD); hidden by CSS,
                        # since Gradio does not render invisible components at all.
                        doc_request = gr.Textbox(elem_id="doc-request", elem_classes=["hidden-control"],
                                                 show_label=False, container=False)
                        doc_open = gr.Button("open", elem_id="doc-open", elem_classes=["hidden-control"])

            with L(gr.Tab(TEXT["tab_docs"][0], id="docs", elem_id="tab-docs"), "label", "tab_docs"):
                docs_html = gr.HTML(elem_id="docs-table")
                refresh_btn = L(gr.Button(TEXT["refresh"][0], elem_id="refresh-docs", size="sm"), "value", "refresh")
                if password:
                    with L(gr.Accordion(TEXT["staff"][0], open=False, elem_id="staff"), "label", "staff"):
                        with gr.Row():
                            pw_box = L(gr.Textbox(type="password", label=TEXT["password"][0],
                                                  elem_id="staff-password", scale=3), "label", "password")
                            login_btn = L(gr.Button(TEXT["login"][0], elem_id="staff-login", scale=1),
                                          "value", "login")
                        staff_msg = gr.HTML(elem_id="staff-status")
                        staff_feedback = gr.HTML(elem_id="staff-feedback", visible=False)
                        with gr.Column(visible=False, elem_id="staff-controls") as staff_controls:
                            uploads = L(gr.File(file_count="multiple", file_types=list(UPLOAD_SUFFIXES),
                                                type="filepath", label=TEXT["upload"][0], elem_id="upload"),
                                        "label", "upload")
                            upload_btn = L(gr.Button(TEXT["upload_btn"][0], variant="primary", elem_id="upload-btn"),
                                           "value", "upload_btn")
                            with gr.Row():
                                del_doc = L(gr.Dropdown([], label=TEXT["delete_doc"][0], elem_id="delete-doc",
                                                        scale=3), "label", "delete_doc")
                                del_file = L(gr.Checkbox(False, label=TEXT["delete_file"][0], elem_id="delete-file"),
                                             "label", "delete_file")
                                del_btn = L(gr.Button(TEXT["delete_btn"][0], variant="stop", elem_id="delete-btn",
                                                      scale=1), "value", "delete_btn")
                            with gr.Row():
                                rebuild = L(gr.Checkbox(False, label=TEXT["rebuild"][0], elem_id="rebuild"),
                                            "label", "rebuild")
                                reindex_btn = L(gr.Button(TEXT["reindex_btn"][0], elem_id="reindex-btn"),
                                                "value", "reindex_btn")
                                logout_btn = L(gr.Button(TEXT["logout"][0], elem_id="staff-logout", size="sm"),
                                               "value", "logout")
                            with gr.Row():
                                restore_pick = L(gr.Dropdown([], label=TEXT["restore"][0], elem_id="restore-file",
                                                             scale=3), "label", "restore")
                                restore_btn = L(gr.Button(TEXT["restore_btn"][0], elem_id="restore-btn", scale=1),
                                                "value", "restore_btn")

            if password:  # evaluation reads uploaded files and runs many questions: staff only
                with L(gr.Tab(TEXT["tab_eval"][0], id="eval", elem_id="tab-eval"), "label", "tab_eval"):
                    with gr.Row():
                        gold = L(gr.File(file_types=[".jsonl"], type="filepath", label=TEXT["gold"][0],
                                         elem_id="gold-file"), "label", "gold")
                        with gr.Column():
                            eval_k = L(gr.Slider(1, 20, value=5, step=1, label=TEXT["k"][0], elem_id="eval-k"),
                                       "label", "k")
                            run_btn = L(gr.Button(TEXT["run_eval"][0], variant="primary", elem_id="run-eval"),
                                        "value", "run_eval")
                    eval_status = gr.HTML(elem_id="eval-status")
                    metrics = L(gr.Dataframe(label=TEXT["metrics"][0], interactive=False, elem_id="eval-metrics"),
                                "label", "metrics")
                    report_file = L(gr.File(label=TEXT["report_file"][0], interactive=False, elem_id="eval-file"),
                                    "label", "report_file")
                    report_view = gr.HTML(elem_id="eval-report")

        # ------------------------------------------------------------------ chat

        def respond(text: str, messages: list[dict[str, Any]], past: list[str], turns: list[Any],
                    kept: list[dict[str, Any]], ui_lang: str, doc_ids: list[str] | None, outlets: list[str] | None,
                    language: str | None, date_from: str | None, date_to: str | None) -> Iterator[tuple[Any, ...]]:
            """Ask, then stream the answer sentence by sentence; errors become an inline message.

            ``messages`` is the server-side conversation state, never the browser's copy of the chat.
            """
            messages = bounded_conversation(messages)
            past = list(past or [])[-MAX_TURNS:]
            turns = list(turns or [])[-MAX_TURNS:]
            kept = list(kept or [])[-MAX_TURNS:]
            text = (text or "").strip()
            if not text:
                gr.Warning(t("empty_q", ui_lang))
                yield messages, messages, gr.update(), past, gr.update(), gr.update(), kept, gr.update()
                return
            if len(text) > MAX_QUESTION_CHARS:  # refused, not kept: the session stays small
                gr.Warning(t("long_q", ui_lang).format(n=MAX_QUESTION_CHARS))
                yield messages, messages, gr.update(), past, gr.update(), gr.update(), kept, gr.update()
                return
            messages.append({"role": "user", "content": f'<div class="user-q">{esc(text)}</div>'})
            try:
                with guard.read():
                    answer: Answer = assistant.ask(
                        text, history=past, filters=build_filters(doc_ids, outlets, language, date_from, date_to)
                    )
            except Exception as exc:
                if not isinstance(exc, AssistantError):
                    log.exception("ask failed")
                message = friendly_error(exc, ui_lang)
                gr.Warning(message)
                messages.append({"role": "assistant", "content": render_notice(message)})
                kept = [*kept, {"question": text, "history": list(past), "answer": None}]
                yield messages, messages, "", past, gr.update(), gr.update(), kept, gr.update()
                return
            turn = len(past) + 1
            past = [*past, text]
            turns = [*turns, (turn, answer)]
            kept = [*kept, {"question": text, "history": past[:-1], "answer": answer.to_dict()}]
            panel = all_sources(turns, ui_lang)  # first, so footnotes work while streaming
            messages.append({"role": "assistant", "content": ""})
            for prefix in stream_prefixes(answer.answer)[:-1]:
                messages[-1] = {"role": "assistant", "content": render_answer(answer, turn, text=prefix)}
                yield messages, messages, "", past, turns, panel, kept, gr.update()
                time.sleep(STREAM_DELAY)
            messages[-1] = {"role": "assistant", "content": render_answer(answer, turn) + copy_link(answer, ui_lang)}
            yield messages, messages, "", past, turns, panel, kept, save_current(turns)

        chat_inputs = [question, conversation, history, answers, records, lang, f_doc, f_outlet, f_lang, f_from, f_to]
        chat_outputs = [chatbot, conversation, question, history, answers, sources, records, saved_current]
        ask_btn.click(respond, chat_inputs, chat_outputs, api_visibility="private")
        question.submit(respond, chat_inputs, chat_outputs, api_visibility="private")

        session_outputs = [chatbot, conversation, history, answers, records, sources]

        def clear(turns: list[Any], earlier: Any, ui_lang: str) -> tuple[Any, ...]:
            """New conversation: the current one joins the earlier ones (in the browser)."""
            kept_past = with_past(earlier, turns)
            return (*session_from([], ui_lang), "", [], kept_past, past_choices(kept_past),
                    gr.update(visible=False, value=None))

        clear_btn.click(clear, [answers, saved_past, lang],
                        [*session_outputs, question, saved_current, saved_past, past_pick, export_file],
                        api_visibility="private")

        def reload(current: Any, earlier: Any, ui_lang: str) -> tuple[Any, ...]:
            """A page (re)load: the conversation saved in this browser comes back."""
            restored = restored_answers(current)
            return (*session_from(restored, ui_lang), past_choices(earlier))

        def open_past(pick: Any, turns: list[Any], earlier: Any, ui_lang: str) -> tuple[Any, ...]:
            """Open an earlier conversation; the current one takes its place in the list."""
            items = valid_past(earlier)
            if not isinstance(pick, int) or isinstance(pick, bool) or not 0 <= pick < len(items):
                return (*[gr.update()] * len(session_outputs), gr.update(), gr.update(), gr.update())
            chosen = restored_answers(items[pick].get("turns"))
            rest = with_past(items[:pick] + items[pick + 1:], turns)
            return (*session_from(chosen, ui_lang), save_current([(i, a) for i, a in enumerate(chosen, 1)]), rest,
                    past_choices(rest))

        open_btn.click(open_past, [past_pick, answers, saved_past, lang],
                       [*session_outputs, saved_current, saved_past, past_pick], api_visibility="private")

        def export(turns: list[Any], ui_lang: str) -> Any:
            """The conversation as a Markdown file to download."""
            answers_only = [a for _, a in turns or []]
            if not answers_only:
                gr.Warning(t("nothing_to_export", ui_lang))
                return gr.update(visible=False, value=None)
            title = "对话记录" if ui_lang == "zh" else "Conversation"
            path = exports.write(to_markdown(answers_only, title=title), suffix=".md", prefix="conversation")
            return gr.update(visible=True, value=str(path))

        export_btn.click(export, [answers, lang], [export_file], api_visibility="private")

        def ask_api(text: str) -> dict[str, Any]:
            """Gradio client endpoint: one question, no history; returns ``Answer.to_dict()``."""
            try:
                with guard.read():
                    result: dict[str, Any] = assistant.ask(text).to_dict()
            except AssistantError as exc:
                raise gr.Error(friendly_error(exc)) from None
            return result

        gr.api(ask_api, api_name="ask")

        def open_document(request: str | None, ui_lang: str) -> str:
            """The whole document of a citation, as indexed, with the quote marked; the id must be indexed."""
            wanted = parse_doc_request(request)
            if wanted is None:
                return ""
            doc_id, start, end = wanted
            try:
                with guard.read():
                    record = assistant.store.documents().get(doc_id)
                    chunks = assistant.store.document_chunks(doc_id) if record is not None else []
            except AssistantError as exc:
                return render_notice(friendly_error(exc, ui_lang))
            return render_document(record.title if record else "", doc_id, chunks, start, end, ui_lang)

        doc_open.click(open_document, [doc_request, lang], [doc_view], api_visibility="private")

        def on_feedback(kept: list[dict[str, Any]], comment: str | None, ui_lang: str,
                        data: gr.LikeData) -> tuple[Any, ...]:
            """Store a thumbs up/down (or flag) on one answer; only the message index is taken from the browser."""
            item = feedback_item(kept, data.index, data.liked, comment)
            if item is None:
                return "", gr.update()
            try:
                feedback.record(feedback_file, item)
            except OSError:
                log.exception("feedback not stored")
                return render_notice(t("fb_failed", ui_lang)), gr.update()
            return render_notice(t("fb_thanks", ui_lang), "ok"), ""

        chatbot.like(on_feedback, [records, fb_comment, lang], [fb_status, fb_comment], api_visibility="private")

        # ------------------------------------------------------------------ language

        def relabel(ui_lang: str, turns: list[Any]) -> list[Any]:
            updates: list[Any] = []
            for _, prop, key in labelled:
                change: dict[str, Any] = {prop: t(key, ui_lang)}
                updates.append(gr.update(**change))
            updates.append(all_sources(turns or [], ui_lang))
            return updates

        relabelled = lang.change(relabel, [lang, answers], [c for c, _, _ in labelled] + [sources],
                                 api_visibility="private")

        # ------------------------------------------------------------------ documents

        def refresh_docs(ui_lang: str) -> tuple[Any, ...]:
            try:
                with guard.read():
                    docs = assistant.documents()
            except AssistantError as exc:
                return (render_notice(friendly_error(exc, ui_lang)), gr.update(), gr.update())
            choices, outlets = doc_choices()
            return (render_documents(docs, ui_lang), gr.update(choices=choices), gr.update(choices=outlets))

        refresh_outputs = [docs_html, f_doc, f_outlet]
        refresh_btn.click(refresh_docs, [lang], refresh_outputs, api_visibility="private")
        relabelled.then(refresh_docs, [lang], refresh_outputs, api_visibility="private")  # table headers
        demo.load(None, None, [lang], js=LANG_JS)
        demo.load(refresh_docs, [lang], refresh_outputs, api_visibility="private")
        demo.load(reload, [saved_current, saved_past, lang], [*session_outputs, past_pick], api_visibility="private")

        # ------------------------------------------------------------------ staff management

        if password:
            def denied(ui_lang: str) -> str:
                gr.Warning(t("denied", ui_lang))
                return render_notice(t("denied", ui_lang))

            def delete_choices() -> Any:
                return gr.update(choices=doc_choices()[0], value=None)

            def trash_choices() -> Any:
                items = trashed(corpus_dir)
                return gr.update(choices=[(f"{i.original} ({i.moved_at})", i.name) for i in items], value=None)

            def login(given: str, ui_lang: str, request: gr.Request | None = None) -> tuple[Any, ...]:
                client = client_address(request)
                wait = throttle.retry_after(client)
                refused = (False, gr.update(visible=False), "", "", gr.update(choices=[]), gr.update(choices=[]),
                           gr.update(visible=False, value=""))
                if wait > 0:  # refused at once, without looking at the password: nothing waits in a worker
                    return (*refused[:2], render_notice(t("locked", ui_lang).format(s=ceil(wait))), *refused[3:])
                if check_password(given, password):
                    throttle.succeeded(client)
                    return (True, gr.update(visible=True), render_notice(t("logged_in", ui_lang), "ok"), "",
                            delete_choices(), trash_choices(),
                            gr.update(visible=True, value=render_feedback(feedback.read(feedback_file, 20), ui_lang)))
                lock = throttle.failed(client)
                message = t("bad_password", ui_lang)
                if lock:
                    message += " " + t("locked", ui_lang).format(s=ceil(lock))
                return (*refused[:2], render_notice(message), *refused[3:])

            login_outputs = [is_admin, staff_controls, staff_msg, pw_box, del_doc, restore_pick, staff_feedback]
            # Instant handlers (no sleep): a guesser's queue place costs nobody else a wait.
            login_btn.click(login, [pw_box, lang], login_outputs, api_visibility="private")
            pw_box.submit(login, [pw_box, lang], login_outputs, api_visibility="private")

            def logout(ui_lang: str) -> tuple[Any, ...]:
                return False, gr.update(visible=False), render_notice(t("logged_out", ui_lang), "info"), \
                    gr.update(choices=[]), gr.update(choices=[]), gr.update(visible=False, value="")

            logout_btn.click(logout, [lang], [is_admin, staff_controls, staff_msg, del_doc, restore_pick,
                                              staff_feedback],
                             api_visibility="private")

            def upload(files: list[str] | None, admin: bool, ui_lang: str,
                       progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:  # noqa: B008 - Gradio's idiom
                if not admin:
                    return denied(ui_lang), gr.update(), gr.update(), gr.update()
                if not files:
                    return render_notice(t("no_files", ui_lang)), gr.update(), gr.update(), gr.update()
                saved: list[SavedUpload] = []
                problems: list[str] = []
                notes: list[str] = []
                for f in files if isinstance(files, list) else []:
                    name = Path(str(f)).name
                    try:
                        src = uploaded_file(f)
                        saved.append(store_upload(src, name, corpus_dir, MAX_UPLOAD_BYTES))
                        src.unlink(missing_ok=True)  # Gradio's copy is not needed any more
                    except DocumentError as exc:
                        problems.append(f"{exc.path}: {exc.reason}")
                    except OSError as exc:
                        problems.append(f"{name}: {exc.strerror or 'cannot be read'}")
                message = ""
                if saved:
                    try:
                        report = ingest_under(assistant, guard, [u.path for u in saved], progress, ui_lang)
                        message = _report_text(report, ui_lang)
                        notes += settle_uploads(saved, report.errors, corpus_dir, ui_lang)
                    except Exception as exc:
                        if not isinstance(exc, AssistantError):
                            log.exception("ingest failed")
                        problems.append(friendly_error(exc, ui_lang))
                names = ", ".join(u.path.name for u in saved)
                parts = [render_notice(f"{names}: {message}", "ok")] if saved and message else []
                parts += [render_notice(n, "info") for n in notes]
                parts += [render_notice(p) for p in problems]
                return "".join(parts), None, delete_choices(), trash_choices()

            upload_btn.click(upload, [uploads, is_admin, lang], [staff_msg, uploads, del_doc, restore_pick],
                             api_visibility="private", concurrency_limit=1
                             ).then(refresh_docs, [lang], refresh_outputs, api_visibility="private")

            def delete(doc_id: str | None, remove_file: bool, admin: bool, ui_lang: str) -> tuple[Any, ...]:
                if not admin:
                    return denied(ui_lang), gr.update(), gr.update()
                if not doc_id or not isinstance(doc_id, str):
                    return render_notice(t("no_doc", ui_lang)), gr.update(), gr.update()
                try:
                    with guard.read():
                        records = {d.doc_id: d for d in assistant.documents()}
                    rec = records.get(doc_id)
                    # Only the index change holds the write lock (never around the call: it is not re-entrant).
                    removed = assistant.delete_document(doc_id, write_lock=guard.write)
                    note = ""
                    if rec is not None and remove_file:
                        others = [d for d in records.values() if d.doc_id != doc_id]
                        note = _remove_file(rec.path, corpus_dir, others, ui_lang)
                except Exception as exc:
                    if not isinstance(exc, AssistantError):
                        log.exception("delete failed")
                    return render_notice(friendly_error(exc, ui_lang)), gr.update(), gr.update()
                done = (f"已删除 {doc_id}（{removed} 个段落）。" if ui_lang == "zh"
                        else f"Deleted {doc_id} ({removed} chunks).")
                return render_notice(f"{done} {note}".strip(), "ok"), delete_choices(), trash_choices()

            del_btn.click(delete, [del_doc, del_file, is_admin, lang], [staff_msg, del_doc, restore_pick],
                          api_visibility="private", concurrency_limit=1
                          ).then(refresh_docs, [lang], refresh_outputs, api_visibility="private")

            def restore_file(name: str | None, admin: bool, ui_lang: str,
                             progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:  # noqa: B008
                if not admin:
                    return denied(ui_lang), gr.update(), gr.update()
                if not name or not isinstance(name, str):
                    return render_notice(t("no_trash", ui_lang)), gr.update(), gr.update()
                try:
                    target = restore(name, corpus_dir)
                    report = ingest_under(assistant, guard, [target], progress, ui_lang)
                except Exception as exc:
                    if not isinstance(exc, AssistantError):
                        log.exception("restore failed")
                    return render_notice(friendly_error(exc, ui_lang)), gr.update(), trash_choices()
                done = f"已恢复 {target.name}：" if ui_lang == "zh" else f"Restored {target.name}: "
                return render_notice(done + _report_text(report, ui_lang), "ok"), delete_choices(), trash_choices()

            restore_btn.click(restore_file, [restore_pick, is_admin, lang], [staff_msg, del_doc, restore_pick],
                              api_visibility="private", concurrency_limit=1
                              ).then(refresh_docs, [lang], refresh_outputs, api_visibility="private")

            def reindex(full: bool, admin: bool, ui_lang: str,
                        progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:  # noqa: B008 - Gradio's idiom
                if not admin:
                    return denied(ui_lang), gr.update()
                try:
                    report = ingest_under(assistant, guard, None, progress, ui_lang, rebuild=bool(full))
                except Exception as exc:
                    if not isinstance(exc, AssistantError):
                        log.exception("re-index failed")
                    return render_notice(friendly_error(exc, ui_lang)), gr.update()
                return render_notice(_report_text(report, ui_lang), "ok"), delete_choices()

            reindex_btn.click(reindex, [rebuild, is_admin, lang], [staff_msg, del_doc],
                              api_visibility="private", concurrency_limit=1
                              ).then(refresh_docs, [lang], refresh_outputs, api_visibility="private")

        # ------------------------------------------------------------------ evaluation (staff only)

        if password:
            def run_evaluation(path: str | None, k: float, admin: bool, ui_lang: str,
                               progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:  # noqa: B008
                from assistant.evaluation import load_gold, run_eval

                if not admin:
                    return denied(ui_lang), None, None, ""
                if not path:
                    return render_notice(t("no_gold", ui_lang)), None, None, ""
                try:
                    gold_file = uploaded_file(path)
                    if gold_file.stat().st_size > MAX_GOLD_BYTES:
                        raise DocumentError(gold_file.name, f"larger than {MAX_GOLD_BYTES // 2**20} MB")
                    items = load_gold(gold_file)
                    asker = _ProgressAsker(assistant, progress, len(items))
                    result = run_eval(asker, items, k=max(1, min(20, int(k))), progress=False)
                except Exception as exc:
                    if not isinstance(exc, AssistantError | ValueError):
                        log.exception("evaluation failed")
                    message = friendly_error(exc, ui_lang) if isinstance(exc, AssistantError) else str(exc)
                    # Name the uploaded file, never the server's folders (Gradio's cache path included).
                    message = message.replace(str(Path(str(path)).resolve()), Path(str(path)).name)
                    message = message.replace(str(path), Path(str(path)).name)
                    return render_notice(message), None, None, ""
                report = result.render_html(title="Evaluation report")
                out = reports.write(report)
                header, rows = metrics_rows(result.metrics)
                frame = f'<iframe class="eval-report" sandbox="" srcdoc="{html.escape(report, quote=True)}"></iframe>'
                done = (f"{len(items)} questions, k={int(k)}" if ui_lang != "zh"
                        else f"{len(items)} 个问题，k={int(k)}")
                return render_notice(done, "ok"), {"headers": header, "data": rows}, str(out), frame

            run_btn.click(run_evaluation, [gold, eval_k, is_admin, lang],
                          [eval_status, metrics, report_file, report_view],
                          api_visibility="private", concurrency_limit=1)

    return demo


def _remove_file(path: str, corpus_dir: Path, others: Sequence[Any], lang: str) -> str:
    """Move a document's file to the corpus trash when it is inside the corpus and holds no other document."""
    file = Path(path)
    zh = lang == "zh"
    if any(d.path == path for d in others):
        return "该文件还包含其他文档，已保留。" if zh else "Its file holds other documents and was kept."
    try:
        file.resolve().relative_to(corpus_dir.resolve())
    except ValueError:
        return "文件不在语料目录中，已保留。" if zh else "Its file is outside the corpus folder and was kept."
    if not file.exists():
        return ""
    move_to_trash(file, corpus_dir)
    return ("文件已移到回收站（可恢复）。" if zh
            else "Its file was moved to the trash (restore it from the Trash list).")


def client_address(request: Any) -> str:
    """The client's address as the server sees it (behind a trusted proxy: the forwarded one)."""
    client = getattr(request, "client", None)
    host = getattr(client, "host", None)
    return str(host) if host else "unknown"


def ingest_under(assistant: Any, guard: Any, assistant_paths: Sequence[Path] | None, progress: Any, lang: str,
                 rebuild: bool = False) -> Any:
    """Run an ingest for the UI with a progress bar; questions go on while it reads and embeds.

    The read/write lock is taken only around the step that changes what questions read (``write_lock``).
    """
    callback = _progress_callback(progress, lang)
    paths = list(assistant_paths) if assistant_paths is not None else None
    return assistant.ingest(paths, rebuild=rebuild, progress=callback, write_lock=guard.write)


def settle_uploads(saved: Sequence[SavedUpload], errors: Sequence[Any], corpus_dir: Path, lang: str) -> list[str]:
    """Uploads that could not be indexed leave the corpus (or give back the file they replaced).

    A refused upload left in corpus/ would be reported again at every re-index; the one it replaced is
    put back, so the index and the folder agree again.
    """
    zh = lang == "zh"
    failed = {Path(str(getattr(e, "path", ""))).name for e in errors}
    notes = []
    for upload in saved:
        if upload.path.name not in failed or not upload.path.exists():
            if upload.previous is not None:
                notes.append(f"{upload.path.name}：已替换，旧版本保存在 {VERSIONS}/{upload.previous.name}" if zh
                             else f"{upload.path.name} replaced an existing file; the previous version is kept "
                                  f"as {VERSIONS}/{upload.previous.name}")
            continue
        if upload.previous is not None:
            shutil.copy2(upload.previous, upload.path)
            notes.append(f"{upload.path.name}：无法索引，已恢复原文件" if zh
                         else f"{upload.path.name} could not be indexed; the file it replaced was put back")
        else:
            move_to_trash(upload.path, corpus_dir)
            notes.append(f"{upload.path.name}：无法索引，已移到回收站" if zh
                         else f"{upload.path.name} could not be indexed and was moved to the trash")
    return notes


MAX_SAVED_TURNS = 20  # turns of the current conversation kept in the browser
MAX_SAVED_CONVERSATIONS = 10  # earlier conversations kept in the browser (quotes only)


def save_current(turns: Sequence[tuple[int, Answer]]) -> list[dict[str, Any]]:
    """The current conversation as saved in the browser (its last ``MAX_SAVED_TURNS`` turns)."""
    return [slim(a) for _, a in list(turns)[-MAX_SAVED_TURNS:]]


def restored_answers(saved: Any) -> list[Answer]:
    """Answers read back from the browser; anything malformed is dropped (never trusted, only shown)."""
    if not isinstance(saved, list):
        return []
    return [a for a in (restore_answer(item) for item in saved[-MAX_SAVED_TURNS:]) if a is not None]


def valid_past(earlier: Any) -> list[dict[str, Any]]:
    """The earlier conversations saved in the browser that have the expected shape."""
    if not isinstance(earlier, list):
        return []
    return [c for c in earlier[:MAX_SAVED_CONVERSATIONS]
            if isinstance(c, dict) and isinstance(c.get("title"), str) and isinstance(c.get("turns"), list)]


def with_past(earlier: Any, turns: Sequence[tuple[int, Answer]]) -> list[dict[str, Any]]:
    """The earlier conversations, with ``turns`` (if any) first; quotes only, to stay small."""
    items = valid_past(earlier)
    if turns:
        first = turns[0][1].question.strip()
        items = [{"title": first[:80], "time": time.strftime("%Y-%m-%d %H:%M"),
                  "turns": [slim(a, keep_passages=False) for _, a in list(turns)[-MAX_SAVED_TURNS:]]}, *items]
    return items[:MAX_SAVED_CONVERSATIONS]


def past_choices(earlier: Any) -> Any:
    items = valid_past(earlier)
    return gr.update(choices=[(f"{c.get('time', '')} · {c['title']}", i) for i, c in enumerate(items)], value=None)


class ReportFiles:
    """Files for download (evaluation reports, exports): one private folder, the last ``keep``, removed at exit."""

    def __init__(self, keep: int = 5) -> None:
        self.keep = keep
        self._dir: Path | None = None
        self._lock = threading.Lock()

    def write(self, report: str, suffix: str = ".html", prefix: str = "eval-report") -> Path:
        with self._lock:
            if self._dir is None or not self._dir.exists():
                self._dir = Path(tempfile.mkdtemp(prefix="assistant-eval-"))
                atexit.register(shutil.rmtree, self._dir, True)
            out = self._dir / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}{suffix}"
            out.write_text(report, encoding="utf-8")
            for old in sorted(self._dir.glob(f"{prefix}-*{suffix}"), key=lambda p: p.stat().st_mtime)[:-self.keep]:
                old.unlink(missing_ok=True)
            return out


# --------------------------------------------------------------------------- app and serve
# The UI mounts itself beside the library's JSON API (``assistant.server.create_api``): the library
# never imports the UI.


def create_app(assistant: Any, admin_password: str | None = None, *, ui: bool = True) -> Any:
    """The JSON API plus the Gradio UI at ``/``; ``admin_password`` None reads ``ASSISTANT_ADMIN_PASSWORD``."""
    from assistant.server import MAX_UPLOAD_BYTES as upload_limit
    from assistant.server import QUEUE_CONCURRENCY, RequestGate, create_api

    app = create_api(assistant)
    if ui:
        blocks = build_app(assistant, admin_password=admin_password)
        # api_open=False: queued handlers run only through the queue (run/predict refuses them too).
        blocks.queue(default_concurrency_limit=QUEUE_CONCURRENCY, api_open=False)  # see QUEUE_CONCURRENCY
        app = gr.mount_gradio_app(
            app,
            blocks,
            path="/",
            allowed_paths=[],
            # The index is never served, whatever a payload names (Gradio serves the working directory's
            # files that an app returns; ours returns none from there).
            blocked_paths=[str(Path(assistant.config.index_dir).resolve())],
            max_file_size=upload_limit,
            footer_links=["api"],
            show_error=False,  # our handlers report errors themselves; never leak exception text
            css=CSS,
            head=HEAD,
            theme=theme(),
        )
        # Gradio checks that a file named in an event's payload was uploaded to it (and that a returned file
        # lies where the app may serve from) only once the Blocks "has launched"; mount_gradio_app never
        # sets that flag, so without this line any file the server can read could be copied into the cache
        # and downloaded by anyone. Gradio's own reload path (utils.swap_blocks) sets it the same way.
        blocks.has_launched = True
    app.add_middleware(RequestGate)
    return app


def serve(assistant: Any, host: str = "127.0.0.1", port: int = 7860, admin_password: str | None = None) -> None:
    """Warm the models up, then serve the UI and the API with uvicorn until interrupted."""
    import uvicorn

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    import bm25s  # noqa: F401 - it sets its logger to DEBUG on import; quiet it afterwards

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    assistant.warm_up()
    app = create_app(assistant, admin_password=admin_password)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    print(f"Serving the assistant on http://{shown}:{port}  (API: /api/ask, /api/documents, /api/health)",
          flush=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"Warning: bound to {host}: the UI and API are reachable from the network.", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


if __name__ == "__main__":
    import argparse

    from assistant.core import Assistant
    from assistant.embedding import offline_env

    offline_env()
    parser = argparse.ArgumentParser(description="Serve the web UI and the JSON API.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0: the whole network)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--index", default="index")
    args = parser.parse_args()
    serve(Assistant.open(args.index), host=args.host, port=args.port)
