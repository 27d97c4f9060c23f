"""Gradio web UI: chat with cited sources, the document list, staff management and evaluation.

``build_app(assistant)`` returns the ``gr.Blocks``; ``create_app`` mounts it beside the library's
JSON API (``assistant/server.py``) and ``serve`` runs both (``assistant serve``, ``make run``).
HTML comes from ``assistant.render``, which escapes all document text. Run directly:
``python ui.py [--host H] [--port P]``.
"""

from __future__ import annotations

import atexit
import ctypes
import datetime
import hashlib
import html
import json
import logging
import shutil
import sys
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from math import ceil
from pathlib import Path
from typing import Any

import gradio as gr

from assistant import feedback, strings
from assistant.core import MAX_QUESTION_CHARS
from assistant.corpus_files import VERSIONS, inside, move_to_trash, restore, trashed
from assistant.errors import AssistantError, DocumentError, LinesSkippedError
from assistant.gate import MAX_UPLOAD_BYTES, ClientQuota, client_key
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
    UPLOAD_SUFFIXES,
    LoginThrottle,
    SavedUpload,
    StaffSessions,
    admin_password,
    check_not_upgrading,
    check_password,
    friendly_error,
    guard_for,
    start_upgrade,
    store_upload,
)
from assistant.transcript import restore as restore_answer
from assistant.transcript import slim, to_markdown

log = logging.getLogger("assistant.ui")

STREAM_DELAY = 0.05  # seconds between streamed sentences
DRAFT_INTERVAL = 0.1  # LLM mode: at most this often, the reply so far is shown while it is generated
MAX_GOLD_BYTES = 5 * 1024 * 1024
MAX_TURNS = 50  # questions (and rendered messages: two per turn) a session keeps on the server
# Gradio keeps a session (our gr.State values plus its own per-session copy of every component's
# config, ~150-200 KB here) for each browser tab it has seen. We bound both how many and for how long:
# the oldest go first past the capacity, and any unused for the idle time is forgotten. A forgotten
# tab loses nothing: its next question resumes from the conversation its browser keeps (``resume``).
SESSION_CAPACITY = 1000
SESSION_IDLE_SECONDS = 30 * 60

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


def t(key: str, lang: str, **values: object) -> str:
    """A fixed text (``section.name`` of ``assistant/strings.toml``) in ``lang``."""
    return strings.text(key, lang, **values)


def bounded_conversation(messages: Any) -> list[dict[str, Any]]:
    """The server-side conversation, at most ``MAX_TURNS`` turns, as a fresh list."""
    if not isinstance(messages, list):
        return []
    return list(messages[-2 * MAX_TURNS:])


# Chatbot feedback: the two thumbs, and flags that are a thumbs-down with a reason.
FEEDBACK_OPTIONS = ("Like", "Dislike", "Wrong source", "Should have said not found")


def answer_pair(kept: Sequence[dict[str, Any]], index: Any) -> int | None:
    """Which question/answer pair of ``kept`` chat message ``index`` (from the browser) is the answer
    of, or None when it is no answer's."""
    if isinstance(index, list | tuple):
        index = index[0] if index else None
    if not isinstance(index, int) or isinstance(index, bool) or index % 2 != 1:
        return None
    pair = index // 2
    return pair if 0 <= pair < len(kept) else None


def feedback_item(kept: Sequence[dict[str, Any]], index: Any, liked: Any, comment: Any) -> dict[str, Any] | None:
    """The feedback item for the answer at chat message ``index``, or None when it names no answer.

    Messages come in pairs (question, answer), so answer ``i`` is message ``2 i + 1``; ``kept`` is the
    server's record of each pair, so the browser's copy of the message is never used.
    """
    pair = answer_pair(kept, index)
    if pair is None:
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
    if not items:
        return f'<div class="docs-count">{esc(t("status.feedback_none", lang))}</div>'
    head = [t(f"status.feedback_{k}", lang) for k in ("time", "rating", "question", "comment")]
    rows = []
    for item in reversed(items):
        rating = "👍" if item.get("rating") == "up" else "👎"
        if item.get("option"):
            rating += f" {item['option']}"
        rows.append(f"<tr><td>{esc(str(item.get('time', ''))[:16])}</td><td>{esc(rating)}</td>"
                    f"<td>{esc(str(item.get('question', ''))[:200])}</td><td>{esc(str(item.get('comment', ''))[:300])}"
                    "</td></tr>")
    title = t("status.feedback_title", lang)
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
        head = t("status.turn_head", lang, n=n)
        parts.append(f'<div class="turn-sources" id="turn-{n}"><div class="turn-head">{esc(head)}'
                     f'{esc(answer.question[:120])}</div>{render_sources(answer, n, lang)}</div>')
    return "".join(parts)


def copy_link(answer: Answer, lang: str) -> str:
    """A copy control under an answer: its text and numbered sources go to the clipboard (see ``HEAD``)."""
    label = t("status.copy_answer", lang)
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
    resolved = inside(file, Path(get_upload_folder()), strict=True)
    if resolved is None or not resolved.is_file():
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


def _progress_callback(progress: Any, lang: str) -> Callable[[str, int, int], None]:
    done: dict[str, int] = {}

    def callback(stage: str, advance: int, total: int) -> None:
        done[stage] = done.get(stage, 0) + advance
        if progress is not None:
            desc = t(f"status.progress_{stage}", lang) if stage in ("files", "embed") else stage
            progress((done[stage], total or None), desc=desc)

    return callback


def _report_text(report: Any, lang: str) -> str:
    line = t("status.ingest_report", lang, added=report.added, updated=report.updated, removed=report.removed,
             unchanged=report.unchanged, chunks=report.chunks_added, seconds=f"{report.seconds:.1f}")
    skipped = "; ".join(f"{e.path}: {e.reason}" for e in report.errors)
    if skipped:
        line += t("status.skipped", lang) + skipped
    return line


class _ProgressAsker:
    """Wraps the assistant for ``run_eval``: a read lock per question and a progress bar."""

    def __init__(self, assistant: Any, progress: Any, total: int) -> None:
        self.assistant = assistant
        self.guard = guard_for(assistant)
        self.progress = progress
        self.total = total
        self.done = 0

    def ask(self, question: str, history: list[str] | None = None, filters: dict[str, Any] | None = None) -> Answer:
        if self.progress is not None:
            self.progress((self.done, self.total), desc="evaluating")
        try:
            answer: Answer = self.assistant.ask(question, history=history, filters=filters, read_lock=self.guard.read)
            return answer
        finally:
            self.done += 1


def _remove_file(path: str, corpus_dir: Path, others: Sequence[Any], lang: str) -> str:
    """Move a document's file to the corpus trash when it is inside the corpus and holds no other document."""
    file = Path(path)
    if any(d.path == path for d in others):
        return t("status.file_shared", lang)
    if inside(file, corpus_dir) is None:
        return t("status.file_outside", lang)
    if not file.exists():
        return ""
    move_to_trash(file, corpus_dir)
    return t("status.file_trashed", lang)


def session_id(request: Any) -> str | None:
    """The Gradio session id (``session_hash``) of an event's request, if any."""
    value = getattr(request, "session_hash", None)
    return value if isinstance(value, str) and value else None


