"""Start-up rows (issue 17): cold start of ``assistant ask`` and time to the first answer of ``assistant serve``
per index size, as ratios to ``python -c "import torch"`` timed in the same run, and peak RSS of ingest and
serve. Each embedding backend (ONNX Runtime, the default; sentence-transformers, the torch path before it)
is measured side by side.

    python bench/startup.py [--sizes 1000,10000,100000] [--out bench/startup.md] [--backends onnx,sentence-transformers]
        [--workdir DIR --reuse]   # keep the built levels in DIR and measure them again

Building the levels takes most of a first run (the 100k level ~20 min on 2 shared cores: Chroma writes
and the BM25 build); ``--workdir DIR --reuse`` measures already-built ones (a level this version's
settings no longer match is built again: ``serve`` would rebuild it in the background while timed).

Alone, it generates the levels with ``corpusgen`` (the smallest ingested for real by ``assistant ingest`` in a
child process, which is the ingest RSS row; the bigger ones built with re-used vectors by ``scale``, as
``run.py`` does). ``run.py`` calls ``measure`` on the indexes it has already built.

Every figure is one child process timed from outside (``os.wait4`` gives its own peak RSS): the whole
command, interpreter start-up included, as a user pays it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO))

QUESTIONS = (
    "When was the Changzhou Inspection, Testing and Certification Industry-Education Alliance launched?",
    "常州检验检测认证产教联盟是由哪个单位牵头发起的？",
)
BACKENDS = ("onnx", "sentence-transformers")
HEAVY = ("torch", "transformers", "sentence_transformers", "sklearn", "llama_index")


def log(msg: str) -> None:
    print(f"[startup {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def env_for(backend: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    env.update(
        {
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "ANONYMIZED_TELEMETRY": "False",
            "TOKENIZERS_PARALLELISM": "false",
            "GRADIO_ANALYTICS_ENABLED": "False",
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(REPO),
        }
    )
    if "ASSISTANT_CACHE_DIR" in os.environ:
        env["ASSISTANT_CACHE_DIR"] = os.environ["ASSISTANT_CACHE_DIR"]
    if backend:
        env["ASSISTANT_EMBEDDING_BACKEND"] = backend
    return env


# The child is started by a small launcher, which reports its rusage: a process spawned straight from this
# (big) one would inherit our RSS high-water mark in ``ru_maxrss`` (Linux keeps it across exec).
_LAUNCHER = (
    "import json, os, sys, time\n"
    "t = time.perf_counter()\n"
    "pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)\n"
    "_, status, ru = os.wait4(pid, 0)\n"
    "t = time.perf_counter() - t\n"
    "open(sys.argv[1], 'w').write(json.dumps([t, ru.ru_maxrss, ru.ru_utime + ru.ru_stime]))\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def timed_child(cmd: list[str], env: dict[str, str], cwd: Path, timeout: float = 1800) -> dict[str, Any]:
    """Run ``cmd``: wall seconds, exit code, output, the child's own peak RSS (MB) and CPU seconds."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "rusage.json"
        proc = subprocess.Popen(
            [sys.executable, "-S", "-I", "-c", _LAUNCHER, str(report), *cmd],
            env=env,
            cwd=str(cwd),
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)  # the launcher's own session: it and the child it started
            proc.wait()
        seconds, maxrss, cpu = json.loads(report.read_text()) if report.exists() else (timeout, 0, 0.0)
        out.seek(0)
        err.seek(0)
        return {
            "seconds": seconds,
            "code": proc.returncode,
            "rss_mb": maxrss / 1024,
            "cpu_s": cpu,
            "stdout": out.read().decode("utf-8", "replace"),
            "stderr": err.read().decode("utf-8", "replace"),
        }


def import_torch(runs: int, cwd: Path) -> dict[str, Any]:
    times = [timed_child([sys.executable, "-c", "import torch"], env_for(), cwd)["seconds"] for _ in range(runs)]
    return {"runs": times, "median": statistics.median(times)}


