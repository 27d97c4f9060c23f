"""Incremental ingest: load files, chunk, embed only what changed, keep Chroma and the manifest in step.

Idempotent and keyed on content hashes: an unchanged file is not even parsed again (its byte hash is
in the manifest); a changed document is re-chunked and re-embedded; documents whose file disappeared
are removed. A broken file is reported and skipped, and the documents it held before stay indexed; so
is a file over a ``documents.Limits`` limit, a symlink alias of a file being indexed, and a file whose
chunks the store refuses: one file never stops the others.

Two phases: *prepare* (read, chunk, embed) changes nothing readers see; *publish* (chunk and manifest
writes, removals, the lexical index) does. With a ``write_lock`` only the publish phase runs inside
it, so questions are answered while a large upload is embedded, and no question sees half an ingest.
A rebuild always works in these two phases: the index stays as it was until every file is embedded
again, so a rebuild that fails (a model that cannot load, an interrupt) loses nothing. Nor is its
work lost: what it embedded is staged on disk (``StagedVectors``) and the next rebuild goes on from there.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import documents, sentences
from .atomic import write_atomic
from .chunking import ChunkerSettings, chunk_document
from .documents import (
    Limits,
    alias_owners,
    iter_files,
    link_name,
    load_file,
    relative_name,
    source_text,
    too_large_reason,
)
from .embedding import Embedder
from .errors import DocumentError
from .schema import Chunk, Document
from .store import DocRecord, IndexSettings, Store

EMBED_BATCH_CHUNKS = 256

# progress(stage, advance, total): stage is "files" or "embed"; total is sent once with advance=0.
Progress = Callable[[str, int, int], None]
# A lock held while the index changes under readers, e.g. the server's ``ReadWriteLock.write``; and
# one held while it is read (``ReadWriteLock.read``).
WriteLock = Callable[[], AbstractContextManager[object]]
ReadLock = WriteLock


@dataclass
class IngestReport:
    """What an ingest did. ``partial`` is true when some files (or some lines of a file) were skipped;
    ``errors`` names each with its path (relative to the corpus) and the reason."""

    files: int = 0
    files_unchanged: int = 0
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    chunks_added: int = 0
    chunks_removed: int = 0
    swept: int = 0
    errors: list[DocumentError] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def partial(self) -> bool:
        return bool(self.errors)

    def to_dict(self) -> dict[str, object]:
        return {
            "files": self.files,
            "files_unchanged": self.files_unchanged,
            "added": self.added,
            "updated": self.updated,
            "removed": self.removed,
            "unchanged": self.unchanged,
            "chunks_added": self.chunks_added,
            "chunks_removed": self.chunks_removed,
            "errors": [{"path": e.path, "reason": e.reason} for e in self.errors],
            "seconds": round(self.seconds, 3),
        }


@dataclass
class _Plan:
    """One document version to embed and store."""

    doc: Document
    hash: str
    path: str  # absolute path of its file
    rel: str  # its file as reported
    chunks: list[Chunk]


def document_hash(doc: Document, chunker: ChunkerSettings) -> str:
    """Content hash of a document version: its text, metadata, boilerplate spans and chunker settings."""
    h = hashlib.sha256()
    h.update(doc.text.encode("utf-8", "surrogatepass"))
    h.update(json.dumps(doc.metadata(), sort_keys=True, ensure_ascii=False).encode())
    h.update(json.dumps([[s.start, s.end] for s in doc.skip]).encode())
    h.update(json.dumps(chunker.to_dict(), sort_keys=True).encode())
    if doc.extra.get("page_starts"):  # PDFs: chunks carry page numbers (only there, so other hashes stay)
        h.update(json.dumps(doc.extra["page_starts"]).encode())
    return h.hexdigest()


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _root_for(path: Path, corpus_root: Path) -> Path:
    path = path.resolve()
    root = corpus_root.resolve()
    if path == root or root in path.parents:
        return root
    return path if path.is_dir() else path.parent


def ingest(
    paths: Sequence[Path],
    store: Store,
    embedder: Embedder,
    chunker: ChunkerSettings | None = None,
    corpus_root: Path = Path("corpus"),
    rebuild: bool = False,
    progress: Progress | None = None,
    after_change: Callable[[Store], object] | None = None,
    limits: Limits | None = None,
    write_lock: WriteLock | None = None,
    sentence_vectors: bool = True,
) -> IngestReport:
    """Bring the index in step with the files under ``paths``; see the module docstring.

    ``after_change`` runs once when anything changed (the lexical index rebuilds itself there).
    ``limits`` caps what one file may expand to (``documents.Limits()`` by default).
    ``write_lock``: when given, files are read, chunked and embedded outside it, and everything that
    changes what readers see (a rebuild's reset, chunk and manifest writes, removals,
    ``after_change``) runs in one ``with write_lock():`` at the end. Without it, chunks are written as
    they are embedded, batch by batch (a long ingest that is interrupted keeps what it committed),
    except in a ``rebuild``, which publishes at the end all the same (the old index stays until then).
    ``sentence_vectors``: also embed every chunk's sentences for the answer stage (``assistant.sentences``).
    """
    chunker = chunker or ChunkerSettings()
    limits = limits or Limits()
    started = time.perf_counter()
    report = IngestReport()
    notify: Progress = progress or (lambda stage, advance, total: None)
    streaming = write_lock is None and not rebuild
    with store.lock():
        # Another process (sharing a Chroma server) may have changed the manifest since we read it.
        store.reload()
        reading = embedder.reading_name  # how the model reads the text (Chinese as its English gloss)
        if not rebuild:
            store.check_compatible(embedder.settings.model_name, None, chunker.to_dict(), reading)
        was_dirty = not rebuild and store.dirty()
        if was_dirty:
            # A previous ingest stopped half-way: its unvouched chunks go first (readers ignore them).
            report.swept = store.sweep()
        # A copy: the store's own cache changes as documents are committed and removed below.
        known = {} if rebuild else dict(store.documents())
        # What a rebuild in place keeps when a file cannot be read again (nothing is lost).
        previous = dict(store.documents()) if rebuild and not streaming else {}
        file_hashes = {} if rebuild else store.file_hashes()
        # Documents by file, once: looking them up per file by scanning all records was files x documents.
        known_by_path: dict[str, list[DocRecord]] = {}
        for rec in known.values():
            known_by_path.setdefault(rec.path, []).append(rec)

        files: list[tuple[Path, Path]] = []
        scanned_dirs: list[Path] = []
        for p in paths:
            root = _root_for(p, corpus_root)
            if p.is_dir():
                scanned_dirs.append(p.resolve())
            if not p.exists():
                report.errors.append(DocumentError(str(p), "no such file or directory"))
                continue
            files.extend((f, root) for f in iter_files([p]))
        files = list(dict.fromkeys(files))  # a file named twice (a folder and a file in it) is read once
        aliases = alias_owners(f for f, _ in files)
        report.files = len(files)
        notify("files", 0, len(files))

        plans: list[_Plan] = []
        seen_docs: set[str] = set()
        seen_files: set[str] = set()
        failed_files: set[str] = set()
        new_file_hashes: dict[str, str] = {}
        doc_files: dict[str, str] = {}  # doc_id -> the file (as reported) that gives it in this run
        for path, root in files:
            abs_path = str(path.resolve())
            seen_files.add(abs_path)
            try:
                if path.is_symlink() and not path.resolve().is_relative_to(root):
                    raise DocumentError(link_name(path, root), "symlink points outside the corpus")
                if path in aliases:  # its target is indexed under its own name (and fails there, if broken)
                    report.errors.append(
                        DocumentError(link_name(path, root), f"alias of {link_name(aliases[path], root)}")
                    )
                    notify("files", 1, len(files))
                    continue
                rel = relative_name(path, root)
                size = path.stat().st_size
                if size > documents.MAX_FILE_BYTES:  # reported without reading (or even hashing) it
                    raise DocumentError(rel, too_large_reason(size))
                digest = file_hash(path)
                old_docs = known_by_path.get(abs_path, [])
                if not rebuild and file_hashes.get(abs_path) == digest and old_docs:
                    report.files_unchanged += 1
                    report.unchanged += len(old_docs)
                    seen_docs.update(r.doc_id for r in old_docs)
                    doc_files.update((r.doc_id, rel) for r in old_docs)
                    notify("files", 1, len(files))
                    continue
                problems: list[DocumentError] = []
                file_plans, unchanged = _prepare_file(
                    path, root, rel, abs_path, known, rebuild, chunker, limits, doc_files, problems
                )
            except DocumentError as exc:
                report.errors.append(exc)
                failed_files.add(abs_path)
                notify("files", 1, len(files))
                continue
            except OSError as exc:
                report.errors.append(DocumentError(relative_name(path, root), f"cannot read: {exc}"))
                failed_files.add(abs_path)
                notify("files", 1, len(files))
                continue
            except Exception as exc:  # a parser or chunker bug on one odd file must not stop the others
                report.errors.append(
                    DocumentError(relative_name(path, root), f"could not be read ({type(exc).__name__}: {exc})")
                )
                failed_files.add(abs_path)
                notify("files", 1, len(files))
                continue
            report.errors.extend(problems)
            if not problems:
                # A file read in part keeps no byte hash, so the next ingest reads (and reports) it again.
                new_file_hashes[abs_path] = digest
            report.unchanged += len(unchanged)
            for doc_id in unchanged + [p.doc.doc_id for p in file_plans]:
                seen_docs.add(doc_id)
                doc_files[doc_id] = rel
            plans.extend(file_plans)
            notify("files", 1, len(files))

        # Documents to remove: their file loaded fine but no longer yields them, or their file is gone
        # from a directory we scanned. Documents of files that failed to load stay (nothing is lost).
        removals = []
        for doc_id, rec in known.items():
            if doc_id in seen_docs or rec.path in failed_files:
                continue
            if rec.path in seen_files or (
                not Path(rec.path).exists() and any(Path(rec.path).is_relative_to(d) for d in scanned_dirs)
            ):
                removals.append(doc_id)

        changed = bool(plans or removals or rebuild)
        settings: IndexSettings | None = None
        if changed or was_dirty:
            dim = embedder.dimension
            if not rebuild:
                store.check_compatible(embedder.settings.model_name, dim, chunker.to_dict(), reading)
            settings = IndexSettings(embedder.settings.model_name, dim, chunker.to_dict(), reading=reading)
            if streaming:
                store.write_settings(settings, dirty=True)

        # A server ingests beside live questions: its passages go through a one-thread session.
        encoder = embedder.background() if write_lock is not None else embedder
        publisher = _Publisher(store, known, report, failed_files, new_file_hashes)
        total_chunks = sum(len(p.chunks) for p in plans)
        notify("embed", 0, total_chunks)
        pending: list[tuple[list[_Plan], np.ndarray | None]] = []
        # What is held in memory until the publish phase is also staged on disk (``StagedVectors``).
        staged = (
            None if streaming or not plans else StagedVectors(store.index_dir, embedder.settings.model_name, reading)
        )
        batch: list[_Plan] = []
        batch_chunks = 0
        for i, plan in enumerate(plans):
            batch.append(plan)
            batch_chunks += len(plan.chunks)
            if batch_chunks >= EMBED_BATCH_CHUNKS or i == len(plans) - 1:
                # Embedding many small documents one by one wastes the batch: we embed across documents.
                texts = [c.text for p in batch for c in p.chunks]
                vectors = (
                    _embed(encoder, texts, staged, lambda n: notify("embed", n, total_chunks)) if texts else None
                )
                if texts and sentence_vectors:  # the answer stage's sentence vectors (assistant.sentences)
                    sentences.add_chunks(store, encoder, [(c, p.hash) for p in batch for c in p.chunks])
                if streaming:
                    publisher.publish(batch, vectors)
                else:
                    pending.append((batch, vectors))  # held until the publish phase
                batch, batch_chunks = [], 0

        forgotten = [
            abs_path
            for abs_path in file_hashes
            if abs_path not in seen_files
            and any(Path(abs_path).is_relative_to(d) for d in scanned_dirs)
            and not Path(abs_path).exists()
        ]
        # Nothing to publish (an unchanged corpus): readers are not held up at all.
        idle = not (pending or removals or new_file_hashes or forgotten or settings is not None)
        with write_lock() if write_lock is not None and not idle else nullcontext():
            in_place = False
            if not streaming:
                if rebuild:
                    # A server rebuilds in place (see ``Store.retain``) unless the vector size changes.
                    in_place = store.can_rebuild_in_place(embedder.dimension)
                    if not in_place:
                        store.reset()
                if settings is not None:
                    store.write_settings(settings, dirty=True)
                for batch, vectors in pending:
                    publisher.publish(batch, vectors)
            for doc_id in removals:
                if known[doc_id].path in failed_files:
                    continue  # its file failed to store: its documents stay as they were
                report.chunks_removed += store.remove_document(doc_id)
                report.removed += 1
            store.set_file_hashes(new_file_hashes)
            for abs_path in forgotten:
                store.forget_file(abs_path)
            if in_place:
                kept = set(seen_docs)
                kept |= {d for d, rec in previous.items() if rec.path in failed_files}
                report.chunks_removed += store.retain(kept, set(new_file_hashes))
            elif publisher.failed:
                # Chunks of a file the store refused half-way are vouched for by no manifest record.
                report.swept += store.sweep()
            if settings is not None:
                store.write_settings(settings, dirty=False)
            if (changed or was_dirty) and after_change is not None:
                after_change(store)
        if staged is not None:
            staged.clear()  # published: nothing to resume
        if sentence_vectors:
            # Outside the write lock: documents indexed before sentence vectors existed get theirs
            # (questions meanwhile encode what they need), and rows of removed documents go.
            sentences.sync(store, encoder)
    report.seconds = time.perf_counter() - started
    return report


def _prepare_file(
    path: Path,
    root: Path,
    rel: str,
    abs_path: str,
    known: dict[str, DocRecord],
    rebuild: bool,
    chunker: ChunkerSettings,
    limits: Limits,
    doc_files: dict[str, str],
    problems: list[DocumentError],
) -> tuple[list[_Plan], list[str]]:
    """Read and chunk one changed file: the documents to (re)embed and the ids of those unchanged.

    Raises ``DocumentError`` when the file cannot be read, would hold more than ``limits.chunks_per_file``
    chunks, or gives a document id another file gives (both would be stored under one id).
    """
    docs = load_file(path, root, limits, problems)
    if len({d.doc_id for d in docs}) < len(docs):  # the loaders never do this; Chroma would refuse it
        raise DocumentError(rel, "gives two documents with one id")
    plans: list[_Plan] = []
    unchanged: list[str] = []
    total = 0
    source: str | None = None
    for doc in docs:
        other = doc_files.get(doc.doc_id)
        if other is not None:
            raise DocumentError(rel, f"document id {doc.doc_id!r} is also given by {other}")
        doc.extra.setdefault("path", abs_path)
        h = document_hash(doc, chunker)
        old = known.get(doc.doc_id)
        if old is not None and old.hash == h and not rebuild:
            unchanged.append(doc.doc_id)
            total += old.chunks
        else:
            if "line" in doc.extra:
                text = doc.text  # a JSONL document's offsets refer to its own text
            else:
                if source is None:
                    source = _source_for(doc, abs_path, limits)
                text = source
            chunks = chunk_document(doc, chunker, text)
            total += len(chunks)
            plans.append(_Plan(doc, h, abs_path, rel, chunks))
        if total > limits.chunks_per_file:  # refused before anything of it is embedded
            raise DocumentError(
                rel,
                f"too many chunks (over {total:,} so far); the limit is {limits.chunks_per_file:,} per file "
                "(split it into smaller files)",
            )
    return plans, unchanged


STAGING = "staging"


class StagedVectors:
    """Chunk vectors of an ingest that publishes at the end (a rebuild, a server's ingest), kept under
    ``INDEX/staging/`` as they are embedded, for one model and reading, by a digest of the chunk's
    text. An ingest stopped before it published (Ctrl-C, a server stopped, a model that failed) leaves
    them, and the next such ingest embeds only the chunks they lack: a rebuild of 100k chunks is hours
    of encoding, which one restart of the server would otherwise throw away. Cleared when an ingest
    of this kind finishes. (Sentence vectors need no such thing: ``sentences.add_chunks`` stores them
    as they are encoded.)"""

    def __init__(self, index_dir: Path, model: str, reading: str) -> None:
        self.directory = Path(index_dir) / STAGING
        self.key = {"model": model, "reading": reading}
        self._rows: dict[str, tuple[int, int]] = {}  # text digest -> (segment, row)
        self._segments: list[np.ndarray] = []
        self._names: list[str] = []
        try:
            manifest = json.loads((self.directory / "manifest.json").read_text(encoding="utf-8"))
            if {k: manifest.get(k) for k in self.key} != self.key:
                raise ValueError("staged for another model or reading")
            for name in manifest["segments"]:
                keys = json.loads((self.directory / f"{name}.keys.json").read_text(encoding="utf-8"))
                vectors = np.load(self.directory / f"{name}.npy", mmap_mode="r")
                if len(keys) != len(vectors):
                    raise ValueError(f"segment {name} is incomplete")
                self._rows.update((k, (len(self._segments), row)) for row, k in enumerate(keys))
                self._segments.append(vectors)
                self._names.append(str(name))
        except (OSError, ValueError, KeyError, TypeError):
            # Nothing staged, or something we cannot trust: start again from nothing.
            self.clear()

    @staticmethod
    def digest(text: str) -> str:
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, keys: Sequence[str]) -> list[np.ndarray | None]:
        """The staged vector of each text digest, or None."""
        out: list[np.ndarray | None] = []
        for k in keys:
            at = self._rows.get(k)
            out.append(None if at is None else np.asarray(self._segments[at[0]][at[1]], dtype=np.float32))
        return out

    def add(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        """Stage one batch: its segment is written whole, then named in the manifest (atomically)."""
        if not len(keys):
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"seg-{uuid.uuid4().hex[:12]}"
        rows = np.asarray(vectors, dtype=np.float32)
        np.save(self.directory / f"{name}.npy", rows)
        (self.directory / f"{name}.keys.json").write_text(json.dumps(list(keys)), encoding="utf-8")
        self._rows.update((k, (len(self._segments), row)) for row, k in enumerate(keys))
        self._segments.append(rows)
        self._names.append(name)
        write_atomic(self.directory / "manifest.json", json.dumps({**self.key, "segments": self._names}).encode())

    def clear(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
        self._rows, self._segments, self._names = {}, [], []


def _embed(
    encoder: Embedder, texts: list[str], staged: StagedVectors | None, progress: Callable[[int], None]
) -> np.ndarray:
    """The vectors of ``texts``: staged ones read back, the rest encoded (and staged)."""
    if staged is None:
        return encoder.encode_passages(texts, progress)
    keys = [StagedVectors.digest(t) for t in texts]
    found = staged.get(keys)
    todo = [i for i, v in enumerate(found) if v is None]
    if len(todo) < len(texts):
        progress(len(texts) - len(todo))
    if todo:
        new = encoder.encode_passages([texts[i] for i in todo], progress)
        staged.add([keys[i] for i in todo], new)
        for i, v in zip(todo, new, strict=True):
            found[i] = v
    return np.stack([v for v in found if v is not None])


class _Publisher:
    """Writes embedded documents to the store; a file whose writes fail is reported and skipped."""

    def __init__(
        self,
        store: Store,
        known: dict[str, DocRecord],
        report: IngestReport,
        failed_files: set[str],
        file_hashes: dict[str, str],
    ) -> None:
        self._store = store
        self.known = known
        self.report = report
        self.failed_files = failed_files
        self.file_hashes = file_hashes
        self.failed = False

    def publish(self, batch: list[_Plan], vectors: np.ndarray | None) -> None:
        """Chunks first, then the manifest records that vouch for them (one write for the batch)."""
        try:
            self._write(batch, vectors)
            return
        except Exception as exc:  # whatever Chroma raises for one file must not stop the others
            if len({p.path for p in batch}) == 1:
                self._fail(batch, exc)
                return
        # Find the file at fault: write the batch again file by file (upserts, so nothing doubles).
        start = 0
        by_file: dict[str, list[tuple[_Plan, int]]] = {}
        for plan in batch:
            by_file.setdefault(plan.path, []).append((plan, start))
            start += len(plan.chunks)
        for group in by_file.values():
            plans = [p for p, _ in group]
            rows = [i for p, s in group for i in range(s, s + len(p.chunks))]
            try:
                self._write(plans, vectors[rows] if vectors is not None and rows else None)
            except Exception as exc:
                self._fail(plans, exc)

    def _write(self, batch: list[_Plan], vectors: np.ndarray | None) -> None:
        if vectors is not None:
            self._store.add_chunk_groups([(p.chunks, p.hash) for p in batch if p.chunks], vectors)
        records: list[DocRecord] = []
        replaced: list[DocRecord] = []
        previous = [self.known.get(p.doc.doc_id) for p in batch]
        for p in batch:
            doc = p.doc
            record = DocRecord(
                doc_id=doc.doc_id,
                hash=p.hash,
                source=doc.source,
                path=p.path,
                title=doc.title,
                outlet=doc.outlet,
                date=doc.date,
                language=doc.language,
                chunks=len(p.chunks),
                offset=doc.offset,
            )
            records.append(record)
            if doc.doc_id in self.known:
                replaced.append(record)
        self._store.commit_documents(records, replaced)
        for p, old in zip(batch, previous, strict=True):
            self.report.chunks_added += len(p.chunks)
            if old is None:
                self.report.added += 1
            else:
                self.report.updated += 1
                self.report.chunks_removed += old.chunks

    def _fail(self, plans: list[_Plan], exc: Exception) -> None:
        """Report the file as skipped; its earlier documents stay, and the next ingest tries it again."""
        self.failed = True
        message = str(exc).splitlines()[0] if str(exc) else ""
        self.report.errors.append(
            DocumentError(plans[0].rel, f"could not be stored ({type(exc).__name__}: {message})")
        )
        self.failed_files.add(plans[0].path)
        self.file_hashes.pop(plans[0].path, None)


def _source_for(doc: Document, abs_path: str, limits: Limits | None = None) -> str:
    """The source text the document's offsets refer to (JSONL documents: their own text)."""
    if "line" in doc.extra:
        return doc.text
    try:
        return source_text(Path(abs_path), limits)
    except DocumentError:
        return " " * doc.offset + doc.text
