"""Server mode against a real Chroma server: ``chroma run`` in a subprocess on a free loopback port.

One server per module (started and stopped by the ``chroma`` fixture, also when a test fails); the
sample corpus is ingested into it once (``shared``). Tests that add or change files put the corpus and
the server back as they found them, so each one starts from the 14 sample documents.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from chroma_server import ChromaServer, free_port, running_chroma
from conftest import CORPUS_DOCS, cli_env, copy_corpus, expected_chunks

from assistant.config import Config
from assistant.core import Assistant
from assistant.embedding import offline_env
from assistant.ingest import IngestReport, ingest
from assistant.retrieval import Retriever, analyse
from assistant.store import CHUNKS, MANIFEST, Store

pytestmark = pytest.mark.slow

ASSISTANT_CLI = Path(sys.executable).parent / "assistant"
SUZHOU = "001_19f0403027cb6d52.txt"  # a single-article file (one document)

# Synthetic documents, written into the corpus copy by the tests that need a document only they know.
NEW_DOC = "005_qingtian_hydrogen_valve.txt"
NEW_TEXT = (
    "The Qingtian Hydrogen Valve Industry-Education Alliance was launched in Lishui, Zhejiang province.\n"
    "Its founding members are 23 valve manufacturers and Lishui Vocational and Technical College.\n"
    "The alliance will train 600 hydrogen valve technicians each year in a shared cryogenic testing workshop.\n"
)
NEW_QUESTION = "How many hydrogen valve technicians will the Qingtian alliance train each year?"
CLI_DOC = "006_wuyuan_tea_robotics.txt"
CLI_TEXT = (
    "The Wuyuan Tea Robotics Industry-Education Alliance brings together tea estates and robot makers.\n"
    "Students of Wuyuan Polytechnic will program picking robots on 40 hectares of terraced tea gardens.\n"
)
OTHER_DOC = "007_tongling_copper_foil.txt"
OTHER_TEXT = (
    "The Tongling Copper Foil Industry-Education Alliance trains electrolytic copper foil engineers.\n"
    "Its members run a pilot line for battery copper foil at Tongling Polytechnic.\n"
)


@dataclass
class Shared:
    root: Path
    corpus: Path
    a: Assistant  # "process A": ingests, with its own local index directory
    report: IngestReport


@pytest.fixture(scope="module")
def chroma(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    with running_chroma(tmp_path_factory.mktemp("chroma-server") / "data", timeout=30) as server:
        yield server


@pytest.fixture(scope="module")
def shared(chroma: ChromaServer, tmp_path_factory: pytest.TempPathFactory) -> Shared:
    offline_env()
    root = tmp_path_factory.mktemp("served")
    corpus = copy_corpus(root / "corpus")
    a = Assistant(Config(index_dir=root / "a", corpus_dir=corpus, chroma_url=chroma.url))
    report = a.ingest()
    return Shared(root, corpus, a, report)


# --------------------------------------------------------------------------- helpers


def server_chunks(chroma: ChromaServer) -> list[tuple[str, dict[str, Any]]]:
    """Every chunk the server holds (id, metadata), read with a client of our own."""
    got = chroma.client().get_collection(CHUNKS).get(include=["metadatas"])
    return list(zip(got["ids"], got["metadatas"], strict=True))


def server_docs(chroma: ChromaServer) -> dict[str, str]:
    """doc_id -> content hash, as the manifest on the server records them."""
    got = chroma.client().get_collection(MANIFEST).get(where={"kind": "doc"}, include=["metadatas"])
    return {str(m["doc_id"]): str(m["hash"]) for m in got["metadatas"]}


def check_server_matches(chroma: ChromaServer, corpus: Path) -> None:
    """The server holds exactly the chunks an ingest of ``corpus`` makes: no duplicate, no leftover."""
    expected = expected_chunks(corpus)
    chunks = server_chunks(chroma)
    docs = server_docs(chroma)
    assert set(docs) == set(expected)
    assert len(chunks) == sum(expected.values())
    assert Counter(str(m["doc_id"]) for _, m in chunks) == Counter(expected)
    positions = [(m["doc_id"], m["chunk_index"]) for _, m in chunks]
    assert len(set(positions)) == len(positions), "two versions of one chunk on the server"
    assert all(m["doc_hash"] == docs[m["doc_id"]] for _, m in chunks), "a chunk the manifest does not vouch for"


def lexical_generation(index_dir: Path) -> str:
    return str(json.loads((index_dir / "lexical" / "meta.json").read_text())["generation"])


def run_assistant(*args: str | Path, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The installed ``assistant`` command in a separate OS process (offline, 80 columns, no ASSISTANT_*)."""
    return subprocess.run(
        [str(ASSISTANT_CLI), *map(str, args)],
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def reingest_clean(shared: Shared) -> None:
    """Bring the server back in step with the corpus directory, from a manifest read afresh."""
    shared.a.store.reload()
    report = shared.a.ingest()
    assert not report.errors, report.errors


# --------------------------------------------------------------------------- tests


def test_ingest_into_the_server(shared: Shared, chroma: ChromaServer) -> None:
    report = shared.report
    assert not report.errors, report.errors
    assert (report.added, report.updated, report.removed) == (CORPUS_DOCS, 0, 0)
    assert len(shared.a.documents()) == CORPUS_DOCS
    check_server_matches(chroma, shared.corpus)

    answer = shared.a.ask("What is the Suzhou alliance?")
    assert not answer.abstained and answer.citations
    assert any(c.doc_id == SUZHOU for c in answer.citations)
    for c in answer.citations:
        assert c.quote and c.quote in c.text
        assert f"[{c.n}]" in answer.answer

    # The chunk vectors live on the server; the assistant keeps only its lexical index, the sentence
    # vectors of the answer stage (both derived from the server's chunks) and the lock locally.
    index_dir = shared.root / "a"
    assert not (index_dir / "chroma").exists()
    assert sorted(p.name for p in index_dir.iterdir()) == [".ingest.lock", "lexical", "sentences"]
    assert lexical_generation(index_dir) == shared.a.store.stored_generation()
    assert (chroma.path / "chroma.sqlite3").exists()


def test_incremental_reingest_against_the_server(shared: Shared, chroma: ChromaServer) -> None:
    a = shared.a
    before = {cid: meta for cid, meta in server_chunks(chroma)}

    again = a.ingest()
    assert (again.added, again.updated, again.removed, again.chunks_added) == (0, 0, 0, 0)
    assert again.unchanged == CORPUS_DOCS and again.files_unchanged == again.files
    assert set(before) == {cid for cid, _ in server_chunks(chroma)}

    path = shared.corpus / SUZHOU
    original = path.read_bytes()
    try:
        path.write_bytes(original + b"The alliance will also open a standardization laboratory for robotics.\n")
        changed = a.ingest()
        assert (changed.added, changed.updated, changed.removed) == (0, 1, 0)
        assert changed.unchanged == CORPUS_DOCS - 1
        assert changed.files_unchanged == changed.files - 1
        check_server_matches(chroma, shared.corpus)
        after = {cid: meta for cid, meta in server_chunks(chroma)}
        # Only the changed document's chunks were replaced; every other chunk is the same record.
        assert {c for c, m in before.items() if m["doc_id"] != SUZHOU} == {
            c for c, m in after.items() if m["doc_id"] != SUZHOU
        }
        assert not {c for c, m in before.items() if m["doc_id"] == SUZHOU} & set(after)
    finally:
        path.write_bytes(original)
        restored = a.ingest()
    assert (restored.added, restored.updated, restored.removed) == (0, 1, 0)
    check_server_matches(chroma, shared.corpus)


def test_two_assistants_share_one_server(shared: Shared, chroma: ChromaServer) -> None:
    a, root = shared.a, shared.root
    b = Assistant(Config(index_dir=root / "b", corpus_dir=root / "b-corpus", chroma_url=chroma.url))
    # B reuses A's loaded embedding model (a stateless function of the text: saves a second load);
    # its store, manifest cache and lexical index are its own.
    b.embedder = b.retriever.embedder = a.embedder
    assert [(d.doc_id, d.hash) for d in b.documents()] == [(d.doc_id, d.hash) for d in a.documents()]
    assert len(b.documents()) == CORPUS_DOCS

    question = "How many standardization training bases will Suzhou establish?"
    ans_a, ans_b = a.ask(question), b.ask(question)
    assert ans_b.retrieved and ans_b.retrieved[0].chunk_id == ans_a.retrieved[0].chunk_id
    assert ans_b.retrieved[0].doc_id == SUZHOU
    assert [c.chunk_id for c in ans_b.citations] == [c.chunk_id for c in ans_a.citations]
    assert not (root / "b" / "chroma").exists()
    assert lexical_generation(root / "b") == lexical_generation(root / "a")

    assert NEW_DOC not in {p.doc_id for p in b.ask(NEW_QUESTION).retrieved}
    # Replica C (a real OS process, below) starts from a local lexical index of the 14 documents:
    # a copy of B's, as a replica that ran before the new document came would have on its disk.
    c_index = root / "c"
    shutil.copytree(root / "b" / "lexical", c_index / "lexical")
    stale = lexical_generation(c_index)

    (shared.corpus / NEW_DOC).write_text(NEW_TEXT, encoding="utf-8")
    try:
        report = a.ingest()
        assert (report.added, report.updated, report.removed) == (1, 0, 0)
        generation = a.store.stored_generation()
        assert generation != stale

        # B notices the new manifest generation (checked at most once per REFRESH_SECONDS) and
        # rebuilds its BM25 index from the server: the new document is found lexically.
        time.sleep(Retriever.REFRESH_SECONDS + 0.3)
        ans = b.ask(NEW_QUESTION)
        hits = [p for p in ans.retrieved if p.doc_id == NEW_DOC]
        assert hits, [p.doc_id for p in ans.retrieved]
        assert hits[0].scores.get("bm25", 0) > 0, hits[0].scores
        assert ans.retrieved[0].doc_id == NEW_DOC
        assert any(c.doc_id == NEW_DOC for c in ans.citations) and "600" in ans.answer
        assert b.retriever.lexical.generation == generation
        top = b.retriever.lexical.top(analyse(NEW_QUESTION).tokens, 1)
        assert b.retriever.lexical.metas[top[0][0]]["doc_id"] == NEW_DOC
        assert lexical_generation(root / "b") == generation

        # C, started over its stale lexical index on disk, rebuilds it from the server and finds the document.
        second = run_assistant("ask", NEW_QUESTION, "--json", "--chroma-url", chroma.url, "--index", c_index, cwd=root)
        assert second.returncode == 0, second.stderr
        out = json.loads(second.stdout)
        c_hits = [p for p in out["retrieved"] if p["doc_id"] == NEW_DOC]
        assert c_hits and c_hits[0]["scores"].get("bm25", 0) > 0, out["retrieved"]
        assert any(c["doc_id"] == NEW_DOC for c in out["citations"])
        assert lexical_generation(c_index) == generation
    finally:
        (shared.corpus / NEW_DOC).unlink(missing_ok=True)
        reingest_clean(shared)
    check_server_matches(chroma, shared.corpus)
    time.sleep(Retriever.REFRESH_SECONDS + 0.3)
    assert NEW_DOC not in {p.doc_id for p in b.ask(NEW_QUESTION).retrieved}


def test_cli_with_chroma_url(shared: Shared, chroma: ChromaServer, tmp_path: Path) -> None:
    (shared.corpus / CLI_DOC).write_text(CLI_TEXT, encoding="utf-8")
    try:
        ing = run_assistant(
            "ingest",
            "--json",
            "--chroma-url",
            chroma.url,
            "--index",
            tmp_path / "index",
            "--corpus",
            shared.corpus,
            cwd=tmp_path,
        )
        assert ing.returncode == 0, ing.stderr
        report = json.loads(ing.stdout)
        assert (report["added"], report["updated"], report["removed"], report["errors"]) == (1, 0, 0, [])
        assert report["unchanged"] == CORPUS_DOCS
        assert not (tmp_path / "index" / "chroma").exists()

        # No --index: the documents come from the server alone (nothing is created in the cwd).
        docs = run_assistant("docs", "--json", "--chroma-url", chroma.url, cwd=tmp_path)
        assert docs.returncode == 0, docs.stderr
        listed = json.loads(docs.stdout)
        assert len(listed) == CORPUS_DOCS + 1
        assert {d["doc_id"] for d in listed} == set(server_docs(chroma))
        assert CLI_DOC in {d["doc_id"] for d in listed}
        assert not (tmp_path / "index" / "chroma").exists() and not (tmp_path / "chroma").exists()

        # A replica's `make run` (ingest --if-missing): it has no sentence vectors of its own, but only
        # the host that ingests changes a shared index; the replica serves what it finds.
        empty = tmp_path / "replica-corpus"
        empty.mkdir()
        replica = run_assistant(
            "ingest", "--if-missing", "--chroma-url", chroma.url, "--index", tmp_path / "replica", "--corpus", empty,
            cwd=tmp_path,
        )
        assert replica.returncode == 0, replica.stderr
        assert "skipping ingest" in replica.stdout and "Ingest summary" not in replica.stdout
        assert set(server_docs(chroma)) == {d["doc_id"] for d in listed}
    finally:
        (shared.corpus / CLI_DOC).unlink(missing_ok=True)
        reingest_clean(shared)
    check_server_matches(chroma, shared.corpus)


@pytest.fixture(scope="module")
def bad_url_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, subprocess.CompletedProcess[str]]:
    """``assistant docs`` against a port nobody listens on (run once; two tests look at the result).
    A client that kept retrying would hit ``run_assistant``'s timeout, a hang guard, not a speed target."""
    cwd = tmp_path_factory.mktemp("bad-url")
    url = f"http://127.0.0.1:{free_port()}"
    result = run_assistant("docs", "--chroma-url", url, "--index", cwd / "index", cwd=cwd)
    return url, result