def ask_cold(index: Path, question: str, backend: str, cwd: Path) -> dict[str, Any]:
    """``assistant ask`` in a fresh process; which heavy modules it loaded (``-X importtime``)."""
    cmd = [sys.executable, "-X", "importtime", "-m", "assistant.cli", "ask", "--index", str(index), question]
    r = timed_child(cmd, env_for(backend), cwd)
    if r["code"] != 0:
        raise RuntimeError(f"ask failed ({r['code']}): {r['stderr'][-2000:]}")
    imported = {line.split("|")[-1].strip() for line in r["stderr"].splitlines() if line.startswith("import time:")}
    heavy = sorted(m for m in HEAVY if m in imported)
    return {
        "question": question,
        "backend": backend,
        "seconds": r["seconds"],
        "cpu_s": r["cpu_s"],
        "rss_mb": r["rss_mb"],
        "heavy": heavy,
    }


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _vm(pid: int, key: str) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a running process so far (/proc/PID/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def stale_reason(index: Path, corpus: Path) -> str | None:
    """Why a built level does not match the current version's settings (``Assistant.index_mismatch``:
    model, chunker, reading of Chinese text, storage format), so that it would be rebuilt before or
    while it is timed, or None."""
    import scale

    from assistant.core import Assistant
    from assistant.errors import AssistantError

    if not (index / "chroma").exists():
        return None
    try:
        return Assistant(scale.config_for(index, corpus)).index_mismatch()
    except AssistantError as exc:
        return str(exc)


def serve_first_answer(
    index: Path, corpus: Path, question: str, backend: str, cwd: Path, timeout: float = 600
) -> dict[str, Any]:
    """Start ``assistant serve``, ask through ``POST /api/ask`` until it answers: seconds from the start."""
    import httpx

    port = _free_port()
    log_file = tempfile.TemporaryFile()
    start = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "assistant.cli",
            "serve",
            "--port",
            str(port),
            "--index",
            str(index),
            "--corpus",
            str(corpus),
        ],
        env=env_for(backend),
        cwd=str(cwd),
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        listening = None
        while True:
            if proc.poll() is not None:
                log_file.seek(0)
                raise RuntimeError(f"serve exited ({proc.returncode}): {log_file.read().decode()[-2000:]}")
            if time.perf_counter() - start > timeout:
                raise RuntimeError(f"serve did not answer within {timeout:.0f} s")
            try:
                if listening is None:
                    httpx.get(url + "/api/health", timeout=2)
                    listening = time.perf_counter() - start
                r = httpx.post(url + "/api/ask", json={"question": question, "history": []}, timeout=120)
                if r.status_code == 200:
                    first = time.perf_counter() - start
                    cpu = _cpu_seconds(proc.pid)  # what it took, whatever the machine's load did to the wall time
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        maps = Path(f"/proc/{proc.pid}/maps").read_text(errors="replace")
        heavy = sorted(name for name, lib in (("torch", "libtorch"), ("sklearn", "/sklearn/")) if lib in maps)
        return {
            "question": question,
            "backend": backend,
            "listening_s": listening,
            "first_answer_s": first,
            "cpu_s": cpu,
            "rss_mb": _vm(proc.pid, "VmRSS"),
            "peak_rss_mb": _vm(proc.pid, "VmHWM"),
            "heavy_libs": heavy,
        }
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log_file.close()


def ingest_child(corpus: Path, index: Path, backend: str, cwd: Path) -> dict[str, Any]:
    """``assistant ingest`` of ``corpus`` into a new ``index`` in a fresh process: seconds, CPU and peak RSS."""
    r = timed_child(
        [sys.executable, "-m", "assistant.cli", "ingest", "--index", str(index), "--corpus", str(corpus), "--json"],
        env_for(backend),
        cwd,
        timeout=7200,
    )
    if r["code"] not in (0, 1):
        raise RuntimeError(f"ingest failed ({r['code']}): {r['stderr'][-2000:]}")
    report = json.loads(r["stdout"]) if r["stdout"].strip().startswith("{") else {}
    return {
        "backend": backend,
        "seconds": r["seconds"],
        "cpu_s": r["cpu_s"],
        "rss_mb": r["rss_mb"],
        "chunks": report.get("chunks_added"),
    }


