"""The web server's guards: what every request passes before the app sees it.

``RequestGate`` (ASGI middleware) closes the routes we do not use, checks the host a request is
addressed to, limits body sizes and times, and meters what one client address may start (events,
bursts, questions at once, new sessions, uploads); ``guarded_http`` is uvicorn's httptools protocol
with a time and size limit on a request's head and a cap on connections per address; ``CappedStream``
cuts what one write may put in the server's log. Kept apart from ``server.py`` (the app and its
routes) because these are transport rules, tested on their own with exact cases.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from fastapi.responses import JSONResponse

from . import strings

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024  # JSON API requests; uploads go through Gradio with their own limit
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_FILES_PER_UPLOAD = 10  # files in one upload request (the staff upload takes several at once)
MAX_FILES_PER_WINDOW = 200  # files one client address may upload per 10 minutes (each is a cache folder)
MAX_GRADIO_BODY_BYTES = 1024 * 1024  # other Gradio requests: a page load carries the saved conversations
OPEN_GRADIO_ENDPOINTS = frozenset({"ask"})  # Gradio-client endpoints callable by name (documented)
# Per client address a minute: questions and other events (a question is one, a page load three), and
# per 10 minutes: new browser sessions (each a place in the server's session store, which keeps 1,000
# and drops the least recently used: a script making sessions would push out others' conversations).
# The re-attack kept the shared queue full with about 60 of the costliest questions (~0.8 s each) a
# minute from one address; 30 leaves twice that margin, and a person asks far fewer.
MAX_EVENTS_PER_MINUTE = 30
MAX_ASKS_IN_FLIGHT = 4  # JSON API questions one address may have running at once
BODY_TIMEOUT = 20.0  # seconds between the parts of a request body
MAX_NEW_SESSIONS_PER_WINDOW = 200

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def language_of(headers: dict[bytes, bytes]) -> str:
    """"zh" when the client's first preferred language (``Accept-Language``) is Chinese, else "en"."""
    first = headers.get(b"accept-language", b"").split(b",")[0].strip().lower()
    return "zh" if first.startswith(b"zh") else "en"


def refusal(key: str, headers: dict[bytes, bytes], **values: object) -> str:
    """The gate's message ``key`` (``strings.toml``, section ``gate``) in the client's language."""
    return strings.text(f"gate.{key}", language_of(headers), **values)


def body_limit(path: str) -> int:
    """The largest request body accepted on ``path``: uploads get the upload limit, the rest stay small."""
    if path.startswith("/api/"):
        return MAX_BODY_BYTES
    if path.startswith("/gradio_api/upload"):
        return MAX_UPLOAD_BYTES * MAX_FILES_PER_UPLOAD + 64 * 1024  # multipart headers and boundaries
    return MAX_GRADIO_BODY_BYTES


_CLOSED_GRADIO = ("run/", "api/", "proxy=", "run-history", "runs", "vibe-", "undo-vibe-edit", "dev/", "profiling/",
                  "process_recording", "stream/", "mcp", "custom_component/",
                  # Unused here, and open to anyone: a server function of a component (``component_server``
                  # makes a session for any hash it is sent, evicting real ones, staff's too), and
                  # ``deep_link``, which writes a session's state to disk, unmetered and never deleted.
                  "component_server", "deep_link")
# Outside /gradio_api/: Gradio's request counts per handler (who logs in, uploads, deletes) for anyone.
_CLOSED_PATHS = ("/monitoring",)
# ``file=`` (or its alias ``file/``) followed by a URL: Gradio fetches any public URL and relays it (an
# open relay that hides who asks). Our app serves only files it wrote or Gradio cached, which are paths.
_FILE_URL = re.compile(r"^/(?:gradio_api/)?file[=/][A-Za-z][A-Za-z0-9+.-]*:")


