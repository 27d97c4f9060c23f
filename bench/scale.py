"""Build the scale levels: the smallest with real embeddings, the bigger ones with re-used vectors.

Embedding 100k chunks with MiniLM on 2 CPU cores would take 40-80 minutes, so for the levels above the
real-embedding one the chunk vectors are *re-used*: a chunk whose exact text was embedded for real
(every chunk of the smallest level, the sample corpus included) gets its real vector; any other chunk
gets a mixture of two real vectors of chunks in the same script (0.75 a + 0.25 b + small noise,
normalised), chosen by a hash of its text. The level is written through the project's ``Store`` (chunk
ids, chunk metadata, manifest records, file hashes as ``Assistant.ingest`` writes them) and its BM25
index is built by the project's ``refresh_lexical``; its sentence vectors (``assistant.sentences``, read by the
answer stage's dense feature) are written by the project's ``sentences.sync`` with vectors re-used the same
way, so a question reads them as it does on an ingested index instead of encoding sentences on the fly.
These indexes serve the latency and memory measurements only; the ingest throughput is measured on the
real-embedding level.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assistant import sentences
from assistant.chunking import chunk_document
from assistant.config import Config
from assistant.core import Assistant
from assistant.documents import iter_files, load_file, source_text
from assistant.embedding import Embedder, EmbeddingSettings
from assistant.ingest import document_hash, file_hash
from assistant.retrieval import refresh_lexical
from assistant.schema import Chunk
from assistant.store import DocRecord, IndexSettings, Store, _chunk_meta, chunk_id

_CJK = re.compile(r"[\u3400-\u9fff]")
BULK = 1000  # chunks per Chroma upsert in the bulk builder (the Store's own page size)


class ReusedVectors(Embedder):
    """An ``Embedder`` whose passages get re-used real vectors (see the module docstring)."""

    def __init__(self, settings: EmbeddingSettings, known: dict[str, np.ndarray]) -> None:
        super().__init__(settings)
        self.known = known
        vectors = list(known.items())
        self.dim = len(vectors[0][1])
        zh = [v for t, v in vectors if _CJK.search(t)]
        en = [v for t, v in vectors if not _CJK.search(t)]
        self.bases = {"zh": np.stack(zh or en), "en": np.stack(en or zh)}
        self.real = 0
        self.reused = 0

    @property
    def dimension(self) -> int:  # type: ignore[override]
        return self.dim

    def encode_passages(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            vec = self.known.get(text)
            if vec is not None:
                self.real += 1
                out[i] = vec
                continue
            self.reused += 1
            seed = int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")
            rng = np.random.default_rng(seed)
            bases = self.bases["zh" if _CJK.search(text) else "en"]
            a, b = rng.integers(len(bases), size=2)
            v = 0.75 * bases[a] + 0.25 * bases[b] + rng.normal(0.0, 0.02, self.dim)
            out[i] = v / np.linalg.norm(v)
        if progress is not None:
            progress(len(texts))
        return out


def config_for(index_dir: Path, corpus_dir: Path) -> Config:
    """Default settings (as ``Config.from_env`` with no ASSISTANT_* variables), this index and corpus."""
    return Config.from_env(env={}, index_dir=Path(index_dir), corpus_dir=Path(corpus_dir))


@dataclass
class BuildResult:
    chunks: int
    documents: int
    seconds: float
    real_vectors: int = 0
    reused_vectors: int = 0
    phases: dict[str, float] = field(default_factory=dict)


def stored_vectors(index_dir: Path, corpus_dir: Path) -> dict[str, np.ndarray]:
    """Chunk text -> stored (real) embedding, read back from a level's Chroma collection."""
    a = Assistant(config_for(index_dir, corpus_dir))
    got = a.store.chunks.get(include=["embeddings", "documents"])
    return {t: np.asarray(e, dtype=np.float32) for t, e in zip(got["documents"], got["embeddings"], strict=True)}


