"""The web server: a FastAPI app with the JSON API under ``/api`` and the Gradio UI mounted at ``/``.

Routes: ``POST /api/ask``, ``GET /api/documents``, ``GET /api/health`` (OpenAPI docs at ``/api/docs``).
``POST /api/ask`` with ``"stream": true`` answers as server-sent events (``ask_events``).
Malformed requests get a 4xx JSON ``{"error": "..."}``, never a stack trace. The server binds
127.0.0.1 unless told otherwise: ``assistant serve --host 0.0.0.0`` (or ``ASSISTANT_HOST``) exposes
it to the network, where it belongs behind a reverse proxy with TLS, since the staff password
(``ASSISTANT_ADMIN_PASSWORD``) travels in the clear over plain HTTP.

Staff management (upload, delete, re-index) exists only when ``ASSISTANT_ADMIN_PASSWORD`` is set; the
UI shows it after a correct password, and every management handler checks again that the session is
logged in (``StaffSessions``) from the address that logged in. What every request passes before it
reaches the app (routes, hosts, sizes, per-client limits) lives in ``gate.py``.

Concurrency: questions run in parallel (the assistant's caches are guarded by its own locks), while
ingest, delete and re-index take an exclusive lock (``guard_for``), since they rewrite the manifest
and the lexical index that questions read.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import threading
import time
import unicodedata
import weakref
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from the UI server

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import strings
from .corpus_files import keep_version
from .errors import (
    AssistantError,
    ConfigError,
    DocumentError,
    IndexMismatchError,
    IndexRebuildingError,
    LLMError,
    QuestionError,
    StoreError,
)
from .gate import MAX_UPLOAD_BYTES

log = logging.getLogger(__name__)

UPLOAD_SUFFIXES = (".txt", ".md", ".html", ".htm", ".pdf", ".docx", ".jsonl")
ADMIN_ENV = "ASSISTANT_ADMIN_PASSWORD"
# Concurrent Gradio events per handler. Answering is CPU-bound (query embedding, BM25, sentence
# scoring: ~0.1 s): more workers would only contend for the same cores and the GIL, while 4 keeps a
# slow request from blocking everyone else. Management handlers run one at a time (limit 1).
QUEUE_CONCURRENCY = 4
# Events waiting in Gradio's queue, all clients together. Each waiting event is told of every change
# of the queue, so its messages grow with the square of its length: 1,500 queued events from one
# client took 900 MB (third security review). 64 drain in seconds at 4 at a time.
QUEUE_MAX_SIZE = 64


# --------------------------------------------------------------------------- shared helpers


class ReadWriteLock:
    """Many readers (questions) or one writer (ingest/delete); waiting writers go first."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._waiting_writers:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if self._readers == 0:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._waiting_writers += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._waiting_writers -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


_guards: weakref.WeakKeyDictionary[Any, ReadWriteLock] = weakref.WeakKeyDictionary()
_guards_lock = threading.Lock()


def guard_for(assistant: Any) -> ReadWriteLock:
    """The one read/write lock of ``assistant``, shared by the API and the UI."""
    with _guards_lock:
        guard = _guards.get(assistant)
        if guard is None:
            guard = _guards[assistant] = ReadWriteLock()
        return guard


@dataclass
class Upgrade:
    """A job the server started on an upgraded index (``Assistant.pending_upgrade``): its rebuild,
    or the sentence vectors it lacks. Questions are answered from the index as it is meanwhile;
    staff changes wait (``check_not_upgrading``)."""

    kind: str
    reason: str
    done: threading.Event = field(default_factory=threading.Event)
    embedded: int = 0
    total: int = 0
    error: str | None = None

    @property
    def running(self) -> bool:
        return not self.done.is_set()

    def to_dict(self) -> dict[str, Any]:
        """What ``/api/health`` shows: not the reason, which names the index directory and its
        settings (the server's log has it)."""
        out: dict[str, Any] = {"kind": self.kind, "running": self.running, "failed": self.error is not None}
        if self.total:
            out.update(embedded=self.embedded, total=self.total)
        return out


_upgrades: weakref.WeakKeyDictionary[Any, Upgrade] = weakref.WeakKeyDictionary()


def upgrade_of(assistant: Any) -> Upgrade | None:
    """The upgrade job started for ``assistant`` (running or finished), if any."""
    with _guards_lock:
        return _upgrades.get(assistant)


