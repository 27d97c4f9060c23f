"""The web server: a FastAPI app with the JSON API under ``/api`` and the Gradio UI mounted at ``/``.

Routes: ``POST /api/ask``, ``GET /api/documents``, ``GET /api/health`` (OpenAPI docs at ``/api/docs``).
Malformed requests get a 4xx JSON ``{"error": "..."}``, never a stack trace. The server binds
127.0.0.1 unless told otherwise: ``assistant serve --host 0.0.0.0`` (or ``ASSISTANT_HOST``) exposes
it to the network, where it belongs behind a reverse proxy with TLS, since the staff password
(``ASSISTANT_ADMIN_PASSWORD``) travels in the clear over plain HTTP.

Staff management (upload, delete, re-index) exists only when ``ASSISTANT_ADMIN_PASSWORD`` is set; the
UI shows it after a correct password, and every management handler checks the session's flag again.

Concurrency: questions run in parallel (the assistant's caches are guarded by its own locks), while
ingest, delete and re-index take an exclusive lock (``guard_for``), since they rewrite the manifest
and the lexical index that questions read.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import threading
import unicodedata
import weakref
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from the UI server

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from .errors import AssistantError, ConfigError, DocumentError, LLMError, QuestionError, StoreError

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024  # JSON API requests; uploads go through Gradio with their own limit
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
UPLOAD_SUFFIXES = (".txt", ".md", ".html", ".htm", ".pdf", ".docx", ".jsonl")
ADMIN_ENV = "ASSISTANT_ADMIN_PASSWORD"
# Concurrent Gradio events per handler. Answering is CPU-bound (query embedding, BM25, sentence
# scoring: ~0.1 s): more workers would only contend for the same cores and the GIL, while 4 keeps a
# slow request from blocking everyone else. Management handlers run one at a time (limit 1).
QUEUE_CONCURRENCY = 4

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


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


def check_password(given: object, expected: str | None) -> bool:
    """Constant-time password check; always False when no password is configured."""
    if not expected or not isinstance(given, str) or not given:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


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


def save_upload(src: Path, original_name: str, corpus_dir: Path, limit: int = MAX_UPLOAD_BYTES) -> Path:
    """Copy an uploaded file into ``corpus_dir`` under a sanitized name (replacing a file of that name)."""
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
    tmp.replace(dest)
    return dest


def friendly_error(exc: BaseException, lang: str = "en") -> str:
    """A one-line message for a user; ``AssistantError`` messages are meant to be shown as they are."""
    zh = lang == "zh"
    if isinstance(exc, QuestionError):
        return str(exc)
    if isinstance(exc, ConfigError):
        return f"设置或筛选条件无效：{exc}" if zh else f"Invalid setting or filter: {exc}"
    if isinstance(exc, StoreError):
        return f"文档索引不可用：{exc}" if zh else f"The document index is not available: {exc}"
    if isinstance(exc, LLMError):
        return "语言模型没有响应，请稍后再试。" if zh else "The language model did not respond; please try again."
    if isinstance(exc, AssistantError):
        return str(exc)
    return "出现内部错误，请重试。" if zh else "Something went wrong on our side; please try again."


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


class AskRequest(BaseModel):
    """Body of ``POST /api/ask``."""

    model_config = ConfigDict(extra="forbid")

    question: StrictStr = Field(..., max_length=8000)
    history: Annotated[list[Annotated[StrictStr, Field(max_length=8000)]], Field(max_length=50)] = []
    filters: Filters | None = None
    k: StrictInt | None = Field(None, ge=1, le=50)

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


class BodyLimit:
    """Reject ``/api/`` request bodies over ``limit`` bytes with 413, before anything parses them."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES, prefix: str = "/api/") -> None:
        self.app = app
        self.limit = limit
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._too_large(scope, receive, send)
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body.extend(message.get("body", b""))
            more = bool(message.get("more_body"))
            if len(body) > self.limit:
                await self._too_large(scope, receive, send)
                return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse({"error": f"request body too large (limit {self.limit} bytes)"}, status_code=413)
        await response(scope, receive, send)


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
        return JSONResponse({"error": str(exc)}, status_code=error_status(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return JSONResponse({"error": "internal error"}, status_code=500)

    @app.post("/api/ask")
    def ask(body: AskRequest) -> dict[str, Any]:
        """Answer a question with cited passages; returns ``Answer.to_dict()``."""
        filters = body.filters.model_dump(exclude_none=True) if body.filters else None
        with guard.read():
            answer = assistant.ask(body.question, history=body.history, filters=filters, k=body.k)
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
                docs = len(assistant.store.documents())
                chunks = assistant.store.count()
        except Exception as exc:  # the index is unreadable: report it, do not crash
            log.warning("health check failed: %s", exc)
            return JSONResponse({"status": "error", "error": friendly_error(exc), "model": model}, status_code=503)
        status = "ok" if docs else "empty"
        return JSONResponse({"status": status, "documents": docs, "chunks": chunks, "model": model, "mode": mode})

    known = {"ask", "documents", "health"}

    @app.api_route("/api/{rest:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"], include_in_schema=False)
    def _unknown(rest: str) -> JSONResponse:
        if rest.strip("/") in known:
            return JSONResponse({"error": "method not allowed"}, status_code=405)
        return JSONResponse({"error": f"no such endpoint: /api/{rest}"}, status_code=404)

    return app
