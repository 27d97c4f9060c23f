"""The ``Assistant``: one object that ingests, searches and answers; the CLI, UI, API and eval use it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from . import sentences
from .answer import answer_language, combine_answers, covers_subjects, extractive_answer, messages
from .chat import Rewrite, entities, rewrite, split_subjects
from .chunking import page_at
from .config import Config
from .embedding import Embedder
from .errors import IndexMismatchError, QuestionError, StoreError
from .ingest import IngestReport, Progress, ReadLock, WriteLock, ingest
from .query import analyse_query
from .retrieval import Retriever, refresh_lexical
from .schema import Answer, Passage
from .store import DocRecord, Store
from .text import detect_language, replace_surrogates, warm_up

MAX_QUESTION_CHARS = 2000
MAX_HISTORY_TURNS = 10  # earlier questions a follow-up is read with (a follow-up needs the last few)


@dataclass(frozen=True)
class PendingUpgrade:
    """What an index needs after an upgrade that can be done while it answers questions:
    ``"rebuild"`` (it was built with another chunker or reading of Chinese text, but with the
    configured model) or ``"sentences"`` (its sentence vectors were made by another version);
    ``reason`` says what differs."""

    kind: Literal["rebuild", "sentences"]
    reason: str


class Assistant:
    """Answers questions over the indexed alliance documents with cited passages."""

    def __init__(self, config: Config | None = None, check_index: bool = True) -> None:
        """Open the index of ``config`` (default: from the environment). With ``check_index``, an
        index built with another embedding model raises ``IndexMismatchError`` here; without, only
        when it would be written to (``ingest``), so that ``ingest(rebuild=True)`` can replace it."""
        self.config = config or Config.from_env()
        self.store = Store(self.config.index_dir, self.config.chroma_url)
        self.embedder = Embedder(self.config.embedding)
        if check_index:
            self.store.check_compatible(self.config.embedding.model_name, None, None)
        self.retriever = Retriever(self.store, self.embedder, self.config.retrieval)
        self._llm: Any = None
        self._ingest_lock = threading.Lock()

    @classmethod
    def open(cls, index_dir: str | Path = "index", **overrides: Any) -> Assistant:
        """Open (or create) the index at ``index_dir``; other settings from the environment."""
        return cls(Config.from_env(index_dir=Path(index_dir), **overrides))

    def warm_up(self) -> None:
        """Load the model, tokenizers, dictionary and lexical index ahead of the first question."""
        warm_up()
        from .translate import get_dictionary

        get_dictionary()
        # jieba's part-of-speech tagger (names in Chinese follow-ups) loads its own tables on first use:
        # ~0.4 s that the first Chinese question would otherwise pay.
        entities("常州产教融合联盟")
        vector = self.embedder.encode_queries(["warm up"])[0]
        _ = self.retriever.lexical
        # Chroma loads the HNSW index on the first query (~0.45 s CPU at 100k chunks): here, not on the
        # first question.
        self.store.query(vector, 1)

    # ------------------------------------------------------------------ collection

    def ingest(
        self,
        paths: Sequence[Path] | None = None,
        rebuild: bool = False,
        progress: Progress | None = None,
        write_lock: WriteLock | None = None,
    ) -> IngestReport:
        """Incrementally index ``paths`` (default: the corpus directory).

        ``write_lock`` (the server's ``guard.write``): files are read, chunked and embedded outside it, so
        questions are answered meanwhile; only the short phase that changes what they read (Chroma, the
        manifest, the lexical index, the retriever's cache) runs inside it. Call this without holding
        that lock (the lock is not re-entrant), and without it only from a single-threaded caller.
        """

        @contextmanager
        def publishing() -> Iterator[None]:
            assert write_lock is not None
            with write_lock():
                try:
                    yield
                finally:
                    # Still inside the lock: the first question after it reloads the lexical index.
                    self.retriever.invalidate()

        with self._ingest_lock:
            report = ingest(
                list(paths) if paths else [self.config.corpus_dir],
                self.store,
                self.embedder,
                self.config.chunker,
                corpus_root=self.config.corpus_dir,
                rebuild=rebuild,
                progress=progress,
                after_change=refresh_lexical,
                write_lock=publishing if write_lock is not None else None,
            )
            self.retriever.invalidate()
            return report

    def index_mismatch(self) -> str | None:
        """Why the index cannot take documents embedded with the configured settings (it was built
        by another version or with another model, chunker or reading), or None when it can."""
        try:
            self.store.check_compatible(
                self.config.embedding.model_name, None, self.config.chunker.to_dict(), self.embedder.reading_name
            )
        except IndexMismatchError as exc:
            return exc.reason
        return None

    def sentence_vectors_current(self) -> bool:
        """Whether every indexed document has its sentence vectors, made by the configured model and
        reading (an upgraded index has none that count until its next ingest). Compares with the
        generation the last ingest recorded (one read), not a digest of every document record."""
        return self.retriever.sentence_vectors.complete == self.store.stored_generation()

    def pending_upgrade(self) -> PendingUpgrade | None:
        """What this index needs that a server may do in the background (``PendingUpgrade``), or
        None: when it is current or empty, when it cannot answer meanwhile (another model or
        storage format: rebuild it first), and on a shared Chroma server (only the host that
        ingests changes it)."""
        if self.config.chroma_url is not None or not self.store.document_count():
            return None
        try:
            self.store.check_compatible(self.config.embedding.model_name, None, None)
        except IndexMismatchError:
            return None
        reason = self.index_mismatch()
        if reason is not None:
            return PendingUpgrade("rebuild", reason)
        if not self.sentence_vectors_current():
            return PendingUpgrade("sentences", "its sentence vectors were made for another version")
        return None

    def complete_sentence_vectors(self) -> int:
        """Encode the sentence vectors the indexed documents lack (an upgraded index), without
        reading the corpus; questions go on meanwhile (one encoder thread: ``Embedder.background``).
        Returns the sentences encoded."""
        with self._ingest_lock:
            encoded = sentences.sync(self.store, self.embedder.background())
            self.retriever.invalidate()
            return encoded

    def documents(self) -> list[DocRecord]:
        """Indexed documents, by source then doc id."""
        self.store.reload()
        return sorted(self.store.documents().values(), key=lambda r: (r.source, _natural(r.doc_id)))

    def delete_document(self, doc_id: str, write_lock: WriteLock | None = None) -> int:
        """Remove one document from the index (its file stays where it is).

        ``write_lock`` as for ``ingest``: taken after the ingest lock, never around it (a caller holding
        the write lock while an upload embeds would wait for the upload, which waits for the lock).
        """
        with self._ingest_lock, self.store.lock(), write_lock() if write_lock is not None else nullcontext():
            removed = self.store.remove_document(doc_id)
            self.store.write_settings_clean()
            refresh_lexical(self.store)
            self.retriever.invalidate()
            return removed

    # ------------------------------------------------------------------ answering

    def _extractive(
        self,
        question: str,
        rw: Rewrite,
        filters: Mapping[str, Any] | None,
        k: int | None,
        subject: str = "",
    ) -> tuple[Answer, list[Passage]]:
        """The extractive answer to one (rewritten) question, and the passages found for it; a
        sub-question's ``subject`` must be named in the documents, like the question's names."""
        query = analyse_query(question, rw, self.config.answer.focus_weight, subject)
        passages = self.retriever.retrieve(query, filters, k)
        answer = extractive_answer(
            query,
            passages,
            self.retriever.lexical,
            self.config.answer,
            sentence_dense=self.retriever.sentence_similarities(
                query.standalone, passages[: self.config.answer.passages]
            ),
        )
        return answer, list(passages)

    def _answer_from_index(
        self, question: str, history: list[str], filters: Mapping[str, Any] | None, k: int | None
    ) -> tuple[Answer, list[Passage]]:
        """The extractive answer to ``question`` after ``history``, and the passages it was chosen from."""
        if len(self.retriever.lexical) == 0:
            raise StoreError(
                f"the index at {self.config.chroma_url or self.config.index_dir} is empty: run `assistant ingest` first"
            )
        rw = rewrite(question, history)
        answer, passages = self._extractive(question, rw, filters, k)
        # A question about several subjects "respectively" whose answer leaves one of them out is
        # answered one subject at a time.
        subjects = [] if rw.context else split_subjects(question)
        if subjects and not covers_subjects(answer, [s.subject for s in subjects], self.retriever.lexical):
            parts = [
                (s.subject, self._extractive(s.question, Rewrite(s.question), filters, k, s.subject)[0])
                for s in subjects
            ]
            if any(not a.abstained for _, a in parts):
                answer = combine_answers(question, parts, answer_language(detect_language(question)))
                passages = answer.retrieved
        return answer, passages

    def ask(
        self,
        question: str,
        history: Sequence[str] | None = None,
        filters: Mapping[str, Any] | None = None,
        k: int | None = None,
        on_token: Callable[[str], None] | None = None,
        read_lock: ReadLock = nullcontext,
    ) -> Answer:
        """Answer ``question`` (with earlier questions of the conversation in ``history``).

        In LLM mode, ``on_token`` (if given) receives the model's reply as it streams, before the
        citation check; the returned answer is the checked one (see ``llm.stream_answer``).
        ``read_lock`` (a server's ``guard.read``) is held while the index is read: the search and the
        extractive answer, and in LLM mode the citation check, but not the wait for the model's reply.
        """
        started = time.perf_counter()
        if not isinstance(question, str) or not question.strip():
            raise QuestionError(messages(detect_language(question) if isinstance(question, str) else "en")["empty"])
        notes: list[str] = []
        question = replace_surrogates(question.strip())
        if len(question) > MAX_QUESTION_CHARS:
            question = question[:MAX_QUESTION_CHARS]
            notes.append(f"question truncated to {MAX_QUESTION_CHARS} characters")
        # Earlier questions come from the client too (the API's ``history``, a browser's saved
        # conversation): each is cut like a question, and only the last few can shape this one.
        clean_history = [replace_surrogates(h.strip())[:MAX_QUESTION_CHARS]
                         for h in (history or []) if isinstance(h, str) and h.strip()][-MAX_HISTORY_TURNS:]
        with read_lock():
            answer, passages = self._answer_from_index(question, clean_history, filters, k)
        if self.config.llm is not None and not answer.abstained:
            from .llm import synthesize

            answer = synthesize(self, answer, passages, filters=filters, k=k, on_token=on_token, read_lock=read_lock)
        answer.notes.extend(notes)
        _attach_pages(answer)
        answer.latency_ms = round((time.perf_counter() - started) * 1000, 2)
        return answer


def _attach_pages(answer: Answer) -> None:
    """Each citation into a PDF gets the page of its quote (from its passage's chunk metadata)."""
    by_chunk = {p.chunk_id: p for p in (*answer.retrieved, *answer.related)}
    for c in answer.citations:
        passage = by_chunk.get(c.chunk_id)
        if passage is not None and c.page is None:
            c.page = page_at(passage.metadata.get("pages"), c.start)


def _natural(doc_id: str) -> tuple[str, int]:
    base, _, tail = doc_id.rpartition("#")
    return (base, int(tail)) if base and tail.isdigit() else (doc_id, 0)
