"""Shared fixtures: the sample corpus, one real embedding model per session, one real index of the corpus.

Everything is written under pytest's tmp directories; the repository's corpus is only read (and copied).
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from assistant.chunking import ChunkerSettings, chunk_document
from assistant.documents import load_paths, source_text
from assistant.embedding import Embedder
from assistant.ingest import IngestReport, ingest
from assistant.store import Store

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "corpus"
CORPUS_FILES = sorted(p.name for p in CORPUS.glob("*.txt"))
DIGEST = "003_bbf56349fcc5548d.txt"
CORPUS_DOCS = 14  # 4 single-article files + the 10 articles of the digest


def copy_corpus(dest: Path, names: Iterable[str] | None = None) -> Path:
    """Copy corpus files (all by default) into ``dest``; copies are writable (the originals are not)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in names if names is not None else CORPUS_FILES:
        shutil.copyfile(CORPUS / name, dest / name)
    return dest


def expected_chunks(corpus: Path, chunker: ChunkerSettings | None = None) -> dict[str, int]:
    """Chunks per doc_id that an ingest of ``corpus`` must store (computed without any index)."""
    result = load_paths([corpus], corpus)
    assert not result.errors, result.errors
    return {doc.doc_id: len(chunk_document(doc, chunker, source_text(corpus / doc.source))) for doc in result.documents}


def cli_env() -> dict[str, str]:
    """Environment of a CLI subprocess: offline, no terminal width hints (rich falls back to 80 columns)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_") and k not in ("COLUMNS", "LINES")}
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"})
    return env


def run_cli(
    *args: str | Path,
    cwd: Path,
    timeout: float = 180,
    columns: int | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m assistant.cli ARGS`` with the virtualenv's interpreter (``env``: added settings)."""
    env = {**cli_env(), **(env or {})}
    if columns is not None:
        env["COLUMNS"] = str(columns)
    return subprocess.run(
        [sys.executable, "-m", "assistant.cli", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The real packaged all-MiniLM-L6-v2, loaded once for the whole session."""
    emb = Embedder()
    _ = emb.model
    return emb


@dataclass
class IndexedCorpus:
    corpus: Path
    index: Path
    store: Store
    report: IngestReport
    chunks: dict[str, int]  # expected chunks per doc_id


@pytest.fixture(scope="session")
def indexed_corpus(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> IndexedCorpus:
    """A writable copy of the whole sample corpus, ingested once into a real Chroma index.

    Tests that change the corpus must put it back (see ``live_index`` in test_store.py).
    """
    base = tmp_path_factory.mktemp("indexed")
    corpus = copy_corpus(base / "corpus")
    store = Store(base / "index")
    report = ingest([corpus], store, embedder, corpus_root=corpus)
    return IndexedCorpus(corpus, base / "index", store, report, expected_chunks(corpus))


class _Planted:
    """Unpickled, writes "ran" to ``marker``: what someone who can write a folder the assistant
    reads back would plant there."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (Path.write_text, (self.marker, "ran"))


def planted_pickle(marker: Path) -> bytes:
    """A real malicious pickle: loading it creates ``marker``."""
    return pickle.dumps(_Planted(marker))
