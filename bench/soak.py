"""Soak test of the served app, on 127.0.0.1 only: questions from many clients while staff change the corpus.

Builds a fresh index from a copy of ``corpus/`` in a temporary directory, starts the real server
(``python -m assistant.cli serve``, host left at its default 127.0.0.1) with ``ASSISTANT_ADMIN_PASSWORD``
set, and for ``--minutes`` runs at once:

- ``--clients`` question clients (threads): most ask through ``POST /api/ask``, ``--gradio-clients`` of
  them through Gradio's queue as the browser does (the chat event of the Ask button; "New conversation"
  every 5 questions, a new session as after a page reload every 20). Every reply must be a 200 with a well-formed answer
  (``load.check_answer``: citations numbered, each quote inside its passage); Gradio replies must end with
  a complete answer and no error notice, and a cited answer must show highlighted sources.
- one staff client, in a loop, through the Gradio protocol only: a new session logs in with the right
  password, uploads a small generated document (``/gradio_api/upload`` + the upload event), sometimes
  uploads a replacement of the same name, re-indexes (a full rebuild in the first cycle and every
  ``--rebuild-every``-th after it, so every kind of step has run within the warm-up), deletes the document
  with its file, sometimes restores it from the trash and deletes it again. Each
  step's status message is checked, and ``GET /api/documents`` must list the upload after it and not
  after the delete.
- a monitor that lists ``GET /api/documents`` every few seconds: the sample documents must always be
  there with their chunk counts (readers never see half an ingest);
- a sampler of the server's RSS (``VmRSS`` of ``/proc/PID/status``) every ``--sample`` seconds.

At the end (after the clients stopped): every sample document still listed with its chunk count and
content hash, and one gold question per sample file (chosen at the start as one that cites the file)
still cites it. Memory passes when the RSS at the end is within 20% of the RSS after warm-up (the first
minute, or the first 10% of a shorter run). The server is always stopped; the report (markdown) is
printed and written to ``--out`` (default bench/soak.md), followed by one JSON line of the figures.
Exit code 1 when any property fails (errors, lost documents, memory), 2 on a setup failure.

    .venv/bin/python bench/soak.py                       # 10 minutes, 20 clients (4 through Gradio)
    .venv/bin/python bench/soak.py --minutes 1 --out /tmp/soak.md
    .venv/bin/python bench/soak.py --minutes 2 --no-staff --gradio-clients 0   # what questions alone cost

Bounded: a fixed duration, a timeout on every request, a final check of fixed size; uploads are a few
hundred bytes (the server meters anonymous uploads at 100 MB per address per 10 minutes).
"""

from __future__ import annotations

import argparse
import html
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO / "tests"))

from gradio_raw import RawGradio  # noqa: E402
from load import Server, ask_checked, free_port, gold_questions, server_env  # noqa: E402

MEMORY_TOLERANCE = 0.20  # end RSS within 20% of the RSS after warm-up

# Pooled connections are dropped after 2 s idle, well before the server's keep-alive timeout (uvicorn's
# default, 5 s). With httpx's default (also 5 s) a request sent on a connection idle for just under 5 s
# can meet the server closing it ("ReadError: [Errno 104] Connection reset by peer"); a browser retries
# such a request, httpx does not. The soak measures the server, not that race.
CLIENT_LIMITS = httpx.Limits(keepalive_expiry=2.0)


def http_client(url: str, timeout: float) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=timeout, limits=CLIENT_LIMITS)


def raw_gradio(url: str, timeout: float) -> RawGradio:
    """``RawGradio`` whose HTTP client drops idle connections as ``http_client`` does."""
    g = RawGradio(url, timeout=timeout)
    g.http.close()
    g.http = http_client(url, timeout)
    return g


def log(msg: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------- setup


def prepare(work: Path, corpus: Path) -> tuple[Path, Path]:
    """A copy of the corpus (no hidden folders) and an index built from it by ``assistant ingest``."""
    corpus_copy, index = work / "corpus", work / "index"
    shutil.copytree(corpus, corpus_copy, ignore=shutil.ignore_patterns(".*"))
    proc = subprocess.run(
        [sys.executable, "-m", "assistant.cli", "ingest", "--index", str(index), "--corpus", str(corpus_copy)],
        cwd=REPO, env=server_env(), capture_output=True, text=True, timeout=900,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"ingest failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return corpus_copy, index


def start_server(index: Path, corpus: Path, password: str, log_file: Path, startup_timeout: float = 300) -> Server:
    """``assistant serve`` with staff management on (the password in its environment), on a free port."""
    port = free_port()
    env = server_env()
    env["ASSISTANT_ADMIN_PASSWORD"] = password
    with log_file.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "assistant.cli", "serve", "--port", str(port), "--index", str(index),
             "--corpus", str(corpus)],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    server = Server(proc, port, log_file)
    deadline = time.monotonic() + startup_timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode}:\n{server.output()[-3000:]}")
        try:
            if httpx.get(server.url + "/api/health", timeout=5).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"the server did not answer within {startup_timeout:.0f} s:\n{server.output()[-3000:]}")
        time.sleep(0.25)


