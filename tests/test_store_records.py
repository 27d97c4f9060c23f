"""A question reads the manifest records of the documents its chunks come from, not the whole manifest
(issue 17: reading every record was 2-3 s and +0.5 GB of a cold question at 100k chunks), and still
drops the chunks no current record vouches for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assistant.schema import Chunk
from assistant.store import DocRecord, Store

DIM = 4


def chunk(doc_id: str, index: int, text: str) -> Chunk:
    return Chunk(doc_id=doc_id, index=index, text=text, start=0, end=len(text), metadata={"title": doc_id})


def vectors(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def add(store: Store, doc_id: str, doc_hash: str, n: int, commit: bool = True, seed: int = 0) -> DocRecord:
    chunks = [chunk(doc_id, i, f"{doc_id} {doc_hash} chunk {i}") for i in range(n)]
    store.add_chunk_groups([(chunks, doc_hash)], vectors(n, seed))
    record = DocRecord(doc_id=doc_id, hash=doc_hash, source=doc_id, path=doc_id, chunks=n)
    if commit:
        store.commit_documents([record])
    return record


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "index")
    for d in range(5):
        add(s, f"doc{d}", "h1" * 20, 3, seed=d)
    add(s, "unfinished", "h9" * 20, 3, commit=False, seed=9)  # chunks written, manifest never pointed at them
    s.reload()
    return s


def all_hits(store: Store) -> list[str]:
    return [h[0] for h in store.query(vectors(1, 42)[0], 100)]


def test_query_reads_only_the_records_it_needs(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    def whole_manifest() -> None:
        raise AssertionError("a query read the whole manifest")

    monkeypatch.setattr(store, "documents", whole_manifest)
    hits = all_hits(store)
    assert len(hits) == 15 and not any(h.startswith("unfinished") for h in hits)
    assert store._docs is not None and sorted(store._docs) == [f"doc{d}" for d in range(5)]
    assert not store._docs_complete


def test_same_hits_as_with_the_whole_manifest(store: Store) -> None:
    partial = all_hits(store)
    store.reload()
    assert len(store.documents()) == 5 and store._docs_complete
    assert all_hits(store) == partial


def test_a_new_version_committed_after_a_query_is_seen(store: Store) -> None:
    before = all_hits(store)
    assert any(h.startswith("doc0::") for h in before)
    add(store, "doc0", "h2" * 20, 2, seed=7)  # commit_documents: the cached record follows
    store.chunks.delete(where={"$and": [{"doc_id": "doc0"}, {"doc_hash": {"$ne": "h2" * 20}}]})
    after = [h for h in all_hits(store) if h.startswith("doc0::")]
    assert len(after) == 2 and all("@" + "h2" * 8 in h for h in after)


def test_a_document_committed_later_is_found(store: Store) -> None:
    assert not any(h.startswith("unfinished") for h in all_hits(store))
    store.commit_documents([DocRecord(doc_id="unfinished", hash="h9" * 20, source="u", path="u", chunks=3)])
    assert sum(h.startswith("unfinished") for h in all_hits(store)) == 3


def test_documents_after_a_partial_read_is_complete(store: Store) -> None:
    all_hits(store)
    store.remove_document("doc4")
    docs = store.documents()
    assert sorted(docs) == [f"doc{d}" for d in range(4)] and store._docs_complete


def test_document_count_reads_ids_only(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    def whole_manifest() -> None:
        raise AssertionError("counting read every record")

    monkeypatch.setattr(store, "documents", whole_manifest)
    assert store.document_count() == 5
    monkeypatch.undo()
    store.remove_document("doc4")
    assert store.document_count() == len(store.documents()) == 4
