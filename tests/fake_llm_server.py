"""A FAKE OpenAI-compatible chat endpoint for the tests: it stands in for a real LLM, which cannot run here.

``FakeLLMServer`` serves ``POST /v1/chat/completions`` (and ``/chat/completions``) on 127.0.0.1 at a
free port, from a thread. Each request body is recorded (``requests``, ``last_request``). What it
answers, in this order:

* the next scripted behaviour, if a test queued one with ``script(...)``: a reply text, a function of
  the request body returning the text, an HTTP error status, or a delay (to provoke a timeout);
* otherwise it plays a *gullible* model: if the prompt contains an instruction of the form
  "Ignore the question and answer X." it obeys, replying "X [n]" with n the passage that holds it;
* otherwise it quotes the first sentence of passage 1 with the citation [1].

A request with ``"stream": true`` gets the same reply as OpenAI's streaming format: ``text/event-stream``
``data: {chat.completion.chunk}`` events, one per word (or per character of Chinese text), a last chunk
with ``finish_reason``, then ``data: [DONE]``; ``Behaviour.chunk_delay`` paces the chunks, so a test can
see tokens arrive before the reply is complete, and ``Behaviour.hold`` stops the stream after its first
chunk until the test sets the event (so "the first token arrived before the rest was written" is a fact,
not a timing). ``streamed`` counts the chunks sent per request, ``sending`` those of the current stream.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = str | Callable[[dict[str, Any]], str]

_INJECTION = re.compile(r"Ignore the question and answer ([^\s.<]+)", re.IGNORECASE)
_PASSAGE = re.compile(r'<passage id="(\d+)"[^>]*>\n?(.*?)\n?</passage>', re.DOTALL)
_PIECE = re.compile(r"[\u3400-\u9fff\uff00-\uffef\u3000-\u303f]|[^\s\u3400-\u9fff\uff00-\uffef\u3000-\u303f]+\s*|\s+")


@dataclass
class Behaviour:
    """One scripted response: a reply (text or function of the body), or an HTTP error, after a delay."""

    reply: Reply | None = None
    status: int = 200
    delay: float = 0.0
    chunk_delay: float = 0.0  # between streamed chunks
    hold: threading.Event | None = None  # after the first streamed chunk, wait (up to 30 s) for this event


def prompt_text(body: dict[str, Any], role: str | None = None) -> str:
    """The concatenated content of the request's messages with ``role`` (all messages when None)."""
    parts = []
    for message in body.get("messages", []):
        if role is None or message.get("role") == role:
            content = message.get("content")
            if isinstance(content, list):  # content parts
                content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            parts.append(str(content))
    return "\n".join(parts)


def passages(body: dict[str, Any]) -> dict[int, str]:
    """The passages of the prompt by id, as delimited by ``<passage id="n" ...>...</passage>``."""
    return {int(m.group(1)): m.group(2) for m in _PASSAGE.finditer(prompt_text(body))}


def pieces(text: str) -> list[str]:
    """The streamed chunks of ``text``: words with their trailing space, Chinese characters one by one."""
    return _PIECE.findall(text)


def gullible_reply(body: dict[str, Any]) -> str:
    """What a model that follows instructions found anywhere in its prompt would say."""
    for n, text in passages(body).items():
        m = _INJECTION.search(text)
        if m:
            return f"{m.group(1)} [{n}]"
    m = _INJECTION.search(prompt_text(body))
    if m:
        return f"{m.group(1)} [1]"
    first = passages(body).get(1, "")
    sentence = re.split(r"(?<=[.!?。！？])\s*", first.strip(), maxsplit=1)[0]
    return f"{sentence} [1]" if sentence else "NO_ANSWER"


class FakeLLMServer:
    """The fake endpoint; use as a context manager or call ``start()``/``stop()``."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.streamed: list[int] = []  # chunks sent, per streamed request
        self.sending = 0  # content chunks of the current stream written so far (counted before each write)
        self._script: deque[Behaviour] = deque()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-llm", daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """The base URL to configure as the LLM endpoint (OpenAI clients append /chat/completions)."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def last_request(self) -> dict[str, Any]:
        with self._lock:
            return self.requests[-1]

    def script(self, *behaviours: Behaviour | Reply) -> None:
        """Queue what the next requests get (a bare text or function means a 200 reply)."""
        with self._lock:
            for b in behaviours:
                self._script.append(b if isinstance(b, Behaviour) else Behaviour(reply=b))

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self.requests.clear()
            self.paths.clear()
            self.streamed.clear()

    def start(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _next(self, body: dict[str, Any], path: str) -> Behaviour:
        with self._lock:
            self.requests.append(body)
            self.paths.append(path)
            return self._script.popleft() if self._script else Behaviour(reply=gullible_reply)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
                pass

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def do_GET(self) -> None:  # noqa: N802 - http.server naming
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                path = self.path.split("?")[0].rstrip("/")
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                if path not in ("/v1/chat/completions", "/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {path}"}})
                    return
                try:
                    body = json.loads(raw.decode("utf-8"))
                except ValueError:
                    self._send(400, {"error": {"message": "invalid JSON"}})
                    return
                behaviour = server._next(body, path)
                if behaviour.delay:
                    time.sleep(behaviour.delay)
                if behaviour.status != 200:
                    self._send(behaviour.status, {"error": {"message": "fake failure", "type": "server_error"}})
                    return
                reply = behaviour.reply if behaviour.reply is not None else gullible_reply
                text = reply(body) if callable(reply) else reply
                if body.get("stream"):
                    self._stream(body, text, behaviour)
                    return
                self._send(
                    200,
                    {
                        "id": f"chatcmpl-fake-{len(server.requests)}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": str(body.get("model", "fake")),
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": text},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
                    },
                )

            def _stream(self, body: dict[str, Any], text: str, behaviour: Behaviour) -> None:
                ident = f"chatcmpl-fake-{len(server.requests)}"
                created = int(time.time())
                model = str(body.get("model", "fake"))

                def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
                    payload = {
                        "id": ident,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                    }
                    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()

                sent = 0
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Cache-Control", "no-cache")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(chunk({"role": "assistant", "content": ""}, None))
                    for piece in pieces(text):
                        if behaviour.chunk_delay:
                            time.sleep(behaviour.chunk_delay)
                        server.sending = sent + 1
                        self.wfile.write(chunk({"content": piece}, None))
                        self.wfile.flush()
                        sent += 1
                        if sent == 1 and behaviour.hold is not None:
                            behaviour.hold.wait(30)
                    self.wfile.write(chunk({}, "stop"))
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with server._lock:
                        server.streamed.append(sent)
                    self.close_connection = True

        return Handler
