"""The command line in real subprocesses (``python -m assistant.cli``), against tmp indexes.

``assistant ingest`` runs on a two-file copy of the corpus (one model load); ``docs`` and ``ask`` read
the session index of the whole corpus built in conftest.py.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess

import pytest
from conftest import CORPUS_DOCS, DIGEST, IndexedCorpus, cli_env, copy_corpus, run_cli

from assistant.documents import source_text

ROOT = Path(__file__).resolve().parent.parent
TWO_FILES = ["000_7e88f567a7bc938b.txt", "001_19f0403027cb6d52.txt"]


def no_traceback(proc: CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stdout


@dataclass
class CliIndex:
    base: Path
    corpus: Path
    index: Path
    first: CompletedProcess[str]

    def args(self) -> list[str | Path]:
        return ["--index", self.index, "--corpus", self.corpus]


@pytest.fixture(scope="module")
def cli_index(tmp_path_factory: pytest.TempPathFactory) -> CliIndex:
    base = tmp_path_factory.mktemp("cli")
    corpus = copy_corpus(base / "corpus", TWO_FILES)
    index = base / "index"
    first = run_cli("ingest", "--index", index, "--corpus", corpus, cwd=base)
    return CliIndex(base, corpus, index, first)


def full_args(idx: IndexedCorpus) -> list[str | Path]:
    return ["--index", idx.index, "--corpus", idx.corpus]


# --------------------------------------------------------------------------- ingest


@pytest.mark.slow
def test_ingest_exits_0_and_prints_the_summary_table(cli_index: CliIndex) -> None:
    proc = cli_index.first
    assert proc.returncode == 0, proc.stderr
    no_traceback(proc)
    out = proc.stdout
    assert "Ingest summary" in out
    rows = {line.strip("│┃ ").split("│")[0].strip(): line for line in out.splitlines() if "│" in line}
    assert "files read" in rows and rows["files read"].rstrip(" │").endswith("2")
    assert rows["documents added"].rstrip(" │").endswith("2")
    assert rows["files skipped (errors)"].rstrip(" │").endswith("0")
    assert "2 documents" in out and str(cli_index.index) in out.replace("\n", "")
    assert (cli_index.index / "chroma").is_dir()


@pytest.fixture
def broken_files(cli_index: CliIndex) -> Iterator[list[Path]]:
    junk = cli_index.corpus / "junk.txt"
    junk.write_bytes(bytes(range(256)) * 16)
    empty = cli_index.corpus / "empty.md"
    empty.write_bytes(b"")
    yield [junk, empty]
    junk.unlink()
    empty.unlink()


def test_ingest_with_a_broken_file_exits_1_and_names_it(cli_index: CliIndex, broken_files: list[Path]) -> None:
    proc = run_cli("ingest", *cli_index.args(), cwd=cli_index.base)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    no_traceback(proc)
    err = " ".join(proc.stderr.split())  # rich may wrap long lines
    assert "skipped junk.txt: undecodable or binary content" in err
    assert "skipped empty.md: empty file" in err
    assert "documents unchanged" in proc.stdout
    # The good documents are still there.
    docs = run_cli("docs", "--json", *cli_index.args(), cwd=cli_index.base)
    assert docs.returncode == 0
    assert sorted(d["doc_id"] for d in json.loads(docs.stdout)) == TWO_FILES


def test_ingest_json_report(cli_index: CliIndex) -> None:
    proc = run_cli("ingest", "--json", *cli_index.args(), cwd=cli_index.base)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert (report["added"], report["updated"], report["unchanged"], report["errors"]) == (0, 0, 2, [])
    assert report["files_unchanged"] == 2


def _chunks(base: Path, args: list[str | Path]) -> int:
    docs = run_cli("docs", "--json", *args, cwd=base)
    assert docs.returncode == 0, docs.stderr
    return sum(int(d["chunks"]) for d in json.loads(docs.stdout))


@pytest.mark.slow
def test_if_missing_rebuilds_an_index_built_with_other_settings(tmp_path: Path) -> None:
    """`make run` after an upgrade (or a changed setting): `ingest --if-missing` rebuilds an index it
    could no longer add to, says why, and skips one that is current. `--rebuild` replaces an index
    made with another model (the constructor's model check used to refuse even that)."""
    corpus = copy_corpus(tmp_path / "corpus", TWO_FILES)
    args: list[str | Path] = ["--index", tmp_path / "index", "--corpus", corpus]
    small = run_cli("ingest", *args, cwd=tmp_path, env={"ASSISTANT_CHUNK_TOKENS": "48"})
    assert small.returncode == 0, small.stderr
    small_chunks = _chunks(tmp_path, args)

    proc = run_cli("ingest", "--if-missing", *args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    no_traceback(proc)
    out = " ".join(proc.stdout.split())
    assert "Rebuilding the index" in out and "chunker settings" in out and "'max_tokens': 48" in out
    assert "Ingest summary" in out
    assert 0 < _chunks(tmp_path, args) < small_chunks
    again = run_cli("ingest", "--if-missing", *args, cwd=tmp_path)
    assert again.returncode == 0 and "skipping ingest" in again.stdout and "Rebuilding" not in again.stdout

    from assistant.embedding import default_model_path

    other = [*args, "--model", default_model_path()]  # the same weights under another name
    assert run_cli("ingest", *other, cwd=tmp_path).returncode != 0  # adding to it needs a rebuild
    rebuilt = run_cli("ingest", "--rebuild", *other, cwd=tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stderr
    asked = run_cli("ask", "Which alliance did Changzhou unveil?", *args, cwd=tmp_path)
    assert asked.returncode != 0 and "configure the original model" in " ".join(asked.stderr.split())
    back = run_cli("ingest", "--if-missing", *args, cwd=tmp_path)
    assert back.returncode == 0 and "embedding model" in " ".join(back.stdout.split())
    asked = run_cli("ask", "Which alliance did Changzhou unveil?", *args, cwd=tmp_path)
    assert asked.returncode == 0, asked.stderr
    # Sentence vectors of an earlier version (no reading recorded): said, not waited for (each question
    # computes those it needs); the next plain ingest makes them again.
    manifest = tmp_path / "index" / "sentences" / "manifest.json"
    data = json.loads(manifest.read_text(encoding="utf-8"))
    assert data.pop("reading") == "gloss-zh-en"
    manifest.write_text(json.dumps(data), encoding="utf-8")
    told = run_cli("ingest", "--if-missing", *args, cwd=tmp_path)
    out = " ".join(told.stdout.split())
    assert told.returncode == 0 and "made for another version" in out and "skipping ingest" in out
    assert "Rebuilding" not in out and "Ingest summary" not in out
    # An evaluation over such an index is told why it is slow (same results).
    gold = tmp_path / "gold.jsonl"
    gold.write_text((ROOT / "eval" / "gold.jsonl").read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")
    slow = run_cli("eval", gold, *args, "--no-progress", cwd=tmp_path)
    assert slow.returncode == 0 and "made by another version" in " ".join(slow.stderr.split()), slow.stderr
    completed = run_cli("ingest", *args, cwd=tmp_path)
    assert completed.returncode == 0 and "documents unchanged" in completed.stdout
    assert json.loads(manifest.read_text(encoding="utf-8"))["reading"] == "gloss-zh-en"
    quick = run_cli("eval", gold, *args, "--no-progress", cwd=tmp_path)
    assert quick.returncode == 0 and "another version" not in quick.stderr, quick.stderr
    again = " ".join(run_cli("ingest", "--if-missing", *args, cwd=tmp_path).stdout.split())
    assert "skipping ingest" in again and "another version" not in again


_ADD_A_SETTING = """
import json, sys
from assistant.store import SETTINGS_ID, Store
store = Store(sys.argv[1])
meta = dict(store.manifest.get(ids=[SETTINGS_ID], include=["metadatas"])["metadatas"][0])
meta["json"] = json.dumps({**json.loads(meta["json"]), "from_a_newer_version": "yes"})
store.manifest.upsert(ids=[SETTINGS_ID], embeddings=[[1.0]], metadatas=[meta])
"""


@pytest.mark.slow
def test_an_index_written_by_a_newer_version_is_refused_in_words(tmp_path: Path) -> None:
    """Settings this version does not know (an index a newer version wrote) are a clear refusal, not
    a TypeError's stack trace; `ingest --if-missing` (`make run`) rebuilds the index."""
    corpus = copy_corpus(tmp_path / "corpus", TWO_FILES)
    args: list[str | Path] = ["--index", tmp_path / "index", "--corpus", corpus]
    assert run_cli("ingest", *args, cwd=tmp_path).returncode == 0
    edit = subprocess.run([sys.executable, "-c", _ADD_A_SETTING, str(tmp_path / "index")], env=cli_env(),
                          capture_output=True, text=True, timeout=120)
    assert edit.returncode == 0, edit.stderr
    for command in (["ask", "Which alliance did Changzhou unveil?"], ["ingest"]):
        proc = run_cli(*command, *args, cwd=tmp_path)
        no_traceback(proc)
        message = " ".join(proc.stderr.split())
        assert proc.returncode != 0 and "written by a newer version" in message, message
        assert "from_a_newer_version" in message and "--rebuild" in message
    rebuilt = run_cli("ingest", "--if-missing", *args, cwd=tmp_path)
    assert rebuilt.returncode == 0 and "Rebuilding the index" in rebuilt.stdout, rebuilt.stdout + rebuilt.stderr
    asked = run_cli("ask", "Which alliance did Changzhou unveil?", *args, cwd=tmp_path)
    assert asked.returncode == 0 and "[1]" in asked.stdout, asked.stderr


@pytest.mark.slow
def test_if_missing_defer_leaves_an_update_to_the_server(tmp_path: Path) -> None:
    """`make run` (`ingest --if-missing --defer`): an index built with another chunk size is left as
    it is, with a word that the server rebuilds it in the background; `--defer` alone is refused."""
    corpus = copy_corpus(tmp_path / "corpus", TWO_FILES)
    args: list[str | Path] = ["--index", tmp_path / "index", "--corpus", corpus]
    assert run_cli("ingest", *args, cwd=tmp_path, env={"ASSISTANT_CHUNK_TOKENS": "48"}).returncode == 0
    small_chunks = _chunks(tmp_path, args)
    proc = run_cli("ingest", "--if-missing", "--defer", *args, cwd=tmp_path)
    out = " ".join(proc.stdout.split())
    assert proc.returncode == 0, proc.stderr
    assert "`assistant serve` rebuilds it in the background" in out and "chunker settings" in out
    assert "skipping ingest" in out and "Rebuilding the index" not in out
    assert _chunks(tmp_path, args) == small_chunks
    alone = run_cli("ingest", "--defer", *args, cwd=tmp_path)
    assert alone.returncode == 2 and "--defer goes with --if-missing" in alone.stderr
    no_traceback(alone)

    # make run's second command: the server answers at once and rebuilds behind it.
    import httpx
    from ui_fixtures import free_port

    port = free_port()
    out = tmp_path / "serve.log"
    with out.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "assistant.cli", "serve", "--port", str(port), *map(str, args)],
            cwd=tmp_path, env=cli_env(), stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}/api"
        deadline = time.monotonic() + 240
        upgrade: dict[str, object] = {}
        while time.monotonic() < deadline:
            try:
                upgrade = httpx.get(f"{url}/health", timeout=5).json().get("upgrade") or {}
            except httpx.TransportError:
                upgrade = {}
            if upgrade.get("running") is False:
                break
            time.sleep(0.5)
        total = upgrade.get("total")
        assert isinstance(total, int) and total > 0, upgrade
        assert upgrade == {"kind": "rebuild", "running": False, "failed": False, "embedded": total, "total": total}
        asked = httpx.post(f"{url}/ask", json={"question": "Which alliance did Changzhou unveil?"}, timeout=60)
        assert asked.status_code == 200 and asked.json()["citations"], asked.text
    finally:
        server.terminate()
        server.wait(30)
    printed = " ".join(out.read_text(encoding="utf-8").split())
    assert "Rebuilding the index in the background" in printed and "The index is rebuilt (2 documents)" in printed
    assert 0 < _chunks(tmp_path, args) < small_chunks


def test_second_ingest_while_locked_exits_2(cli_index: CliIndex) -> None:
    lock = cli_index.index / ".ingest.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a running ingest holds it
        proc = run_cli("ingest", *cli_index.args(), cwd=cli_index.base)
    finally:
        os.close(fd)
    assert proc.returncode == 2
    no_traceback(proc)
    assert "another ingest is running" in " ".join(proc.stderr.split())


def test_other_model_gives_a_mismatch_error(cli_index: CliIndex) -> None:
    proc = run_cli("docs", "--model", "some-other-model", *cli_index.args(), cwd=cli_index.base)
    assert proc.returncode == 2
    no_traceback(proc)
    err = " ".join(proc.stderr.split())
    assert "error:" in err and "'all-MiniLM-L6-v2'" in err and "'some-other-model'" in err


# --------------------------------------------------------------------------- docs and ask


def test_docs_json_lists_the_corpus(indexed_corpus: IndexedCorpus) -> None:
    proc = run_cli("docs", "--json", *full_args(indexed_corpus), cwd=indexed_corpus.corpus.parent)
    assert proc.returncode == 0, proc.stderr
    docs = json.loads(proc.stdout)
    assert len(docs) == CORPUS_DOCS
    by_id = {d["doc_id"]: d for d in docs}
    first = by_id[f"{DIGEST}#1"]
    assert first["title"] == "产教融合“破题”人才瓶颈 山东职教赋能区域经济提质增效"
    assert (first["outlet"], first["date"]) == ("Zhong Guo Xin Wen Wang", "2025-10-28")
    assert (by_id[f"{DIGEST}#7"]["outlet"], by_id[f"{DIGEST}#7"]["date"]) == ("", "")
    assert by_id[f"{DIGEST}#7"]["title"] == "前瞻“十五五”:我国职业教育发展五大趋势"
    assert all(d["title"] and d["chunks"] > 0 for d in docs)
    digest_ids = [d["doc_id"] for d in docs if d["source"] == DIGEST]
    assert digest_ids == [f"{DIGEST}#{i}" for i in range(1, 11)]  # natural order, #10 last


def test_docs_table(indexed_corpus: IndexedCorpus) -> None:
    proc = run_cli("docs", *full_args(indexed_corpus), cwd=indexed_corpus.corpus.parent, columns=250)
    assert proc.returncode == 0, proc.stderr
    assert f"{CORPUS_DOCS} indexed documents" in proc.stdout
    assert f"{DIGEST}#10" in proc.stdout and "深化专业群产教融合 用科技与创新书写冷链物流新篇" in proc.stdout
    assert "Jing Ji Ri Bao" in proc.stdout and "2025-10-27" in proc.stdout


def test_document_text_never_becomes_markup_or_escape_sequences(tmp_path: Path) -> None:
    """A title or text holding rich markup (``[/]`` crashed the listing with a traceback; ``[link=…]`` made
    a live hyperlink) or terminal escape sequences (retitle, recolour) is printed as plain text, without
    the escapes (fifth security review)."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    title = "Osprey [/] report [link=https://evil.example/phish]Official[/link] \x1b]0;pwned\x07 \x1b[31mred"
    body = "The Osprey alliance trains 40 welders a year in Ningbo. \x1b[2J It was founded in 2019."
    (corpus / "osprey.txt").write_text(f"{title}\n\n{body}\n", encoding="utf-8")
    index = tmp_path / "index"
    assert run_cli("ingest", "--index", index, "--corpus", corpus, cwd=tmp_path).returncode == 0
    listing = run_cli("docs", "--index", index, "--corpus", corpus, cwd=tmp_path, columns=250)
    assert listing.returncode == 0, listing.stderr
    no_traceback(listing)
    assert "Osprey [/] report [link=https://evil.example/phish]Official[/link]" in listing.stdout
    answer = run_cli("ask", "How many welders does the Osprey alliance train?", "--index", index, "--corpus", corpus,
                     cwd=tmp_path, columns=250)
    assert answer.returncode == 0, answer.stderr
    assert "40 welders" in answer.stdout and "[link=https://evil.example/phish]" in answer.stdout
    for proc in (listing, answer):
        assert "\x1b" not in proc.stdout and "\x07" not in proc.stdout


@pytest.mark.slow
def test_ask_json_returns_citations(indexed_corpus: IndexedCorpus) -> None:
    proc = run_cli(
        "ask",
        "How many vocational schools does Shandong have?",
        "--json",
        *full_args(indexed_corpus),
        cwd=indexed_corpus.corpus.parent,
    )
    assert proc.returncode == 0, proc.stderr
    no_traceback(proc)
    answer = json.loads(proc.stdout)
    assert answer["question"] == "How many vocational schools does Shandong have?"
    assert answer["answer"] and not answer["abstained"]
    assert answer["citations"]
    known = set(indexed_corpus.store.documents())
    for c in answer["citations"]:
        assert c["doc_id"] in known
        src = source_text(indexed_corpus.corpus / c["source"])
        assert src[c["start"] : c["end"]] == c["quote"]
        assert src[c["passage_start"] : c["passage_end"]] == c["text"]
        assert c["quote"] in c["text"]
    assert any("547" in c["quote"] for c in answer["citations"])


def test_unknown_filter_exits_2_without_traceback(indexed_corpus: IndexedCorpus) -> None:
    proc = run_cli(
        "ask",
        "What is the alliance?",
        "--filter",
        "bogus=1",
        *full_args(indexed_corpus),
        cwd=indexed_corpus.corpus.parent,
    )
    assert proc.returncode == 2
    no_traceback(proc)
    assert proc.stdout == ""
    assert proc.stderr.startswith("error: unknown filter 'bogus'")


def test_filter_without_equals_exits_2(indexed_corpus: IndexedCorpus) -> None:
    proc = run_cli("ask", "What?", "--filter", "bogus", *full_args(indexed_corpus), cwd=indexed_corpus.corpus.parent)
    assert proc.returncode == 2
    no_traceback(proc)
    assert proc.stderr.strip() == "error: --filter expects KEY=VALUE, got 'bogus'"


def test_unknown_filter_error_is_one_line(indexed_corpus: IndexedCorpus) -> None:
    proc = run_cli(
        "ask",
        "What is the alliance?",
        "--filter",
        "bogus=1",
        *full_args(indexed_corpus),
        cwd=indexed_corpus.corpus.parent,
    )
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_error_text_is_not_parsed_as_markup(indexed_corpus: IndexedCorpus) -> None:
    proc = run_cli(
        "ask", "What?", "--filter", "date_from=[/x]", *full_args(indexed_corpus), cwd=indexed_corpus.corpus.parent
    )
    assert proc.returncode == 2
    no_traceback(proc)
    assert "[/x]" in proc.stderr


# --------------------------------------------------------------------------- chat


@pytest.mark.slow
def test_terminal_chat_follow_up_sources_new_and_quit(indexed_corpus: IndexedCorpus) -> None:
    script = "Who co-leads the Changzhou alliance?\nWhat think tank will it set up?\n/sources\n/new\n/quit\n"
    proc = subprocess.run(
        [sys.executable, "-m", "assistant.cli", "chat", *map(str, full_args(indexed_corpus))],
        input=script,
        cwd=indexed_corpus.corpus.parent,
        env={**cli_env(), "COLUMNS": "400"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    no_traceback(proc)
    out = proc.stdout
    assert "SGS-CSTC" in out  # first answer
    assert "Searched for: Who co-leads the Changzhou alliance? What think tank will it set up?" in out
    assert "NQ1 Think Tank Center" in out  # the follow-up is answered from the same document
    assert "000_7e88f567a7bc938b.txt" in out.split("What think tank")[-1]  # /sources lists the passage
    assert "New conversation." in out


def test_terminal_chat_export(indexed_corpus: IndexedCorpus, tmp_path: Path) -> None:
    out_file = tmp_path / "chat.md"
    script = f"/export {out_file}\nWho co-leads the Changzhou alliance?\nWhat think tank will it set up?\n" \
             f"/export\n/export {out_file}\n/export {tmp_path}/missing/dir/x.md\n/quit\n"
    proc = subprocess.run(
        [sys.executable, "-m", "assistant.cli", "chat", *map(str, full_args(indexed_corpus))],
        input=script, cwd=indexed_corpus.corpus.parent, env={**cli_env(), "COLUMNS": "400"},
        capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    no_traceback(proc)
    assert "Nothing to export yet." in proc.stdout and "usage: /export FILE" in proc.stderr
    assert "2 turns exported" in proc.stdout and "cannot write" in proc.stderr
    md = out_file.read_text(encoding="utf-8")
    assert md.count("## Question ") == 2 and "[^1-1]" in md and "\n[^2-1]: " in md and "SGS-CSTC" in md
