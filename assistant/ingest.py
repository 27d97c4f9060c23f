"""Incremental ingest: load files, chunk, embed only what changed, keep Chroma and the manifest in step.

Idempotent and keyed on content hashes: an unchanged file is not even parsed again (its byte hash is
in the manifest); a changed document is re-chunked and re-embedded; documents whose file disappeared
are removed. A broken file is reported and skipped, and the documents it held before stay indexed.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import documents
from .chunking import ChunkerSettings, chunk_document
from .documents import iter_files, link_name, load_file, relative_name, source_text, too_large_reason
from .embedding import Embedder
from .errors import DocumentError
from .schema import Chunk, Document
from .store import DocRecord, IndexSettings, Store

EMBED_BATCH_CHUNKS = 256

# progress(stage, advance, total): stage is "files" or "embed"; total is sent once with advance=0.
Progress = Callable[[str, int, int], None]


@dataclass
class IngestReport:
    """What an ingest did. ``partial`` is true when some files were skipped as broken."""

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


def document_hash(doc: Document, chunker: ChunkerSettings) -> str:
    """Content hash of a document version: its text, metadata, boilerplate spans and chunker settings."""
    h = hashlib.sha256()
    h.update(doc.text.encode("utf-8", "surrogatepass"))
    h.update(json.dumps(doc.metadata(), sort_keys=True, ensure_ascii=False).encode())
    h.update(json.dumps([[s.start, s.end] for s in doc.skip]).encode())
    h.update(json.dumps(chunker.to_dict(), sort_keys=True).encode())
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
) -> IngestReport:
    """Bring the index in step with the files under ``paths``; see the module docstring.

    ``after_change`` runs once when anything changed (the lexical index rebuilds itself there).
    """
    chunker = chunker or ChunkerSettings()
    started = time.perf_counter()
    report = IngestReport()
    notify: Progress = progress or (lambda stage, advance, total: None)
    with store.lock():
        # Another process (sharing a Chroma server) may have changed the manifest since we read it.
        store.reload()
        if rebuild:
            store.reset()
        store.check_compatible(embedder.settings.model_name, None, chunker.to_dict())
        was_dirty = store.dirty()
        if was_dirty:
            # A previous ingest stopped half-way: its unvouched chunks go first.
            report.swept = store.sweep()
        known = store.documents()
        file_hashes = store.file_hashes()
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
        report.files = len(files)
        notify("files", 0, len(files))

        todo: list[tuple[Document, str, str]] = []  # document, hash, absolute file path
        seen_docs: set[str] = set()
        seen_files: set[str] = set()
        failed_files: set[str] = set()
        new_file_hashes: dict[str, str] = {}
        for path, root in files:
            abs_path = str(path.resolve())
            seen_files.add(abs_path)
            try:
                if path.is_symlink() and not path.resolve().is_relative_to(root):
                    raise DocumentError(link_name(path, root), "symlink points outside the corpus")
                size = path.stat().st_size
                if size > documents.MAX_FILE_BYTES:  # reported without reading (or even hashing) it
                    raise DocumentError(relative_name(path, root), too_large_reason(size))
                digest = file_hash(path)
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
            old_docs = known_by_path.get(abs_path, [])
            if not rebuild and file_hashes.get(abs_path) == digest and old_docs:
                report.files_unchanged += 1
                report.unchanged += len(old_docs)
                seen_docs.update(r.doc_id for r in old_docs)
                notify("files", 1, len(files))
                continue
            try:
                docs = load_file(path, root)
            except DocumentError as exc:
                report.errors.append(exc)
                failed_files.add(abs_path)
                notify("files", 1, len(files))
                continue
            new_file_hashes[abs_path] = digest
            for doc in docs:
                doc.extra.setdefault("path", abs_path)
                h = document_hash(doc, chunker)
                seen_docs.add(doc.doc_id)
                old = known.get(doc.doc_id)
                if old is not None and old.hash == h and not rebuild:
                    report.unchanged += 1
                    continue
                todo.append((doc, h, abs_path))
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

        changed = bool(todo or removals)
        if changed or was_dirty:
            dim = embedder.dimension
            store.check_compatible(embedder.settings.model_name, dim, chunker.to_dict())
            store.write_settings(IndexSettings(embedder.settings.model_name, dim, chunker.to_dict()), dirty=True)

        sources: dict[str, str] = {}
        plans: list[tuple[Document, str, str, list[Chunk]]] = []
        for doc, h, abs_path in todo:
            if "line" in doc.extra:
                source = doc.text  # a JSONL document's offsets refer to its own text
            else:
                if abs_path not in sources:
                    sources[abs_path] = _source_for(doc, abs_path)
                source = sources[abs_path]
            plans.append((doc, h, abs_path, chunk_document(doc, chunker, source)))
        sources.clear()
        total_chunks = sum(len(p[3]) for p in plans)
        notify("embed", 0, total_chunks)

        batch: list[tuple[Document, str, str, list[Chunk]]] = []

        def flush() -> None:
            # Embedding many small documents one by one wastes the batch: we embed across documents,
            # write their chunks, then point the manifest at all of them in one call.
            texts = [c.text for plan in batch for c in plan[3]]
            vectors = embedder.encode_passages(texts, lambda n: notify("embed", n, total_chunks)) if texts else None
            records: list[DocRecord] = []
            replaced: list[DocRecord] = []
            if vectors is not None:
                store.add_chunk_groups([(chunks, h) for _, h, _, chunks in batch if chunks], vectors)
            for doc, h, abs_path, chunks in batch:
                record = DocRecord(
                    doc_id=doc.doc_id,
                    hash=h,
                    source=doc.source,
                    path=abs_path,
                    title=doc.title,
                    outlet=doc.outlet,
                    date=doc.date,
                    language=doc.language,
                    chunks=len(chunks),
                    offset=doc.offset,
                )
                records.append(record)
                old = known.get(doc.doc_id)
                report.chunks_added += len(chunks)
                if old is None:
                    report.added += 1
                else:
                    replaced.append(record)
                    report.updated += 1
                    report.chunks_removed += old.chunks
            store.commit_documents(records, replaced)
            batch.clear()

        pending = 0
        for plan in plans:
            batch.append(plan)
            pending += len(plan[3])
            if pending >= EMBED_BATCH_CHUNKS:
                flush()
                pending = 0
        if batch:
            flush()
        for doc_id in removals:
            report.chunks_removed += store.remove_document(doc_id)
            report.removed += 1
        store.set_file_hashes(new_file_hashes)
        for abs_path in list(file_hashes):
            if abs_path not in seen_files and any(Path(abs_path).is_relative_to(d) for d in scanned_dirs):
                if not Path(abs_path).exists():
                    store.forget_file(abs_path)
        if changed or was_dirty:
            settings = store.settings()
            assert settings is not None
            store.write_settings(settings, dirty=False)
        if (changed or was_dirty) and after_change is not None:
            after_change(store)
    report.seconds = time.perf_counter() - started
    return report


def _source_for(doc: Document, abs_path: str) -> str:
    """The source text the document's offsets refer to (JSONL documents: their own text)."""
    if "line" in doc.extra:
        return doc.text
    try:
        return source_text(Path(abs_path))
    except DocumentError:
        return " " * doc.offset + doc.text
