"""One scale level in a fresh process: warm query latency (retrieval alone and the full answer) and peak RSS.

    python bench/worker.py --index DIR --gold eval/gold.jsonl --out result.json

Opens the index with default settings, calls ``Assistant.warm_up`` and asks two throw-away questions,
then runs every gold question (with its history) once through ``Assistant.ask`` and once through
``Assistant.retriever.search`` (on the standalone question ``ask`` would search for). The embedder's
query cache is emptied before every timed call, so each one pays for embedding its question, as a new
question would. Peak RSS is the process's ``VmHWM`` at the end (and after warm-up); see ``rss_mb`` for
why not ``ru_maxrss``. Before every question a fixed *reference workload* is timed (``reference_ms``):
the machine's speed at that moment, so runs on a loaded and a quiet machine can be told apart.
The gold answers are scored too (retrieval hit@1/hit@5, citation precision): at the bigger levels the
generated documents are distractors, so this shows how quality holds as the index grows (indicative only:
their vectors are re-used, see scale.py).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

STARTED = time.perf_counter()

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


def rss_mb() -> float:
    """Peak RSS of this process in MB: ``VmHWM`` of /proc/self/status.

    ``getrusage(RUSAGE_SELF).ru_maxrss`` is not usable here: Linux carries the parent's high-water mark
    over fork and exec, so a worker started by a 4 GB driver would report 4 GB whatever it uses.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


# The reference workload: one query encode (the model's share of a question) and a fixed piece of
# Python string and regex work (the rest of it), with nothing cached between calls.
REFERENCE_QUERY = "Which companies and colleges joined the alliance, and when was it founded?"
REFERENCE_TEXT = " ".join(f"Alliance member {i} trains {i % 7} technicians a year in Changzhou." for i in range(200))


def reference_ms(assistant: Any) -> float:
    """Milliseconds for the reference workload (see above), on this machine, now."""
    import re

    s = time.perf_counter()
    assistant.embedder._query_cache.pop(REFERENCE_QUERY, None)
    assistant.embedder.encode_queries([REFERENCE_QUERY])
    words: dict[str, int] = {}
    for _ in range(20):
        for w in re.findall(r"\w+", REFERENCE_TEXT.lower()):
            words[w] = words.get(w, 0) + 1
    sorted(words.items(), key=lambda kv: (-kv[1], kv[0]))
    return (time.perf_counter() - s) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--gold", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=0, help="only the first N gold questions (0: all)")
    parser.add_argument("--profile", action="store_true", help="cProfile the start-up and the asks instead of timing")
    parser.add_argument("--start-only", action="store_true", help="with --profile: the start-up only")
    args = parser.parse_args()
    if args.profile:
        profile(args)
        return

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from scale import config_for

    from assistant.chat import rewrite
    from assistant.core import Assistant
    from assistant.evaluation import answer_to_record, load_gold, percentile, score_records

    t0 = time.perf_counter()
    assistant = Assistant(config_for(args.index, args.index))
    t1 = time.perf_counter()
    assistant.warm_up()
    first_ms = []
    for q in ("What is an industry-education alliance?", "产教融合联盟是什么？"):
        s = time.perf_counter()
        assistant.ask(q)
        first_ms.append((time.perf_counter() - s) * 1000)
    t2 = time.perf_counter()
    rss_warm = rss_mb()

    items = load_gold(args.gold)
    if args.limit:
        items = items[: args.limit]
    cache = assistant.embedder._query_cache  # emptied before each timed call (see the docstring)
    records = []
    timings: list[dict[str, object]] = []
    for item in items:
        history = list(item.history) or None
        ref_ms = reference_ms(assistant)
        cache.clear()
        s = time.perf_counter()
        answer = assistant.ask(item.question, history=history)
        ask_ms = (time.perf_counter() - s) * 1000
        records.append(answer_to_record(item, answer, ask_ms))
        standalone = rewrite(item.question, list(item.history)).standalone
        cache.clear()
        s = time.perf_counter()
        assistant.retriever.search(standalone)
        search_ms = (time.perf_counter() - s) * 1000
        lang = "zh" if "zh" in item.tags else "en"
        timings.append({"id": item.id, "lang": lang, "ask_ms": ask_ms, "search_ms": search_ms, "reference_ms": ref_ms,
                        "ask_per_reference": ask_ms / ref_ms})

    def pct(key: str, lang: str | None = None) -> dict[str, float | None]:
        values = [float(t[key]) for t in timings if lang is None or t["lang"] == lang]  # type: ignore[arg-type]
        return {"p50": percentile(values, 50), "p95": percentile(values, 95), "n": len(values)}

    scored = score_records(items, records, k=5).overall
    out = {
        "index": str(args.index),
        "chunks": len(assistant.retriever.lexical),
        "startup_s": {"imports": t0 - STARTED, "open": t1 - t0, "warm_up": t2 - t1},
        "ask": {"all": pct("ask_ms"), "en": pct("ask_ms", "en"), "zh": pct("ask_ms", "zh")},
        "search": {"all": pct("search_ms"), "en": pct("search_ms", "en"), "zh": pct("search_ms", "zh")},
        "reference": {"ms": pct("reference_ms"), "ask_per_reference": pct("ask_per_reference")},
        "quality": {k: scored.get(k) for k in ("hit@1", "hit@k", "citation_precision", "abstention_recall",
                                                "false_abstention_rate")},
        "first_questions_ms": {"en": first_ms[0], "zh": first_ms[1]},
        "rss_mb_after_warm_up": rss_warm,
        "peak_rss_mb": rss_mb(),
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "timings": timings,
    }
    args.out.write_text(json.dumps(out, indent=1))


