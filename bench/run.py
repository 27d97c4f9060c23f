"""The assistant's benchmark suite: scale, ingest throughput, latency, memory, cold start, and a llama-index baseline.

    python bench/run.py [--sizes 1000,10000,100000] [--quick] [--out bench/results.md] [--keep]

Everything is measured side by side in one run and written to ``--out`` (Markdown tables, the machine's
details) with a plot next to it (``scale.png``), plus the raw figures as JSON (``results.json``).
Generated corpora and indexes live in a temporary directory (removed at the end unless ``--keep``).
See bench/README.md for what each figure means and how long a run takes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import report  # noqa: E402

GOLD = REPO / "eval" / "gold.jsonl"
DATA = Path("/work/shared/bench-data")
QUICK_SIZES = [300, 3000]
FULL_SIZES = [1000, 10000, 100000]
COLD_QUESTIONS = ("When was the Changzhou Inspection, Testing and Certification Industry-Education Alliance launched?",
                  "常州检验检测认证产教联盟是由哪个单位牵头发起的？")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False",
                "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(REPO)})
    return env


# --------------------------------------------------------------------------- instrumentation


@contextmanager
def timed_calls(targets: list[tuple[Any, str, str]]) -> Iterator[dict[str, list[float]]]:
    """Wrap ``owner.attr`` callables to sum their wall time (label -> [seconds, calls]); restored on exit."""
    acc: dict[str, list[float]] = {label: [0.0, 0] for _, _, label in targets}
    saved = []
    for owner, attr, label in targets:
        original = getattr(owner, attr)
        saved.append((owner, attr, original))

        def wrapper(*a: Any, _orig: Callable[..., Any] = original, _label: str = label, **kw: Any) -> Any:
            s = time.perf_counter()
            try:
                return _orig(*a, **kw)
            finally:
                acc[_label][0] += time.perf_counter() - s
                acc[_label][1] += 1

        setattr(owner, attr, wrapper)
    try:
        yield acc
    finally:
        for owner, attr, original in reversed(saved):
            setattr(owner, attr, original)


# --------------------------------------------------------------------------- stages


def real_ingest(level: Any, index_dir: Path, raw_runs: int) -> tuple[dict[str, Any], Any]:
    """``Assistant.ingest`` of the level with the real model vs raw ``encode`` of the same chunk texts."""
    from corpusgen import iter_level_texts
    from scale import config_for

    import assistant.core as core_mod
    import assistant.ingest as ingest_mod
    from assistant.core import Assistant
    from assistant.embedding import Embedder
    from assistant.store import Store

    a = Assistant(config_for(index_dir, level.directory))
    model = a.embedder.model  # loaded before any timing
    _, prefix = a.embedder.settings.prefixes
    texts = [prefix + t for t in iter_level_texts(level)]
    model.encode(texts[:64], batch_size=32, show_progress_bar=False)  # warm the kernels

    def raw() -> float:
        s = time.perf_counter()
        model.encode(texts, batch_size=a.embedder.settings.batch_size, normalize_embeddings=True,
                     convert_to_numpy=True, show_progress_bar=False)
        return time.perf_counter() - s

    raw_s = [raw()]
    log(f"raw encode of {len(texts)} chunks: {raw_s[0]:.1f} s")
    targets = [
        (ingest_mod, "load_file", "reading files (load_file)"),
        (ingest_mod, "chunk_document", "chunking (chunk_document)"),
        (Embedder, "encode_passages", "embedding (Embedder.encode_passages)"),
        (Store, "add_chunk_groups", "Chroma chunk upserts (Store.add_chunk_groups)"),
        (Store, "commit_documents", "manifest commits (Store.commit_documents)"),
        (Store, "set_file_hashes", "file hashes (Store.set_file_hashes)"),
        (core_mod, "refresh_lexical", "BM25 build (refresh_lexical)"),
    ]
    with timed_calls(targets) as acc:
        s = time.perf_counter()
        rep = a.ingest()
        ingest_s = time.perf_counter() - s
    log(f"Assistant.ingest: {rep.chunks_added} chunks in {ingest_s:.1f} s")
    for _ in range(raw_runs - 1):
        raw_s.append(raw())
        log(f"raw encode again: {raw_s[-1]:.1f} s")
    raw_mean = sum(raw_s) / len(raw_s)
    # The same texts through the other backend (sentence-transformers when the default runs ONNX): ingest
    # uses ONNX Runtime because it is at least as fast (issue 17).
    from assistant.embedding import EmbeddingSettings

    other_backend = "sentence-transformers" if a.embedder.backend == "onnx" else "onnx"
    other = Embedder(EmbeddingSettings(backend=other_backend)).model
    other.encode(texts[:64], batch_size=32, show_progress_bar=False)
    s = time.perf_counter()
    other.encode(texts, batch_size=a.embedder.settings.batch_size, normalize_embeddings=True,
                 convert_to_numpy=True, show_progress_bar=False)
    other_s = time.perf_counter() - s
    log(f"raw encode with {other_backend}: {other_s:.1f} s")
    breakdown = {k: v[0] for k, v in acc.items()}
    breakdown["other (manifest reads, hashing, sweep...)"] = ingest_s - sum(breakdown.values())
    info = {
        "chunks": rep.chunks_added,
        "raw_s": raw_s,
        "raw_rate": len(texts) / raw_mean,
        "backend": a.embedder.backend,
        "other_backend": {"name": other_backend, "raw_s": other_s, "raw_rate": len(texts) / other_s},
        "ingest_s": ingest_s,
        "ingest_rate": rep.chunks_added / ingest_s,
        "ratio": (rep.chunks_added / ingest_s) / (len(texts) / raw_mean),
        "breakdown": breakdown,
        "calls": {k: int(v[1]) for k, v in acc.items()},
        "report": rep.to_dict(),
    }
    return info, a.embedder


def run_worker(index_dir: Path, out: Path, extra: list[str] | None = None, timeout: float = 1800) -> dict[str, Any]:
    cmd = [sys.executable, str(BENCH / "worker.py"), "--index", str(index_dir), "--gold", str(GOLD), "--out", str(out)]
    proc = subprocess.run(cmd + (extra or []), env=child_env(), cwd=str(out.parent), capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"worker failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(out.read_text())


def run_baseline_set(label: str, qa: Any, work: Path) -> dict[str, Any]:
    """Both systems on one question set, in a fresh process (see baseline.py)."""
    work.mkdir(parents=True, exist_ok=True)
    out = work / "summary.json"
    cmd = [sys.executable, str(BENCH / "baseline.py"), "--name", label, "--corpus", str(qa.corpus),
           "--gold", str(qa.gold), "--work", str(work), "--out", str(out)]
    proc = subprocess.run(cmd, env=child_env(), cwd=str(work), capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"baseline failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(out.read_text())


def cold_start(index_dir: Path, question: str, cwd: Path) -> dict[str, Any]:
    code = (
        "import sys\n"
        "from assistant.core import Assistant\n"
        "answer = Assistant.open(sys.argv[1]).ask(sys.argv[2])\n"
        "print(len(answer.citations), answer.abstained)\n"
    )
    s = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, str(index_dir), question], env=child_env(), cwd=str(cwd),
                          capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - s
    if proc.returncode != 0:
        raise RuntimeError(f"cold start failed: {proc.stderr[-2000:]}")
    return {"question": question, "seconds": seconds, "output": proc.stdout.strip()}


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default=None, help="chunk counts of the scale levels (default 1000,10000,100000; "
                   "the smallest is embedded for real)")
    p.add_argument("--quick", action="store_true", help="small sizes and samples: a smoke run of a few minutes")
    p.add_argument("--out", type=Path, default=BENCH / "results.md", help="Markdown report (default bench/results.md)")
    p.add_argument("--squad-limit", type=int, default=None, help="SQuAD 1.1 dev questions (default 300; quick 40)")
    p.add_argument("--cmrc-limit", type=int, default=None, help="CMRC 2018 trial questions (default all; quick 40)")
    p.add_argument("--no-baseline", action="store_true", help="skip the llama-index comparison")
    p.add_argument("--workdir", type=Path, default=None, help="where to put corpora and indexes (default: a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    default_sizes = QUICK_SIZES if args.quick else FULL_SIZES
    sizes = sorted({int(x) for x in args.sizes.split(",")}) if args.sizes else default_sizes
    squad_limit = args.squad_limit or (40 if args.quick else 300)
    cmrc_limit = args.cmrc_limit or (40 if args.quick else None)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="assistant-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_path = out.parent / "scale.png"
    json_path = out.with_suffix(".json")
    started = time.perf_counter()
    results: dict[str, Any] = {
        "run": {
            "command": "python bench/run.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "quick": args.quick,
            "sizes": sizes,
            "started": dt.datetime.now().isoformat(timespec="seconds"),
            "load_start": list(report.load_average()),
            "stages": {},
        },
        "machine": report.machine_info(),
        "levels": [],
        "baseline": [],
    }
    results["title"] = f"{results['machine']['cpu']}, {results['machine']['cores']} cores" + (
        " — QUICK RUN" if args.quick else "")

    def save() -> None:
        results["run"]["seconds"] = time.perf_counter() - started
        results["run"]["load_end"] = list(report.load_average())
        try:
            report.plot(results, plot_path)
            has_plot = plot_path.exists()
        except Exception as exc:  # the tables matter more than the picture
            log(f"plot failed: {exc}")
            has_plot = False
        out.write_text(report.render(results, plot_path.name if has_plot else None), encoding="utf-8")
        json_path.write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")

    @contextmanager
    def stage(name: str) -> Iterator[None]:
        log(f"stage: {name}")
        s = time.perf_counter()
        try:
            yield
        finally:
            results["run"]["stages"][name] = time.perf_counter() - s
            save()

    log(f"work dir {work}; sizes {sizes}; load {results['run']['load_start'][0]:.2f}")
    try:
        import corpusgen
        import scale

        with stage("generate"):
            s = time.perf_counter()
            pools = corpusgen.load_pools()
            levels = corpusgen.build_levels(work / "levels", sizes, pools=pools)
            results["generation"] = {"seed": corpusgen.SEED, "pools": pools.sizes(), "seconds": time.perf_counter() - s}
            for lv in levels:
                results["levels"].append({"target": lv.target, "chunks": lv.chunks, "documents": lv.documents,
                                          "files": lv.files, "dir": str(lv.directory),
                                          "index": str(work / f"index-{lv.target}")})
            log(f"levels: {[(lv.chunks, lv.documents, lv.files) for lv in levels]}")

        first = results["levels"][0]
        with stage("ingest (real embeddings)"):
            info, embedder = real_ingest(levels[0], Path(first["index"]), raw_runs=2)
            results["ingest"] = info
            first.update({"real_embedding": True, "build_s": info["ingest_s"]})
            known = scale.stored_vectors(Path(first["index"]), levels[0].directory)

        with stage("build (re-used vectors)"):
            for lv, rec in zip(levels[1:], results["levels"][1:], strict=True):
                b = scale.build_with_reused_vectors(Path(rec["index"]), lv.directory, known)
                rec.update({"build_s": b.seconds, "phases": b.phases, "real_vectors": b.real_vectors,
                            "reused_vectors": b.reused_vectors, "stored_chunks": b.chunks})
                log(f"built {b.chunks} chunks in {b.seconds:.1f} s {b.phases}")

        with stage("re-ingest unchanged"):
            import gc

            gc.collect()  # the builds leave garbage behind; keep its collection out of the timings
            for lv, rec in zip(levels, results["levels"], strict=True):
                rec["reingest"] = scale.reingest_unchanged(Path(rec["index"]), lv.directory)
                log(f"re-ingest {rec['chunks']}: {rec['reingest']['seconds']}")

        with stage("latency + RSS workers"):
            for rec in results["levels"]:
                w = run_worker(Path(rec["index"]), work / f"worker-{rec['target']}.json")
                rec["worker"] = w
                log(f"{rec['chunks']} chunks: ask p50 {w['ask']['all']['p50']:.1f} ms, search p50 "
                    f"{w['search']['all']['p50']:.1f} ms, peak RSS {w['peak_rss_mb']:.0f} MB")

        with stage("cold start"):
            for rec in results["levels"]:
                rec["cold_start"] = [cold_start(Path(rec["index"]), q, work) for q in COLD_QUESTIONS]
                log(f"cold start {rec['chunks']}: {[round(c['seconds'], 2) for c in rec['cold_start']]}")

        with stage("start-up rows (ask, serve, RSS)"):
            import startup

            # Issue 17: `assistant ask` and `assistant serve` from a fresh process, with the ONNX encoder (the
            # default) and with sentence-transformers, as ratios to `import torch`; peak RSS of ingest and serve.
            st = startup.measure(results["levels"], work)
            st["ingest"] = [startup.ingest_child(levels[0].directory, work / "index-ingest-rss", "onnx", work)]
            results["startup"] = st

        if not args.no_baseline:
            import baseline as bl

            with stage("baseline"):
                qa_sets = [
                    (bl.QASet("eval/gold.jsonl over corpus/", REPO / "corpus", GOLD), ""),
                    (bl.convert(DATA / "squad/dev-v1.1.json.gz", work / "squad", squad_limit), "squad"),
                    (bl.convert(DATA / "cmrc2018/cmrc2018_trial.json.gz", work / "cmrc", cmrc_limit), "cmrc"),
                ]
                for qa, tag in qa_sets:
                    n = sum(1 for line in qa.gold.read_text(encoding="utf-8").splitlines() if line.strip())
                    label = {
                        "": f"gold set ({n})",
                        "squad": f"SQuAD 1.1 dev ({n})",
                        "cmrc": f"CMRC 2018 trial ({n})",
                    }[tag]
                    name = tag or "gold"
                    summary = run_baseline_set(label, qa, work / f"bl-{name}")
                    log(f"{label}: assistant {summary['assistant']}")
                    log(f"{label}: llama-index {summary['llama']}")
                    results["baseline"].append(summary)
                    save()

        with stage("load test"):
            import httpx
            import load
            from scale import config_for

            # The HTTP API under 20 concurrent clients, over an index of the sample corpus (bench/load.py).
            from assistant.core import Assistant

            load_index = work / "index-load"
            Assistant(config_for(load_index, REPO / "corpus")).ingest()
            questions = load.gold_questions(GOLD)
            server = load.start_server(load_index, REPO / "corpus")
            try:
                httpx.post(server.url + "/api/ask", json=questions[0], timeout=120).raise_for_status()  # warm
                lr = load.run_load(server.url, questions, 200, 20, 120, server)
            finally:
                server.stop()
                server.log.unlink(missing_ok=True)
            cpu = os.cpu_count() or 0
            results["load"] = {
                "markdown": load.render_markdown(lr, f"200 questions of gold.jsonl, 20 clients, {cpu} CPUs"),
                "errors": len(lr.errors),
                "p95_ms": (lr.latency(95) or 0) * 1000,
                "peak_rss_mb": (lr.rss_peak or 0) / 1048576,
            }
            log(f"load test: {len(lr.errors)} errors, p95 {results['load']['p95_ms']:.0f} ms")

        with stage("profile"):
            largest = results["levels"][-1]
            prof = run_worker(Path(largest["index"]), work / "profile.json", ["--profile", "--limit", "60"])
            small = run_worker(Path(first["index"]), work / "profile-small.json", ["--profile", "--start-only"])
            results["profile"] = {
                "chunks": prof["chunks"],
                "questions": prof["ask"]["questions"],
                "total_s": prof["ask"]["total_s"],
                "tottime": prof["ask"]["tottime"],
                "cumtime": prof["ask"]["cumtime"],
                "start": prof["start"],
                "start_small": {**small["start"], "chunks": small["chunks"]},
            }
        results["findings"] = findings(results)
    except BaseException as exc:
        results["run"]["partial"] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
        save()
        log(f"partial results written to {out}")
        return 1
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    save()
    log(f"done in {time.perf_counter() - started:.0f} s: {out}")
    return 0


def findings(results: dict[str, Any]) -> list[str]:
    """Hot spots worth acting on, with this run's numbers (the library is not changed by the bench)."""
    out: list[str] = []
    ing = results.get("ingest") or {}
    bd, calls = ing.get("breakdown") or {}, ing.get("calls") or {}
    key = "Chroma chunk upserts (Store.add_chunk_groups)"
    if key in bd and ing.get("ingest_s"):
        n = calls.get(key, 0) or 1
        emb = bd.get("embedding (Embedder.encode_passages)", 0.0)
        out.append(
            f"**Ingest: Chroma upserts.** `assistant/store.py:Store.add_chunk_groups` writes every chunk of an "
            f"embedding batch (256 chunks) in one upsert: {n:,} calls took {bd[key]:.1f} s "
            f"({bd[key] / ing['ingest_s'] * 100:.0f}% of the ingest; embedding {emb / ing['ingest_s'] * 100:.0f}%). "
            "Before this, one upsert per document took 39% of the ingest (0.52x the raw encoder; Chroma's fixed "
            "cost per upsert is tens of milliseconds and grows with the rows written since its last index sync)."
            + (f" Ingest is {ing['ratio']:.2f}x the raw encoder: below the 0.85x target; the rest of the gap is in "
               "the table above." if ing.get("ratio", 1.0) < 0.85 else "")
        )
    levels = results.get("levels") or []
    big = levels[-1] if levels else None
    prof = results.get("profile") or {}
    if big and big.get("worker"):
        st = big["worker"]["startup_s"]
        cold = max((c["seconds"] for c in big.get("cold_start") or []), default=None)
        share = {r["where"]: r["share"] for r in (prof.get("start") or {}).get("cumtime", [])}
        load = share.get("assistant/retrieval.py:load")
        model = share.get("assistant/embedding.py:_load")
        out.append(
            f"**Start-up at {big['chunks']:,} chunks.** Worker start-up: open {st['open']:.1f} s, warm-up "
            f"{st['warm_up']:.1f} s; cold start to the first answer {report.f(cold, 1)} s"
            + (f" (cProfile of open + warm-up: `LexicalIndex.load` {load * 100:.0f}%, model load "
               f"{model * 100:.0f}%)" if load and model else "")
            + ". The BM25 matrix is memory-mapped and the token lists are not read at start-up (before this, "
            "re-running `bm25s.BM25.index` on every chunk's tokens made a 100k-chunk cold start 23.9 s); what "
            "remains is unpickling the chunk texts and metadata (`LexicalIndex.load`) and building the id map. "
            "Next step: keep texts and metadata in Chroma only, or in a columnar file read on demand."
        )
        small = prof.get("start_small") or {}
        sm = {r["where"]: r["share"] for r in small.get("cumtime", [])}
        small_model = sm.get("assistant/embedding.py:_load")
        cold_small = max((c["seconds"] for c in levels[0].get("cold_start") or []), default=None)
        if small_model:
            out.append(
                f"**Cold start at {small.get('chunks', 0):,} chunks ({report.f(cold_small, 1)} s) is mostly the "
                f"embedding model**: `assistant/embedding.py:Embedder._load` is {small_model * 100:.0f}% of open + "
                "warm-up (cProfile), nearly all of it importing sentence-transformers/transformers "
                "(`python -X importtime`: "
                "~4.5 s for `import sentence_transformers` on this CPU, 1.2 s of it scikit-learn, which "
                "`sentence_transformers.util` imports) rather than reading the 90 MB of weights. "
                "Ideas: start loading the model in a background thread when the `Assistant` is created, overlapping "
                "Chroma/BM25/jieba loading (2 cores); answer the first question lexically while it loads (dense adds "
                "little to Chinese questions per `RetrievalSettings`); or run the encoder through a lighter runtime "
                "(`SentenceTransformer(..., backend=\"onnx\")` with an exported model, or plain `tokenizers` + ONNX "
                "Runtime) so that `transformers` is not imported on the answer path."
            )
        rss = big["worker"]["peak_rss_mb"]
        small_rss = (levels[0].get("worker") or {}).get("rss_mb_after_warm_up") or 0.0
        out.append(
            f"**Memory at {big['chunks']:,} chunks: {rss:,.0f} MB peak RSS**, "
            f"{big['worker']['rss_mb_after_warm_up']:,.0f} MB after warm-up. The model, torch, jieba, OpenCC and "
            f"CC-CEDICT are most of the {small_rss:,.0f} MB of the smallest level; the rest grows with the index: "
            "chunk texts and "
            "a metadata dict per chunk held by the lexical index, Chroma's HNSW index and its caches. (Token lists, "
            "~0.6 GB at 100k, are no longer held.) Next step: compact metadata columns instead of 100k dicts."
        )
    if prof.get("tottime"):
        tot = {r["where"]: r["share"] for r in prof["tottime"]}
        cum = {r["where"]: r["share"] for r in prof["cumtime"]}
        count = tot.get("(builtin) <method 'count' of 'builtins.Bindings' objects>")
        rerank = cum.get("assistant/retrieval.py:_sentence_rerank")
        embed = cum.get("assistant/embedding.py:encode_queries")
        query = tot.get("(builtin) <method 'query' of 'builtins.Bindings' objects>")
        parts = []
        if count:
            parts.append(
                f"`assistant/store.py:Store.query` counts the collection once per question (a Chroma round trip): "
                f"{count * 100:.0f}% of `ask` time at {prof['chunks']:,} chunks"
            )
        if rerank:
            parts.append(
                f"`assistant/retrieval.py:Retriever._sentence_rerank` → `sentence_tokens` tokenizes the sentences of "
                f"the 20 fused passages on a cache miss ({rerank * 100:.0f}%; jieba + OpenCC for Chinese; could be "
                "computed at index time next to the chunk tokens)"
            )
        if embed:
            parts.append(f"query embedding `Embedder.encode_queries` {embed * 100:.0f}% (the model itself)")
        if query:
            parts.append(f"Chroma HNSW query {query * 100:.0f}%")
        if parts:
            out.append("**Query path** (cProfile, see the tables below): " + "; ".join(parts) + ".")
    lv10 = next((lv for lv in levels if lv["target"] == 10000), None) or (levels[-2] if len(levels) > 1 else None)
    if big and big.get("reingest") and lv10 and lv10.get("reingest") and lv10 is not big:
        out.append(
            f"**Re-ingest of an unchanged corpus** took {lv10['reingest']['median']:.2f} s at "
            f"{lv10['chunks']:,} chunks and {big['reingest']['median']:.2f} s at {big['chunks']:,}: it reads the "
            "whole manifest from Chroma (`Store.documents`, `Store.file_hashes`) and hashes every file; documents "
            "are grouped by file once (a scan of all records per file made it files × documents before)."
        )
    first = (levels[0].get("worker") or {}).get("first_questions_ms") if levels else None
    if first:
        out.append(
            f"**First questions after `warm_up()`**: {first['zh']:.0f} ms for the first Chinese one, "
            f"{first['en']:.0f} ms for the first English one, at {levels[0]['chunks']:,} chunks (`warm_up` now also "
            "loads jieba's part-of-speech tables, which the first Chinese question used to pay for, ~0.4 s)."
        )
    return out


if __name__ == "__main__":
    sys.exit(main())