def measure(
    levels: list[dict[str, Any]],
    work: Path,
    backends: tuple[str, ...] = BACKENDS,
    torch_runs: int = 3,
    serve_levels: int | None = None,
    repeat: int = 3,
) -> dict[str, Any]:
    """The start-up rows over already-built levels (``{"chunks", "index", "dir"}``); one dict for the report."""
    from assistant.embedding import Embedder

    _ = Embedder().model  # the ONNX export (first use) must not land in a timing
    out: dict[str, Any] = {"import_torch": import_torch(torch_runs, work), "levels": []}
    log(f"import torch: {out['import_torch']['median']:.2f} s (median of {torch_runs})")
    for i, lv in enumerate(levels):
        row: dict[str, Any] = {"chunks": lv["chunks"], "ask": [], "serve": []}
        # One untimed question first: an index written by older code may have its BM25 part rebuilt once.
        ask_cold(Path(lv["index"]), QUESTIONS[0], backends[0], work)
        runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for _ in range(repeat):  # interleaved, so a burst of load on the machine hits every row alike
            for backend in backends:
                for q in QUESTIONS:
                    runs.setdefault((backend, q), []).append(ask_cold(Path(lv["index"]), q, backend, work))
        for (backend, q), rs in runs.items():
            a = {
                "question": q,
                "backend": backend,
                "runs": [r["seconds"] for r in rs],
                "seconds": statistics.median(r["seconds"] for r in rs),
                "cpu_s": statistics.median(r["cpu_s"] for r in rs),
                "rss_mb": max(r["rss_mb"] for r in rs),
                "heavy": sorted({m for r in rs for m in r["heavy"]}),
            }
            row["ask"].append(a)
            log(
                f"{lv['chunks']} chunks, ask ({backend}): {' / '.join(f'{x:.2f}' for x in a['runs'])} s, "
                f"CPU {a['cpu_s']:.2f} s, {a['rss_mb']:.0f} MB, heavy {a['heavy']}"
            )
        for backend in backends:
            if serve_levels is None or i < serve_levels:
                s = serve_first_answer(Path(lv["index"]), Path(lv["dir"]), QUESTIONS[1], backend, work)
                row["serve"].append(s)
                log(
                    f"{lv['chunks']} chunks, serve ({backend}): first answer {s['first_answer_s']:.2f} s "
                    f"(CPU {s['cpu_s'] or 0:.2f} s), peak RSS {s['peak_rss_mb']:.0f} MB, libs {s['heavy_libs']}"
                )
        out["levels"].append(row)
        out.setdefault("import_torch_between", []).append(import_torch(1, work))
    out["import_torch_end"] = import_torch(torch_runs, work)  # the machine's load may have moved meanwhile
    return out


