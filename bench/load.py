"""Bounded load test of the HTTP API, on 127.0.0.1 only.

Starts the real server (``python -m assistant.cli serve --port FREE --index ... --corpus ...``, host left
at its default, 127.0.0.1) as a subprocess, waits for ``/api/health``, then sends ``--questions``
questions (those of the gold set, with their history, cycled) to ``POST /api/ask`` from ``--clients``
concurrent clients (threads, one ``httpx.Client`` each), checks every answer, stops the server and
reports errors, throughput, client-side latency p50/p95/max and the server's peak RSS (``VmHWM`` of
``/proc/PID/status``) as a markdown table: printed, and written to ``--out`` (default bench/load.md).

    .venv/bin/python bench/load.py                      # 200 questions, 20 clients, index/ and corpus/
    .venv/bin/python bench/load.py --questions 20 --clients 5 --index /tmp/idx --corpus /tmp/corpus

It stops by itself: a fixed number of requests, each with a timeout; the server is always stopped.
``tests/test_reliability.py`` runs a small version of it (20 questions, 5 clients) through ``run_load``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"  # never anything else: this is a local benchmark


# --------------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def server_env() -> dict[str, str]:
    """Offline, no stray ASSISTANT_* settings (no admin password: management off)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False",
                "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1",
                # A load test asks far faster than a person: the per-client limits would answer 429.
                "ASSISTANT_EVENTS_PER_MINUTE": "1000000", "ASSISTANT_QUESTIONS_AT_ONCE": "10000",
                "ASSISTANT_NEW_SESSIONS_PER_10_MINUTES": "1000000"})
    return env


@dataclass
class Server:
    """``assistant serve`` in a subprocess; its output goes to a temporary log file."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def status(self, key: str) -> int | None:
        """A ``/proc/PID/status`` memory field (VmRSS, VmHWM) in bytes; None when unavailable."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            return None
        return None

    def stop(self, timeout: float = 20) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # uvicorn shuts down gracefully on SIGINT
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)


def start_server(index: Path, corpus: Path, port: int | None = None, startup_timeout: float = 300) -> Server:
    """Start ``assistant serve`` (default host, i.e. 127.0.0.1) and wait until ``/api/health`` answers."""
    port = port or free_port()
    fd, log_name = tempfile.mkstemp(prefix="assistant-serve-", suffix=".log")
    log = Path(log_name)
    with os.fdopen(fd, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "assistant.cli", "serve", "--port", str(port), "--index", str(index),
             "--corpus", str(corpus)],
            cwd=REPO, env=server_env(), stdout=out, stderr=subprocess.STDOUT,
        )
    server = Server(proc, port, log)
    deadline = time.monotonic() + startup_timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode}:\n{server.output()[-3000:]}")
        try:
            r = httpx.get(server.url + "/api/health", timeout=5)
            if r.status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"the server did not answer within {startup_timeout:.0f} s:\n{server.output()[-3000:]}")
        time.sleep(0.25)


# --------------------------------------------------------------------------- questions and answers


def gold_questions(path: Path) -> list[dict[str, Any]]:
    """``{"question", "history"}`` of every gold item, in file order."""
    items = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            obj = json.loads(line)
            items.append({"question": obj["question"], "history": list(obj.get("history") or [])})
    return items


def check_answer(answer: Any) -> str | None:
    """None when ``answer`` is a well-formed Answer JSON, else what is wrong with it."""
    if not isinstance(answer, dict):
        return "not a JSON object"
    for key, kind in (("question", str), ("standalone_question", str), ("answer", str), ("abstained", bool),
                      ("language", str), ("citations", list), ("sentences", list), ("related", list),
                      ("retrieved", list), ("notes", list), ("latency_ms", (int, float))):
        if not isinstance(answer.get(key), kind):
            return f"{key} missing or not {kind}"
    if not answer["answer"].strip():
        return "empty answer text"
    citations = answer["citations"]
    if [c.get("n") for c in citations] != list(range(1, len(citations) + 1)):
        return "citations not numbered 1..n"
    if answer["abstained"] and citations:
        return "an abstention with citations"
    if not answer["abstained"] and not citations:
        return "an answer without citations"
    for c in citations:
        if not isinstance(c.get("quote"), str) or not c["quote"] or c["quote"] not in str(c.get("text")):
            return f"citation [{c.get('n')}]: quote not inside its passage"
        if f"[{c['n']}]" not in answer["answer"]:
            return f"citation [{c['n']}] never referenced in the answer"
        if not (isinstance(c.get("start"), int) and isinstance(c.get("end"), int) and c["start"] < c["end"]):
            return f"citation [{c['n']}]: bad span"
    return None


@dataclass
class Request:
    question: str
    status: int | None
    seconds: float
    error: str | None = None
    server_ms: float | None = None


@dataclass
class LoadResult:
    requests: list[Request] = field(default_factory=list)
    seconds: float = 0.0
    clients: int = 0
    rss_before: int | None = None  # server RSS after warm-up, before the load
    rss_peak: int | None = None  # VmHWM after the load

    @property
    def errors(self) -> list[Request]:
        return [r for r in self.requests if r.error is not None]

    def latency(self, p: float) -> float | None:
        from assistant.evaluation.metrics import percentile

        return percentile([r.seconds for r in self.requests], p)


