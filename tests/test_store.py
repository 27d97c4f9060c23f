"""Embedding, the Chroma store and incremental ingest, with the real packaged model and a real Chroma
index in tmp directories.

The expensive part (embedding the whole sample corpus) happens once per session in ``indexed_corpus``;
tests that change the corpus go through ``live_index``, which puts every file back and re-ingests.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import CORPUS, CORPUS_DOCS, DIGEST, IndexedCorpus, expected_chunks

from assistant.chunking import ChunkerSettings
from assistant.config import Config
from assistant.core import Assistant
from assistant.documents import source_text
from assistant.embedding import DEFAULT_MODEL, Embedder, EmbeddingSettings
from assistant.errors import ConfigError, IndexLockedError, IndexMismatchError
from assistant.ingest import IngestReport, ingest
from assistant.store import Store, sentences_of

SINGLE = "000_7e88f567a7bc938b.txt"
SMALL = "001_19f0403027cb6d52.txt"


def raw_chunks(store: Store) -> list[tuple[str, str, dict]]:
    """Every chunk Chroma holds, vouched for by the manifest or not."""
    got = store.chunks.get(include=["documents", "metadatas"])
    return list(zip(got["ids"], got["documents"], got["metadatas"], strict=True))


def assert_index_matches(store: Store, expected: dict[str, int]) -> None:
    """The index holds exactly the expected documents, each chunk once, at its current version."""
    store.reload()
    docs = store.documents()
    assert sorted(docs) == sorted(expected)
    chunks = raw_chunks(store)
    keys = Counter((m["doc_id"], m["chunk_index"]) for _, _, m in chunks)
    assert all(n == 1 for n in keys.values()), [k for k, n in keys.items() if n > 1]
    per_doc = Counter(m["doc_id"] for _, _, m in chunks)
    assert dict(per_doc) == expected
    for doc_id, rec in docs.items():
        assert rec.chunks == expected[doc_id]
    for cid, _, meta in chunks:
        assert meta["doc_hash"] == docs[meta["doc_id"]].hash, cid
    assert store.count() == sum(expected.values())


# --------------------------------------------------------------------------- embedding


def test_default_model_gives_normalized_384_dim_vectors(embedder: Embedder) -> None:
    assert embedder.settings.model_name == DEFAULT_MODEL
    assert embedder.dimension == 384
    passages = [
        "Shandong has 547 vocational schools with 2.744 million students.",
        "哈尔滨工业大学扬州校友会成立。",
        "The Harbin Institute of Technology Yangzhou Alumni Association was established.",
    ]
    vectors = embedder.encode_passages(passages)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    query = embedder.encode_queries(["How many vocational schools are there in Shandong?"])
    assert query.shape == (1, 384)
    assert np.linalg.norm(query[0]) == pytest.approx(1.0, abs=1e-4)
    sims = vectors @ query[0]
    assert sims[0] > sims[2] + 0.1  # the Shandong passage is closer than the alumni one
    # Order is kept although batches are sorted by length; queries are cached and stable.
    again = embedder.encode_passages(list(reversed(passages)))
    assert np.allclose(again[::-1], vectors, atol=1e-5)
    assert np.array_equal(embedder.encode_queries(["How many vocational schools are there in Shandong?"]), query)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (DEFAULT_MODEL, ("", "")),
        ("default", ("", "")),
        ("sentence-transformers/all-MiniLM-L6-v2", ("", "")),
        ("intfloat/multilingual-e5-small", ("query: ", "passage: ")),
        ("intfloat/e5-base-v2", ("query: ", "passage: ")),
        ("/models/Multilingual_E5_Large", ("query: ", "passage: ")),
        ("BAAI/bge-small-zh-v1.5", ("", "")),
        ("/opt/e5-models/paraphrase-MiniLM", ("", "")),  # only the model's own name counts
    ],
)
def test_prefixes_follow_the_model_name_without_loading_it(model: str, expected: tuple[str, str]) -> None:
    settings = EmbeddingSettings(model=model)
    embedder = Embedder(settings)
    assert settings.prefixes == expected
    assert embedder._model is None  # nothing was loaded to decide


def test_explicit_prefixes_win() -> None:
    assert EmbeddingSettings(model="intfloat/multilingual-e5-small", query_prefix="", passage_prefix="").prefixes == (
        "",
        "",
    )
    assert EmbeddingSettings(query_prefix="Q: ", passage_prefix="P: ").prefixes == ("Q: ", "P: ")
    assert EmbeddingSettings(model="default").model_name == DEFAULT_MODEL


def test_e5_prefixes_for_a_directory_with_trailing_slash() -> None:
    assert EmbeddingSettings(model="/models/multilingual-e5-small/").prefixes == ("query: ", "passage: ")


def test_prefixes_are_applied_to_what_is_encoded(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    def fake_encode(self: Embedder, texts: list[str], progress: object) -> np.ndarray:
        seen.append(list(texts))
        return np.ones((len(texts), 4), dtype=np.float32)

    monkeypatch.setattr(Embedder, "_encode", fake_encode)
    emb = Embedder(EmbeddingSettings(model="intfloat/multilingual-e5-small"))
    emb.encode_passages(["产教融合"])
    emb.encode_queries(["what is it?"])
    assert seen == [["passage: 产教融合"], ["query: what is it?"]]
    assert emb._model is None


def test_nonexistent_model_path_gives_a_clear_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    emb = Embedder(EmbeddingSettings(model=str(missing)))
    with pytest.raises(ConfigError) as info:
        _ = emb.model
    message = str(info.value)
    assert f"cannot load embedding model '{missing}'" in message
    assert "never downloaded" in message


@pytest.mark.parametrize(
    ("kwargs", "needle"), [({"batch_size": 0}, "got 0"), ({"batch_size": 5000}, "got 5000"), ({"model": "  "}, "empty")]
)
def test_embedding_settings_validation(kwargs: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        EmbeddingSettings(**kwargs)


# --------------------------------------------------------------------------- a full ingest


@pytest.mark.slow  # the session fixture embeds the whole corpus
def test_ingest_sample_corpus(indexed_corpus: IndexedCorpus) -> None:
    report = indexed_corpus.report
    assert report.files == 5
    assert (report.added, report.updated, report.removed, report.unchanged) == (CORPUS_DOCS, 0, 0, 0)
    assert report.errors == [] and not report.partial
    assert report.chunks_added == sum(indexed_corpus.chunks.values())
    assert_index_matches(indexed_corpus.store, indexed_corpus.chunks)
    docs = indexed_corpus.store.documents()
    first = docs[f"{DIGEST}#1"]
    assert (first.title, first.outlet, first.date, first.source) == (
        "产教融合“破题”人才瓶颈 山东职教赋能区域经济提质增效",
        "Zhong Guo Xin Wen Wang",
        "2025-10-28",
        DIGEST,
    )
    assert Path(first.path) == indexed_corpus.corpus / DIGEST
    assert (docs[f"{DIGEST}#7"].outlet, docs[f"{DIGEST}#7"].date) == ("", "")
    settings = indexed_corpus.store.settings()
    assert settings is not None and (settings.model, settings.dimension) == (DEFAULT_MODEL, 384)
    assert settings.chunker == ChunkerSettings().to_dict()
    assert not indexed_corpus.store.dirty()


def test_stored_chunks_point_into_their_source_text(indexed_corpus: IndexedCorpus) -> None:
    sources: dict[str, str] = {}
    for cid, text, meta in indexed_corpus.store.iter_chunks():
        path = str(meta["path"])
        src = sources.setdefault(path, source_text(Path(path)))
        assert src[meta["start"] : meta["end"]] == text, cid
        spans = sentences_of(meta)
        assert spans and spans[0].start == meta["start"] and spans[-1].end == meta["end"]
        assert all(meta["start"] <= s.start < s.end <= meta["end"] for s in spans)
        assert meta["date_num"] == (int(meta["date"].replace("-", "")) if meta["date"] else 0)
        for line in ("Workflow", "Search documents", "扫一扫在手机打开当前页"):
            assert line not in text


def test_query_returns_current_chunks_with_metadata(indexed_corpus: IndexedCorpus, embedder: Embedder) -> None:
    q = embedder.encode_queries(["Shandong vocational schools 2.744 million students"])[0]
    hits = indexed_corpus.store.query(q, 5)
    assert len(hits) == 5
    assert hits[0][2]["doc_id"] == f"{DIGEST}#1"
    assert all(-1.0 <= sim <= 1.0 for *_, sim in hits)
    assert [h[3] for h in hits] == sorted((h[3] for h in hits), reverse=True)
    only = indexed_corpus.store.query(q, 5, where={"outlet": "Jing Ji Ri Bao"})
    assert only and {h[2]["doc_id"] for h in only} == {f"{DIGEST}#2"}


def test_reingest_unchanged_is_a_no_op_that_loads_no_model(indexed_corpus: IndexedCorpus) -> None:
    """Unchanged files are known by their hashes: nothing is embedded, so the model is never loaded
    (the time this saves is measured in bench/, not asserted here)."""
    fresh = Embedder()  # lazy: if the ingest needed to embed anything it would have to load the model
    report = ingest([indexed_corpus.corpus], indexed_corpus.store, fresh, corpus_root=indexed_corpus.corpus)
    assert (report.added, report.updated, report.removed) == (0, 0, 0)
    assert report.unchanged == CORPUS_DOCS and report.files_unchanged == 5
    assert report.chunks_added == report.chunks_removed == 0
    assert fresh._model is None
    assert_index_matches(indexed_corpus.store, indexed_corpus.chunks)


# --------------------------------------------------------------------------- incremental changes


@pytest.fixture
def live_index(indexed_corpus: IndexedCorpus, embedder: Embedder) -> Iterator[IndexedCorpus]:
    """The shared index, for a test that changes the corpus: every file is put back afterwards."""
    corpus = indexed_corpus.corpus
    originals = {p.name: p.read_bytes() for p in corpus.iterdir()}
    indexed_corpus.store.reload()
    yield indexed_corpus
    for p in corpus.iterdir():
        if p.name not in originals:
            p.unlink()
    for name, data in originals.items():
        if not (corpus / name).exists() or (corpus / name).read_bytes() != data:
            (corpus / name).write_bytes(data)
    report = ingest([corpus], indexed_corpus.store, embedder, corpus_root=corpus)
    assert not report.errors
    assert_index_matches(indexed_corpus.store, indexed_corpus.chunks)


def run(idx: IndexedCorpus, embedder: Embedder) -> IngestReport:
    return ingest([idx.corpus], idx.store, embedder, corpus_root=idx.corpus)


def test_modified_article_updates_only_that_document(live_index: IndexedCorpus, embedder: Embedder) -> None:
    store = live_index.store
    before = {k: v.hash for k, v in store.documents().items()}
    path = live_index.corpus / DIGEST
    added = " A new closing sentence about the Yangzhou alumni association was added."
    path.write_text(path.read_text(encoding="utf-8") + added, encoding="utf-8")
    report = run(live_index, embedder)
    last = f"{DIGEST}#10"
    assert (report.added, report.updated, report.removed, report.unchanged) == (0, 1, 0, CORPUS_DOCS - 1)
    assert report.files_unchanged == 4
    after = {k: v.hash for k, v in store.documents().items()}
    assert [k for k in before if before[k] != after[k]] == [last]
    texts = [t for _, t, m in raw_chunks(store) if m["doc_id"] == last]
    assert any(added.strip() in t for t in texts)
    expected = dict(live_index.chunks)
    expected[last] = report.chunks_added
    assert_index_matches(store, expected)


def test_modified_single_file_updates_its_document(live_index: IndexedCorpus, embedder: Embedder) -> None:
    path = live_index.corpus / SINGLE
    path.write_text(path.read_text(encoding="utf-8").replace("March 21", "March 22"), encoding="utf-8")
    report = run(live_index, embedder)
    assert (report.added, report.updated, report.removed, report.unchanged) == (0, 1, 0, CORPUS_DOCS - 1)
    texts = [t for _, t, m in raw_chunks(live_index.store) if m["doc_id"] == SINGLE]
    assert any("March 22" in t for t in texts) and not any("March 21" in t for t in texts)


def test_deleted_file_removes_its_documents(live_index: IndexedCorpus, embedder: Embedder) -> None:
    (live_index.corpus / SMALL).unlink()
    report = run(live_index, embedder)
    assert (report.added, report.updated, report.removed) == (0, 0, 1)
    assert report.chunks_removed == live_index.chunks[SMALL]
    expected = {k: v for k, v in live_index.chunks.items() if k != SMALL}
    assert_index_matches(live_index.store, expected)
    assert str(live_index.corpus / SMALL) not in live_index.store.file_hashes()


def test_broken_new_file_is_reported_and_the_rest_stays(live_index: IndexedCorpus, embedder: Embedder) -> None:
    (live_index.corpus / "junk.txt").write_bytes(bytes(range(256)) * 16)
    (live_index.corpus / "empty.md").write_bytes(b"")
    report = run(live_index, embedder)
    assert report.partial
    assert sorted(e.path for e in report.errors) == ["empty.md", "junk.txt"]
    assert all(e.reason for e in report.errors)
    assert report.to_dict()["errors"][0]["reason"]
    assert (report.added, report.updated, report.removed, report.unchanged) == (0, 0, 0, CORPUS_DOCS)
    assert_index_matches(live_index.store, live_index.chunks)


def test_file_broken_after_ingest_keeps_its_documents(live_index: IndexedCorpus, embedder: Embedder) -> None:
    store = live_index.store
    before = {k: v.hash for k, v in store.documents().items()}
    (live_index.corpus / SINGLE).write_bytes(b"\x00\x01\x02\x03" * 1000)  # now binary junk
    (live_index.corpus / DIGEST).write_bytes(b"")  # now empty
    report = run(live_index, embedder)
    assert report.partial
    assert sorted(e.path for e in report.errors) == sorted([DIGEST, SINGLE])
    assert report.removed == 0 and report.updated == 0
    assert {k: v.hash for k, v in store.documents().items()} == before
    assert_index_matches(store, live_index.chunks)
    # Putting the good bytes back is recognised as unchanged: nothing is embedded again.
    (live_index.corpus / SINGLE).write_bytes((CORPUS / SINGLE).read_bytes())
    (live_index.corpus / DIGEST).write_bytes((CORPUS / DIGEST).read_bytes())
    fresh = Embedder()
    again = ingest([live_index.corpus], store, fresh, corpus_root=live_index.corpus)
    assert not again.partial and again.files_unchanged == 5 and again.chunks_added == 0
    assert fresh._model is None


# --------------------------------------------------------------------------- compatibility and locking


def test_opening_the_index_with_another_model_raises_mismatch(
    indexed_corpus: IndexedCorpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_loading(self: Embedder) -> None:
        raise AssertionError("the other model must not be loaded to detect the mismatch")

    monkeypatch.setattr(Embedder, "_load", no_loading)
    config = Config(
        index_dir=indexed_corpus.index,
        corpus_dir=indexed_corpus.corpus,
        embedding=EmbeddingSettings(model="some-other-model"),
    )
    with pytest.raises(IndexMismatchError) as info:
        Assistant(config)
    message = str(info.value)
    assert f"'{DEFAULT_MODEL}'" in message and "'some-other-model'" in message
    assert "--rebuild" in message


def test_ingest_with_other_settings_raises_mismatch_and_changes_nothing(indexed_corpus: IndexedCorpus) -> None:
    store = indexed_corpus.store
    other_model = Embedder(EmbeddingSettings(model="some-other-model"))
    with pytest.raises(IndexMismatchError, match="some-other-model"):
        ingest([indexed_corpus.corpus], store, other_model, corpus_root=indexed_corpus.corpus)
    assert other_model._model is None
    with pytest.raises(IndexMismatchError, match="chunker settings"):
        ingest(
            [indexed_corpus.corpus],
            store,
            Embedder(),
            ChunkerSettings(max_tokens=128),
            corpus_root=indexed_corpus.corpus,
        )
    # Chinese read as written, into an index whose passages were read as their English gloss.
    assert store.settings().reading == "gloss-zh-en"  # type: ignore[union-attr]
    as_written = Embedder(EmbeddingSettings(gloss_chinese=False))
    with pytest.raises(IndexMismatchError, match="as read by 'gloss-zh-en'.*as written.*--rebuild"):
        ingest([indexed_corpus.corpus], store, as_written, corpus_root=indexed_corpus.corpus)
    assert as_written._model is None
    assert not store.dirty()
    assert_index_matches(store, indexed_corpus.chunks)


def test_second_ingest_while_locked_raises_index_locked(indexed_corpus: IndexedCorpus, embedder: Embedder) -> None:
    store = indexed_corpus.store
    with store.lock():
        with pytest.raises(IndexLockedError) as info:
            ingest([indexed_corpus.corpus], Store(indexed_corpus.index), embedder, corpus_root=indexed_corpus.corpus)
        message = str(info.value)
        assert "another ingest is running" in message
        assert str(indexed_corpus.index / ".ingest.lock") in message
    # Released: the next ingest goes through (nothing to do).
    report = ingest([indexed_corpus.corpus], store, embedder, corpus_root=indexed_corpus.corpus)
    assert report.unchanged == CORPUS_DOCS


def test_lock_held_by_another_process(indexed_corpus: IndexedCorpus, embedder: Embedder) -> None:
    lock = indexed_corpus.index / ".ingest.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('locked', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(IndexLockedError, match="another ingest is running"):
            ingest([indexed_corpus.corpus], indexed_corpus.store, embedder, corpus_root=indexed_corpus.corpus)
    finally:
        holder.kill()
        holder.wait(timeout=10)
    report = ingest([indexed_corpus.corpus], indexed_corpus.store, embedder, corpus_root=indexed_corpus.corpus)
    assert report.unchanged == CORPUS_DOCS


# --------------------------------------------------------------------------- interrupted ingest

SMALL_CHUNKER = ChunkerSettings(max_tokens=32, overlap_sentences=1, min_tokens=0, max_tokens_zh=32)
SYNTHETIC = {
    "a.txt": " ".join(
        f"The Changzhou alliance opened training base number {i} for welding students." for i in range(6)
    ),
    "b.txt": "".join(f"苏州标准化产教联盟第{i}次会议讨论了职业院校与企业合作培养技术人才的计划。" for i in range(6)),
    "c.txt": " ".join(
        f"Nanhai district school {i} signed a robotics apprenticeship agreement with Midea." for i in range(6)
    ),
}


def write_synthetic(corpus: Path, names: list[str]) -> None:
    corpus.mkdir(parents=True, exist_ok=True)
    for name in names:
        (corpus / name).write_text(SYNTHETIC[name] + "\n", encoding="utf-8")


@pytest.fixture
def crashed_index(tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """One file ingested, then two more added and that ingest killed (KeyboardInterrupt, as on Ctrl-C)
    right after the chunks of both new documents were written to Chroma (one batched upsert), before
    the manifest vouched for them."""
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    write_synthetic(corpus, ["a.txt"])
    first = ingest([corpus], Store(index), embedder, SMALL_CHUNKER, corpus_root=corpus)
    assert first.added == 1 and first.chunks_added > 1
    write_synthetic(corpus, ["b.txt", "c.txt"])
    real_add = Store.add_chunk_groups
    written: list[str] = []

    def add_then_crash(self: Store, groups: list, embeddings: np.ndarray) -> None:
        real_add(self, groups, embeddings)
        written.extend(chunks[0].doc_id for chunks, _ in groups)
        if len(written) >= 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(Store, "add_chunk_groups", add_then_crash)
    with pytest.raises(KeyboardInterrupt):
        ingest([corpus], Store(index), embedder, SMALL_CHUNKER, corpus_root=corpus)
    monkeypatch.undo()
    assert written == ["b.txt", "c.txt"]
    return corpus, index


def test_interrupted_ingest_leaves_a_usable_index(crashed_index: tuple[Path, Path], embedder: Embedder) -> None:
    corpus, index = crashed_index
    store = Store(index)  # a new process opening the index
    assert store.dirty()
    committed = set(store.documents())
    assert "a.txt" in committed and "c.txt" not in committed
    orphans = {m["doc_id"] for _, _, m in raw_chunks(store)} - committed
    assert "c.txt" in orphans  # its chunks were written, but the manifest never vouched for them
    # Readers see complete documents only.
    assert {m["doc_id"] for _, _, m in store.iter_chunks()} == committed
    q = embedder.encode_queries(["Nanhai robotics apprenticeship agreement with Midea"])[0]
    hits = store.query(q, 30)
    assert hits and {h[2]["doc_id"] for h in hits} <= committed
    assistant = Assistant(Config(index_dir=index, corpus_dir=corpus))
    assert {d.doc_id for d in assistant.documents()} == committed
    from assistant.retrieval import Retriever

    passages = Retriever(store, embedder).search("Nanhai robotics apprenticeship Midea")
    assert passages and {p.doc_id for p in passages} <= committed


def test_ingest_after_interruption_finishes_without_duplicates(
    crashed_index: tuple[Path, Path], embedder: Embedder
) -> None:
    corpus, index = crashed_index
    store = Store(index)
    committed = set(store.documents())
    report = ingest([corpus], store, embedder, SMALL_CHUNKER, corpus_root=corpus)
    assert report.unchanged == len(committed) and report.added == 3 - len(committed)
    assert (report.updated, report.removed) == (0, 0)
    assert not report.partial
    assert not store.dirty()
    expected = expected_chunks(corpus, SMALL_CHUNKER)
    assert all(n > 1 for n in expected.values())
    assert_index_matches(store, expected)


def test_ingest_after_interruption_reports_swept_chunks(crashed_index: tuple[Path, Path], embedder: Embedder) -> None:
    corpus, index = crashed_index
    store = Store(index)
    leftovers = len(raw_chunks(store)) - sum(r.chunks for r in store.documents().values())
    assert leftovers > 0
    report = ingest([corpus], store, embedder, SMALL_CHUNKER, corpus_root=corpus)
    assert_index_matches(store, expected_chunks(corpus, SMALL_CHUNKER))  # they were swept...
    assert report.swept == leftovers  # ...and the report says so


def test_the_dense_search_is_wide_enough_to_be_exact_and_old_indexes_are_widened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import chromadb

    from assistant import store as store_mod

    def client(path: Path) -> Any:
        return chromadb.PersistentClient(
            path=str(path / "chroma"), settings=chromadb.Settings(anonymized_telemetry=False)
        )

    def ef_search(path: Path) -> int:
        return int(client(path).get_collection(store_mod.CHUNKS).configuration["hnsw"]["ef_search"])

    new = Store(tmp_path / "new").chunks.configuration["hnsw"]["ef_search"]
    assert new == store_mod.HNSW["ef_search"] == 400 and ef_search(tmp_path / "new") == 400
    # An index made with Chroma's defaults (ef_search 100) is widened in place when opened.
    for name in ("old", "locked"):
        client(tmp_path / name).get_or_create_collection(store_mod.CHUNKS, configuration={"hnsw": {"space": "cosine"}})
        assert ef_search(tmp_path / name) == 100
    Store(tmp_path / "old")
    assert ef_search(tmp_path / "old") == 400
    # A change that does not take (a modify that raised nothing, yet the index still had the old
    # width) is read back and made again.
    from chromadb.api.models.Collection import Collection

    real_modify, calls = Collection.modify, []

    def lost_once(self: Any, **kwargs: Any) -> None:
        calls.append(kwargs)
        if len(calls) > 1:
            real_modify(self, **kwargs)

    client(tmp_path / "lost").get_or_create_collection(store_mod.CHUNKS, configuration={"hnsw": {"space": "cosine"}})
    monkeypatch.setattr(Collection, "modify", lost_once)
    Store(tmp_path / "lost")
    assert len(calls) == 2 and ef_search(tmp_path / "lost") == 400
    # One that cannot be changed now (another process writing, a read-only folder) still opens.

    def refuse(self: object, **_: object) -> None:
        raise RuntimeError("database is locked")

    monkeypatch.setattr(Collection, "modify", refuse)
    opened = Store(tmp_path / "locked")
    assert opened.count() == 0 and ef_search(tmp_path / "locked") == 100