def _rows(stats: Any, key: str, total: float, top: int) -> list[dict[str, object]]:
    entries = []
    for (file, line, func), (_cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        value = tt if key == "tottime" else ct
        entries.append((value, nc, _where(file, line, func)))
    entries.sort(key=lambda e: -e[0])
    rows = []
    for value, calls, where in entries:
        if key == "cumtime" and (where.startswith("~") or "<" in where or where.startswith("bench/")):
            continue
        rows.append({"where": where, "share": value / total if total else 0.0, "calls": calls, "seconds": value})
        if len(rows) >= top:
            break
    return rows


def _where(file: str, line: int, func: str) -> str:
    if file == "~":
        return f"(builtin) {func}"
    for marker in ("site-packages/", "/work/main/", "/lib/python3.11/"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{file}:{func}"


def profile(args: argparse.Namespace) -> None:
    """cProfile of opening + warm-up, and of ``ask`` over the gold questions (query cache emptied each time)."""
    import cProfile
    import pstats

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from scale import config_for

    from assistant.core import Assistant
    from assistant.evaluation import load_gold

    out: dict[str, object] = {}
    prof = cProfile.Profile()
    s = time.perf_counter()
    prof.enable()
    assistant = Assistant(config_for(args.index, args.index))
    assistant.warm_up()
    prof.disable()
    total = time.perf_counter() - s
    stats = pstats.Stats(prof)
    out["start"] = {"total_s": total, "tottime": _rows(stats, "tottime", total, 12),
                    "cumtime": _rows(stats, "cumtime", total, 14)}
    out["chunks"] = len(assistant.retriever.lexical)
    if args.start_only:
        args.out.write_text(json.dumps(out, indent=1))
        return
    for q in ("What is an industry-education alliance?", "产教融合联盟是什么？"):
        assistant.ask(q)
    items = load_gold(args.gold)
    if args.limit:
        items = items[: args.limit]
    cache = assistant.embedder._query_cache
    prof = cProfile.Profile()
    total = 0.0
    for item in items:
        cache.clear()
        s = time.perf_counter()
        prof.enable()
        assistant.ask(item.question, history=list(item.history) or None)
        prof.disable()
        total += time.perf_counter() - s
    stats = pstats.Stats(prof)
    out["ask"] = {"questions": len(items), "total_s": total, "tottime": _rows(stats, "tottime", total, 15),
                  "cumtime": _rows(stats, "cumtime", total, 22)}
    args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
