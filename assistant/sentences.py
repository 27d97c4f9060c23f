"""Sentence vectors made at ingest time, stored beside the index, for the answer stage's dense
sentence feature (``answer.score_candidates``: cosine between the question and each candidate).

Every candidate sentence the answer stage may quote (each sentence of a chunk, split into the list
items of a digest line as ``answer.passage_items`` splits it) gets a normalized embedding from the
same model as the chunks, stored as float16 under ``INDEX/sentences/``:

- ``manifest.json``: format, model, how the model reads the text (``Embedder.reading_name``; missing
  in stores written before it, read as ""), dimension, the segment names in write order, and the
  manifest generation the vectors were last completed for (``complete``);
- per segment ``NAME.vec.npy`` (float16, one row per sentence), ``NAME.spans.npy`` (int64 start,
  end: absolute source-text offsets) and ``NAME.docs.json`` (document content hash -> first and
  last row).

Keyed on the document's content hash (the first 16 hex digits, as in chunk ids) and the sentence's
span, so an unchanged document is never encoded again, overlapping chunks share their sentences'
vectors, and a re-ingest is idempotent. Segments are written whole and then named in the manifest
(written atomically): a reader sees the old set or the new one. Rows of documents the index no longer
holds are dropped by ``sync`` when they make up half the rows. A question reads the few vectors it
needs through memory-mapped arrays.

An index built before sentence vectors existed still answers: ``lookup`` reports what is missing
and ``Retriever.sentence_similarities`` encodes those sentences on the fly (kept in memory); the next
``assistant ingest`` fills the store (``sync``).
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .atomic import write_atomic
from .chunking import inline_items
from .schema import Chunk, Span
from .store import Store, chunk_id, sentences_of

if TYPE_CHECKING:
    from .embedding import Embedder

FORMAT = 1
DIRECTORY = "sentences"
MANIFEST = "manifest.json"
# Sentences encoded per segment written by ``sync`` (bounds its memory: 4,096 x 384 float32 = 6 MB).
SEGMENT_ROWS = 4096
# More segments than this are merged into one by ``sync`` (each ingest that adds documents writes one).
MAX_SEGMENTS = 64
_WORD = re.compile(r"\w")

# (document hash prefix, start, end): one sentence of one document version.
Key = tuple[str, int, int]


def hash_key(doc_hash: str) -> str:
    """The part of a document's content hash that keys its sentences (as in ``store.chunk_id``)."""
    return doc_hash[:16]


def candidate_spans(text: str, offset: int, sentences: Sequence[Span]) -> list[Span]:
    """The spans the answer stage scores in a chunk: each sentence, split into its list items
    (``chunking.inline_items``; absolute offsets), those holding a word character only."""
    spans = sentences or [Span(offset, offset + len(text))]
    out: list[Span] = []
    for sentence in spans:
        items, _ = inline_items(text, Span(sentence.start - offset, sentence.end - offset))
        for item in items:
            if _WORD.search(text, item.start, item.end):
                out.append(Span(item.start + offset, item.end + offset))
    return out


def chunk_sentences(text: str, meta: dict[str, Any]) -> list[tuple[Key, str]]:
    """(key, sentence text) of every candidate span of a stored chunk (text and Chroma metadata)."""
    offset = int(meta.get("start", 0))
    doc = hash_key(str(meta.get("doc_hash", "")))
    return [
        ((doc, sp.start, sp.end), text[sp.start - offset : sp.end - offset])
        for sp in candidate_spans(text, offset, sentences_of(meta))
    ]


class _Segment:
    def __init__(self, directory: Path, name: str) -> None:
        self.name = name
        self.vectors = np.load(directory / f"{name}.vec.npy", mmap_mode="r")
        self.spans = np.load(directory / f"{name}.spans.npy")
        docs = json.loads((directory / f"{name}.docs.json").read_text(encoding="utf-8"))
        self.docs: dict[str, tuple[int, int]] = {str(k): (int(v[0]), int(v[1])) for k, v in docs.items()}
        if len(self.vectors) != len(self.spans):
            raise ValueError(f"segment {name}: {len(self.vectors)} vectors, {len(self.spans)} spans")


