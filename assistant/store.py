"""The Chroma index: chunks with their embeddings, and a manifest kept in Chroma beside them.

The manifest (model, dimension, chunker settings, one record per document with its content hash, one
per file with its byte hash) lives in a second Chroma collection, so several assistant processes that
share one Chroma server also share one manifest. Chunk ids carry their document's content hash: new
chunks are written *before* the manifest points at them and old ones deleted *after*, so an ingest
killed at any moment leaves an index that answers as before (readers ignore chunks the manifest does
not vouch for) and the next ingest sweeps the leftovers.

We talk to Chroma directly rather than through llama-index's ``ChromaVectorStore``: we need the
manifest collection, metadata-only reads, ``$ne`` deletes by content hash and paged scans, and the
node conversion would cost time on every query. ``assistant.llamaindex.HybridRetriever`` exposes our
search as a llama-index ``BaseRetriever`` for llama-index pipelines.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from .errors import ConfigError, IndexLockedError, IndexMismatchError, StoreError
from .schema import Chunk, Span

SCHEMA_VERSION = 1
CHUNKS = "assistant_chunks"
MANIFEST = "assistant_manifest"
# Chroma builds the HNSW graph of the vectors it has not yet written to disk (up to its
# sync_threshold, 1,000) again, on several threads, each time a process opens the index: every
# process gets a slightly different graph. With Chroma's default ef_search (100) a 40-neighbour
# search missed one of the true 40 in about one query of 200, a different one in each process, so a
# question could be answered differently after a restart, and two identical training runs differed
# on 1% of their questions. At 400 the search returned the exact 40 nearest in every run (SQuAD 2.0
# development sample, 703 chunks, 200 questions, 4 processes); it costs little next to the rest.
HNSW: dict[str, Any] = {"space": "cosine", "ef_search": 400}


def _search_width(collection: Any) -> int:
    config = getattr(collection, "configuration", None)
    hnsw = (config.get("hnsw") if isinstance(config, dict) else None) or {}
    return int(hnsw.get("ef_search") or 100)  # Chroma's default when none is recorded


def _widen_search(client: Any, collection: Any, attempts: int = 3) -> None:
    """Raise the ef_search of an index made before ``HNSW`` (Chroma changes it in place). Best effort:
    an index that cannot be written now (read-only, or another process writing) answers with the
    search it had."""
    for attempt in range(attempts):
        # Read back rather than trust modify(): a CI run once found the old width after a modify
        # that raised nothing.
        try:
            if attempt:
                time.sleep(0.05 * 2 ** (attempt - 1))  # a locked database is often free a moment later
                collection = client.get_collection(CHUNKS, embedding_function=None)
            if _search_width(collection) >= HNSW["ef_search"]:
                return
            collection.modify(configuration={"hnsw": {"ef_search": HNSW["ef_search"]}})
        except Exception:  # chromadb raises its own InternalError for a locked or read-only database
            pass


SETTINGS_ID = "__settings__"
_BATCH = 1000


@dataclass
class DocRecord:
    """A document as the manifest knows it."""

    doc_id: str
    hash: str
    source: str
    path: str
    title: str = ""
    outlet: str = ""
    date: str = ""
    language: str = ""
    chunks: int = 0
    offset: int = 0

    def to_meta(self) -> dict[str, Any]:
        return {"kind": "doc", **asdict(self)}

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> DocRecord:
        fields = cls.__dataclass_fields__
        return cls(**{k: meta[k] for k in fields if k in meta})


@dataclass
class IndexSettings:
    """What the vectors in the index were made with; a mismatch means re-ingest."""

    model: str
    dimension: int
    chunker: dict[str, Any]
    version: int = SCHEMA_VERSION
    reading: str = ""  # ``Embedder.reading_name``: how the model read the passages ("" as written)


def _read_as(reading: str) -> str:
    return "as written" if not reading else f"as read by {reading!r}"


def chunk_id(doc_id: str, index: int, doc_hash: str) -> str:
    return f"{doc_id}::{index}@{doc_hash[:16]}"


def date_number(date: str) -> int:
    """ "2025-10-28" -> 20251028 (Chroma compares numbers, not strings); 0 when unknown."""
    digits = date.replace("-", "")
    return int(digits) if len(digits) == 8 and digits.isdigit() else 0


def parse_chroma_url(url: str) -> tuple[str, int, bool]:
    parsed = urlparse(url if "://" in url else f"http://{url}")
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigError(f"--chroma-url must look like http://HOST:PORT, got {url!r}")
    port = parsed.port or (443 if parsed.scheme == "https" else 8000)
    return parsed.hostname, port, parsed.scheme == "https"


class Store:
    """Chunks and manifest in Chroma: a local ``PersistentClient`` under ``index_dir/chroma`` by
    default, or a Chroma server (``HttpClient``) when ``chroma_url`` is given."""

    def __init__(self, index_dir: Path, chroma_url: str | None = None) -> None:
        import chromadb

        self.index_dir = Path(index_dir)
        self.chroma_url = chroma_url
        self.newer_settings: list[str] = []  # see ``settings``
        settings = chromadb.Settings(anonymized_telemetry=False)
        try:
            if chroma_url:
                host, port, ssl = parse_chroma_url(chroma_url)
                self.client: Any = chromadb.HttpClient(host=host, port=port, ssl=ssl, settings=settings)
            else:
                self.index_dir.mkdir(parents=True, exist_ok=True)
                self.client = chromadb.PersistentClient(path=str(self.index_dir / "chroma"), settings=settings)
            self.chunks = self.client.get_or_create_collection(
                CHUNKS, configuration={"hnsw": dict(HNSW)}, embedding_function=None
            )
            if not chroma_url:  # a shared server's collection is its owner's business
                _widen_search(self.client, self.chunks)
            self.manifest = self.client.get_or_create_collection(MANIFEST, embedding_function=None)
        except ConfigError:
            raise
        except Exception as exc:
            where = chroma_url or str(self.index_dir / "chroma")
            raise StoreError(f"cannot open the Chroma index at {where}: {type(exc).__name__}: {exc}") from exc
        # The manifest's document records, by doc_id: all of them once ``documents()`` has read them
        # (``_docs_complete``), or only those a query needed (``_records``); None after ``reload``.
        self._docs: dict[str, DocRecord] | None = None
        self._docs_complete = False

    # ------------------------------------------------------------------ manifest

    def settings(self) -> IndexSettings | None:
        got = self.manifest.get(ids=[SETTINGS_ID], include=["metadatas"])
        if not got["ids"]:
            return None
        meta = got["metadatas"][0]
        data = json.loads(str(meta["json"]))
        fields = IndexSettings.__dataclass_fields__
        # Settings written by a newer version of this program: ``check_compatible`` refuses the index
        # with a clear message (a TypeError here was a stack trace), a rebuild replaces them.
        self.newer_settings = sorted(k for k in data if k not in fields)
        return IndexSettings(**{k: v for k, v in data.items() if k in fields})

    def dirty(self) -> bool:
        got = self.manifest.get(ids=[SETTINGS_ID], include=["metadatas"])
        return bool(got["ids"]) and bool(got["metadatas"][0].get("dirty", False))

    def write_settings(self, settings: IndexSettings, dirty: bool) -> None:
        """Record the index settings; when clean, also the generation readers compare against."""
        meta: dict[str, Any] = {
            "kind": "settings",
            "json": json.dumps(asdict(settings), sort_keys=True),
            "dirty": dirty,
        }
        if not dirty:
            self.reload()  # the generation of the manifest as the server has it, not as we cached it
            meta["generation"] = self.generation()
        self.manifest.upsert(ids=[SETTINGS_ID], embeddings=[[1.0]], metadatas=[meta])

    def write_settings_clean(self) -> None:
        """Mark the index clean with the current generation (after a change outside ``ingest``)."""
        current = self.settings()
        if current is not None:
            self.write_settings(current, dirty=False)

    def stored_generation(self) -> str:
        """The generation the last finished ingest recorded: one cheap read, for change detection."""
        got = self.manifest.get(ids=[SETTINGS_ID], include=["metadatas"])
        if got["ids"] and got["metadatas"][0].get("generation"):
            return str(got["metadatas"][0]["generation"])
        return self.generation()

    def check_compatible(
        self, model: str, dimension: int | None, chunker: dict[str, Any] | None, reading: str | None = None
    ) -> None:
        """Raise ``IndexMismatchError`` when the index was built with other settings (those given)."""
        current = self.settings()
        if current is None:
            return
        where = self.chroma_url or str(self.index_dir)
        if self.newer_settings:
            raise IndexMismatchError(
                f"the index at {where} was written by a newer version of the assistant (it records "
                f"{', '.join(self.newer_settings)}, which this version does not know)",
                "run that version, or rebuild the index with `assistant ingest --rebuild`",
            )
        if current.version != SCHEMA_VERSION:
            raise IndexMismatchError(
                f"the index at {where} has format version {current.version}, this program uses {SCHEMA_VERSION}"
            )
        if current.model != model or (dimension is not None and current.dimension != dimension):
            raise IndexMismatchError(
                f"the index at {where} was built with embedding model '{current.model}' "
                f"(dimension {current.dimension}), but the configured model is '{model}'"
                + (f" (dimension {dimension})" if dimension is not None else ""),
                "re-ingest with `assistant ingest --rebuild`, or configure the original model",
            )
        if chunker is not None and current.chunker != chunker:
            raise IndexMismatchError(
                f"the index at {where} was built with chunker settings {current.chunker}, "
                f"but the configured ones are {chunker}"
            )
        if reading is not None and current.reading != reading:
            raise IndexMismatchError(
                f"the index at {where} was built with passages embedded {_read_as(current.reading)}, "
                f"but the embedder reads them {_read_as(reading)}"
            )

    def documents(self) -> dict[str, DocRecord]:
        """The documents the manifest vouches for, by doc_id (cached until ``reload``)."""
        if self._docs is None or not self._docs_complete:
            # The ids first, then the records in pages: one read of every record with its metadata
            # peaked at +540 MB at 100k chunks (29k documents), paged +120 MB, in the same time.
            ids = self.manifest.get(where={"kind": "doc"}, include=[])["ids"]
            docs: dict[str, DocRecord] = {}
            for b in range(0, len(ids), _BATCH):
                got = self.manifest.get(ids=ids[b : b + _BATCH], include=["metadatas"])
                docs.update((m["doc_id"], DocRecord.from_meta(m)) for m in got["metadatas"])
            self._docs, self._docs_complete = docs, True
        return self._docs

    def document_count(self) -> int:
        """How many documents the manifest vouches for: their ids only (0.2 s at 100k chunks, where
        reading the records, ``documents()``, took 2-3 s)."""
        if self._docs is not None and self._docs_complete:
            return len(self._docs)
        return len(self.manifest.get(where={"kind": "doc"}, include=[])["ids"])

    def _records(self, doc_ids: Iterable[str]) -> dict[str, DocRecord]:
        """The manifest records of these documents (or more): those not cached yet are read by id, in one
        small read. A question's chunks name a few documents; reading all records (``documents()``)
        took 2-3 s of a cold question at 100k chunks."""
        docs = self._docs
        if docs is None:
            docs = self._docs = {}
            self._docs_complete = False
        if not self._docs_complete:
            missing = sorted({d for d in doc_ids if d not in docs})
            if missing:  # a document not in the manifest (an unfinished ingest) is asked again next time
                got = self.manifest.get(ids=[f"doc:{d}" for d in missing], include=["metadatas"])
                docs.update((m["doc_id"], DocRecord.from_meta(m)) for m in got["metadatas"])
        return docs

    def reload(self) -> None:
        self._docs = None

    def generation(self) -> str:
        """A digest of the manifest: changes whenever any document is added, changed or removed."""
        h = hashlib.sha256()
        for doc_id, rec in sorted(self.documents().items()):
            h.update(f"{doc_id}\0{rec.hash}\n".encode())
        return h.hexdigest()[:16]

    def file_hashes(self) -> dict[str, str]:
        got = self.manifest.get(where={"kind": "file"}, include=["metadatas"])
        return {str(m["path"]): str(m["hash"]) for m in got["metadatas"]}

    def set_file_hashes(self, hashes: Mapping[str, str]) -> None:
        """Record the byte hash of each file (path -> digest), in as few upserts as possible."""
        items = list(hashes.items())
        for b in range(0, len(items), _BATCH):
            part = items[b : b + _BATCH]
            self.manifest.upsert(
                ids=[f"file:{path}" for path, _ in part],
                embeddings=[[1.0]] * len(part),
                metadatas=[{"kind": "file", "path": path, "hash": digest} for path, digest in part],
            )

    def forget_file(self, path: str) -> None:
        self.manifest.delete(ids=[f"file:{path}"])

    # ------------------------------------------------------------------ writing

    def add_chunk_groups(self, groups: Sequence[tuple[Sequence[Chunk], str]], embeddings: np.ndarray) -> None:
        """Write the chunks of several document versions, ``(chunks, doc_hash)`` each, in as few upserts
        as possible: each Chroma upsert has a fixed cost of tens of milliseconds, which made one upsert
        per (small) document 40% of the ingest time. ``embeddings`` has one row per chunk, in order."""
        flat = [(c, h) for chunks, h in groups for c in chunks]
        if len(flat) != len(embeddings):
            raise ValueError(f"{len(flat)} chunks but {len(embeddings)} embeddings")
        for b in range(0, len(flat), _BATCH):
            part = flat[b : b + _BATCH]
            self.chunks.upsert(
                ids=[chunk_id(c.doc_id, c.index, h) for c, h in part],
                embeddings=embeddings[b : b + _BATCH].tolist(),
                documents=[c.text for c, _ in part],
                metadatas=[_chunk_meta(c, h) for c, h in part],
            )

    def commit_document(self, record: DocRecord) -> None:
        """Point the manifest at the new version of a document, then drop its older chunks."""
        self.commit_documents([record], [record])

    def commit_documents(self, records: Sequence[DocRecord], replaced: Sequence[DocRecord] = ()) -> None:
        """Point the manifest at new document versions (one write), then drop the older chunks of
        the ``replaced`` ones (documents that had a previous version)."""
        for b in range(0, len(records), _BATCH):
            part = records[b : b + _BATCH]
            self.manifest.upsert(
                ids=[f"doc:{r.doc_id}" for r in part],
                embeddings=[[1.0]] * len(part),
                metadatas=[r.to_meta() for r in part],
            )
        for record in replaced:
            self.chunks.delete(where={"$and": [{"doc_id": record.doc_id}, {"doc_hash": {"$ne": record.hash}}]})
        if self._docs is not None:
            for record in records:
                self._docs[record.doc_id] = record

    def remove_document(self, doc_id: str) -> int:
        """Forget a document: manifest first (readers stop seeing it), then its chunks."""
        self.manifest.delete(ids=[f"doc:{doc_id}"])
        got = self.chunks.get(where={"doc_id": doc_id}, include=[])
        if got["ids"]:
            self.chunks.delete(ids=got["ids"])
        if self._docs is not None:
            self._docs.pop(doc_id, None)
        return len(got["ids"])

    def sweep(self) -> int:
        """Delete chunks no manifest record vouches for (left by an interrupted ingest)."""
        docs = self.documents()
        got = self.chunks.get(include=["metadatas"])
        stale = [
            cid
            for cid, meta in zip(got["ids"], got["metadatas"], strict=True)
            if (rec := docs.get(str(meta.get("doc_id")))) is None or rec.hash != meta.get("doc_hash")
        ]
        for b in range(0, len(stale), _BATCH):
            self.chunks.delete(ids=stale[b : b + _BATCH])
        return len(stale)

    def can_rebuild_in_place(self, dimension: int) -> bool:
        """Whether a rebuild may overwrite the collections instead of re-creating them: they hold
        vectors of this ``dimension`` (or nothing yet)."""
        current = self.settings()
        return current is None or current.dimension == dimension

    def retain(self, doc_ids: set[str], file_paths: set[str]) -> int:
        """Forget the manifest records of documents and files outside these sets, then the chunks no
        record vouches for (the end of a rebuild done in place); returns the chunks removed.

        A server rebuilds in place rather than through ``reset``: with a local Chroma, every deleted
        and re-created collection leaks memory and open files in the process (chroma-core/chroma#3296,
        ~5.5 MB and 8 file handles per rebuild here), which a long-running server would pile up."""
        got = self.manifest.get(include=["metadatas"])
        stale = [
            rid
            for rid, meta in zip(got["ids"], got["metadatas"], strict=True)
            if (meta.get("kind") == "doc" and str(meta.get("doc_id")) not in doc_ids)
            or (meta.get("kind") == "file" and str(meta.get("path")) not in file_paths)
        ]
        for b in range(0, len(stale), _BATCH):
            self.manifest.delete(ids=stale[b : b + _BATCH])
        self._docs = None
        return self.sweep()

    def reset(self) -> None:
        """Drop everything (``ingest --rebuild`` from the command line, or a change of vector size)."""
        for name in (CHUNKS, MANIFEST):
            try:
                self.client.delete_collection(name)
            except Exception:  # the collection may not exist yet
                pass
        self.chunks = self.client.get_or_create_collection(
            CHUNKS, configuration={"hnsw": dict(HNSW)}, embedding_function=None
        )
        self.manifest = self.client.get_or_create_collection(MANIFEST, embedding_function=None)
        self._docs = None

    # ------------------------------------------------------------------ reading

    def count(self) -> int:
        return int(self.chunks.count())

    def query(
        self, embedding: np.ndarray, k: int, where: dict[str, Any] | None = None
    ) -> list[tuple[str, str, dict[str, Any], float]]:
        """Nearest chunks as (id, text, metadata, cosine similarity), current versions only."""
        # No count() first: Chroma returns fewer results when it holds fewer (or none), and counting
        # was a round trip that scans the collection (15% of a question's time at 100k chunks).
        res = self.chunks.query(
            query_embeddings=[embedding.tolist()],
            n_results=max(1, k),
            where=where or None,
            include=["documents", "metadatas", "distances"],
        )
        docs = self._records(str(meta.get("doc_id")) for meta in res["metadatas"][0])
        out = []
        for cid, text, meta, dist in zip(
            res["ids"][0], res["documents"][0], res["metadatas"][0], res["distances"][0], strict=True
        ):
            rec = docs.get(str(meta.get("doc_id")))
            if rec is None or rec.hash != meta.get("doc_hash"):
                continue  # a chunk of an unfinished ingest
            out.append((cid, text, dict(meta), 1.0 - float(dist)))
        return out

    def iter_chunks(self, batch: int = 5000) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """Every current chunk as (id, text, metadata), in pages."""
        docs = self.documents()
        offset = 0
        while True:
            got = self.chunks.get(include=["documents", "metadatas"], limit=batch, offset=offset)
            if not got["ids"]:
                break
            for cid, text, meta in zip(got["ids"], got["documents"], got["metadatas"], strict=True):
                rec = docs.get(str(meta.get("doc_id")))
                if rec is not None and rec.hash == meta.get("doc_hash"):
                    yield cid, text, dict(meta)
            offset += len(got["ids"])

    def get_chunks(self, ids: Sequence[str]) -> list[tuple[str, str, dict[str, Any]]]:
        if not ids:
            return []
        got = self.chunks.get(ids=list(ids), include=["documents", "metadatas"])
        by_id = {
            cid: (cid, text, dict(meta))
            for cid, text, meta in zip(got["ids"], got["documents"], got["metadatas"], strict=True)
        }
        return [by_id[i] for i in ids if i in by_id]

    def document_chunks(self, doc_id: str) -> list[tuple[str, dict[str, Any]]]:
        """The current chunks of one document as (text, metadata), in text order; [] for an unknown id."""
        rec = self.documents().get(doc_id)
        if rec is None:
            return []
        got = self.get_chunks([chunk_id(doc_id, i, rec.hash) for i in range(rec.chunks)])
        current = [(text, meta) for _, text, meta in got]
        return sorted(current, key=lambda tm: int(tm[1].get("start", 0)))

    # ------------------------------------------------------------------ locking

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Serialize ingests that use this index directory; a second one fails at once with a clear
        message. (A file lock: with a shared Chroma server, ingests from other hosts or other index
        directories are not stopped — run them from one place.)"""
        self.index_dir.mkdir(parents=True, exist_ok=True)
        path = self.index_dir / ".ingest.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise IndexLockedError(
                    f"another ingest is running on {self.index_dir} (lock {path}); wait for it to finish"
                ) from exc
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
            yield
        finally:
            os.close(fd)


def _chunk_meta(chunk: Chunk, doc_hash: str) -> dict[str, Any]:
    meta = {k: v for k, v in chunk.metadata.items() if isinstance(v, str | int | float | bool)}
    meta.update(
        {
            "doc_id": chunk.doc_id,
            "doc_hash": doc_hash,
            "chunk_index": chunk.index,
            "start": chunk.start,
            "end": chunk.end,
            "sentences": json.dumps([[s.start, s.end] for s in chunk.sentences]),
            "date_num": date_number(str(chunk.metadata.get("date", ""))),
        }
    )
    return meta


def sentences_of(meta: dict[str, Any]) -> list[Span]:
    """The sentence spans stored with a chunk."""
    raw = meta.get("sentences")
    if not raw:
        return []
    return [Span(int(s), int(e)) for s, e in json.loads(str(raw))]