def test_bad_chroma_url_is_a_clean_error(bad_url_run: tuple[str, subprocess.CompletedProcess[str]]) -> None:
    url, result = bad_url_run
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())
    assert message.startswith("error: cannot open the Chroma index at " + url)
    assert "Could not connect to a Chroma server" in message


def test_bad_chroma_url_error_is_one_line(bad_url_run: tuple[str, subprocess.CompletedProcess[str]]) -> None:
    # Not wrapped at rich's default 80 columns although stderr is a pipe (cli_env drops COLUMNS).
    _, result = bad_url_run
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_ingest_sees_documents_another_process_added(shared: Shared, chroma: ChromaServer) -> None:
    """Regression: ingest() used to diff against the manifest as this process had cached it, so a
    document another process added stayed indexed after its file was deleted (and was re-embedded,
    reported as added, while its file stayed)."""
    a = shared.a
    a.documents()  # A has read the manifest (as after any ingest or refresh)
    path = shared.corpus / OTHER_DOC
    path.write_text(OTHER_TEXT, encoding="utf-8")
    try:
        # Another process (its own Store: its own view of the manifest) ingests the new file...
        other = ingest(
            [shared.corpus],
            Store(shared.root / "other", chroma.url),
            a.embedder,
            a.config.chunker,
            corpus_root=shared.corpus,
        )
        assert other.added == 1
        # ...then the file is deleted, and A brings the server in step with the corpus.
        path.unlink()
        report = a.ingest()
        assert OTHER_DOC not in server_docs(chroma), "a deleted file's document is still indexed"
        assert report.removed == 1
        assert a.store.stored_generation() == Store(shared.root / "check", chroma.url).generation()
    finally:
        path.unlink(missing_ok=True)
        reingest_clean(shared)
    check_server_matches(chroma, shared.corpus)


def test_recorded_generation_matches_the_server_after_interleaved_ingests(shared: Shared, chroma: ChromaServer) -> None:
    """Regression: write_settings used to record the generation of the manifest as cached in this
    process, missing documents another process had added; every reader then saw a generation that never
    matched its lexical index and reloaded the manifest and rebuilt BM25 every REFRESH_SECONDS."""
    a = shared.a
    a.documents()  # A has read the manifest
    suzhou = shared.corpus / SUZHOU
    original = suzhou.read_bytes()
    other_path = shared.corpus / OTHER_DOC
    other_path.write_text(OTHER_TEXT, encoding="utf-8")
    try:
        other = ingest([other_path], Store(shared.root / "other", chroma.url), a.embedder, corpus_root=shared.corpus)
        assert other.added == 1
        suzhou.write_bytes(original + b"The alliance will also open a standardization laboratory for robotics.\n")
        report = a.ingest([suzhou])
        assert report.updated == 1
        assert a.store.stored_generation() == Store(shared.root / "check", chroma.url).generation()
    finally:
        suzhou.write_bytes(original)
        other_path.unlink(missing_ok=True)
        reingest_clean(shared)
    check_server_matches(chroma, shared.corpus)
