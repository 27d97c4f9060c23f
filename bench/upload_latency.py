"""Question latency while an upload is embedded, as a ratio to idle latency in the same run (issue 18).

The server's path without HTTP: ``Assistant.ingest(paths, write_lock=guard.write)`` in a thread (as the
staff upload runs it) while questions are asked under ``guard.read()`` one after another (as the chat and
``/api/ask`` ask them). Idle questions first, then the same questions during the upload of a generated
report of ``--chars`` characters (about 400 characters a chunk). Prints p50/p95 idle and during, and the
ratios; the target is p95 during within 2x idle.

    .venv/bin/python bench/upload_latency.py                 # 600,000 characters (~1,500 chunks)
    .venv/bin/python bench/upload_latency.py --chars 100000  # quicker
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

QUESTIONS = [
    "常州检验检测认证产教联盟是什么时候成立的？",
    "What does the Suzhou alliance do?",
    "Which companies take part in the Nanhai community?",
    "产教融合共同体有哪些成员？",
]


def report_text(n_chars: int) -> str:
    """A long English report on a made-up topic no sample document mentions."""
    rnd = random.Random(3)
    ports = ["Qinzhou", "Beihai", "Fangcheng", "Zhanjiang", "Haikou", "Sanya"]
    lines = ["The Pelican harbour alliance trains crane operators for the Nanliu valley ports."]
    while sum(map(len, lines)) < n_chars:
        lines.append(
            f"In week {rnd.randrange(1, 53)} the {rnd.choice(ports)} terminal of the Pelican harbour alliance "
            f"certified {rnd.randrange(5, 90)} crane operators and {rnd.randrange(2, 40)} riggers, and its "
            f"simulator logged {rnd.randrange(100, 900)} hours of night shifts."
        )
    return "\n".join(lines) + "\n"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chars", type=int, default=600_000)
    parser.add_argument("--idle", type=int, default=80, help="idle questions before the upload")
    parser.add_argument("--pause", type=float, default=0.05, help="seconds between questions")
    args = parser.parse_args()

    from assistant.config import Config
    from assistant.core import Assistant
    from assistant.server import ReadWriteLock

    work = Path(tempfile.mkdtemp(prefix="assistant-upload-bench-"))
    try:
        corpus = work / "corpus"
        shutil.copytree(REPO / "corpus", corpus, ignore=shutil.ignore_patterns(".*"))
        assistant = Assistant(Config.from_env(index_dir=work / "index", corpus_dir=corpus))
        assistant.ingest()
        assistant.warm_up()
        guard = ReadWriteLock()

        def ask(n: int) -> float:
            with guard.read():
                started = time.perf_counter()
                assistant.ask(QUESTIONS[n % len(QUESTIONS)])
                return time.perf_counter() - started

        for n in range(len(QUESTIONS)):  # every question once, so none pays a first-time cost below
            ask(n)
        idle = []
        for n in range(args.idle):
            idle.append(ask(n))
            time.sleep(args.pause)
        upload = corpus / "pelican.txt"
        upload.write_text(report_text(args.chars), encoding="utf-8")
        reports = []
        worker = threading.Thread(target=lambda: reports.append(assistant.ingest([upload], write_lock=guard.write)))
        started = time.perf_counter()
        worker.start()
        during = []
        n = 0
        while worker.is_alive():
            during.append(ask(n))
            n += 1
            time.sleep(args.pause)
        worker.join()
        upload_s = time.perf_counter() - started
        [report] = reports
        row = {
            "upload_chunks": report.chunks_added,
            "upload_seconds": round(upload_s, 1),
            "idle_n": len(idle),
            "during_n": len(during),
            "idle_p50_ms": round(statistics.median(idle) * 1000, 1),
            "idle_p95_ms": round(pct(idle, 0.95) * 1000, 1),
            "during_p50_ms": round(statistics.median(during) * 1000, 1),
            "during_p95_ms": round(pct(during, 0.95) * 1000, 1),
        }
        row["p95_ratio"] = round(row["during_p95_ms"] / row["idle_p95_ms"], 2)
        row["p50_ratio"] = round(row["during_p50_ms"] / row["idle_p50_ms"], 2)
        print(json.dumps(row))
        print(f"p95 during the upload / idle: {row['p95_ratio']}x (target: within 2x); "
              f"p50 {row['p50_ratio']}x; {report.chunks_added} chunks embedded in {upload_s:.0f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
