"""Side by side on question sets: the assistant vs a default llama-index vector RAG over Chroma.

Baseline: ``VectorStoreIndex`` over ``ChromaVectorStore`` (a fresh local Chroma collection, created with
Chroma's defaults), ``HuggingFaceEmbedding(model_name=default_model_path())`` (the same all-MiniLM-L6-v2
files the assistant loads), the default ``SentenceSplitter`` (1024 tokens, 200 overlap),
``index.as_retriever(similarity_top_k=10)``; ``Settings.llm = None`` (no LLM is involved) and the Hub is
offline. It gets the same documents as the assistant: the texts the project's loader extracts (so a
digest file is already split into its articles, which helps the baseline), with the title as metadata.
The baseline sees the question alone (a llama-index chat engine would need an LLM to condense a
follow-up; the assistant's rule-based rewrite needs none).

Both are scored by ``assistant.evaluation.score_records`` with k=5: hit@1 / hit@5 over the top-10
retrieved passages, and citation precision (the baseline's "citations" are its top-3 retrieved nodes,
judged by ``metrics.supports`` on the node text; the assistant's are the quotes it cites).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.evaluation import GoldItem, load_gold, percentile, score_records

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

METRIC_KEYS = ("hit@1", "hit@k", "citation_precision", "abstention_recall", "false_abstention_rate")


@dataclass
class QASet:
    name: str
    corpus: Path
    gold: Path
    note: str = ""


@dataclass
class SideResult:
    system: str
    chunks: int
    ingest_s: float
    metrics: dict[str, Any]
    query_ms: list[float] = field(default_factory=list)

    @property
    def chunks_per_s(self) -> float:
        return self.chunks / self.ingest_s if self.ingest_s else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "system": self.system,
            "chunks": self.chunks,
            "ingest_s": self.ingest_s,
            "chunks_per_s": self.chunks_per_s,
            "query_p50_ms": percentile(self.query_ms, 50),
            "query_p95_ms": percentile(self.query_ms, 95),
            **{k: self.metrics.get(k) for k in METRIC_KEYS},
        }


def convert(source: Path, out_dir: Path, limit: int | None) -> QASet:
    """Convert a SQuAD-layout file with the project's converter (its CLI, as documented)."""
    cmd = [sys.executable, "-m", "assistant.evaluation.squad", str(source), str(out_dir), "--overwrite"]
    if limit:
        cmd += ["--limit", str(limit)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return QASet(source.name.split(".json")[0], out_dir / "corpus", out_dir / "gold.jsonl")


def run_assistant(qa: QASet, index_dir: Path, embedder: Any = None) -> SideResult:
    """Fresh index: ``Assistant.ingest`` (model loaded beforehand), then every gold question through ``ask``."""
    from scale import config_for

    from assistant.core import Assistant

    a = Assistant(config_for(index_dir, qa.corpus))
    if embedder is not None:
        a.embedder = embedder  # share the already loaded model (same settings)
        a.retriever.embedder = embedder
    _ = a.embedder.model
    started = time.perf_counter()
    report = a.ingest()
    ingest_s = time.perf_counter() - started
    a.warm_up()
    items = load_gold(qa.gold)
    from assistant.evaluation import run_eval

    result = run_eval(a, items, k=5, progress=False, on_error="record")
    # run_eval's latency is the assistant's own ``latency_ms`` (wall time of ``ask``).
    latencies = [float(r["latency_ms"]) for r in result.records]
    return SideResult("assistant", report.chunks_added, ingest_s, dict(result.overall), latencies)


def _llama_documents(corpus: Path) -> list[Any]:
    from llama_index.core import Document

    from assistant.documents import load_paths

    loaded = load_paths([corpus], corpus)
    return [
        Document(text=d.text, id_=d.doc_id, metadata={"title": d.title}) for d in loaded.documents if d.text.strip()
    ]


_EMBED: Any = None


def llama_embedding() -> Any:
    global _EMBED
    if _EMBED is None:
        from llama_index.embeddings.huggingface import HuggingFaceEmbedding

        from assistant.embedding import default_model_path

        _EMBED = HuggingFaceEmbedding(model_name=default_model_path(), device="cpu")
    return _EMBED


def run_llama(qa: QASet, chroma_dir: Path, items: list[GoldItem] | None = None) -> SideResult:
    import chromadb
    from llama_index.core import Settings, StorageContext, VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.vector_stores.chroma import ChromaVectorStore

    Settings.llm = None
    embed = llama_embedding()
    Settings.embed_model = embed
    docs = _llama_documents(qa.corpus)
    client = chromadb.PersistentClient(path=str(chroma_dir), settings=chromadb.Settings(anonymized_telemetry=False))
    collection = client.get_or_create_collection("baseline")
    store = ChromaVectorStore(chroma_collection=collection)
    storage = StorageContext.from_defaults(vector_store=store)
    started = time.perf_counter()
    index = VectorStoreIndex.from_documents(
        docs, storage_context=storage, embed_model=embed, transformations=[SentenceSplitter()]
    )
    ingest_s = time.perf_counter() - started
    chunks = collection.count()
    retriever = index.as_retriever(similarity_top_k=10)
    retriever.retrieve("warm up")
    items = items or load_gold(qa.gold)
    records: list[dict[str, Any]] = []
    latencies: list[float] = []
    for item in items:
        s = time.perf_counter()
        nodes = retriever.retrieve(item.question)
        ms = (time.perf_counter() - s) * 1000
        latencies.append(ms)
        passages = [
            {"doc_id": n.node.ref_doc_id or "", "chunk_id": n.node.node_id, "text": n.node.get_content(), "score": n.score}
            for n in nodes
        ]
        records.append(
            {
                "id": item.id,
                "answer": "",
                "abstained": False,
                "citations": [{"n": i + 1, "text": p["text"], "quote": p["text"]} for i, p in enumerate(passages[:3])],
                "retrieved": passages,
                "latency_ms": ms,
            }
        )
    result = score_records(items, records, k=5)
    return SideResult("llama-index", chunks, ingest_s, dict(result.overall), latencies)


def main() -> None:
    """One question set in a fresh process: the assistant, then the llama-index baseline; JSON summary out."""
    import argparse
    import json

    p = argparse.ArgumentParser()
    p.add_argument("--name", required=True)
    p.add_argument("--corpus", type=Path, required=True)
    p.add_argument("--gold", type=Path, required=True)
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    qa = QASet(args.name, args.corpus, args.gold)
    a = run_assistant(qa, args.work / "assistant-index")
    b = run_llama(qa, args.work / "llama-chroma")
    args.out.write_text(json.dumps({"name": args.name, "assistant": a.summary(), "llama": b.summary()}, indent=1))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