def check_not_upgrading(assistant: Any) -> None:
    """Raise ``IndexRebuildingError`` while an upgrade job runs: a staff change would wait for it
    (hours for a large index) with nothing said."""
    job = upgrade_of(assistant)
    if job is not None and job.running:
        raise IndexRebuildingError(without_paths(job.reason))


def start_upgrade(assistant: Any, say: Callable[[str], None] = print) -> Upgrade | None:
    """Start, in a background thread, what ``assistant.pending_upgrade()`` asks for: a rebuild from
    the corpus (published at the end under the server's write lock, as the staff "Rebuild from
    scratch" does) or the sentence vectors an upgraded index lacks. ``say`` reports the start,
    every tenth of the chunks embedded, and the end. Returns the job, or None when none is needed."""
    pending = assistant.pending_upgrade()
    if pending is None:
        return None
    job = Upgrade(pending.kind, pending.reason)
    with _guards_lock:
        _upgrades[assistant] = job
    guard = guard_for(assistant)

    def progress(stage: str, advance: int, total: int) -> None:
        if stage != "embed":
            return
        before = job.embedded * 10 // max(job.total, 1)
        job.embedded, job.total = job.embedded + advance, total
        if job.embedded * 10 // max(total, 1) > before:
            say(f"Rebuilding the index: {job.embedded:,} of {total:,} chunks embedded")

    def run() -> None:
        try:
            if job.kind == "rebuild":
                report = assistant.ingest(rebuild=True, progress=progress, write_lock=guard.write)
                say(f"The index is rebuilt ({report.added + report.updated + report.unchanged} documents).")
            else:
                encoded = assistant.complete_sentence_vectors()
                say(f"Sentence vectors completed ({encoded:,} sentences encoded).")
        except Exception as exc:  # reported, never raised into the server; the old index still answers
            if not isinstance(exc, AssistantError):
                log.exception("background %s failed", job.kind)
            job.error = friendly_error(exc)
            say(f"The background {job.kind} failed: {job.error}")
        finally:
            job.done.set()

    what = "Rebuilding the index" if job.kind == "rebuild" else "Completing the sentence vectors"
    say(f"{what} in the background ({without_paths(job.reason)}); questions are answered meanwhile.")
    threading.Thread(target=run, name=f"upgrade-{job.kind}", daemon=True).start()
    return job


def check_password(given: object, expected: str | None) -> bool:
    """Constant-time password check; always False when no password is configured."""
    if not expected or not isinstance(given, str) or not given:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