def closed_route(path: str) -> bool:
    """Gradio routes that run handlers outside the queue or by name, or serve features we do not use.

    The browser only joins the queue (``/gradio_api/queue/join``); ``run/<name>``, ``api/<name>`` and
    ``call/<name>`` would let a script call any handler directly (23 password guesses a second were
    measured). Only the documented ``ask`` endpoint of the Gradio client stays callable by name. Also
    closed: ``file=`` or ``file/`` with a URL (Gradio would fetch and relay it), ``/monitoring`` (request
    counts), component server functions and deep links.
    """
    if path.startswith(_CLOSED_PATHS) or _FILE_URL.match(path):
        return True
    if not path.startswith("/gradio_api/"):
        return False
    rest = path.removeprefix("/gradio_api/")
    if rest.startswith("call/"):
        name = rest.removeprefix("call/").removeprefix("v2/").split("/")[0]
        return name not in OPEN_GRADIO_ENDPOINTS
    return rest.startswith(_CLOSED_GRADIO)


class ClientQuota:
    """How much (bytes, files, items) each client address may use of something anonymous per ``window``
    seconds: Gradio's upload route, conversation exports, feedback."""

    def __init__(self, limit: int = 100 * 1024 * 1024, window: float = 600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._lock = threading.Lock()
        self._used: dict[str, list[tuple[float, int]]] = {}

    def take(self, client: str, size: int) -> bool:
        """Count ``size`` for ``client``; False (nothing counted) when that would pass the limit."""
        now = self.clock()
        with self._lock:
            if len(self._used) > 10_000:  # bounded under a many-address attack
                self._used = {c: u for c, u in self._used.items() if u and now - u[-1][0] < self.window}
            recent = [(t, n) for t, n in self._used.get(client, []) if now - t < self.window]
            if sum(n for _, n in recent) + size > self.limit:
                self._used[client] = recent
                return False
            recent.append((now, size))
            self._used[client] = recent
            return True


def client_key(address: str) -> str:
    """The client a per-client limit counts: its address, or for IPv6 its /64 network (one host
    is usually given a whole /64, so single addresses would be free for the asking)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


_EVENT_PATHS = ("/api/ask", "/gradio_api/queue/join", "/gradio_api/call/")


def is_event(method: str, path: str) -> bool:
    """A request that starts work: a question (JSON API, Gradio client) or any Gradio event."""
    return method == "POST" and path.rstrip("/").startswith(_EVENT_PATHS)


def session_of(body: bytes | bytearray, key: str = "session_hash") -> str | None:
    """The ``session_hash`` a Gradio queue join names, or another string ``key`` of a JSON object body
    (None: not a JSON object naming one)."""
    try:
        value = json.loads(body).get(key)
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


_SESSION_IN_BODY = ("/gradio_api/queue/join", "/gradio_api/cancel", "/gradio_api/call/")
_HEARTBEAT = "/gradio_api/heartbeat/"
_CALL_RESULT = re.compile(r"^/gradio_api/call/(?:v2/)?[^/]+/([^/]+)$")


def sessions_named(method: str, path: str, query: bytes, body: bytes | bytearray = b"") -> list[str]:
    """The Gradio sessions a request acts on: a queue join, a cancel or a ``call`` names one in its body,
    the result stream (``queue/data``) in its query (every copy: the app reads one of them), the
    heartbeat, whose end closes the session, in its path, and so does a ``call`` result stream: its
    last part is an event id, or, when no event has that id, read by Gradio as a session id."""
    path = path.rstrip("/")
    if method in ("GET", "HEAD") and path == "/gradio_api/queue/data":
        return [v for k, v in parse_qsl(query.decode("latin-1"), keep_blank_values=True) if k == "session_hash"]
    if method in ("GET", "HEAD") and path.startswith(_HEARTBEAT):
        return [path.removeprefix(_HEARTBEAT)]
    if method in ("GET", "HEAD") and (result := _CALL_RESULT.match(path)):
        return [result.group(1)]
    if method == "POST" and path.startswith(_SESSION_IN_BODY):
        session = session_of(body)
        return [session] if session is not None else []
    return []


class SeenSessions:
    """Sessions (and ``call`` event ids) seen lately, each with the client that started it: at most
    ``capacity``, the least recently used forgotten first. A forgotten record lets anyone holding the
    id claim it, so records are only made within the new-session quota, and every use by their owner
    (a join, its result stream, its heartbeat) keeps them recent."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._seen: dict[str, str] = {}
        self._lock = threading.Lock()

    def is_new(self, session: str) -> bool:
        """Whether ``session`` was not seen lately."""
        with self._lock:
            return session not in self._seen

    def claim(self, session: str, client: str) -> None:
        """Remember ``session`` as ``client``'s, unless another client started it."""
        with self._lock:
            owner = self._seen.pop(session, None)
            self._seen[session] = owner or client  # most recent last
            while len(self._seen) > self.capacity:
                del self._seen[next(iter(self._seen))]

    def elsewhere(self, session: str, client: str) -> bool:
        """Whether ``session`` was started by a client other than ``client``; its owner's use keeps it recent."""
        with self._lock:
            owner = self._seen.get(session)
            if owner == client:
                del self._seen[session]
                self._seen[session] = owner
        return owner is not None and owner != client


def upload_parts(headers: dict[bytes, bytes], body: bytes | bytearray) -> int:
    """How many parts (files and fields) a multipart body holds, from its boundary; 0 if it is not one."""
    kind = headers.get(b"content-type", b"")
    found = re.search(rb'boundary="?([^";]+)"?', kind)
    if not kind.lower().startswith(b"multipart/") or found is None:
        return 0
    return max(0, body.count(b"--" + found.group(1)) - 1)


# Sent with every response: no sniffing a download into HTML, no framing by other sites, no full
# URLs (with a conversation's question in them) in other sites' Referer.
SECURITY_HEADERS = ((b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"SAMEORIGIN"),
                    (b"referrer-policy", b"same-origin"))


def same_origin(headers: dict[bytes, bytes]) -> bool:
    """Whether a request's ``Origin`` (if any) names the host it was sent to (ports aside: a proxy's
    ``Host`` often has none)."""
    origin = headers.get(b"origin")
    if origin is None:
        return True
    host = host_of(headers.get(b"host", b"").decode("latin-1"))
    return bool(host) and host_of(origin.decode("latin-1").partition("://")[2]) == host


# Headers a request may carry once: a check reading one copy while the app reads another is bypassed.
_SINGLE_HEADERS = (b"host", b"x-forwarded-host", b"origin", b"content-length", b"content-type")


def host_of(value: str) -> str:
    """The host name of a ``Host`` header's value (port, brackets, case and a final dot dropped)."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    name, colon, port = value.rpartition(":")
    return (name if colon and port.isdigit() else value).rstrip(".")


def host_allowed(value: str, allowed: Collection[str]) -> bool:
    """Whether a request addressed to ``value`` (a ``Host`` header) may be served.

    ``localhost`` and IP addresses always may: a page of another site cannot make its visitors'
    browsers send those (DNS rebinding needs a name of the attacker's). Any other name must be in
    ``allowed``, as ``*`` (any name), itself, or ``.parent`` (the parent and its subdomains).
    """
    name = host_of(value)
    if not name:
        return False
    if name == "localhost" or "*" in allowed or name in allowed:
        return True
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    return any(a.startswith(".") and (name == a[1:] or name.endswith(a)) for a in allowed)


def count_down(counts: dict[str, int], key: str) -> None:
    """One fewer for ``key`` (dropped at zero, so the table holds only clients with something open)."""
    left = counts.pop(key, 1) - 1
    if left > 0:
        counts[key] = left


def burst_quota(events_per_minute: int) -> ClientQuota:
    """A third of a minute's events within any 10 s: the whole minute's at once queued 30 of the
    costliest questions ahead of everyone (a victim's question waited 21 s; a third: about 7 s)."""
    return ClientQuota(limit=max(1, events_per_minute // 3), window=10.0)


def client_limits(events_per_minute: int = MAX_EVENTS_PER_MINUTE, questions_at_once: int = MAX_ASKS_IN_FLIGHT,
                  new_sessions: int = MAX_NEW_SESSIONS_PER_WINDOW) -> dict[str, Any]:
    """``RequestGate``'s per-client limits (``ASSISTANT_EVENTS_PER_MINUTE``, ``ASSISTANT_QUESTIONS_AT_ONCE``,
    ``ASSISTANT_NEW_SESSIONS_PER_10_MINUTES``): clients behind one NAT address share them."""
    return {"events": ClientQuota(limit=events_per_minute, window=60.0), "burst": burst_quota(events_per_minute),
            "sessions": ClientQuota(limit=new_sessions), "asks_in_flight": questions_at_once}


def names(setting: str | None) -> tuple[str, ...]:
    """A comma-separated setting (``Settings.allowed_hosts``, ``trusted_proxies``) as a tuple."""
    return tuple(n for n in (setting or "").split(",") if n)


MAX_LOG_WRITE = 8192  # bytes (UTF-8) of one write to the server's stderr


class CappedStream:
    """A text stream whose single writes are cut to ``cap`` bytes (UTF-8).

    Gradio prints a traceback for any value a component refuses, the value included: one anonymous
    event with a 900,000-character dropdown value added 903 KB to the log (third security review)."""

    def __init__(self, stream: Any, cap: int = MAX_LOG_WRITE) -> None:
        self.stream = stream
        self.cap = cap

    def write(self, text: str) -> int:
        if len(text) * 4 > self.cap and len(encoded := text.encode("utf-8", "replace")) > self.cap:
            kept = encoded[: self.cap].decode("utf-8", "ignore")  # in bytes: an emoji is four
            text = f"{kept}... [{len(text) - len(kept)} characters cut]\n"
        return int(self.stream.write(text))

    def __getattr__(self, name: str) -> Any:  # flush, fileno, isatty, encoding...
        return getattr(self.stream, name)


HEAD_TIMEOUT = 20.0  # seconds a connection may take to send a request's line and headers
MAX_HEAD_BYTES = 64 * 1024  # a request's line and headers
MAX_CONNECTIONS_PER_CLIENT = 128  # open connections of one address (a browser uses about 6)


def uvicorn_options(trusted_proxies: Collection[str]) -> dict[str, Any]:
    """uvicorn's options: ``X-Forwarded-For`` read only from the listed proxies' addresses, and the
    connection guards of ``guarded_http``.

    uvicorn's own default trusts 127.0.0.1, so any local process (or a browser page that reached the
    server by a rebound name) could give itself any client address and step around the per-address
    limits. With no proxy listed the header is ignored."""
    options: dict[str, Any] = {"proxy_headers": bool(trusted_proxies), "http": guarded_http(trusted_proxies)}
    if trusted_proxies:
        options["forwarded_allow_ips"] = list(trusted_proxies)
    return options


def guarded_http(trusted_proxies: Collection[str] = (), head_timeout: float = HEAD_TIMEOUT,
                 max_head: int = MAX_HEAD_BYTES, max_connections: int = MAX_CONNECTIONS_PER_CLIENT) -> type:
    """uvicorn's httptools protocol with what it lacks when the server faces clients itself (no proxy
    in front): a connection that has not sent its request's head within ``head_timeout`` seconds is
    closed, a head over ``max_head`` bytes gets 431 (uvicorn kept 25 MB of unfinished headers per
    connection), and one address holds at most ``max_connections`` connections (a proxy's any number).
    Without them a few thousand idle sockets from one client took the server's file descriptors."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    proxies = {client_key(p) for p in trusted_proxies if "/" not in p}
    networks = [ipaddress.ip_network(p) for p in trusted_proxies if "/" in p]
    open_by_client: dict[str, int] = {}

    def is_proxy(address: str) -> bool:
        if address in proxies:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in n for n in networks)

    class GuardedHttp(HttpToolsProtocol):
        _in_head = True
        _head_bytes = 0
        _head_timer: asyncio.TimerHandle | None = None
        _counted: str | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            address = client_key(str(self.client[0])) if self.client else ""
            if address and not is_proxy(address):
                if open_by_client.get(address, 0) >= max_connections:
                    transport.close()
                    return
                open_by_client[address] = open_by_client.get(address, 0) + 1
                self._counted = address
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._release()
            super().connection_lost(exc)

        def handle_websocket_upgrade(self) -> None:
            # The connection passes to the websocket protocol, and this one never hears it close.
            self._release()
            super().handle_websocket_upgrade()

        def _release(self) -> None:
            self._disarm()
            if self._counted is not None:
                count_down(open_by_client, self._counted)
                self._counted = None

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._in_head and not self.transport.is_closing():
                self._head_bytes += len(data)  # only bytes of a head still unfinished
                if self._head_bytes > max_head:
                    self.transport.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                                         b"content-length: 0\r\nconnection: close\r\n\r\n")
                    self.transport.close()
                elif self._head_timer is None:
                    self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_head, self._head_bytes = True, 0

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._disarm()
            super().on_headers_complete()

        def _arm(self) -> None:
            self._disarm()
            self._head_timer = self.loop.call_later(head_timeout, self._too_slow)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _too_slow(self) -> None:
            self._head_timer = None
            if self._in_head and not self.transport.is_closing():
                self.transport.close()

    return GuardedHttp


class RequestGate:
    """Outermost middleware: closes Gradio's direct-call routes, bounds every request body, and meters
    what an anonymous client may start (events a minute, new sessions per 10 minutes: 429 past them).

    Bodies over ``body_limit(path)`` get 413 before anything parses them (a declared Content-Length is
    refused at once; a chunked body is counted as it arrives). Uploads also count against a per-client
    quota of bytes and one of files (``ClientQuota``), since Gradio's upload route needs no login, and
    hold at most ``MAX_FILES_PER_UPLOAD`` files. Responses get ``SECURITY_HEADERS``; a request from
    another site's page gets no CORS permission (Gradio grants any origin once ``Host`` is not
    localhost, as behind a proxy), so other sites cannot read the API from their visitors' browsers.
    A request addressed to a host name that is not allowed (``host_allowed``) gets 400.
    """

    def __init__(self, app: ASGIApp, quota: ClientQuota | None = None, files: ClientQuota | None = None,
                 allowed_hosts: Collection[str] = (), events: ClientQuota | None = None,
                 sessions: ClientQuota | None = None, asks_in_flight: int = MAX_ASKS_IN_FLIGHT,
                 body_timeout: float = BODY_TIMEOUT, burst: ClientQuota | None = None,
                 live: Callable[[str], bool] | None = None) -> None:
        defaults = client_limits()
        self.app = app
        self.quota = quota or ClientQuota()
        self.files = files or ClientQuota(limit=MAX_FILES_PER_WINDOW)
        self.events = events or defaults["events"]
        self.burst = burst or defaults["burst"]
        self.sessions = sessions or defaults["sessions"]
        self.seen = SeenSessions()
        # Whether the app still holds a session (Gradio's session store). Such a session without a record
        # here had its record pushed out: claimed anew, its id would belong to whoever sent it next.
        self.live = live or (lambda session: False)
        self.asks_in_flight = asks_in_flight
        self.body_timeout = body_timeout
        self.in_flight: dict[str, int] = {}  # JSON API questions running, by client (event loop only)
        self.allowed_hosts = frozenset(allowed_hosts)
        self._reported: set[str] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        raw_headers = list(scope.get("headers") or [])
        headers = dict(raw_headers)
        # Two Host headers (RFC 9112: answer 400): the checks below would read one and Gradio the other.
        repeated = len(raw_headers) != len(headers) and any(
            sum(1 for k, _ in raw_headers if k == name) > 1 for name in _SINGLE_HEADERS)
        refused = "a header that may appear once appears twice" if repeated else (
            "this server does not answer to that host name" if self._unknown_host(headers) else "")
        if scope["type"] == "websocket":
            if refused:
                await send({"type": "websocket.close", "code": 1008})
            else:
                await self.app(scope, receive, send)
            return
        send = self._guarded(send, same_origin(headers))
        if refused:
            await self._refuse(scope, receive, send, 400, refused)
            return
        if closed_route(path):
            await self._refuse(scope, receive, send, 404, "no such endpoint")
            return
        client = client_key(str((scope.get("client") or ("unknown", 0))[0]))
        event = is_event(str(scope.get("method")), path)
        # The burst first: a request it refuses uses none of the minute's events.
        if event and not (self.burst.take(client, 1) and self.events.take(client, 1)):
            await self._refuse(scope, receive, send, 429, refusal("too_many_requests", headers))
            return
        if not (event and path.rstrip("/") == "/api/ask"):
            await self._admitted(scope, receive, send, path, headers, client, event)
            return
        if self.in_flight.get(client, 0) >= self.asks_in_flight:
            await self._refuse(scope, receive, send, 429, refusal("too_many_at_once", headers))
            return
        # Counted until its answer (or stream) ends: it holds a worker thread all that time.
        self.in_flight[client] = self.in_flight.get(client, 0) + 1
        try:
            await self._admitted(scope, receive, send, path, headers, client, event)
        finally:
            count_down(self.in_flight, client)

    async def _admitted(self, scope: Scope, receive: Receive, send: Send, path: str, headers: dict[bytes, bytes],
                        client: str, event: bool) -> None:
        """A request past the host, route and rate checks: its body is read and checked, then the app runs."""
        limit = body_limit(path)
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await self._refuse(scope, receive, send, 413, refusal("too_large", headers, limit=limit))
            return
        upload = path.startswith("/gradio_api/upload") and scope.get("method") == "POST"
        if upload and not self.quota.take(client, int(declared) if declared else limit):
            await self._refuse(scope, receive, send, 429, refusal("upload_quota", headers))
            return
        if scope.get("method") in ("GET", "HEAD", "OPTIONS") and declared is None:
            if self._foreign_session(self._sessions(scope, path, b""), client):
                await self._refuse(scope, receive, send, 403, refusal("foreign_session", headers))
                return
            await self._run(scope, receive, send, path)  # no body to count (Gradio's SSE streams stay streams)
            return
        body = bytearray()
        more = True
        while more:
            try:  # a body that stops coming would hold the connection (and its memory) for good
                message = await asyncio.wait_for(receive(), self.body_timeout)
            except TimeoutError:
                await self._refuse(scope, receive, send, 408, "the request body stopped arriving")
                return
            if message["type"] == "http.disconnect":
                return
            body.extend(message.get("body", b""))
            more = bool(message.get("more_body"))
            if len(body) > limit:
                await self._refuse(scope, receive, send, 413, refusal("too_large", headers, limit=limit))
                return
        if upload:
            # Each file is a folder and a file in Gradio's cache for an hour: bytes alone would let a
            # client make hundreds of thousands of them (inodes) with one-byte files.
            parts = upload_parts(headers, body)  # counted in place: an upload body is up to 200 MB
            if parts > MAX_FILES_PER_UPLOAD:
                too_many = refusal("too_many_files", headers, limit=MAX_FILES_PER_UPLOAD)
                await self._refuse(scope, receive, send, 413, too_many)
                return
            if not self.files.take(client, parts):
                await self._refuse(scope, receive, send, 429, refusal("upload_quota", headers))
                return
        named = self._sessions(scope, path, body)  # the body's JSON, read once
        if self._foreign_session(named, client):
            await self._refuse(scope, receive, send, 403, refusal("foreign_session", headers))
            return
        if event and path.startswith("/gradio_api/"):  # queue/join, and call/ask, which takes one too
            session = named[0] if named else None
            if session is not None and self.seen.is_new(session):
                if not self.sessions.take(client, 1):  # refused: no record, which would evict another
                    await self._refuse(scope, receive, send, 429, refusal("too_many_sessions", headers))
                    return
                self.seen.claim(session, client)
            if path.startswith("/gradio_api/call/"):
                send = self._claiming_event(send, client)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self._run(scope, replay, send, path)

    def _claiming_event(self, send: Send, client: str) -> Send:
        """``send`` recording the event id a ``call`` returns as ``client``'s before the client reads it:
        its result stream (``call/<name>/<event id>``) is then refused to other addresses."""
        state: dict[str, Any] = {"ok": False, "body": bytearray()}

        async def claiming(message: Message) -> None:
            if message.get("type") == "http.response.start":
                state["ok"] = message.get("status") == 200
            elif message.get("type") == "http.response.body" and state["ok"]:
                if len(state["body"]) < 4096:  # {"event_id": "<32 hex>"}
                    state["body"].extend(message.get("body", b""))
                if not message.get("more_body"):
                    event_id = session_of(state["body"], "event_id")
                    if event_id:
                        self.seen.claim(event_id, client)
            await send(message)

        return claiming

    @staticmethod
    def _sessions(scope: Scope, path: str, body: bytes | bytearray) -> list[str]:
        return sessions_named(str(scope.get("method")), path, bytes(scope.get("query_string") or b""), body)

    def _foreign_session(self, named: list[str], client: str) -> bool:
        """Whether any of the sessions a request names (``sessions_named``) another client started. A
        session id is a bearer token the browser makes up and sends in URLs (proxy logs keep them); held
        at another address it would read that session's answers as they stream, cancel its events, or
        close it. A session the app still holds that has no record here (pushed out by a flood of new
        sessions) is refused too: its owner is told to reload, and nobody else can claim it."""
        return any(self.seen.elsewhere(session, client) or (self.seen.is_new(session) and self.live(session))
                   for session in named)

    async def _run(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        """The app; an error raised once its response has started (Gradio's result stream of an unknown
        event raises 404 inside the stream) ends that response with one log line, not two tracebacks
        per request that anyone could send in a loop."""
        state = {"started": False, "ended": False}

        async def watched(message: Message) -> None:
            if message.get("type") == "http.response.start":
                state["started"] = True
            elif message.get("type") == "http.response.body" and not message.get("more_body"):
                state["ended"] = True
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as exc:
            if not state["started"]:
                raise
            log.warning("%s %s failed after its response started: %r", scope.get("method"), path, exc)
            if not state["ended"]:
                await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _unknown_host(self, headers: dict[bytes, bytes]) -> str:
        """The ``Host`` (or a proxy's ``X-Forwarded-Host``) that is not allowed, or "" when all are.

        Checked on every request, since Gradio builds its links from these headers and caches the
        first it sees (``/gradio_api/info``), and a rebound name would let another site's page read
        the server. No ``Host`` at all (HTTP/1.0) comes from no browser."""
        values = [headers.get(b"host", b"").decode("latin-1")] if b"host" in headers else []
        if b"x-forwarded-host" in headers:
            values += headers[b"x-forwarded-host"].decode("latin-1").split(",")
        for value in values:
            if not host_allowed(value, self.allowed_hosts):
                name = host_of(value)[:100]
                if name not in self._reported and len(self._reported) < 100:  # one line per name, not per request
                    self._reported.add(name)
                    log.warning("refused a request for host %r: add it to ASSISTANT_ALLOWED_HOSTS if clients "
                                "use that name", name)
                return name or "(blank)"
        return ""

    @staticmethod
    def _guarded(send: Send, same_site: bool) -> Send:
        """``send`` adding the security headers and, for another site's request, dropping CORS grants."""

        async def guarded(message: Message) -> None:
            if message.get("type") == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if same_site or not k.lower().startswith(b"access-control-allow-")]
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        return guarded

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
        response = JSONResponse({"error": message}, status_code=status)
        await response(scope, receive, send)