class SentenceVectors:
    """The sentence vectors of one index directory, for one embedding model (see the module docstring).

    Reading is safe while another process writes: the manifest is re-read when it changes on disk."""

    def __init__(self, index_dir: Path, model: str, reading: str = "") -> None:
        self.directory = Path(index_dir) / DIRECTORY
        self.model = model
        # Vectors of Chinese text read as its English gloss do not compare with vectors of the text
        # as written: the store is for one model and one reading.
        self.reading = reading
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._segments: list[_Segment] = []
        self._docs: dict[str, tuple[int, int, int]] = {}  # hash -> (segment, first row, end row)
        self._complete = ""
        self.dimension = 0
        self._rows: OrderedDict[str, dict[tuple[int, int], int]] = OrderedDict()

    # ------------------------------------------------------------------ reading

    def _manifest(self) -> dict[str, Any] | None:
        try:
            data = json.loads((self.directory / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if self._ours(data) else None

    def _ours(self, data: Any) -> bool:
        """Whether a manifest describes vectors of this store's format, model and reading."""
        return (
            isinstance(data, dict)
            and data.get("format") == FORMAT
            and data.get("model") == self.model
            and data.get("reading", "") == self.reading
        )

    def refresh(self) -> None:
        """Re-read the manifest and segments when the manifest changed on disk."""
        try:
            st = (self.directory / MANIFEST).stat()
            stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        if stamp == self._stamp:
            return
        with self._lock:
            data = self._manifest() if stamp is not None else None
            segments: list[_Segment] = []
            docs: dict[str, tuple[int, int, int]] = {}
            try:
                for i, name in enumerate(data.get("segments", []) if data else []):
                    seg = _Segment(self.directory, str(name))
                    segments.append(seg)
                    for h, (lo, hi) in seg.docs.items():
                        docs[h] = (i, lo, hi)  # a later segment wins
            except (OSError, ValueError, KeyError):
                # A segment replaced by a compaction meanwhile: read nothing now, try again next time.
                segments, docs, stamp = [], {}, None
            self._segments, self._docs = segments, docs
            self._complete = str(data.get("complete", "")) if data else ""
            self.dimension = int(data.get("dimension", 0)) if data else 0
            self._rows.clear()
            self._stamp = stamp

    @property
    def complete(self) -> str:
        """The manifest generation for which every document had its sentence vectors ("" if never)."""
        self.refresh()
        return self._complete

    def has(self, doc_hash: str) -> bool:
        self.refresh()
        return hash_key(doc_hash) in self._docs

    def hashes(self) -> set[str]:
        self.refresh()
        return set(self._docs)

    def _doc_rows(self, h: str) -> dict[tuple[int, int], int]:
        rows = self._rows.get(h)
        if rows is None:
            seg, lo, hi = self._docs[h]
            spans = self._segments[seg].spans[lo:hi]
            rows = {(int(s), int(e)): lo + i for i, (s, e) in enumerate(spans)}
            self._rows[h] = rows
            if len(self._rows) > 256:
                self._rows.popitem(last=False)
        return rows

    def lookup(self, keys: Sequence[Key]) -> list[np.ndarray | None]:
        """The stored vector (float32) of each key, or None when it has none."""
        self.refresh()
        out: list[np.ndarray | None] = []
        with self._lock:
            for h, start, end in keys:
                if h not in self._docs:
                    out.append(None)
                    continue
                row = self._doc_rows(h).get((start, end))
                seg = self._segments[self._docs[h][0]]
                out.append(None if row is None else np.asarray(seg.vectors[row], dtype=np.float32))
        return out

    # ------------------------------------------------------------------ writing (under the ingest lock)

    def write(self, entries: Sequence[tuple[Key, np.ndarray]], complete: str | None = None) -> None:
        """Add one segment with ``entries`` (every sentence of each document they name), and name it
        in the manifest; ``complete`` records the generation they complete."""
        data = self._manifest() or self._new_manifest(segments=[])
        names = [str(n) for n in data.get("segments", [])]
        if entries:
            names.append(self._write_segment(entries))
            data["dimension"] = int(entries[0][1].shape[-1])
        data["segments"] = names
        if complete is not None:
            data["complete"] = complete
        self._write_manifest(data)

    def _write_segment(self, entries: Sequence[tuple[Key, np.ndarray]]) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        order = sorted(range(len(entries)), key=lambda i: entries[i][0])
        keys = [entries[i][0] for i in order]
        vectors = np.stack([entries[i][1] for i in order]).astype(np.float16)
        spans = np.asarray([[s, e] for _, s, e in keys], dtype=np.int64).reshape(-1, 2)
        docs: dict[str, list[int]] = {}
        for row, (h, _, _) in enumerate(keys):
            docs.setdefault(h, [row, row])[1] = row + 1
        name = f"seg-{uuid.uuid4().hex[:12]}"
        np.save(self.directory / f"{name}.vec.npy", vectors)
        np.save(self.directory / f"{name}.spans.npy", spans)
        (self.directory / f"{name}.docs.json").write_text(json.dumps(docs), encoding="utf-8")
        return name

    def _write_manifest(self, data: dict[str, Any]) -> None:
        write_atomic(self.directory / MANIFEST, json.dumps(data, sort_keys=True).encode("utf-8"))
        self._stamp = None  # re-read on next use

    def compact(self, live: set[str]) -> int:
        """Rewrite the store as one segment with only the documents in ``live`` (hash prefixes) when
        the others make up at least half of its rows, or when it has more than ``MAX_SEGMENTS``
        segments; returns the rows dropped."""
        self.refresh()
        total = sum(len(s.spans) for s in self._segments)
        kept = {h: v for h, v in self._docs.items() if h in live}
        kept_rows = sum(hi - lo for _, lo, hi in kept.values())
        if total == 0 or ((total - kept_rows) * 2 < total and len(self._segments) <= MAX_SEGMENTS):
            return 0
        entries: list[tuple[Key, np.ndarray]] = []
        for h, (seg, lo, hi) in kept.items():
            s = self._segments[seg]
            for row in range(lo, hi):
                entries.append(((h, int(s.spans[row][0]), int(s.spans[row][1])), np.asarray(s.vectors[row])))
        old = [s.name for s in self._segments]
        data = self._manifest() or self._new_manifest()
        data["segments"] = [self._write_segment(entries)] if entries else []
        self._write_manifest(data)
        for name in old:
            for suffix in (".vec.npy", ".spans.npy", ".docs.json"):
                (self.directory / f"{name}{suffix}").unlink(missing_ok=True)
        return total - kept_rows

    def sweep(self) -> int:
        """Delete segment files the manifest does not name (left by an ingest killed between writing
        a segment and naming it); call under the ingest lock. Returns the files deleted."""
        data = self._manifest()
        named = {str(n) for n in data.get("segments", [])} if data else set()
        removed = 0
        for path in self.directory.glob("seg-*"):
            if path.name.split(".", 1)[0] not in named:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    @classmethod
    def of(cls, index_dir: Path, embedder: Embedder) -> SentenceVectors:
        """The store for ``embedder``'s model and reading under ``index_dir``."""
        return cls(index_dir, embedder.settings.model_name, embedder.reading_name)

    def _new_manifest(self, **extra: Any) -> dict[str, Any]:
        return {"format": FORMAT, "model": self.model, "reading": self.reading, **extra, "complete": ""}

    def reset_if_other_model(self) -> None:
        """Drop a store written for another embedding model or reading (its vectors would not compare)."""
        try:
            data = json.loads((self.directory / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if self._ours(data):
            return
        for path in self.directory.glob("seg-*"):
            path.unlink(missing_ok=True)
        (self.directory / MANIFEST).unlink(missing_ok=True)
        self._stamp = None


def encode(embedder: Embedder, items: Sequence[tuple[Key, str]]) -> list[tuple[Key, np.ndarray]]:
    """Embed sentences (as passages: the model's passage prefix), each key once."""
    unique = list(dict(items).items())
    if not unique:
        return []
    vectors = embedder.encode_passages([t for _, t in unique])
    return [(k, v) for (k, _), v in zip(unique, vectors, strict=True)]


def add_chunks(store: Store, embedder: Embedder, chunks: Iterable[tuple[Chunk, str]]) -> int:
    """Encode and store the sentences of new chunks, ``(chunk, document hash)`` each, whose document
    version has none yet (called by ``ingest`` beside the chunk vectors); returns the sentences encoded."""
    vectors = SentenceVectors.of(store.index_dir, embedder)
    vectors.reset_if_other_model()
    have = vectors.hashes()
    items = [
        ((hash_key(doc_hash), sp.start, sp.end), chunk.text[sp.start - chunk.start : sp.end - chunk.start])
        for chunk, doc_hash in chunks
        if hash_key(doc_hash) not in have
        for sp in candidate_spans(chunk.text, chunk.start, chunk.sentences)
    ]
    entries = encode(embedder, items)
    if entries:
        vectors.write(entries)
    return len(entries)


def sync(store: Store, embedder: Embedder) -> int:
    """Give every document the index vouches for its sentence vectors (an index built before them,
    or chunks written without them), drop the rows of documents it no longer holds (see
    ``SentenceVectors.compact``) and record the generation; returns the sentences encoded."""
    vectors = SentenceVectors.of(store.index_dir, embedder)
    vectors.reset_if_other_model()
    store.reload()
    generation = store.generation()
    if vectors.complete == generation:
        return 0
    have = vectors.hashes()
    missing = [rec for rec in store.documents().values() if hash_key(rec.hash) not in have]
    encoded = 0
    pending: list[tuple[Key, str]] = []
    for rec in missing:
        for _, text, meta in store.get_chunks([chunk_id(rec.doc_id, i, rec.hash) for i in range(rec.chunks)]):
            pending.extend(chunk_sentences(text, meta))
        if len(pending) >= SEGMENT_ROWS:
            entries = encode(embedder, pending)
            vectors.write(entries)
            encoded += len(entries)
            pending = []
    entries = encode(embedder, pending)
    encoded += len(entries)
    vectors.write(entries, complete=generation)
    vectors.compact({hash_key(r.hash) for r in store.documents().values()})
    vectors.sweep()
    return encoded