def client_address(request: Any) -> str:
    """The client as per-client limits count it (``client_key``: its address, behind a trusted proxy the
    forwarded one; an IPv6 client's /64 network)."""
    client = getattr(request, "client", None)
    host = getattr(client, "host", None)
    return client_key(str(host)) if host else "unknown"


def settle_uploads(saved: Sequence[SavedUpload], errors: Sequence[Any], corpus_dir: Path, lang: str) -> list[str]:
    """Uploads that could not be indexed leave the corpus (or give back the file they replaced).

    A refused upload left in corpus/ would be reported again at every re-index; the one it replaced is
    put back, so the index and the folder agree again.
    """
    # A file some of whose lines were skipped has its other documents indexed: it stays.
    failed = {Path(str(getattr(e, "path", ""))).name for e in errors if not isinstance(e, LinesSkippedError)}
    notes = []
    for upload in saved:
        if upload.path.name not in failed or not upload.path.exists():
            if upload.previous is not None:
                notes.append(t("status.upload_replaced", lang, name=upload.path.name,
                               kept=f"{VERSIONS}/{upload.previous.name}"))
            continue
        if upload.previous is not None:
            shutil.copy2(upload.previous, upload.path)
            notes.append(t("status.upload_put_back", lang, name=upload.path.name))
        else:
            move_to_trash(upload.path, corpus_dir)
            notes.append(t("status.upload_trashed", lang, name=upload.path.name))
    return notes


MAX_SAVED_TURNS = 20  # turns of the current conversation kept in the browser
EXPORT_BYTES_PER_WINDOW = 20 * 1024 * 1024  # conversation exports per client address per 10 minutes
FEEDBACK_BYTES_PER_WINDOW = 2 * 1024 * 1024  # feedback lines per client address per 10 minutes
MAX_FEEDBACK_PER_ANSWER = 3  # items one answer takes in a session (up, then down with a comment...)
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

    def write(self, report: str, suffix: str = ".html", prefix: str = "eval-report", by_content: bool = False) -> Path:
        """Write ``report`` as a new file; ``by_content``: named by its hash, so the same text is the same
        file (Gradio caches a returned file by its content and name: no new copy for a repeat)."""
        with self._lock:
            if self._dir is None or not self._dir.exists():
                self._dir = Path(tempfile.mkdtemp(prefix="assistant-eval-"))
                atexit.register(shutil.rmtree, self._dir, True)
            if by_content:
                out = self._dir / f"{prefix}-{hashlib.sha256(report.encode('utf-8')).hexdigest()[:16]}{suffix}"
            else:
                out = self._dir / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}{suffix}"
            out.write_text(report, encoding="utf-8")
            for old in sorted(self._dir.glob(f"{prefix}-*{suffix}"), key=lambda p: p.stat().st_mtime)[:-self.keep]:
                old.unlink(missing_ok=True)
            return out


# --------------------------------------------------------------------------- the app's shared state


@dataclass
class UIContext:
    """What the handlers of one app share: the assistant, its lock, the staff password and per-app state."""

    assistant: Any
    password: str | None = None
    guard: Any = None
    throttle: LoginThrottle = field(default_factory=LoginThrottle)  # wrong staff passwords by client address
    # Who is logged in, by session id and address; a login lapses when an idle browser session would.
    staff: StaffSessions = field(default_factory=lambda: StaffSessions(idle_seconds=SESSION_IDLE_SECONDS))
    reports: ReportFiles = field(default_factory=ReportFiles)
    exports: ReportFiles = field(default_factory=lambda: ReportFiles(keep=50))
    # Exports and feedback need no login and write to the server's disk (Gradio keeps a returned file
    # for an hour): bytes per client address per 10 minutes.
    export_quota: ClientQuota = field(default_factory=lambda: ClientQuota(limit=EXPORT_BYTES_PER_WINDOW))
    feedback_quota: ClientQuota = field(default_factory=lambda: ClientQuota(limit=FEEDBACK_BYTES_PER_WINDOW))

    def __post_init__(self) -> None:
        if self.guard is None:
            self.guard = guard_for(self.assistant)

    @property
    def corpus_dir(self) -> Path:
        return Path(self.assistant.config.corpus_dir)

    @property
    def feedback_file(self) -> Path:
        return feedback.feedback_path(self.assistant.config.index_dir)

    @property
    def browser_secret(self) -> str:
        """BrowserState encrypts with this; stable per index, so a restart keeps saved conversations."""
        return hashlib.sha256(str(Path(self.assistant.config.index_dir).resolve()).encode()).hexdigest()[:24]

    def ingest(self, paths: Sequence[Path] | None, progress: Any, lang: str, rebuild: bool = False) -> Any:
        """Run an ingest for the UI with a progress bar; questions go on while it reads and embeds.

        The read/write lock is taken only around the step that changes what questions read (``write_lock``).
        """
        check_not_upgrading(self.assistant)
        callback = _progress_callback(progress, lang)
        return self.assistant.ingest(list(paths) if paths is not None else None, rebuild=rebuild,
                                     progress=callback, write_lock=self.guard.write)

    def doc_choices(self) -> tuple[list[tuple[str, str]], list[str]]:
        with self.guard.read():
            docs = self.assistant.documents()
        choices = [(f"{(d.title or d.doc_id)[:60]} — {d.doc_id}", d.doc_id) for d in docs]
        return choices, sorted({d.outlet for d in docs if d.outlet})

    def delete_choices(self) -> Any:
        return gr.update(choices=self.doc_choices()[0], value=None)

    def trash_choices(self) -> Any:
        items = trashed(self.corpus_dir)
        return gr.update(choices=[(f"{i.original} ({i.moved_at})", i.name) for i in items], value=None)


# --------------------------------------------------------------------------- handlers: the chat
# Plain functions of the context and the event's values; the tab builders wire them to components.


def session_from(restored: Sequence[Answer], lang: str) -> tuple[Any, ...]:
    """The chat and the server-side session rebuilt from answers: (chatbot, conversation, history,
    answers, records, sources), in the order of ``ChatTab.session_outputs``."""
    messages: list[dict[str, Any]] = []
    turns: list[tuple[int, Answer]] = []
    kept: list[dict[str, Any]] = []
    past: list[str] = []
    for n, answer in enumerate(restored, start=1):
        messages.append({"role": "user", "content": f'<div class="user-q">{esc(answer.question)}</div>'})
        messages.append({"role": "assistant", "content": render_answer(answer, n) + copy_link(answer, lang)})
        turns.append((n, answer))
        kept.append({"question": answer.question, "history": list(past), "answer": answer.to_dict()})
        past.append(answer.question)
    return messages, messages, past, turns, kept, all_sources(turns, lang)


def resume(messages: list[dict[str, Any]], past: list[str], turns: list[Any], kept: list[dict[str, Any]],
           saved: Any, lang: str) -> tuple[list[dict[str, Any]], list[str], list[Any], list[dict[str, Any]]]:
    """The server-side session, or, when the server has forgotten it (idle, or past the capacity) while the
    browser still shows a conversation, that conversation rebuilt from the browser's saved copy (as a
    page reload would): a follow-up keeps its context. Returns (conversation, history, answers, records)."""
    if messages or turns or not saved:
        return messages, past, turns, kept
    _, messages, past, turns, kept, _ = session_from(restored_answers(saved), lang)
    return messages, past, turns, kept