@dataclass
class Asked:
    """One ``POST /api/ask`` as a client saw it."""

    status: int | None
    error: str | None  # None: a well-formed answer
    body: dict[str, Any] | None


def ask_checked(client: httpx.Client, item: dict[str, Any]) -> Asked:
    """Ask ``item`` (question and history) and check the answer's shape; never raises for HTTP trouble."""
    try:
        r = client.post("/api/ask", json={"question": item["question"], "history": item["history"]})
    except httpx.HTTPError as exc:
        return Asked(None, f"{type(exc).__name__}: {exc}", None)
    if r.status_code != 200:
        return Asked(r.status_code, f"HTTP {r.status_code}: {r.text[:300]}", None)
    try:
        body = r.json()
    except ValueError as exc:
        return Asked(r.status_code, f"{type(exc).__name__}: {exc}", None)
    return Asked(r.status_code, check_answer(body), body)


def run_load(url: str, questions: Sequence[dict[str, Any]], n: int, clients: int, timeout: float = 120,
             server: Server | None = None) -> LoadResult:
    """Send ``n`` questions (cycled) from ``clients`` threads; every answer is checked."""
    plan = [questions[i % len(questions)] for i in range(n)]
    result = LoadResult(clients=clients)
    if server is not None:
        result.rss_before = server.status("VmRSS")
    lock = threading.Lock()
    cursor = iter(range(n))

    def worker(k: int) -> None:
        # Each client from an address of its own, as real clients are: the server meters questions
        # per address (4 at once, 30 a minute), and 127.0.0.0/8 is all this machine's.
        local = f"127.0.0.{10 + k % 240}" if httpx.URL(url).host == "127.0.0.1" else None
        transport = httpx.HTTPTransport(local_address=local) if local else None
        with httpx.Client(base_url=url, timeout=timeout, transport=transport) as client:
            while True:
                with lock:
                    i = next(cursor, None)
                if i is None:
                    return
                item = plan[i]
                started = time.perf_counter()
                asked = ask_checked(client, item)
                server_ms = asked.body.get("latency_ms") if asked.body else None
                req = Request(item["question"], asked.status, time.perf_counter() - started, asked.error, server_ms)
                with lock:
                    result.requests.append(req)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(k,), name=f"load-client-{k}") for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.seconds = time.perf_counter() - started
    if server is not None:
        result.rss_peak = server.status("VmHWM")
    return result


# --------------------------------------------------------------------------- report


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1000:,.0f} ms"


def _mb(n: int | None) -> str:
    return "—" if n is None else f"{n / 1048576:,.0f} MB"


def render_markdown(result: LoadResult, label: str = "") -> str:
    n = len(result.requests)
    server_ms = sorted(r.server_ms for r in result.requests if r.server_ms is not None)
    from assistant.evaluation.metrics import percentile

    rows = [
        ("questions", f"{n}"),
        ("concurrent clients", f"{result.clients}"),
        ("errors", f"{len(result.errors)}"),
        ("wall time", f"{result.seconds:.1f} s"),
        ("throughput", f"{n / result.seconds:.2f} questions/s" if result.seconds else "—"),
        ("latency p50 (client)", _ms(result.latency(50))),
        ("latency p95 (client)", _ms(result.latency(95))),
        ("latency max (client)", _ms(max((r.seconds for r in result.requests), default=None))),
        ("answer time p50 (server, `latency_ms`)", _ms((percentile(server_ms, 50) or 0) / 1000 if server_ms else None)),
        ("server RSS after warm-up", _mb(result.rss_before)),
        ("server peak RSS (VmHWM)", _mb(result.rss_peak)),
    ]
    lines = [f"### Load test{(' — ' + label) if label else ''}", "", "| measure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    if result.errors:
        lines += ["", "Errors (first 10):", ""]
        lines += [f"- `{r.question[:60]}`: {r.error}" for r in result.errors[:10]]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--index", type=Path, default=REPO / "index")
    parser.add_argument("--corpus", type=Path, default=REPO / "corpus")
    parser.add_argument("--gold", type=Path, default=REPO / "eval" / "gold.jsonl")
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=120, help="seconds per request")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "load.md")
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= 200 or not 1 <= args.questions <= 100_000:
        parser.error("--clients must be 1..200 and --questions 1..100000")
    questions = gold_questions(args.gold)
    server = start_server(args.index, args.corpus)
    try:
        # One question first, so the load measures a warm server.
        warm = httpx.post(server.url + "/api/ask", json=questions[0], timeout=args.timeout)
        warm.raise_for_status()
        result = run_load(server.url, questions, args.questions, args.clients, args.timeout, server)
    finally:
        server.stop()
        server.log.unlink(missing_ok=True)
    cpu = os.cpu_count() or 0
    label = (f"{args.questions} questions of {args.gold.name}, {args.clients} clients, {cpu} CPUs, "
             f"{time.strftime('%Y-%m-%d')}")
    report = render_markdown(result, label)
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report, encoding="utf-8")
    return 1 if result.errors else 0


if __name__ == "__main__":
    sys.exit(main())