def build_with_reused_vectors(index_dir: Path, corpus_dir: Path, known: dict[str, np.ndarray]) -> BuildResult:
    """Write a level into Chroma with the project's Store API and manifest, in bulk, with re-used vectors.

    This does what ``assistant.ingest.ingest`` does for a fresh index (same loader, chunker, document
    and file hashes, chunk ids and metadata, manifest records, BM25 build), except that no model runs
    (vectors are re-used, see ``ReusedVectors``) and chunks are upserted 1,000 at a time (``ingest``
    writes one upsert per embedding batch of 256 chunks). A later ``Assistant.ingest`` of the same
    directory reporting every document unchanged checks that the index is what ``ingest`` would write.
    """
    cfg = config_for(index_dir, corpus_dir)
    store = Store(cfg.index_dir)
    chunker = cfg.chunker
    fake = ReusedVectors(cfg.embedding, known)
    model = cfg.embedding.model_name
    phases = {
        "load+chunk": 0.0, "vectors": 0.0, "chroma chunks": 0.0, "manifest": 0.0, "bm25 build": 0.0,
        "sentence vectors": 0.0,
    }
    started = time.perf_counter()
    pending: list[tuple[Chunk, str]] = []

    def flush() -> None:
        t = time.perf_counter()
        vectors = fake.encode_passages([c.text for c, _ in pending])
        t1 = time.perf_counter()
        phases["vectors"] += t1 - t
        store.chunks.upsert(
            ids=[chunk_id(c.doc_id, c.index, h) for c, h in pending],
            embeddings=vectors.tolist(),
            documents=[c.text for c, _ in pending],
            metadatas=[_chunk_meta(c, h) for c, h in pending],
        )
        phases["chroma chunks"] += time.perf_counter() - t1
        pending.clear()

    with store.lock():
        store.check_compatible(model, None, chunker.to_dict(), fake.reading_name)
        settings = IndexSettings(model, fake.dimension, chunker.to_dict(), reading=fake.reading_name)
        store.write_settings(settings, dirty=True)
        root = Path(corpus_dir).resolve()
        records: list[DocRecord] = []
        file_hashes: list[tuple[str, str]] = []
        for path in iter_files([Path(corpus_dir)]):
            t = time.perf_counter()
            abs_path = str(path.resolve())
            file_hashes.append((abs_path, file_hash(path)))
            docs = load_file(path, root)
            text_source = source_text(path) if path.suffix.lower() != ".jsonl" else ""
            planned = []
            for doc in docs:
                doc.extra.setdefault("path", abs_path)
                h = document_hash(doc, chunker)
                chunks = chunk_document(doc, chunker, doc.text if "line" in doc.extra else text_source)
                planned.append((chunks, h))
                records.append(
                    DocRecord(
                        doc_id=doc.doc_id, hash=h, source=doc.source, path=abs_path, title=doc.title,
                        outlet=doc.outlet, date=doc.date, language=doc.language, chunks=len(chunks),
                        offset=doc.offset,
                    )
                )
            phases["load+chunk"] += time.perf_counter() - t
            for chunks, h in planned:
                pending.extend((c, h) for c in chunks)
            if len(pending) >= BULK:
                flush()
        if pending:
            flush()
        t = time.perf_counter()
        store.commit_documents(records)
        store.set_file_hashes(dict(file_hashes))
        settings = store.settings()
        assert settings is not None
        store.write_settings(settings, dirty=False)
        phases["manifest"] += time.perf_counter() - t
        t = time.perf_counter()
        refresh_lexical(store)
        phases["bm25 build"] += time.perf_counter() - t
    t = time.perf_counter()
    sentences.sync(store, fake)
    phases["sentence vectors"] += time.perf_counter() - t
    seconds = time.perf_counter() - started
    return BuildResult(
        chunks=store.count(),
        documents=len(store.documents()),
        seconds=seconds,
        real_vectors=fake.real,
        reused_vectors=fake.reused,
        phases=phases,
    )


def add_sentence_vectors(index_dir: Path, corpus_dir: Path, known: dict[str, np.ndarray] | None) -> int:
    """Give a level built before sentence vectors existed its sentence vectors: re-used ones from
    ``known`` (as ``build_with_reused_vectors`` writes them), or real ones when ``known`` is None (the
    real-embedding level). Returns the sentences written; 0 when the level has them already."""
    cfg = config_for(index_dir, corpus_dir)
    embedder: Embedder = ReusedVectors(cfg.embedding, known) if known is not None else Embedder(cfg.embedding)
    store = Store(cfg.index_dir)
    with store.lock():
        return sentences.sync(store, embedder)


def reingest_unchanged(index_dir: Path, corpus_dir: Path, repeats: int = 3) -> dict[str, Any]:
    """Time ``Assistant.ingest`` of an unchanged, already indexed corpus (a fresh ``Assistant``)."""
    a = Assistant(config_for(index_dir, corpus_dir))
    times = []
    last: dict[str, Any] = {}
    for _ in range(repeats):
        started = time.perf_counter()
        report = a.ingest()
        times.append(time.perf_counter() - started)
        last = report.to_dict()
    return {"seconds": times, "first": times[0], "median": sorted(times)[len(times) // 2], "report": last}