def forget_idle_sessions(holder: Any, idle_seconds: float, now: datetime.datetime | None = None) -> int:
    """Drop the Gradio sessions (``blocks.state_holder``) unused for ``idle_seconds``; returns how many.
    Gradio itself only bounds their number (``state_session_capacity``), never their age."""
    cutoff = (now or datetime.datetime.now()) - datetime.timedelta(seconds=idle_seconds)
    with holder.lock:
        stale = [sid for sid, used in holder.time_last_used.items() if used < cutoff]
        for sid in stale:
            holder.session_data.pop(sid, None)
            holder.time_last_used.pop(sid, None)
    return len(stale)


def give_back_memory() -> bool:
    """Hand freed heap back to the system; False where there is no ``malloc_trim`` (not glibc).

    glibc keeps what Python frees: 1,000 sessions took 138 MB, and once forgotten 37 MB stayed
    resident; after this, 8 MB (measured in one process, docs/experiments.md)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return False
    trim(0)
    return True


def _sweep_sessions(blocks_ref: Any, idle_seconds: float, every: float) -> None:
    """Forget idle sessions every ``every`` seconds while the app lives (a weak reference: a test's app goes)."""
    while True:
        time.sleep(every)
        blocks = blocks_ref()
        if blocks is None:
            return
        try:
            if forget_idle_sessions(blocks.state_holder, idle_seconds):
                give_back_memory()
        except Exception:  # never let the sweeper die of one odd session
            log.exception("forgetting idle sessions failed")
        del blocks


def answer_question(ctx: UIContext, text: str, messages: list[dict[str, Any]], past: list[str], turns: list[Any],
            kept: list[dict[str, Any]], lang: str, filters: dict[str, Any]) -> Iterator[tuple[Any, ...]]:
    """Ask, then stream the answer sentence by sentence; errors become an inline message.

    Yields (chatbot, conversation, question box, history, answers, sources, records, saved conversation).
    ``messages`` is the server-side conversation state, never the browser's copy of the chat.
    """
    messages = bounded_conversation(messages)
    past = list(past or [])[-MAX_TURNS:]
    turns = list(turns or [])[-MAX_TURNS:]
    kept = list(kept or [])[-MAX_TURNS:]
    text = (text or "").strip() if isinstance(text, str) else ""
    unchanged = (messages, messages, gr.update(), past, gr.update(), gr.update(), kept, gr.update())
    if not text:
        gr.Warning(t("msg.empty_q", lang))
        yield unchanged
        return
    if len(text) > MAX_QUESTION_CHARS:  # refused, not kept: the session stays small
        gr.Warning(t("msg.long_q", lang, n=MAX_QUESTION_CHARS))
        yield unchanged
        return
    messages.append({"role": "user", "content": f'<div class="user-q">{esc(text)}</div>'})
    drafted: list[str] = []
    try:
        if ctx.assistant.config.llm is not None:
            answer: Answer = yield from llm_draft(ctx, text, past, filters, messages, kept, drafted)
        else:
            answer = ctx.assistant.ask(text, history=past, filters=filters, read_lock=ctx.guard.read)
    except Exception as exc:
        if not isinstance(exc, AssistantError):
            log.exception("ask failed")
        message = friendly_error(exc, lang)
        gr.Warning(message)
        messages.append({"role": "assistant", "content": render_notice(message)})
        kept = [*kept, {"question": text, "history": list(past), "answer": None}]
        yield messages, messages, "", past, gr.update(), gr.update(), kept, gr.update()
        return
    turn = len(past) + 1
    past = [*past, text]
    turns = [*turns, (turn, answer)]
    kept = [*kept, {"question": text, "history": past[:-1], "answer": answer.to_dict()}]
    panel = all_sources(turns, lang)  # first, so footnotes work while streaming
    messages.append({"role": "assistant", "content": ""})
    for prefix in [] if drafted else stream_prefixes(answer.answer)[:-1]:  # the LLM's draft was the stream
        messages[-1] = {"role": "assistant", "content": render_answer(answer, turn, text=prefix)}
        yield messages, messages, "", past, turns, panel, kept, gr.update()
        time.sleep(STREAM_DELAY)
    messages[-1] = {"role": "assistant", "content": render_answer(answer, turn) + copy_link(answer, lang)}
    yield messages, messages, "", past, turns, panel, kept, save_current(turns)


def llm_draft(ctx: UIContext, text: str, past: list[str], filters: dict[str, Any], messages: list[dict[str, Any]],
              kept: list[dict[str, Any]], drafted: list[str]) -> Generator[tuple[Any, ...], None, Answer]:
    """LLM mode: the model's reply shown as it is generated (plain text, at most every DRAFT_INTERVAL
    seconds; its pieces collect in ``drafted``), then the answer after the citation check is returned."""
    from assistant.llm import stream_answer

    def run(on_token: Callable[[str], None]) -> Answer:
        answer: Answer = ctx.assistant.ask(text, history=past, filters=filters, on_token=on_token,
                                           read_lock=ctx.guard.read)
        return answer

    shown = 0.0
    for item in stream_answer(run):
        if not isinstance(item, str):
            return item
        drafted.append(item)
        if time.monotonic() - shown >= DRAFT_INTERVAL:
            shown = time.monotonic()
            draft = [*messages, {"role": "assistant", "content": f'<div class="answer streaming draft">'
                                 f'<div class="answer-text">{esc("".join(drafted))}</div></div>'}]
            yield draft, draft, "", past, gr.update(), gr.update(), kept, gr.update()
    raise RuntimeError("the answer stream ended without an answer")


def new_conversation(turns: list[Any], earlier: Any, lang: str) -> tuple[Any, ...]:
    """The current conversation joins the earlier ones (in the browser); the chat starts empty."""
    kept_past = with_past(earlier, turns)
    return (*session_from([], lang), "", [], kept_past, past_choices(kept_past), gr.update(visible=False, value=None))


def reload_conversation(current: Any, earlier: Any, lang: str) -> tuple[Any, ...]:
    """A page (re)load: the conversation saved in this browser comes back."""
    return (*session_from(restored_answers(current), lang), past_choices(earlier))


def open_earlier(pick: Any, turns: list[Any], earlier: Any, lang: str) -> tuple[Any, ...]:
    """Open an earlier conversation; the current one takes its place in the list."""
    items = valid_past(earlier)
    if not isinstance(pick, int) or isinstance(pick, bool) or not 0 <= pick < len(items):
        return (*[gr.update()] * 6, gr.update(), gr.update(), gr.update())
    chosen = restored_answers(items[pick].get("turns"))
    rest = with_past(items[:pick] + items[pick + 1:], turns)
    return (*session_from(chosen, lang), save_current(list(enumerate(chosen, 1))), rest, past_choices(rest))


def export_conversation(ctx: UIContext, turns: list[Any], lang: str, client: str = "unknown") -> Any:
    """The conversation as a Markdown file to download (the same conversation: the same file)."""
    answers_only = [a for _, a in turns or []]
    if not answers_only:
        gr.Warning(t("msg.nothing_to_export", lang))
        return gr.update(visible=False, value=None)
    markdown = to_markdown(answers_only, title=t("status.conversation_title", lang))
    if not ctx.export_quota.take(client, len(markdown.encode("utf-8"))):
        gr.Warning(t("msg.too_often", lang))
        return gr.update()
    path = ctx.exports.write(markdown, suffix=".md", prefix="conversation", by_content=True)
    return gr.update(visible=True, value=str(path))


def ask_api(ctx: UIContext, text: str) -> dict[str, Any]:
    """Gradio client endpoint: one question, no history; returns ``Answer.to_dict()``."""
    try:
        with ctx.guard.read():
            result: dict[str, Any] = ctx.assistant.ask(text).to_dict()
    except AssistantError as exc:
        raise gr.Error(friendly_error(exc)) from None
    return result


def open_document(ctx: UIContext, request: str | None, lang: str) -> str:
    """The whole document of a citation, as indexed, with the quote marked; the id must be indexed."""
    wanted = parse_doc_request(request)
    if wanted is None:
        return ""
    doc_id, start, end = wanted
    try:
        with ctx.guard.read():
            record = ctx.assistant.store.documents().get(doc_id)
            chunks = ctx.assistant.store.document_chunks(doc_id) if record is not None else []
    except AssistantError as exc:
        return render_notice(friendly_error(exc, lang))
    return render_document(record.title if record else "", doc_id, chunks, start, end, lang)


def give_feedback(ctx: UIContext, kept: list[dict[str, Any]], comment: str | None, lang: str, index: Any,
                  liked: Any, client: str = "unknown") -> tuple[Any, ...]:
    """Store a thumbs up/down (or flag) on one answer; only the message index comes from the browser.
    An answer takes ``MAX_FEEDBACK_PER_ANSWER`` items a session (a change of mind, a flag with a
    comment); a client address ``FEEDBACK_BYTES_PER_WINDOW`` bytes per 10 minutes."""
    item = feedback_item(kept, index, liked, comment)
    pair = answer_pair(kept, index)
    if item is None or pair is None:
        return "", gr.update()
    record = kept[pair]
    given = int(record.get("feedback_given", 0))
    if given >= MAX_FEEDBACK_PER_ANSWER:
        return render_notice(t("msg.fb_already", lang), "info"), ""
    if not ctx.feedback_quota.take(client, len(feedback.line_of(item))):
        return render_notice(t("msg.too_often", lang)), gr.update()
    try:
        feedback.record(ctx.feedback_file, item)
    except OSError:
        log.exception("feedback not stored")
        return render_notice(t("msg.fb_failed", lang)), gr.update()
    record["feedback_given"] = given + 1
    return render_notice(t("msg.fb_thanks", lang), "ok"), ""


def refresh_documents(ctx: UIContext, lang: str) -> tuple[Any, ...]:
    """The documents table and the filter choices."""
    try:
        with ctx.guard.read():
            docs = ctx.assistant.documents()
    except AssistantError as exc:
        return render_notice(friendly_error(exc, lang)), gr.update(), gr.update()
    choices, outlets = ctx.doc_choices()
    return render_documents(docs, lang), gr.update(choices=choices), gr.update(choices=outlets)


# --------------------------------------------------------------------------- handlers: staff
# Each checks the session's login flag itself: hidden controls are no protection.


def denied(lang: str) -> str:
    gr.Warning(t("msg.denied", lang))
    return render_notice(t("msg.denied", lang))


def staff_login(ctx: UIContext, given: Any, lang: str, client: str, session: str | None) -> tuple[Any, ...]:
    """(staff controls, status, password box, delete choices, trash choices, feedback); a correct
    password logs ``session`` in from ``client`` (``UIContext.staff``)."""
    wait = ctx.throttle.retry_after(client)
    refused = (gr.update(visible=False), "", "", gr.update(choices=[]), gr.update(choices=[]),
               gr.update(visible=False, value=""))
    if wait > 0:  # refused at once, without looking at the password: nothing waits in a worker
        return (refused[0], render_notice(t("msg.locked", lang, s=ceil(wait))), *refused[2:])
    if check_password(given, ctx.password):
        if not ctx.staff.grant(session, client):  # no session to hold the login (a direct call)
            return (refused[0], render_notice(t("msg.denied", lang)), *refused[2:])
        ctx.throttle.succeeded(client)
        recent = render_feedback(feedback.read(ctx.feedback_file, 20), lang)
        return (gr.update(visible=True), render_notice(t("msg.logged_in", lang), "ok"), "",
                ctx.delete_choices(), ctx.trash_choices(), gr.update(visible=True, value=recent))
    lock = ctx.throttle.failed(client)
    message = t("msg.bad_password", lang) + (" " + t("msg.locked", lang, s=ceil(lock)) if lock else "")
    return (refused[0], render_notice(message), *refused[2:])


def staff_granted(ctx: UIContext, request: Any) -> bool:
    """Whether a staff action comes from a logged-in session, at the address it logged in from.

    Gradio's session hash is a bearer token the browser makes up and sends in URLs (proxy logs keep
    them): whoever holds it *is* the session. Held from another address, it grants nothing."""
    return ctx.staff.granted(session_id(request), client_address(request))


def staff_logout(ctx: UIContext, lang: str, request: Any) -> tuple[Any, ...]:
    """(staff controls, status, delete choices, trash choices, feedback). Only the address that logged
    in logs its session out: the session's id held elsewhere hides that page's controls, nothing more."""
    ctx.staff.revoke(session_id(request), client_address(request))
    return (gr.update(visible=False), render_notice(t("msg.logged_out", lang), "info"), gr.update(choices=[]),
            gr.update(choices=[]), gr.update(visible=False, value=""))


def upgrading(ctx: UIContext, lang: str) -> str | None:
    """A notice while the server updates the index in the background (``start_upgrade``): staff
    changes would wait for it, so they are refused with a word on why."""
    try:
        check_not_upgrading(ctx.assistant)
    except AssistantError as exc:
        return render_notice(friendly_error(exc, lang), "info")
    return None


def staff_upload(ctx: UIContext, files: Any, admin: bool, lang: str, progress: Any = None) -> tuple[Any, ...]:
    """(status, upload box, delete choices, trash choices)."""
    if admin is not True:
        return denied(lang), gr.update(), gr.update(), gr.update()
    if (busy := upgrading(ctx, lang)) is not None:  # before the files are saved into the corpus
        return busy, gr.update(), gr.update(), gr.update()
    if not files:
        return render_notice(t("msg.no_files", lang)), gr.update(), gr.update(), gr.update()
    saved: list[SavedUpload] = []
    problems: list[str] = []
    notes: list[str] = []
    for f in files if isinstance(files, list) else []:
        name = Path(str(f)).name
        try:
            src = uploaded_file(f)
            saved.append(store_upload(src, name, ctx.corpus_dir, MAX_UPLOAD_BYTES))
            src.unlink(missing_ok=True)  # Gradio's copy is not needed any more
        except DocumentError as exc:
            problems.append(f"{exc.path}: {exc.reason}")
        except OSError as exc:
            problems.append(f"{name}: {exc.strerror or 'cannot be read'}")
    message = ""
    if saved:
        try:
            report = ctx.ingest([u.path for u in saved], progress, lang)
            message = _report_text(report, lang)
            notes += settle_uploads(saved, report.errors, ctx.corpus_dir, lang)
        except Exception as exc:
            if not isinstance(exc, AssistantError):
                log.exception("ingest failed")
            problems.append(friendly_error(exc, lang))
    names = ", ".join(u.path.name for u in saved)
    parts = [render_notice(f"{names}: {message}", "ok")] if saved and message else []
    parts += [render_notice(n, "info") for n in notes]
    parts += [render_notice(p) for p in problems]
    return "".join(parts), None, ctx.delete_choices(), ctx.trash_choices()


def staff_delete(ctx: UIContext, doc_id: Any, remove_file: bool, admin: bool, lang: str) -> tuple[Any, ...]:
    """(status, delete choices, trash choices)."""
    if admin is not True:
        return denied(lang), gr.update(), gr.update()
    if not doc_id or not isinstance(doc_id, str):
        return render_notice(t("msg.no_doc", lang)), gr.update(), gr.update()
    if (busy := upgrading(ctx, lang)) is not None:
        return busy, gr.update(), gr.update()
    try:
        with ctx.guard.read():
            records = {d.doc_id: d for d in ctx.assistant.documents()}
        rec = records.get(doc_id)
        # Only the index change holds the write lock (never around the call: the lock is not re-entrant).
        removed = ctx.assistant.delete_document(doc_id, write_lock=ctx.guard.write)
        note = ""
        if rec is not None and remove_file is True:
            note = _remove_file(rec.path, ctx.corpus_dir, [d for d in records.values() if d.doc_id != doc_id], lang)
    except Exception as exc:
        if not isinstance(exc, AssistantError):
            log.exception("delete failed")
        return render_notice(friendly_error(exc, lang)), gr.update(), gr.update()
    done = t("status.deleted", lang, doc_id=doc_id, n=removed)
    return render_notice(f"{done} {note}".strip(), "ok"), ctx.delete_choices(), ctx.trash_choices()


def staff_restore_file(ctx: UIContext, name: Any, admin: bool, lang: str, progress: Any = None) -> tuple[Any, ...]:
    """(status, delete choices, trash choices)."""
    if admin is not True:
        return denied(lang), gr.update(), gr.update()
    if not name or not isinstance(name, str):
        return render_notice(t("msg.no_trash", lang)), gr.update(), gr.update()
    if (busy := upgrading(ctx, lang)) is not None:  # before the file leaves the trash
        return busy, gr.update(), gr.update()
    try:
        target = restore(name, ctx.corpus_dir)
        report = ctx.ingest([target], progress, lang)
    except Exception as exc:
        if not isinstance(exc, AssistantError):
            log.exception("restore failed")
        return render_notice(friendly_error(exc, lang)), gr.update(), ctx.trash_choices()
    done = t("status.restored", lang, name=target.name) + _report_text(report, lang)
    return render_notice(done, "ok"), ctx.delete_choices(), ctx.trash_choices()


def staff_reindex(ctx: UIContext, full: bool, admin: bool, lang: str, progress: Any = None) -> tuple[Any, ...]:
    """(status, delete choices)."""
    if admin is not True:
        return denied(lang), gr.update()
    try:
        report = ctx.ingest(None, progress, lang, rebuild=full is True)
    except Exception as exc:
        if not isinstance(exc, AssistantError):
            log.exception("re-index failed")
        return render_notice(friendly_error(exc, lang)), gr.update()
    return render_notice(_report_text(report, lang), "ok"), ctx.delete_choices()


def staff_run_evaluation(ctx: UIContext, path: Any, k: Any, admin: bool, lang: str,
                         progress: Any = None) -> tuple[Any, ...]:
    """(status, metrics table, report file, report view)."""
    from assistant.evaluation import load_gold, run_eval

    if admin is not True:
        return denied(lang), None, None, ""
    if not path:
        return render_notice(t("msg.no_gold", lang)), None, None, ""
    try:
        gold_file = uploaded_file(path)
        if gold_file.stat().st_size > MAX_GOLD_BYTES:
            raise DocumentError(gold_file.name, f"larger than {MAX_GOLD_BYTES // 2**20} MB")
        items = load_gold(gold_file)
        kk = max(1, min(20, int(k))) if isinstance(k, int | float) else 5
        result = run_eval(_ProgressAsker(ctx.assistant, progress, len(items)), items, k=kk, progress=False)
    except Exception as exc:
        if not isinstance(exc, AssistantError | ValueError):
            log.exception("evaluation failed")
        message = friendly_error(exc, lang) if isinstance(exc, AssistantError) else str(exc)
        # Name the uploaded file, never the server's folders (Gradio's cache path included).
        message = message.replace(str(Path(str(path)).resolve()), Path(str(path)).name)
        return render_notice(message.replace(str(path), Path(str(path)).name)), None, None, ""
    report = result.render_html(title="Evaluation report")
    out = ctx.reports.write(report)
    header, rows = metrics_rows(result.metrics)
    frame = f'<iframe class="eval-report" sandbox="" srcdoc="{html.escape(report, quote=True)}"></iframe>'
    done = t("status.eval_done", lang, n=len(items), k=kk)
    return render_notice(done, "ok"), {"headers": header, "data": rows}, str(out), frame


# --------------------------------------------------------------------------- builders: one per tab


class Labels:
    """Components whose texts follow the language toggle: (component, property, strings key)."""

    def __init__(self) -> None:
        self.items: list[tuple[Any, str, str]] = []

    def __call__(self, component: Any, prop: str, key: str) -> Any:
        self.items.append((component, prop, key))
        return component

    def updates(self, lang: str) -> list[Any]:
        updates = []
        for _, prop, key in self.items:
            change: dict[str, Any] = {prop: t(key, lang)}
            updates.append(gr.update(**change))
        return updates


@dataclass
class Session:
    """Per-browser-session state: on the server (``gr.State``) and saved in the browser (``BrowserState``)."""

    history: Any  # earlier questions of this conversation
    conversation: Any  # the rendered chat, kept server side: the Chatbot is output-only
    answers: Any  # (turn, answer) of this conversation, for the sources of every turn
    records: Any  # one per question/answer message pair: what feedback on that answer refers to
    saved_current: Any  # the current conversation with its sources, in the browser's localStorage
    saved_past: Any  # earlier conversations with their quotes, in the browser's localStorage

    @classmethod
    def create(cls, secret: str) -> Session:
        return cls(gr.State([]), gr.State([]), gr.State([]), gr.State([]),
                   gr.BrowserState([], storage_key="alliance-assistant-current", secret=secret),
                   gr.BrowserState([], storage_key="alliance-assistant-past", secret=secret))


def build_chat_tab(ctx: UIContext, s: Session, lang: Any, L: Labels) -> dict[str, Any]:  # noqa: N803
    """The chat: conversation, question, filters, examples, earlier conversations, sources and viewer."""
    c: dict[str, Any] = {}
    with L(gr.Tab(t("ui.tab_chat", "en"), id="chat", elem_id="tab-chat"), "label", "ui.tab_chat"), gr.Row():
        with gr.Column(scale=3):
            c["chatbot"] = L(gr.Chatbot(elem_id="chatbot", height=520, latex_delimiters=[], buttons=[],
                                        feedback_options=FEEDBACK_OPTIONS, sanitize_html=True,
                                        label=t("ui.chatbot", "en"), show_label=False), "label", "ui.chatbot")
            with gr.Row():
                c["fb_comment"] = L(gr.Textbox(label=t("ui.fb_comment", "en"), elem_id="feedback-comment",
                                               max_lines=2, scale=5), "label", "ui.fb_comment")
                c["fb_status"] = gr.HTML(elem_id="feedback-status")
            with gr.Row():
                c["question"] = L(L(gr.Textbox(label=t("ui.question", "en"), placeholder=t("ui.question_ph", "en"),
                                               elem_id="question", scale=5, lines=1, max_lines=4),
                                    "label", "ui.question"), "placeholder", "ui.question_ph")
                c["ask"] = L(gr.Button(t("ui.ask", "en"), variant="primary", elem_id="ask-btn", scale=1,
                                       min_width=80), "value", "ui.ask")
                c["clear"] = L(gr.Button(t("ui.clear", "en"), elem_id="clear-btn", scale=1, min_width=80),
                               "value", "ui.clear")
            with gr.Row():
                c["past"] = L(gr.Dropdown([], label=t("ui.past", "en"), elem_id="past-conversations", scale=4),
                              "label", "ui.past")
                c["open"] = L(gr.Button(t("ui.open", "en"), elem_id="open-conversation", scale=1, min_width=80),
                              "value", "ui.open")
                c["export"] = L(gr.Button(t("ui.export", "en"), elem_id="export-btn", scale=1, min_width=80),
                                "value", "ui.export")
            c["export_file"] = L(gr.File(label=t("ui.export_file", "en"), interactive=False, elem_id="export-file",
                                         visible=False), "label", "ui.export_file")
            with L(gr.Accordion(t("ui.filters", "en"), open=False, elem_id="filters"), "label", "ui.filters"):
                with gr.Row():
                    c["f_doc"] = L(gr.Dropdown([], multiselect=True, label=t("ui.f_doc", "en"),
                                               elem_id="filter-doc"), "label", "ui.f_doc")
                    c["f_outlet"] = L(gr.Dropdown([], multiselect=True, label=t("ui.f_outlet", "en"),
                                                  elem_id="filter-outlet"), "label", "ui.f_outlet")
                with gr.Row():
                    c["f_lang"] = L(gr.Dropdown([("—", ""), ("中文 zh", "zh"), ("English en", "en"),
                                                 ("mixed", "mixed")], value="", label=t("ui.f_language", "en"),
                                                elem_id="filter-language"), "label", "ui.f_language")
                    c["f_from"] = L(gr.Textbox(label=t("ui.f_from", "en"), placeholder="2025-01-01",
                                               elem_id="filter-from"), "label", "ui.f_from")
                    c["f_to"] = L(gr.Textbox(label=t("ui.f_to", "en"), placeholder="2025-12-31",
                                             elem_id="filter-to"), "label", "ui.f_to")
            gr.Examples(EXAMPLES_STUDENTS, inputs=[c["question"]], label="For students · 学生常见问题",
                        elem_id="examples-students")
            gr.Examples(EXAMPLES_STAFF, inputs=[c["question"]], label="For staff · 教职工常见问题",
                        elem_id="examples-staff")
        with gr.Column(scale=2):
            c["sources"] = gr.HTML(render_sources(None, 0), elem_id="sources")
            c["doc_view"] = gr.HTML(elem_id="doc-view")
            # Driven by the sources panel's "open the document" links (see HEAD); hidden by CSS, since
            # Gradio does not render invisible components at all.
            c["doc_request"] = gr.Textbox(elem_id="doc-request", elem_classes=["hidden-control"], show_label=False,
                                          container=False)
            c["doc_open"] = gr.Button("open", elem_id="doc-open", elem_classes=["hidden-control"])

    session_outputs = [c["chatbot"], s.conversation, s.history, s.answers, s.records, c["sources"]]

    def respond(text: str, messages: list[dict[str, Any]], past: list[str], turns: list[Any],
               kept: list[dict[str, Any]], saved: Any, ui_lang: str, doc_ids: list[str] | None,
               outlets: list[str] | None, language: str | None, date_from: str | None,
               date_to: str | None) -> Iterator[tuple[Any, ...]]:
        messages, past, turns, kept = resume(messages, past, turns, kept, saved, ui_lang)
        yield from answer_question(ctx, text, messages, past, turns, kept, ui_lang,
                           build_filters(doc_ids, outlets, language, date_from, date_to))

    inputs = [c["question"], s.conversation, s.history, s.answers, s.records, s.saved_current, lang, c["f_doc"],
              c["f_outlet"],
              c["f_lang"], c["f_from"], c["f_to"]]
    outputs = [c["chatbot"], s.conversation, c["question"], s.history, s.answers, c["sources"], s.records,
               s.saved_current]
    c["ask"].click(respond, inputs, outputs, api_visibility="private")
    c["question"].submit(respond, inputs, outputs, api_visibility="private")
    c["clear"].click(new_conversation, [s.answers, s.saved_past, lang],
                     [*session_outputs, c["question"], s.saved_current, s.saved_past, c["past"], c["export_file"]],
                     api_visibility="private")
    c["open"].click(open_earlier, [c["past"], s.answers, s.saved_past, lang],
                    [*session_outputs, s.saved_current, s.saved_past, c["past"]], api_visibility="private")

    def on_export(turns: list[Any], ui_lang: str, request: gr.Request | None = None) -> Any:
        return export_conversation(ctx, turns, ui_lang, client_address(request))

    c["export"].click(on_export, [s.answers, lang], [c["export_file"]], api_visibility="private")

    def on_open_document(request: str | None, ui_lang: str) -> str:
        return open_document(ctx, request, ui_lang)

    c["doc_open"].click(on_open_document, [c["doc_request"], lang], [c["doc_view"]], api_visibility="private")

    def on_feedback(kept: list[dict[str, Any]], comment: str | None, ui_lang: str,
                    data: gr.LikeData, request: gr.Request | None = None) -> tuple[Any, ...]:
        return give_feedback(ctx, kept, comment, ui_lang, data.index, data.liked, client_address(request))

    c["chatbot"].like(on_feedback, [s.records, c["fb_comment"], lang], [c["fb_status"], c["fb_comment"]],
                      api_visibility="private")

    c["session_outputs"] = session_outputs
    return c


def build_documents_tab(ctx: UIContext, s: Session, lang: Any, L: Labels) -> dict[str, Any]:  # noqa: N803
    """The document list, and the staff controls (only when a password is configured)."""
    c: dict[str, Any] = {}
    with L(gr.Tab(t("ui.tab_docs", "en"), id="docs", elem_id="tab-docs"), "label", "ui.tab_docs"):
        c["docs_html"] = gr.HTML(elem_id="docs-table")
        c["refresh"] = L(gr.Button(t("ui.refresh", "en"), elem_id="refresh-docs", size="sm"), "value", "ui.refresh")
        if ctx.password:
            with L(gr.Accordion(t("ui.staff", "en"), open=False, elem_id="staff"), "label", "ui.staff"):
                with gr.Row():
                    c["pw"] = L(gr.Textbox(type="password", label=t("ui.password", "en"), elem_id="staff-password",
                                           scale=3), "label", "ui.password")
                    c["login"] = L(gr.Button(t("ui.login", "en"), elem_id="staff-login", scale=1), "value",
                                   "ui.login")
                c["status"] = gr.HTML(elem_id="staff-status")
                c["feedback"] = gr.HTML(elem_id="staff-feedback", visible=False)
                with gr.Column(visible=False, elem_id="staff-controls") as c["controls"]:
                    c["uploads"] = L(gr.File(file_count="multiple", file_types=list(UPLOAD_SUFFIXES), type="filepath",
                                             label=t("ui.upload", "en"), elem_id="upload"), "label", "ui.upload")
                    c["upload"] = L(gr.Button(t("ui.upload_btn", "en"), variant="primary", elem_id="upload-btn"),
                                    "value", "ui.upload_btn")
                    with gr.Row():
                        c["del_doc"] = L(gr.Dropdown([], label=t("ui.delete_doc", "en"), elem_id="delete-doc",
                                                     scale=3), "label", "ui.delete_doc")
                        c["del_file"] = L(gr.Checkbox(False, label=t("ui.delete_file", "en"), elem_id="delete-file"),
                                          "label", "ui.delete_file")
                        c["delete"] = L(gr.Button(t("ui.delete_btn", "en"), variant="stop", elem_id="delete-btn",
                                                  scale=1), "value", "ui.delete_btn")
                    with gr.Row():
                        c["rebuild"] = L(gr.Checkbox(False, label=t("ui.rebuild", "en"), elem_id="rebuild"),
                                         "label", "ui.rebuild")
                        c["reindex"] = L(gr.Button(t("ui.reindex_btn", "en"), elem_id="reindex-btn"), "value",
                                         "ui.reindex_btn")
                        c["logout"] = L(gr.Button(t("ui.logout", "en"), elem_id="staff-logout", size="sm"),
                                        "value", "ui.logout")
                    with gr.Row():
                        c["trash"] = L(gr.Dropdown([], label=t("ui.restore", "en"), elem_id="restore-file", scale=3),
                                       "label", "ui.restore")
                        c["restore"] = L(gr.Button(t("ui.restore_btn", "en"), elem_id="restore-btn", scale=1),
                                         "value", "ui.restore_btn")
    return c


def wire_staff(ctx: UIContext, lang: Any, d: dict[str, Any], refresh: Callable[[Any], Any]) -> None:
    """The staff handlers of the Documents tab (management runs one event at a time)."""

    def login(given: str, ui_lang: str, request: gr.Request | None = None) -> tuple[Any, ...]:
        return staff_login(ctx, given, ui_lang, client_address(request), session_id(request))

    login_outputs = [d["controls"], d["status"], d["pw"], d["del_doc"], d["trash"], d["feedback"]]
    # Instant handlers (no sleep): a guesser's queue place costs nobody else a wait.
    d["login"].click(login, [d["pw"], lang], login_outputs, api_visibility="private")
    d["pw"].submit(login, [d["pw"], lang], login_outputs, api_visibility="private")
    def logout(ui_lang: str, request: gr.Request | None = None) -> tuple[Any, ...]:
        return staff_logout(ctx, ui_lang, request)

    d["logout"].click(logout, [lang], [d["controls"], d["status"], d["del_doc"], d["trash"], d["feedback"]],
                      api_visibility="private")

    def upload(files: list[str] | None, ui_lang: str, request: gr.Request | None = None,
               progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:  # noqa: B008 - Gradio's idiom
        return staff_upload(ctx, files, staff_granted(ctx, request), ui_lang, progress)

    refresh(d["upload"].click(upload, [d["uploads"], lang],
                              [d["status"], d["uploads"], d["del_doc"], d["trash"]],
                              api_visibility="private", concurrency_limit=1))

    def delete(doc_id: str | None, remove_file: bool, ui_lang: str,
               request: gr.Request | None = None) -> tuple[Any, ...]:
        return staff_delete(ctx, doc_id, remove_file, staff_granted(ctx, request), ui_lang)

    refresh(d["delete"].click(delete, [d["del_doc"], d["del_file"], lang],
                              [d["status"], d["del_doc"], d["trash"]], api_visibility="private", concurrency_limit=1))

    def restore_file(name: str | None, ui_lang: str, request: gr.Request | None = None,
                     progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:  # noqa: B008
        return staff_restore_file(ctx, name, staff_granted(ctx, request), ui_lang, progress)

    refresh(d["restore"].click(restore_file, [d["trash"], lang], [d["status"], d["del_doc"], d["trash"]],
                               api_visibility="private", concurrency_limit=1))

    def reindex(full: bool, ui_lang: str, request: gr.Request | None = None,
                progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:  # noqa: B008
        return staff_reindex(ctx, full, staff_granted(ctx, request), ui_lang, progress)

    refresh(d["reindex"].click(reindex, [d["rebuild"], lang], [d["status"], d["del_doc"]],
                               api_visibility="private", concurrency_limit=1))


def build_eval_tab(ctx: UIContext, lang: Any, L: Labels) -> None:  # noqa: N803
    """Evaluation of a gold file (staff only: it reads an uploaded file and runs many questions)."""
    with L(gr.Tab(t("ui.tab_eval", "en"), id="eval", elem_id="tab-eval"), "label", "ui.tab_eval"):
        with gr.Row():
            gold = L(gr.File(file_types=[".jsonl"], type="filepath", label=t("ui.gold", "en"), elem_id="gold-file"),
                     "label", "ui.gold")
            with gr.Column():
                eval_k = L(gr.Slider(1, 20, value=5, step=1, label=t("ui.k", "en"), elem_id="eval-k"), "label", "ui.k")
                run_btn = L(gr.Button(t("ui.run_eval", "en"), variant="primary", elem_id="run-eval"), "value",
                            "ui.run_eval")
        status = gr.HTML(elem_id="eval-status")
        metrics = L(gr.Dataframe(label=t("ui.metrics", "en"), interactive=False, elem_id="eval-metrics"), "label",
                    "ui.metrics")
        report_file = L(gr.File(label=t("ui.report_file", "en"), interactive=False, elem_id="eval-file"), "label",
                        "ui.report_file")
        report_view = gr.HTML(elem_id="eval-report")

    def run_evaluation(path: str | None, k: float, ui_lang: str, request: gr.Request | None = None,
                       progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:  # noqa: B008
        return staff_run_evaluation(ctx, path, k, staff_granted(ctx, request), ui_lang, progress)

    run_btn.click(run_evaluation, [gold, eval_k, lang], [status, metrics, report_file, report_view],
                  api_visibility="private", concurrency_limit=1)


def build_app(assistant: Any, admin_password: str | None = None) -> gr.Blocks:
    """The Gradio app over ``assistant``; staff controls exist only when a password is configured.

    ``admin_password`` None reads ``ASSISTANT_ADMIN_PASSWORD``; "" turns management off.
    """
    ctx = UIContext(assistant, _configured_password() if admin_password is None else (admin_password or None))
    L = Labels()  # noqa: N806 - reads as a wrapper in the layout
    # delete_cache: files uploaded to Gradio (anonymous route) or made for download go after an hour.
    with gr.Blocks(title="Alliance Assistant · 产教联盟助手", analytics_enabled=False,
                   delete_cache=(600, 3600)) as demo:
        s = Session.create(ctx.browser_secret)
        with gr.Row(equal_height=True):
            L(gr.Markdown(t("ui.title", "en"), elem_id="title"), "value", "ui.title")
            lang = L(gr.Radio([("English", "en"), ("中文", "zh")], value="en", label=t("ui.lang", "en"),
                              elem_id="lang-toggle", scale=0, min_width=200), "label", "ui.lang")
        with gr.Tabs():
            chat = build_chat_tab(ctx, s, lang, L)
            docs = build_documents_tab(ctx, s, lang, L)
            if ctx.password:
                build_eval_tab(ctx, lang, L)

        def ask(text: str) -> dict[str, Any]:
            """Gradio client endpoint: one question, no history; returns ``Answer.to_dict()``."""
            return ask_api(ctx, text)

        gr.api(ask, api_name="ask")  # outside the Tabs: an Api block there would be taken for a tab

        def on_refresh(ui_lang: str) -> tuple[Any, ...]:
            return refresh_documents(ctx, ui_lang)

        refresh_outputs = [docs["docs_html"], chat["f_doc"], chat["f_outlet"]]

        def then_refresh(event: Any) -> Any:
            return event.then(on_refresh, [lang], refresh_outputs, api_visibility="private")

        if ctx.password:
            wire_staff(ctx, lang, docs, then_refresh)

        def relabel(ui_lang: str, turns: list[Any]) -> list[Any]:
            return [*L.updates(ui_lang), all_sources(turns or [], ui_lang)]

        relabelled = lang.change(relabel, [lang, s.answers], [c for c, _, _ in L.items] + [chat["sources"]],
                                 api_visibility="private")
        then_refresh(relabelled)  # the table headers
        docs["refresh"].click(on_refresh, [lang], refresh_outputs, api_visibility="private")
        demo.load(None, None, [lang], js=LANG_JS)
        demo.load(on_refresh, [lang], refresh_outputs, api_visibility="private")
        demo.load(reload_conversation, [s.saved_current, s.saved_past, lang], [*chat["session_outputs"], chat["past"]],
                  api_visibility="private")
    return demo


# --------------------------------------------------------------------------- app and serve
# The UI mounts itself beside the library's JSON API (``assistant.server.create_api``): the library
# never imports the UI.


def create_app(assistant: Any, admin_password: str | None = None, *, ui: bool = True,
               allowed_hosts: Sequence[str] = (), gate: dict[str, Any] | None = None) -> Any:
    """The JSON API plus the Gradio UI at ``/``; ``admin_password`` None reads ``ASSISTANT_ADMIN_PASSWORD``.

    ``allowed_hosts``: host names besides localhost and IP addresses that requests may be addressed to;
    ``gate``: other options of ``RequestGate`` (its quotas; tests that send hundreds of events use their own)."""
    from assistant.gate import RequestGate
    from assistant.server import QUEUE_CONCURRENCY, QUEUE_MAX_SIZE, create_api

    app = create_api(assistant)
    live = None  # whether Gradio holds a session (RequestGate.live)
    if ui:
        blocks = build_app(assistant, admin_password=admin_password)
        # api_open=False: queued handlers run only through the queue (run/predict refuses them too).
        blocks.queue(default_concurrency_limit=QUEUE_CONCURRENCY, api_open=False,  # see QUEUE_CONCURRENCY
                     max_size=QUEUE_MAX_SIZE)
        blocks.state_session_capacity = SESSION_CAPACITY  # read when mounted (StateHolder.set_blocks)
        app = gr.mount_gradio_app(
            app,
            blocks,
            path="/",
            allowed_paths=[],
            # The index is never served, whatever a payload names (Gradio serves the working directory's
            # files that an app returns; ours returns none from there).
            blocked_paths=[str(Path(assistant.config.index_dir).resolve())],
            max_file_size=MAX_UPLOAD_BYTES,
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
        threading.Thread(target=_sweep_sessions, args=(weakref.ref(blocks), SESSION_IDLE_SECONDS, 60.0),
                         name="forget-idle-sessions", daemon=True).start()
        live = blocks.state_holder.__contains__
    app.add_middleware(RequestGate, allowed_hosts=allowed_hosts, live=live, **(gate or {}))
    return app


def serve(assistant: Any, host: str = "127.0.0.1", port: int = 7860, admin_password: str | None = None,
          allowed_hosts: Sequence[str] = (), trusted_proxies: Sequence[str] = (),
          gate: dict[str, Any] | None = None) -> None:
    """Warm the models up, then serve the UI and the API with uvicorn until interrupted.

    ``allowed_hosts``: names clients may address the server by (besides localhost and IP addresses; a
    bound host name is one); ``trusted_proxies``: addresses whose ``X-Forwarded-For`` is believed;
    ``gate``: ``RequestGate``'s per-client limits (``gate.client_limits``)."""
    import uvicorn

    from assistant.gate import CappedStream, host_allowed, uvicorn_options

    if not isinstance(sys.stderr, CappedStream):  # before any handler holds the raw stream
        sys.stderr = CappedStream(sys.stderr)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    import bm25s  # noqa: F401 - it sets its logger to DEBUG on import; quiet it afterwards

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    assistant.warm_up()
    if not host_allowed(host, allowed_hosts):
        allowed_hosts = (*allowed_hosts, host.lower().rstrip("."))
    app = create_app(assistant, admin_password=admin_password, allowed_hosts=allowed_hosts, gate=gate)
    # An upgraded index (another chunker or reading; sentence vectors of another
    # version) is brought up to date after the start, not before it: at 100k chunks that takes hours.
    start_upgrade(assistant, say=lambda line: print(line, flush=True))
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    print(f"Serving the assistant on http://{shown}:{port}  (API: /api/ask, /api/documents, /api/health)",
          flush=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"Warning: bound to {host}: the UI and API are reachable from the network.", flush=True)
        if "*" not in allowed_hosts:
            print("Requests addressed to a host name other than localhost are refused unless "
                  "ASSISTANT_ALLOWED_HOSTS names it.", flush=True)
    # Keep idle connections well past a client's own idle expiry (httpx: 5 s, like uvicorn's default): with
    # equal timeouts a request sent on a connection about to close was reset under load (soak finding).
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_keep_alive=75,
                **uvicorn_options(trusted_proxies))


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