class LoginThrottle:
    """Per-client lock-out with exponential back-off after repeated wrong staff passwords.

    ``free_attempts`` wrong passwords within ``window`` seconds are allowed; each further one locks the
    client out for ``base_lock`` seconds, doubling up to ``max_lock``. A locked client's attempts are
    refused without checking the password, at once: nothing sleeps in a worker, so a guesser never
    delays anyone else, and staff at another address log in as usual. A success clears the client.
    """

    def __init__(self, free_attempts: int = 5, base_lock: float = 30.0, max_lock: float = 900.0,
                 window: float = 900.0, clock: Callable[[], float] = time.monotonic, max_clients: int = 10_000) -> None:
        if free_attempts < 1 or base_lock <= 0 or max_lock < base_lock or window <= 0:
            raise ValueError(f"bad lock-out policy: free_attempts={free_attempts}, base_lock={base_lock}, "
                             f"max_lock={max_lock}, window={window}")
        self.free_attempts = free_attempts
        self.base_lock = base_lock
        self.max_lock = max_lock
        self.window = window
        self.clock = clock
        self.max_clients = max_clients
        self._lock = threading.Lock()
        self._failures: dict[str, list[float]] = {}  # client -> times of recent wrong passwords
        self._locked_until: dict[str, float] = {}

    def retry_after(self, client: str) -> float:
        """Seconds until ``client`` may try again (0: now)."""
        with self._lock:
            return max(0.0, self._locked_until.get(client, 0.0) - self.clock())

    def failed(self, client: str) -> float:
        """Record a wrong password; the lock-out it starts, in seconds (0: none yet)."""
        now = self.clock()
        with self._lock:
            if len(self._failures) >= self.max_clients and client not in self._failures:
                self._forget_oldest(now)
            times = [t for t in self._failures.get(client, []) if now - t < self.window]
            times.append(now)
            self._failures[client] = times
            excess = len(times) - self.free_attempts
            if excess <= 0:
                return 0.0
            lock = min(self.max_lock, self.base_lock * 2 ** min(excess - 1, 30))
            self._locked_until[client] = now + lock
            return lock

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)
            self._locked_until.pop(client, None)

    def _forget_oldest(self, now: float) -> None:
        # Bounded memory under a many-address attack: drop clients whose window has passed, else the oldest.
        stale = [c for c, ts in self._failures.items() if not ts or now - ts[-1] >= self.window]
        for c in stale or sorted(self._failures, key=lambda c: self._failures[c][-1])[: self.max_clients // 10 or 1]:
            self._failures.pop(c, None)
            if self._locked_until.get(c, 0.0) <= now:
                self._locked_until.pop(c, None)


class StaffSessions:
    """Staff logins, by Gradio session id, each bound to the address that logged in.

    Kept apart from Gradio's session store on purpose: that store drops its oldest sessions past its
    capacity, and anyone can make new sessions (from enough addresses, past the per-client cap), which
    would log staff out. Only a correct password adds an entry, so this one cannot be flooded. A login
    lapses after ``idle_seconds`` without a staff action (as an idle browser session is forgotten); past
    ``capacity`` logins the least recently used goes."""

    def __init__(self, idle_seconds: float = 30 * 60, capacity: int = 256,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if idle_seconds <= 0 or capacity < 1:
            raise ValueError(f"bad staff session policy: idle_seconds={idle_seconds}, capacity={capacity}")
        self.idle_seconds = idle_seconds
        self.capacity = capacity
        self.clock = clock
        self._lock = threading.Lock()
        self._logins: dict[str, tuple[str, float]] = {}  # session id -> (address, last used)

    def grant(self, session: str | None, address: str) -> bool:
        """Record a login (after a correct password); False when there is no session id to bind it to."""
        if not session:
            return False
        with self._lock:
            self._logins.pop(session, None)  # re-inserted last: the dict's order is least recently used first
            self._logins[session] = (address, self.clock())
            while len(self._logins) > self.capacity:
                self._logins.pop(next(iter(self._logins)))
        return True

    def granted(self, session: str | None, address: str) -> bool:
        """Whether ``session`` is logged in from ``address``; a use refreshes the login."""
        if not session:
            return False
        now = self.clock()
        with self._lock:
            entry = self._logins.get(session)
            if entry is None:
                return False
            if now - entry[1] >= self.idle_seconds:
                del self._logins[session]
                return False
            if not hmac.compare_digest(entry[0], address):
                return False  # the session's id, held at another address: a bearer token grants nothing
            del self._logins[session]
            self._logins[session] = (entry[0], now)
            return True

    def revoke(self, session: str | None, address: str) -> bool:
        """Log ``session`` out, only from the address that logged in; whether it was logged in there."""
        if not self.granted(session, address):
            return False
        with self._lock:
            self._logins.pop(str(session), None)
        return True


def admin_password(env: MutableMapping[str, str] | None = None) -> str | None:
    """The staff password from ``ASSISTANT_ADMIN_PASSWORD`` (read by ``config.Settings`` when called);
    None (management off) when unset or blank; ``ConfigError`` when it is not one printable line."""
    from .config import Settings  # here, not at import: config imports the answering modules

    return Settings.from_env(env, only={"admin_password"}).admin_password


_UNSAFE = re.compile(r"[^\w\-.()（）\[\] ]+")


def sanitize_filename(name: str) -> str:
    """A safe file name from an uploaded one: no directories, no ``..``, no control characters.

    Letters of any script (Chinese too), digits, ``_ - . ( ) [ ]`` and spaces are kept; the rest
    becomes ``_``. Raises ``DocumentError`` when nothing usable is left or the type is unsupported.
    """
    original = name
    name = unicodedata.normalize("NFC", name or "")
    name = re.split(r"[\\/]", name)[-1]  # basename, for both separators
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = _UNSAFE.sub("_", name)
    name = re.sub(r"\.{2,}", ".", name).strip(" .")
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem.strip("_ "):
        raise DocumentError(original or "upload", "unusable file name")
    suffix = suffix.lower()
    if f".{suffix}" not in UPLOAD_SUFFIXES:
        raise DocumentError(original, f"unsupported file type '.{suffix}' (allowed: {' '.join(UPLOAD_SUFFIXES)})")
    stem = stem[:120].rstrip(" .")
    return f"{stem}.{suffix}"


@dataclass(frozen=True)
class SavedUpload:
    """An upload copied into the corpus, and the copy kept of the file it replaced (if any)."""

    path: Path
    previous: Path | None


def store_upload(src: Path, original_name: str, corpus_dir: Path, limit: int = MAX_UPLOAD_BYTES) -> SavedUpload:
    """Copy an uploaded file into ``corpus_dir`` under a sanitized name.

    A file of that name already there is first copied to ``corpus/.versions/`` (``corpus_files``), so
    an upload never silently destroys a document.
    """
    name = sanitize_filename(original_name)
    size = src.stat().st_size
    if size > limit:
        raise DocumentError(name, f"file is {size / 1048576:.1f} MB; the limit is {limit / 1048576:.0f} MB")
    if size == 0:
        raise DocumentError(name, "file is empty")
    corpus_dir.mkdir(parents=True, exist_ok=True)
    dest = (corpus_dir / name).resolve()
    if dest.parent != corpus_dir.resolve():
        raise DocumentError(name, "unusable file name")
    tmp = dest.with_name(f".{dest.name}.upload")
    with src.open("rb") as fin, tmp.open("wb") as fout:
        while block := fin.read(1 << 20):
            fout.write(block)
    previous = keep_version(dest, corpus_dir)
    tmp.replace(dest)
    return SavedUpload(dest, previous)


def save_upload(src: Path, original_name: str, corpus_dir: Path, limit: int = MAX_UPLOAD_BYTES) -> Path:
    """``store_upload``, returning only the saved path."""
    return store_upload(src, original_name, corpus_dir, limit).path


_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])/(?:[^\s/'\"]+/)+([^\s/'\"]*)")


def without_paths(message: str) -> str:
    """``message`` with absolute file paths cut to their last part: users never see the server's folders."""
    return _ABSOLUTE_PATH.sub(lambda m: m.group(1) or "…", message)


def friendly_error(exc: BaseException, lang: str = "en") -> str:
    """A one-line message for a user, without server paths; ``AssistantError`` messages are shown as they are."""
    return without_paths(_friendly(exc, lang))


def _friendly(exc: BaseException, lang: str) -> str:
    if isinstance(exc, QuestionError):
        return str(exc)
    if isinstance(exc, ConfigError):
        return strings.text("errors.invalid", lang, error=exc)
    if isinstance(exc, IndexMismatchError):
        return strings.text("errors.index_mismatch", lang, reason=exc.reason)
    if isinstance(exc, IndexRebuildingError):
        return strings.text("errors.rebuilding", lang, reason=exc.reason)
    if isinstance(exc, StoreError):
        return strings.text("errors.store", lang, error=exc)
    if isinstance(exc, LLMError):
        return strings.text("errors.llm", lang)
    if isinstance(exc, AssistantError):
        return str(exc)
    return strings.text("errors.internal", lang)


def error_status(exc: AssistantError) -> int:
    """HTTP status for one of our errors."""
    if isinstance(exc, StoreError):
        return 503
    if isinstance(exc, LLMError):
        return 502
    return 400


# --------------------------------------------------------------------------- JSON API


class Filters(BaseModel):
    """Optional search filters; unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid")

    doc_id: StrictStr | list[StrictStr] | None = None
    source: StrictStr | list[StrictStr] | None = None
    outlet: StrictStr | list[StrictStr] | None = None
    language: StrictStr | list[StrictStr] | None = None
    date_from: StrictStr | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    date_to: StrictStr | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$")

    @field_validator("date_from", "date_to")
    @classmethod
    def _real_date(cls, value: str | None) -> str | None:
        # The pattern admits 2025-13-45 and 0000-00-00: both are refused here, the same way.
        if value is not None:
            try:
                date.fromisoformat(value)
            except ValueError:
                raise ValueError(f"not a real date: {value!r} (YYYY-MM-DD)") from None
        return value


class AskRequest(BaseModel):
    """Body of ``POST /api/ask``."""

    model_config = ConfigDict(extra="forbid")

    question: StrictStr = Field(..., max_length=8000)
    history: Annotated[list[Annotated[StrictStr, Field(max_length=8000)]], Field(max_length=50)] = []
    filters: Filters | None = None
    k: StrictInt | None = Field(None, ge=1, le=50)
    stream: StrictBool = False  # server-sent events (see ``ask_events``)

    @field_validator("question")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value


def _validation_message(exc: RequestValidationError) -> tuple[int, str]:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return 400, "malformed JSON body"
    if any(tuple(e.get("loc", ())) == ("body",) for e in errors):
        return 400, "expected a JSON object body (Content-Type: application/json)"
    parts = []
    for e in errors[:5]:
        loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
        msg = str(e.get("msg", "invalid value")).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    return 422, "; ".join(parts) or "invalid request"


def sse(event: str, data: dict[str, Any]) -> str:
    """One server-sent event: ``event: NAME`` and its JSON ``data`` line."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def ask_events(assistant: Any, guard: ReadWriteLock, body: AskRequest) -> StreamingResponse:
    """``POST /api/ask`` with ``"stream": true``: ``text/event-stream`` of ``token`` events
    (``{"text": ...}``, the LLM's reply as it is generated) and one last ``answer`` event (``Answer.to_dict()``,
    the reply after the citation check: what the non-streamed request returns). Without an LLM, or when
    the extractive answer abstains, the ``answer`` event is the only one.

    The question is answered up to its first event before the response starts, so a bad request or an
    empty index still gets its JSON error and status; a failure after that ends the stream with an
    ``error`` event (``{"error": ...}``).
    """
    from .llm import stream_answer

    filters = body.filters.model_dump(exclude_none=True) if body.filters else None

    def run(on_token: Callable[[str], None]) -> Any:
        return assistant.ask(
            body.question, history=body.history, filters=filters, k=body.k, on_token=on_token, read_lock=guard.read
        )

    items = stream_answer(run)
    first = next(items)  # raises the ask's error before any byte is sent

    def events() -> Iterator[str]:
        item: Any = first
        try:
            while True:
                yield sse("token", {"text": item}) if isinstance(item, str) else sse("answer", item.to_dict())
                item = next(items, None)
                if item is None:
                    return
        except Exception as exc:
            if not isinstance(exc, AssistantError):
                log.exception("streamed answer failed")
            yield sse("error", {"error": friendly_error(exc)})

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy buffering of the events
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


def _documents_payload(assistant: Any) -> list[dict[str, Any]]:
    docs = []
    for rec in assistant.documents():
        d = asdict(rec)
        d.pop("path", None)  # the server's file system layout is not the client's business
        docs.append(d)
    return docs


def create_api(assistant: Any) -> FastAPI:
    """The FastAPI app with the JSON API routes and error handlers (no UI)."""
    guard = guard_for(assistant)
    app = FastAPI(
        title="Alliance assistant API",
        description="Cited answers over industry-education alliance documents (Chinese/English).",
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        status, message = _validation_message(exc)
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(AssistantError)
    async def _ours(request: Request, exc: AssistantError) -> JSONResponse:
        return JSONResponse({"error": without_paths(str(exc))}, status_code=error_status(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return JSONResponse({"error": "internal error"}, status_code=500)

    @app.post("/api/ask", response_model=None)
    def ask(body: AskRequest) -> dict[str, Any] | StreamingResponse:
        """Answer a question with cited passages; returns ``Answer.to_dict()``, or with ``"stream": true``
        server-sent events: ``token`` events as the LLM writes, then the ``answer`` event."""
        if body.stream:
            return ask_events(assistant, guard, body)
        filters = body.filters.model_dump(exclude_none=True) if body.filters else None
        answer = assistant.ask(body.question, history=body.history, filters=filters, k=body.k, read_lock=guard.read)
        result: dict[str, Any] = answer.to_dict()
        return result

    @app.get("/api/documents")
    def documents() -> dict[str, Any]:
        """The indexed documents with their metadata and chunk counts."""
        with guard.read():
            docs = _documents_payload(assistant)
        return {"count": len(docs), "documents": docs}

    @app.get("/api/health")
    def health() -> JSONResponse:
        """Status, document and chunk counts, and the embedding model."""
        model = assistant.config.embedding.model_name
        mode = "llm" if assistant.config.llm is not None else "extractive"
        try:
            with guard.read():
                docs = assistant.store.document_count()
                chunks = assistant.store.count()
        except Exception as exc:  # the index is unreadable: report it, do not crash
            log.warning("health check failed: %s", exc)
            return JSONResponse({"status": "error", "error": friendly_error(exc), "model": model}, status_code=503)
        status = "ok" if docs else "empty"
        payload: dict[str, Any] = {"status": status, "documents": docs, "chunks": chunks, "model": model, "mode": mode}
        job = upgrade_of(assistant)
        if job is not None:
            payload["upgrade"] = job.to_dict()
        return JSONResponse(payload)

    known = {"ask", "documents", "health"}

    @app.api_route("/api/{rest:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"], include_in_schema=False)
    def _unknown(rest: str) -> JSONResponse:
        if rest.strip("/") in known:
            return JSONResponse({"error": "method not allowed"}, status_code=405)
        return JSONResponse({"error": f"no such endpoint: /api/{rest}"}, status_code=404)

    return app