def render(st: dict[str, Any]) -> str:
    """Markdown: the start-up table, ratios to ``import torch`` (median of all its runs)."""
    torch_runs = (
        st["import_torch"]["runs"]
        + [x for t in st.get("import_torch_between", []) for x in t["runs"]]
        + st.get("import_torch_end", {}).get("runs", [])
    )
    torch_s = statistics.median(torch_runs)
    lines = [
        "## Start-up (issue 17): `assistant ask` and `assistant serve` from a fresh process\n",
        f'`python -c "import torch"` took **{torch_s:.2f} s** in this run (median of '
        f"{len(torch_runs)} runs: before, between and after the rows). Each `ask` figure is the median of "
        f"{len(st['levels'][0]['ask'][0].get('runs', [1])) if st['levels'] else 0} runs of a child process timed "
        "from outside (interpreter start included; the runs interleave the backends), each `serve` figure one "
        "start; ratios are to the `import torch` median; CPU is the child's user + system time, which the "
        "machine's load inflates less than wall time. `onnx` is the default (ONNX Runtime + tokenizers); "
        "`sentence-transformers` is the torch path (`ASSISTANT_EMBEDDING_BACKEND=sentence-transformers`). "
        "Targets: `ask` <= 2.5 s or <= 2x `import torch` at 1k and 10k chunks, <= 4 s (or 2x) at 100k.\n",
        "| chunks | backend | `ask` en s | `ask` zh s | worst / import torch | `ask` CPU s (en / zh) | `ask` peak "
        "RSS MB | heavy modules imported by `ask` | `serve` first answer s | / import torch | `serve` CPU s "
        "| `serve` peak RSS MB |",
        "|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for row in st["levels"]:
        backends = list(dict.fromkeys(a["backend"] for a in row["ask"]))
        for b in backends:
            asks = [a for a in row["ask"] if a["backend"] == b]
            worst = max(a["seconds"] for a in asks)
            heavy = sorted({m for a in asks for m in a["heavy"]})
            serve = next((s for s in row["serve"] if s["backend"] == b), None)
            cpu = " / ".join(f"{a.get('cpu_s', 0):.2f}" for a in asks)
            lines.append(
                f"| {row['chunks']:,} | {b} | {asks[0]['seconds']:.2f} | {asks[-1]['seconds']:.2f} | "
                f"{worst / torch_s:.2f}x | {cpu} | "
                f"{max(a['rss_mb'] for a in asks):.0f} | {', '.join(heavy) or 'none'} | "
                + (
                    f"{serve['first_answer_s']:.2f} | {serve['first_answer_s'] / torch_s:.2f}x | "
                    + (f"{serve['cpu_s']:.2f}" if serve.get("cpu_s") is not None else "—")
                    + f" | {serve['peak_rss_mb']:.0f} |"
                    if serve
                    else "— | — | — | — |"
                )
            )
    if st.get("ingest"):
        lines.append(
            "\n| ingest (fresh process, real vectors) | backend | chunks | seconds | chunks/s | CPU s | peak RSS MB |"
        )
        lines.append("|---|---|---:|---:|---:|---:|---:|")
        for ing in st["ingest"]:
            rate = (ing["chunks"] or 0) / ing["seconds"] if ing["seconds"] else 0
            cpu = f"{ing['cpu_s']:.0f}" if "cpu_s" in ing else "—"
            lines.append(
                f"| `assistant ingest` | {ing['backend']} | {ing['chunks'] or '—'} | {ing['seconds']:.1f} | "
                f"{rate:.1f} | {cpu} | {ing['rss_mb']:.0f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1000,10000,100000")
    p.add_argument("--backends", default=",".join(BACKENDS))
    p.add_argument(
        "--ingest-backends",
        default="onnx",
        help="backends of the ingest rows (smallest level, real embeddings; '' for none)",
    )
    p.add_argument("--out", type=Path, default=BENCH / "startup.md")
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--keep", action="store_true")
    p.add_argument("--reuse", action="store_true", help="keep the indexes already in --workdir")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    import corpusgen
    import scale

    sizes = sorted({int(x) for x in args.sizes.split(",")})
    work = args.workdir or Path(tempfile.mkdtemp(prefix="assistant-startup-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        levels = corpusgen.build_levels(work / "levels", sizes)
        recs: list[dict[str, Any]] = [
            {"chunks": lv.chunks, "dir": str(lv.directory), "index": str(work / f"index-{lv.target}")} for lv in levels
        ]
        ingest = []
        backends = args.ingest_backends.split(",") if args.ingest_backends else []

        def ingest_row(backend: str, index: Path) -> None:
            ingest.append(ingest_child(levels[0].directory, index, backend, work))
            log(
                f"ingest {levels[0].chunks} chunks ({backend}): {ingest[-1]['seconds']:.1f} s, "
                f"peak RSS {ingest[-1]['rss_mb']:.0f} MB"
            )

        if args.reuse:
            # A level built by an older version would be rebuilt by `serve` in the background while
            # it is timed: such a level is built again instead (its sentence vectors alone are
            # completed below).
            for lv, rec in zip(levels, recs, strict=True):
                reason = stale_reason(Path(rec["index"]), lv.directory)
                if reason is not None:
                    log(f"the {lv.chunks}-chunk level is built again: {reason}")
                    shutil.rmtree(rec["index"], ignore_errors=True)
        if not (args.reuse and (Path(recs[0]["index"]) / "chroma").exists()):
            ingest_row(backends.pop(0) if backends else "onnx", Path(recs[0]["index"]))
        known: dict[str, Any] | None = None
        # A level built before sentence vectors existed gets them first (else every cold question
        # encodes its candidate sentences on the fly, which an ingested index never does).
        added = scale.add_sentence_vectors(Path(recs[0]["index"]), levels[0].directory, None)
        if added:
            log(f"wrote {added} real sentence vectors into the {levels[0].chunks}-chunk level")
        for lv, rec in zip(levels[1:], recs[1:], strict=True):
            known = known or scale.stored_vectors(Path(recs[0]["index"]), levels[0].directory)
            if args.reuse and (Path(rec["index"]) / "chroma").exists():
                added = scale.add_sentence_vectors(Path(rec["index"]), lv.directory, known)
                if added:
                    log(f"wrote {added} re-used sentence vectors into the {lv.chunks}-chunk level")
                continue
            b = scale.build_with_reused_vectors(Path(rec["index"]), lv.directory, known)
            log(f"built {b.chunks} chunks in {b.seconds:.1f} s")
        st = measure(recs, work, tuple(args.backends.split(",")))
        for backend in backends:  # after the start-up rows: into fresh indexes of their own
            target = work / f"index-ingest-{backend}"
            shutil.rmtree(target, ignore_errors=True)
            ingest_row(backend, target)
        st["ingest"] = ingest
        st["seconds"] = time.perf_counter() - started
        text = render(st)
        args.out.write_text(text, encoding="utf-8")
        args.out.with_suffix(".json").write_text(json.dumps(st, indent=1), encoding="utf-8")
        print(text)
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