# --------------------------------------------------------------------------- shared state


@dataclass
class Question:
    via: str  # "api" or "gradio"
    started: float  # seconds since the start of the soak
    seconds: float
    error: str | None = None
    kind: str | None = None  # error kind, for the summary
    abstained: bool | None = None


@dataclass
class StaffStep:
    action: str
    started: float
    seconds: float
    error: str | None = None


@dataclass
class Soak:
    t0: float = field(default_factory=time.perf_counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    questions: list[Question] = field(default_factory=list)
    staff: list[StaffStep] = field(default_factory=list)
    monitor_errors: list[tuple[float, str]] = field(default_factory=list)
    monitor_polls: int = 0
    rss: list[tuple[float, int]] = field(default_factory=list)
    cycles: int = 0
    upload_cited: list[bool] = field(default_factory=list)
    fatal: list[str] = field(default_factory=list)  # a thread died

    def now(self) -> float:
        return time.perf_counter() - self.t0

    def add_question(self, q: Question) -> None:
        with self.lock:
            self.questions.append(q)

    def add_step(self, s: StaffStep) -> None:
        with self.lock:
            self.staff.append(s)


def error_kind(status: int | None, error: str) -> str:
    if status is not None and status != 200:
        return f"HTTP {status}"
    if error.startswith(("ReadTimeout", "WriteTimeout", "ConnectTimeout", "PoolTimeout", "TimeoutException")):
        return "timeout"
    if error.startswith(("ConnectError", "RemoteProtocolError", "ReadError", "WriteError")):
        return "connection"
    return "malformed: " + error.split(":")[0][:60]


# --------------------------------------------------------------------------- question clients


def api_client(url: str, soak: Soak, questions: Sequence[dict[str, Any]], timeout: float, think: float,
               seed: int) -> None:
    rng = random.Random(seed)
    with http_client(url, timeout) as client:
        while not soak.stop.is_set():
            item = rng.choice(questions)
            started = soak.now()
            asked = ask_checked(client, item)
            error = asked.error
            abstained = bool(asked.body.get("abstained")) if asked.body else None
            q = Question("api", started, soak.now() - started, error,
                         error_kind(asked.status, error) if error else None, abstained)
            soak.add_question(q)
            soak.stop.wait(rng.uniform(0, 2 * think))


def _chat_data(g: RawGradio, event: Any, question: str) -> list[Any]:
    """The Ask button's inputs as the browser sends them: the question, the UI language, no filters."""
    data: list[Any] = [None] * len(event.inputs)
    data[event.inputs.index(g.component("question"))] = question
    data[event.inputs.index(g.component("lang-toggle"))] = "en"
    return data


def check_chat(g: RawGradio, event: Any, msg: dict[str, Any]) -> tuple[str | None, bool | None]:
    """(what is wrong with a chat event's final message, whether it abstained)."""
    if msg.get("msg") == "join_refused":
        return f"HTTP {msg.get('status')}: queue join refused: {str(msg.get('body'))[:200]}", None
    if not msg.get("success"):
        return f"gradio event failed: {json.dumps(msg, ensure_ascii=False)[:300]}", None
    out = msg["output"]["data"]
    chat = out[event.outputs.index(g.component("chatbot"))]
    sources = str(out[event.outputs.index(g.component("sources"))])
    if not isinstance(chat, list) or not chat or not isinstance(chat[-1], dict):
        return "gradio: no chat messages", None
    last = chat[-1]
    content = str(last.get("content"))
    if last.get("role") != "assistant":
        return "gradio: last message not the assistant's", None
    if "notice-error" in content:
        return f"gradio: error notice: {content[:200]}", None
    if 'class="answer complete"' not in content:
        return f"gradio: answer not complete: {content[:200]}", None
    abstained = "answer-text abstained" in content
    if not abstained and "<mark>" not in sources:
        return "gradio: a cited answer without a highlighted source", abstained
    return None, abstained


def gradio_kind(error: str) -> str:
    if error.startswith("HTTP"):
        return error.split(":")[0]
    if error.startswith("gradio: "):
        return "gradio: " + error[len("gradio: "):].split(":")[0][:40]
    return "gradio event failed"


def gradio_client(url: str, soak: Soak, questions: Sequence[dict[str, Any]], timeout: float, think: float,
                  seed: int, per_conversation: int = 5, per_session: int = 20) -> None:
    """A browser user: one session, a new conversation every few questions, a new session (page load) now and then."""
    rng = random.Random(seed)
    g: RawGradio | None = None
    asked = 0
    try:
        while not soak.stop.is_set():
            started = soak.now()
            error: str | None = None
            kind: str | None = None
            abstained = None
            try:
                if g is None:
                    g = raw_gradio(url, timeout)
                    ask, clear = g.event("ask-btn", "click"), g.event("clear-btn", "click")
                if asked and asked % per_session == 0:
                    g.session_hash = uuid.uuid4().hex[:11]  # a page reload
                elif asked and asked % per_conversation == 0:
                    msg = g.run(clear, ["en" if g.types[i] == "radio" else None for i in clear.inputs])
                    if not msg.get("success"):
                        raise RuntimeError(f"New conversation failed: {json.dumps(msg)[:300]}")
                    started = soak.now()
                item = rng.choice([q for q in questions if not q["history"]])
                msg = g.run(ask, _chat_data(g, ask, item["question"]))
                error, abstained = check_chat(g, ask, msg)
                if error:
                    kind = gradio_kind(error)
            except (httpx.HTTPError, ValueError, RuntimeError, KeyError) as exc:
                error = f"{type(exc).__name__}: {exc}"
                kind = error_kind(None, error)
            asked += 1
            soak.add_question(Question("gradio", started, soak.now() - started, error, kind, abstained))
            soak.stop.wait(rng.uniform(0, 2 * think))
    finally:
        if g is not None:
            g.close()


# --------------------------------------------------------------------------- staff


def staff_event(g: RawGradio, elem_id: str, values: dict[str, Any]) -> tuple[str, list[Any]]:
    """Run a staff button's event (values by elem_id); (the staff status message, all outputs)."""
    event = g.event(elem_id, "click")
    by_id = {g.component(k): v for k, v in values.items()}
    data = [by_id.get(i, "en" if g.types[i] == "radio" else None) for i in event.inputs]
    msg = g.run(event, data)
    if not msg.get("success"):
        raise StaffError(f"{elem_id}: event failed: {json.dumps(msg, ensure_ascii=False)[:400]}")
    out = list(msg["output"]["data"])
    return str(out[event.outputs.index(g.component("staff-status"))]), out


class StaffError(Exception):
    pass


def _generated_document(n: int, version: int) -> tuple[str, bytes, str, str]:
    """(token, text, question, expected phrase) of a small made-up document about an alliance."""
    letters = ""
    k = n
    while True:  # a word of letters only, unique per n (a number inside a word is another word to the index)
        letters = "abcdefghijklmnopqrstuvwxyz"[k % 26] + letters
        k //= 26
        if not k:
            break
    token = f"Kestrel{letters}"
    city = ["Ningbo", "Wenzhou", "Jiaxing", "Huzhou", "Shaoxing"][n % 5]
    colleges = 6 + version
    text = (f"The {token} Vocational Alliance was founded in {city} in 2021 by {colleges} colleges.\n"
            f"The {token} Vocational Alliance trains technicians for marine engineering and port logistics.\n"
            f"Its secretariat sits at the {city} Polytechnic, which hosts the annual {token} skills fair.\n")
    question = f"In which city was the {token} Vocational Alliance founded?"
    return token, text.encode(), question, city


def _ok(message: str, expect: str | None = None) -> None:
    message = html.unescape(message)
    if "notice-error" in message or "notice-ok" not in message:
        raise StaffError(f"status: {message[:300]}")
    if expect and expect not in message:
        raise StaffError(f"status lacks {expect!r}: {message[:300]}")


def _listed(http: httpx.Client, name: str) -> bool:
    r = http.get("/api/documents")
    r.raise_for_status()
    return any(d["doc_id"] == name or d.get("source") == name for d in r.json()["documents"])


class StaffCycle:
    """One staff cycle through the Gradio protocol; every step is timed and recorded, the first failure ends it."""

    def __init__(self, g: RawGradio, http: httpx.Client, soak: Soak, password: str, n: int, full: bool) -> None:
        self.g, self.http, self.soak, self.password, self.n, self.full = g, http, soak, password, n, full
        self.name = f"soak-{n:04d}.txt"

    def step(self, action: str, fn: Any) -> Any:
        started = self.soak.now()
        error = None
        try:
            return fn()
        except StaffError as exc:
            error = f"{action}: {exc}"
            raise
        except (httpx.HTTPError, ValueError, KeyError, AssertionError) as exc:
            error = f"{action}: {type(exc).__name__}: {exc}"
            raise StaffError(error) from exc
        finally:
            self.soak.add_step(StaffStep(action, started, self.soak.now() - started, error))

    def login(self) -> None:
        g = self.g
        event = g.event("staff-login", "click")
        data = [self.password if g.types[i] == "textbox" else "en" for i in event.inputs]
        msg = g.run(event, data)
        if not msg.get("success"):
            raise StaffError(f"login event failed: {json.dumps(msg)[:300]}")
        status = str(msg["output"]["data"][event.outputs.index(g.component("staff-status"))])
        if "Logged in" not in status:
            raise StaffError(f"status: {status[:300]}")

    def upload(self, version: int, expect: str) -> None:
        _, content, _, _ = _generated_document(self.n, version)
        r = self.g.http.post("/gradio_api/upload", files={"files": (self.name, content, "text/plain")})
        if r.status_code != 200:
            raise StaffError(f"/gradio_api/upload: HTTP {r.status_code}: {r.text[:200]}")
        [path] = r.json()
        payload = [{"path": path, "orig_name": self.name, "meta": {"_type": "gradio.FileData"}}]
        message, _ = staff_event(self.g, "upload-btn", {"upload": payload})
        _ok(message, expect)

    def listed(self, expected: bool) -> None:
        if _listed(self.http, self.name) != expected:
            raise StaffError(f"{self.name} {'not ' if expected else ''}listed by /api/documents")

    def reindex(self) -> None:
        message, _ = staff_event(self.g, "reindex-btn", {"rebuild": self.full})
        _ok(message)

    def delete(self) -> list[Any]:
        message, out = staff_event(self.g, "delete-btn", {"delete-doc": self.name, "delete-file": True})
        _ok(message, "trash")
        return out

    def restore(self, out: list[Any]) -> None:
        g = self.g
        ev = g.event("delete-btn", "click")
        update = out[ev.outputs.index(g.component("restore-file"))]
        choices = (update.get("choices") if isinstance(update, dict) else None) or []
        picks = [c[1] for c in choices if str(c[0]).startswith(self.name + " ")]
        if not picks:
            raise StaffError(f"{self.name} not offered in the trash list: {choices[:3]}")
        message, _ = staff_event(g, "restore-btn", {"restore-file": picks[0]})
        _ok(message, f"Restored {self.name}")

    def ask_about_upload(self) -> None:
        """A question about the upload, right after it, cites it (the new document is searchable at once)."""
        _, _, question, city = _generated_document(self.n, 0)
        r = self.http.post("/api/ask", json={"question": question})
        if r.status_code != 200:
            raise StaffError(f"HTTP {r.status_code}: {r.text[:200]}")
        body = r.json()
        cited = [c.get("doc_id") for c in body.get("citations", [])]
        with self.soak.lock:
            self.soak.upload_cited.append(self.name in cited)
        if self.name not in cited or city not in body.get("answer", ""):
            raise StaffError(f"{question!r} answered {body.get('answer', '')[:120]!r} citing {cited}")

    def run(self) -> None:
        self.g.session_hash = uuid.uuid4().hex[:11]  # a new browser session per cycle
        self.step("login", self.login)
        self.step("upload", lambda: self.upload(0, "1 added"))
        self.step("listed after upload", lambda: self.listed(True))
        self.step("cited after upload", self.ask_about_upload)
        if self.n % 3 == 1:  # a replacement of the same name: the previous version is kept
            self.step("upload replacement", lambda: self.upload(1, "previous version is kept"))
        self.step("rebuild" if self.full else "re-index", self.reindex)
        out = self.step("delete", self.delete)
        if self.n % 4 == 2:  # restore it from the trash, then delete it again
            self.step("restore", lambda: self.restore(out))
            self.step("listed after restore", lambda: self.listed(True))
            self.step("delete", self.delete)
        self.step("gone after delete", lambda: self.listed(False))
        with self.soak.lock:
            self.soak.cycles += 1


def staff_client(url: str, soak: Soak, password: str, timeout: float, pause: float, rebuild_every: int) -> None:
    """Staff cycles until the end; a failed cycle is recorded and the next one starts."""
    try:
        g = raw_gradio(url, timeout)
        http = http_client(url, timeout)
        try:
            n = 0
            while not soak.stop.is_set():
                n += 1
                # The first cycle rebuilds, so every kind of step has run once within the warm-up.
                full = rebuild_every > 0 and (n - 1) % rebuild_every == 0
                cycle = StaffCycle(g, http, soak, password, n, full)
                try:
                    cycle.run()
                except StaffError:  # recorded in its step; the upload must not outlive its cycle
                    try:
                        if _listed(http, cycle.name):
                            cycle.step("delete after a failed step", cycle.delete)
                    except (StaffError, httpx.HTTPError, ValueError, KeyError):
                        pass  # recorded, when it was the delete
                soak.stop.wait(pause)
        finally:
            g.close()
            http.close()
    except Exception:  # a bug of this script or a dead server: never count on as if all were well
        soak.fatal.append("staff thread: " + traceback.format_exc())


# --------------------------------------------------------------------------- monitor and memory


def doc_snapshot(http: httpx.Client) -> dict[str, tuple[int, str]]:
    r = http.get("/api/documents")
    r.raise_for_status()
    return {d["doc_id"]: (int(d.get("chunks", 0)), str(d.get("hash", ""))) for d in r.json()["documents"]}


def monitor(url: str, soak: Soak, baseline: dict[str, tuple[int, str]], timeout: float, every: float) -> None:
    with http_client(url, timeout) as http:
        while not soak.stop.wait(every):
            t = soak.now()
            try:
                docs = doc_snapshot(http)
                problem = lost_documents(baseline, docs)
                if problem:
                    soak.monitor_errors.append((t, "; ".join(problem[:3])))
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                soak.monitor_errors.append((t, f"/api/documents: {type(exc).__name__}: {exc}"))
            soak.monitor_polls += 1


def lost_documents(baseline: dict[str, tuple[int, str]], docs: dict[str, tuple[int, str]]) -> list[str]:
    problems = []
    for doc_id, (chunks, digest) in baseline.items():
        if doc_id not in docs:
            problems.append(f"{doc_id} missing")
        elif docs[doc_id][0] != chunks:
            problems.append(f"{doc_id}: {docs[doc_id][0]} chunks, was {chunks}")
        elif digest and docs[doc_id][1] != digest:
            problems.append(f"{doc_id}: content hash changed")
    return problems


def sampler(server: Server, soak: Soak, every: float) -> None:
    while True:
        rss = server.status("VmRSS")
        if rss is not None:
            soak.rss.append((soak.now(), rss))
        if soak.stop.wait(every):
            return


# --------------------------------------------------------------------------- per-file questions


def _tag(doc_id: str) -> str:
    """The gold tag of a sample document: ``000_x.txt`` -> ``doc:000``, ``003_x.txt#4`` -> ``doc:003-4``."""
    prefix = doc_id.split("_")[0]
    return f"doc:{prefix}-{doc_id.split('#', 1)[1]}" if "#" in doc_id else f"doc:{prefix}"


def _cites(http: httpx.Client, q: dict[str, Any], target: str) -> str | None:
    """None when the question's answer cites ``target`` (a doc id, or a file name ending in /), else why not."""
    try:
        r = http.post("/api/ask", json={"question": q["question"], "history": q["history"]})
        if r.status_code != 200:
            return f"HTTP {r.status_code}"
        cited = [str(c["doc_id"]) for c in r.json()["citations"]]
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        return f"{type(exc).__name__}: {exc}"
    hit = any(d.startswith(target[:-1]) for d in cited) if target.endswith("/") else target in cited
    return None if hit else f"cites {cited or 'nothing'}"


def cited_questions(gold: Path, http: httpx.Client, doc_ids: Sequence[str],
                    files: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Target -> a gold question whose answer cites it now: one per sample document when the gold set has one
    (target: the doc id), else one per file that no document covers (target: ``FILE/``, any of its documents)."""
    items = [json.loads(line) for line in gold.read_text(encoding="utf-8").splitlines() if line.strip()]
    items = [{"id": i["id"], "question": i["question"], "history": list(i.get("history") or []), "tags": i["tags"]}
             for i in items if i.get("answerable")]
    chosen: dict[str, dict[str, Any]] = {}
    for doc_id in doc_ids:
        for item in items:
            if _tag(doc_id) in item["tags"] and _cites(http, item, doc_id) is None:
                chosen[doc_id] = item
                break
    for f in files:
        if any(d.startswith(f) for d in chosen):
            continue
        prefix = f"doc:{f.split('_')[0]}"
        for item in items:
            tagged = any(t == prefix or t.startswith(prefix + "-") for t in item["tags"])
            if tagged and _cites(http, item, f + "/") is None:
                chosen[f + "/"] = item
                break
    return chosen


def still_cited(http: httpx.Client, chosen: dict[str, dict[str, Any]]) -> dict[str, str | None]:
    """Target -> None when its question still cites it, else what happened."""
    return {target: _cites(http, q, target) for target, q in chosen.items()}


# --------------------------------------------------------------------------- report


def _pct(values: Sequence[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


def _ms(v: float | None) -> str:
    return "—" if v is None else f"{v * 1000:,.0f} ms"


def _mb(n: int | None) -> str:
    return "—" if n is None else f"{n / 1048576:,.0f} MB"


def rss_at(samples: Sequence[tuple[float, int]], t: float) -> int | None:
    """The first sample at or after ``t`` (the last one when none is)."""
    for when, rss in samples:
        if when >= t:
            return rss
    return samples[-1][1] if samples else None


def summarize(soak: Soak, args: argparse.Namespace, duration: float, warmup: float,
              baseline: dict[str, tuple[int, str]], lost: list[str],
              cited: dict[str, str | None], rss_end: int | None, hwm: int | None, server_log: str) -> dict[str, Any]:
    qs = soak.questions
    errors = [q for q in qs if q.error]
    staff_errors = [s for s in soak.staff if s.error]
    busy_windows = [(s.started, s.started + s.seconds) for s in soak.staff
                    if s.action in ("upload", "upload replacement", "re-index", "rebuild", "delete", "restore")]

    def busy(q: Question) -> bool:
        return any(q.started < e and q.started + q.seconds > s for s, e in busy_windows)

    ok = [q for q in qs if not q.error]
    during = [q.seconds for q in ok if busy(q)]
    idle = [q.seconds for q in ok if not busy(q)]
    kinds = Counter(q.kind or "?" for q in errors)
    kinds.update(f"staff {s.action}" for s in staff_errors)
    kinds.update("sample documents not listed as before (monitor)" for _ in soak.monitor_errors)
    kinds.update("thread died" for _ in soak.fatal)
    rss_warm = rss_at(soak.rss, warmup)
    rss_start = soak.rss[0][1] if soak.rss else None
    rss_max = max((r for _, r in soak.rss), default=None)
    ratio = (rss_end / rss_warm) if rss_end and rss_warm else None
    tracebacks = server_log.count("Traceback (most recent call last)")
    return {
        "minutes": args.minutes,
        "seconds": round(duration, 1),
        "clients": args.clients,
        "gradio_clients": args.gradio_clients,
        "questions": len(qs),
        "questions_api": sum(q.via == "api" for q in qs),
        "questions_gradio": sum(q.via == "gradio" for q in qs),
        "answered": len(ok),
        "abstained": sum(bool(q.abstained) for q in ok),
        "staff_cycles": soak.cycles,
        "staff_steps": dict(Counter(s.action for s in soak.staff)),
        "uploads_cited_by_a_question": f"{sum(soak.upload_cited)}/{len(soak.upload_cited)}",
        "errors": sum(kinds.values()),
        "errors_by_kind": dict(kinds),
        "error_examples": [f"{q.via} @{q.started:.0f}s: {q.error}" for q in errors[:10]]
        + [f"staff {s.action} @{s.started:.0f}s: {s.error}" for s in staff_errors[:10]]
        + [f"monitor @{t:.0f}s: {m}" for t, m in soak.monitor_errors[:5]] + soak.fatal[:2],
        "monitor_polls": soak.monitor_polls,
        "sample_documents": len(baseline),
        "lost_documents": lost,
        "still_cited": {t: (v is None) for t, v in cited.items()},
        "latency": {
            "all_p50_ms": _r(_pct([q.seconds for q in ok], 50)), "all_p95_ms": _r(_pct([q.seconds for q in ok], 95)),
            "staff_active_n": len(during), "staff_active_p50_ms": _r(_pct(during, 50)),
            "staff_active_p95_ms": _r(_pct(during, 95)),
            "idle_n": len(idle), "idle_p50_ms": _r(_pct(idle, 50)), "idle_p95_ms": _r(_pct(idle, 95)),
            "max_ms": _r(max((q.seconds for q in ok), default=None)),
        },
        "rss_mb": {"start": _m(rss_start), "after_warmup": _m(rss_warm), "warmup_s": round(warmup, 1),
                   "max": _m(rss_max), "end": _m(rss_end), "hwm": _m(hwm),
                   "end_over_warmup": None if ratio is None else round(ratio, 3)},
        "server_log_tracebacks": tracebacks,
        "rebuilds_at_s": [round(s.started) for s in soak.staff if s.action == "rebuild"],
        "rss_series_mb": [[round(t), _m(r)] for t, r in soak.rss[::max(1, len(soak.rss) // 120)]],
        "pass": {"errors": sum(kinds.values()) == 0,
                 "lost_documents": not lost and all(v is None for v in cited.values()) and bool(cited),
                 "memory": ratio is not None and abs(ratio - 1) <= MEMORY_TOLERANCE},
    }


def _r(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


def _m(n: int | None) -> int | None:
    return None if n is None else round(n / 1048576)


def render(s: dict[str, Any], soak: Soak, cited: dict[str, str | None], label: str) -> str:
    p = s["pass"]
    mark = {True: "pass", False: "**FAIL**"}
    lat = s["latency"]
    rss = s["rss_mb"]
    lines = [
        f"### Soak test — {label}", "",
        f"Result: errors {mark[p['errors']]}, lost documents {mark[p['lost_documents']]}, "
        f"memory {mark[p['memory']]}.", "",
        "| measure | value |", "|---|---|",
        f"| duration | {s['seconds']:.0f} s ({s['minutes']:g} min) |",
        f"| question clients | {s['clients']} ({s['clients'] - s['gradio_clients']} `POST /api/ask`, "
        f"{s['gradio_clients']} Gradio queue) |",
        f"| questions asked | {s['questions']:,} ({s['questions_api']:,} API, {s['questions_gradio']:,} Gradio) |",
        f"| questions answered well-formed | {s['answered']:,} ({s['abstained']:,} of them abstentions) |",
        f"| staff cycles completed | {s['staff_cycles']} (steps: "
        + ", ".join(f"{k} {v}" for k, v in s["staff_steps"].items()) + ") |",
        f"| uploads cited by a question about them right after the upload | {s['uploads_cited_by_a_question']} |",
        f"| `/api/documents` polls by the monitor | {s['monitor_polls']} |",
        f"| **errors** | **{s['errors']}** |",
        f"| **lost documents** | **{len(s['lost_documents'])}** of {s['sample_documents']} (listed with the same "
        f"chunks and hash); gold questions still citing their document (or file): "
        f"{sum(v is None for v in cited.values())}/{len(cited)} |",
        f"| question latency p50 / p95 (all) | {_ms(_s(lat['all_p50_ms']))} / {_ms(_s(lat['all_p95_ms']))} |",
        f"| ... while a staff action runs (n={lat['staff_active_n']:,}) | {_ms(_s(lat['staff_active_p50_ms']))} / "
        f"{_ms(_s(lat['staff_active_p95_ms']))} |",
        f"| ... otherwise (n={lat['idle_n']:,}) | {_ms(_s(lat['idle_p50_ms']))} / {_ms(_s(lat['idle_p95_ms']))} |",
        f"| question latency max | {_ms(_s(lat['max_ms']))} |",
        f"| tracebacks in the server log | {s['server_log_tracebacks']} |",
        "",
        f"Staff: one cycle every few seconds (log in, upload, a question about the upload, sometimes a "
        f"replacement, re-index, delete with the file, sometimes restore and delete again); full rebuilds at "
        f"{', '.join(str(t) for t in s['rebuilds_at_s'][:8])}{' ...' if len(s['rebuilds_at_s']) > 8 else ''} s. "
        f"Clients drop pooled connections after {CLIENT_LIMITS.keepalive_expiry:g} s idle (the server closes "
        f"them after 5 s).",
        "", "Server memory (RSS of the server process):", "",
        "| point | RSS |", "|---|---|",
        f"| start of the load | {rss['start']} MB |",
        f"| after warm-up ({rss['warmup_s']:.0f} s) | {rss['after_warmup']} MB |",
        f"| max during the run | {rss['max']} MB |",
        f"| end (clients stopped) | {rss['end']} MB |",
        f"| end / after warm-up | {rss['end_over_warmup']} (limit: within ±{MEMORY_TOLERANCE:.0%}) |",
        f"| peak (VmHWM) | {rss['hwm']} MB |",
    ]
    if soak.rss:
        step = max(60.0, s["seconds"] / 10)
        marks = []
        t = 0.0
        while t <= s["seconds"] + 1e-6:
            marks.append((t, rss_at(soak.rss, t)))
            t += step
        lines += ["", "RSS over time: " + ", ".join(f"{t:.0f} s {_m(v)} MB" for t, v in marks) + "."]
    if s["errors_by_kind"]:
        lines += ["", "Errors by kind:", ""] + [f"- {k}: {v}" for k, v in sorted(s["errors_by_kind"].items())]
        lines += ["", "First errors:", ""] + [f"- {e[:400]}" for e in s["error_examples"]]
    if s["lost_documents"] or any(v is not None for v in cited.values()):
        lines += ["", "Lost documents:", ""] + [f"- {d}" for d in s["lost_documents"]]
        lines += [f"- {t}: its gold question no longer cites it ({v})" for t, v in cited.items() if v is not None]
    return "\n".join(lines) + "\n"


def _s(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000


# --------------------------------------------------------------------------- main


def guarded(soak: Soak, fn: Any) -> Any:
    """A thread target that records its own death (a bug of this script, or a dead server) as a failure."""

    def target(*args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            soak.fatal.append(f"{threading.current_thread().name}: {traceback.format_exc()[-1500:]}")

    return target


def code_version() -> str:
    """The commit the server ran, and whether the served code had uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "assistant", "ui.py"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head or 'unknown'}{' + uncommitted changes' if dirty else ''}"


def run(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    work = Path(tempfile.mkdtemp(prefix="assistant-soak-"))
    keep = args.keep
    password = secrets.token_urlsafe(16)
    server: Server | None = None
    try:
        log(f"work directory {work}; building an index of a copy of {args.corpus}")
        corpus, index = prepare(work, args.corpus)
        version = code_version()  # what the server is about to import
        server = start_server(index, corpus, password, work / "server.log")
        log(f"server pid {server.pid} on {server.url}")
        questions = gold_questions(args.gold)
        with http_client(server.url, args.timeout) as http:
            http.post("/api/ask", json=questions[0]).raise_for_status()  # warm
            baseline = doc_snapshot(http)
            files = sorted(p.name for p in corpus.iterdir() if p.is_file() and p.suffix == ".txt")
            sample_docs = [d for d in baseline if any(d.startswith(f) for f in files)]
            baseline = {d: baseline[d] for d in sample_docs}
            chosen = cited_questions(args.gold, http, sample_docs, files)
            uncovered = [f for f in files if not any(t.startswith(f) for t in chosen)]
            log(f"{len(baseline)} sample documents in {len(files)} files; {len(chosen)} gold questions cite "
                f"{sum(not t.endswith('/') for t in chosen)} documents and {sum(t.endswith('/') for t in chosen)} "
                f"other files")
            if uncovered:
                raise RuntimeError(f"no gold question cites {uncovered} before the soak")

        duration = args.minutes * 60
        warmup = args.warmup if args.warmup is not None else min(60.0, duration / 10)
        soak = Soak()
        threads = [threading.Thread(target=guarded(soak, sampler), args=(server, soak, args.sample), name="rss",
                                    daemon=True),
                   threading.Thread(target=guarded(soak, monitor),
                                    args=(server.url, soak, baseline, args.timeout, args.monitor),
                                    name="monitor", daemon=True),
        ]
        if not args.no_staff:
            threads.append(threading.Thread(target=staff_client, args=(server.url, soak, password, args.timeout,
                                                                       args.staff_pause, args.rebuild_every),
                                            name="staff", daemon=True))
        for k in range(args.clients):
            gradio = k < args.gradio_clients
            threads.append(threading.Thread(
                target=guarded(soak, gradio_client if gradio else api_client),
                args=(server.url, soak, questions, args.timeout, args.think, 1000 + k),
                name=f"{'gradio' if gradio else 'api'}-client-{k}", daemon=True))
        log(f"soak for {duration:.0f} s: {args.clients} question clients ({args.gradio_clients} Gradio), "
            f"1 staff client; warm-up {warmup:.0f} s")
        for t in threads:
            t.start()
        end = soak.t0 + duration
        while time.perf_counter() < end:
            time.sleep(min(30.0, max(0.0, end - time.perf_counter())))
            with soak.lock:
                nq, ne = len(soak.questions), sum(1 for q in soak.questions if q.error)
                ns = sum(1 for s in soak.staff if s.error)
            rss = soak.rss[-1][1] if soak.rss else None
            log(f"{soak.now():.0f} s: {nq} questions ({ne} errors), {soak.cycles} staff cycles ({ns} errors), "
                f"{len(soak.monitor_errors)} monitor errors, RSS {_mb(rss)}")
            if server.proc.poll() is not None:
                soak.fatal.append(f"the server exited with code {server.proc.returncode}")
                break
        soak.stop.set()
        deadline = time.monotonic() + args.timeout + 30
        for t in threads:
            t.join(max(0.1, deadline - time.monotonic()))
        stuck = [t.name for t in threads if t.is_alive()]
        if stuck:
            soak.fatal.append(f"threads still running {args.timeout + 30:.0f} s after the end: {stuck}")
        elapsed = soak.now()
        time.sleep(2)  # let the last responses be freed
        rss_end = server.status("VmRSS")
        if rss_end is not None:
            soak.rss.append((soak.now(), rss_end))
        hwm = server.status("VmHWM")

        log("final checks: documents and one question per sample file")
        with http_client(server.url, args.timeout) as http:
            try:
                lost = lost_documents(baseline, doc_snapshot(http))
            except (httpx.HTTPError, ValueError) as exc:
                lost = [f"/api/documents failed: {exc}"]
            cited = still_cited(http, chosen)
        server.stop()
        server_log = server.output()
        summary = summarize(soak, args, elapsed, warmup, baseline, lost, cited, rss_end, hwm, server_log)
        label = (f"{args.minutes:g} min, {args.clients} clients + {0 if args.no_staff else 1} staff, "
                 f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}, code {version}")
        report = render(summary, soak, cited, label)
        if not all(summary["pass"].values()):
            keep = True
            if summary["server_log_tracebacks"]:
                tail = server_log[server_log.find("Traceback"):][:3000]
                report += "\nFirst traceback in the server log:\n\n```\n" + tail + "\n```\n"
            report += f"\nWork directory kept for inspection: `{work}` (server log: `server.log`).\n"
        return summary, report
    except BaseException:
        keep = True
        raise
    finally:
        if server is not None:
            server.stop()
        if keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--minutes", type=float, default=10.0, help="duration of the load (default 10)")
    p.add_argument("--clients", type=int, default=20, help="question clients (default 20)")
    p.add_argument("--gradio-clients", type=int, default=4, help="of them, through Gradio's queue (default 4)")
    p.add_argument("--think", type=float, default=0.5, help="mean pause of a client between questions, s")
    p.add_argument("--staff-pause", type=float, default=3.0, help="pause of the staff client between cycles, s")
    p.add_argument("--rebuild-every", type=int, default=5, help="every Nth re-index is a full rebuild (0: never)")
    p.add_argument("--no-staff", action="store_true", help="questions only (to tell what costs memory)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    p.add_argument("--warmup", type=float, default=None, help="seconds (default: 60, or 10%% of a shorter run)")
    p.add_argument("--sample", type=float, default=2.0, help="RSS sampling period, s")
    p.add_argument("--monitor", type=float, default=3.0, help="period of the /api/documents monitor, s")
    p.add_argument("--corpus", type=Path, default=REPO / "corpus")
    p.add_argument("--gold", type=Path, default=REPO / "eval" / "gold.jsonl")
    p.add_argument("--out", type=Path, default=BENCH / "soak.md")
    p.add_argument("--keep", action="store_true", help="keep the work directory (kept anyway on failure)")
    args = p.parse_args(argv)
    if not 0 < args.minutes <= 180:
        p.error("--minutes must be in (0, 180]")
    if not 1 <= args.clients <= 200 or not 0 <= args.gradio_clients <= args.clients:
        p.error("--clients must be 1..200 and --gradio-clients 0..clients")
    if args.timeout <= 0 or args.think < 0 or args.staff_pause < 0 or args.sample <= 0 or args.monitor <= 0:
        p.error("--timeout, --sample and --monitor must be > 0; --think and --staff-pause >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        summary, report = run(args)
    except RuntimeError as exc:
        print(f"soak: setup failed: {exc}", file=sys.stderr)
        return 2
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report, encoding="utf-8")
    print(json.dumps({"soak": summary}, ensure_ascii=False))
    return 0 if all(summary["pass"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
