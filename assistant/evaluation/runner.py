"""Run gold questions through an assistant, keep JSON records of the answers, score and report them."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from assistant.evaluation.gold import GoldItem
from assistant.evaluation.metrics import (
    MAX_RANK,
    METRICS,
    MetricInfo,
    QuestionScore,
    by_tag,
    format_metric,
    score_record,
)
from assistant.schema import Answer

__all__ = [
    "Asker",
    "EvalResult",
    "answer_to_record",
    "error_record",
    "format_metric",
    "load_records",
    "run_eval",
    "score_records",
]

# Above this many tags, ``EvalResult.table`` shows one row per tag instead of one column per tag.
MAX_TAG_COLUMNS = 5
# Tags shown first in the terminal table when present (language, conversation, abstention, cross-document).
PREFERRED_TAGS = ("en", "zh", "followup", "unanswerable", "multi-doc")


class Asker(Protocol):
    """Anything that answers a question like ``Assistant.ask``."""

    def ask(self, question: str, history: list[str] | None = None, filters: dict | None = None) -> Answer: ...


def answer_to_record(item: GoldItem, answer: Answer, wall_ms: float | None = None) -> dict[str, Any]:
    """The JSON record of one answer: what the scorer needs, and what the HTML report shows.

    ``latency_ms`` is the assistant's own figure, or the measured wall time when it reports none.
    """
    latency = answer.latency_ms if answer.latency_ms > 0 else (wall_ms or 0.0)
    return {
        "id": item.id,
        "question": item.question,
        "history": list(item.history),
        "standalone_question": answer.standalone_question,
        "answer": answer.answer,
        "abstained": answer.abstained,
        "citations": [
            {
                "n": c.n,
                "doc_id": c.doc_id,
                "title": c.title,
                "text": c.text,
                "quote": c.quote,
                "start": c.start,
                "end": c.end,
                "passage_start": c.passage_start,
            }
            for c in answer.citations
        ],
        "retrieved": [
            {"doc_id": p.doc_id, "chunk_id": p.chunk_id, "title": p.title, "text": p.text, "score": p.score}
            for p in answer.retrieved[:MAX_RANK]
        ],
        "latency_ms": round(float(latency), 3),
        "mode": answer.mode,
    }


def error_record(item: GoldItem, error: BaseException, wall_ms: float) -> dict[str, Any]:
    """The record of a question whose ``ask`` raised: no answer, no citations, scored as a miss."""
    return {
        "id": item.id,
        "question": item.question,
        "history": list(item.history),
        "standalone_question": "",
        "answer": "",
        "abstained": False,
        "citations": [],
        "retrieved": [],
        "latency_ms": round(wall_ms, 3),
        "error": f"{type(error).__name__}: {error}",
    }


def metric_label(info: MetricInfo, k: int) -> str:
    """Display label, with the actual k in ``hit@k``."""
    return f"hit@{k}" if info.key == "hit@k" else info.label


@dataclass
class EvalResult:
    """Gold items, their answer records and scores, and metrics keyed by ``"all"`` and by tag."""

    items: list[GoldItem]
    records: list[dict[str, Any]]
    scores: list[QuestionScore]
    metrics: dict[str, dict[str, float | None]]
    k: int

    @property
    def overall(self) -> dict[str, float | None]:
        """The metrics over all questions."""
        return self.metrics["all"]

    def to_json(self) -> dict[str, Any]:
        """Report dict: ``k``, ``n``, overall ``metrics``, ``by_tag`` metrics and metric ``definitions``."""
        return {
            "k": self.k,
            "n": len(self.records),
            "metrics": dict(self.metrics["all"]),
            "by_tag": {tag: dict(m) for tag, m in self.metrics.items() if tag != "all"},
            "definitions": {info.key: info.description for info in METRICS},
        }

    def write_json(self, path: str | Path) -> None:
        """Write ``to_json()`` as pretty-printed UTF-8 JSON."""
        Path(path).write_text(json.dumps(self.to_json(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")

    def write_records(self, path: str | Path) -> None:
        """Write one JSON record per line (re-score later with ``load_records`` + ``score_records``)."""
        with Path(path).open("w", encoding="utf-8") as fh:
            for record in self.records:
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")

    def render_html(self, title: str = "Evaluation report") -> str:
        """The self-contained HTML report as a string."""
        from assistant.evaluation.report import render_html

        return render_html(self.items, self.records, self.scores, self.metrics, self.k, title=title)

    def write_html(self, path: str | Path, title: str = "Evaluation report") -> None:
        """Write the self-contained HTML report (inline CSS and SVG, no network)."""
        Path(path).write_text(self.render_html(title), encoding="utf-8")

    def table(self, title: str | None = None, tags: Sequence[str] | None = None) -> Table:
        """A rich table, one row per metric: overall plus a column for each of a few tags.

        By default the tags shown are the most frequent ones (up to MAX_TAG_COLUMNS) so the table fits
        a terminal; every tag is in ``to_json()`` and the HTML report.
        """
        if tags is None:
            counts = {t: m.get("n") or 0 for t, m in self.metrics.items() if t != "all"}
            preferred = [t for t in PREFERRED_TAGS if t in counts]
            rest = sorted((t for t in counts if t not in preferred), key=lambda t: (-float(counts[t]), t))
            tags = (preferred + rest)[:MAX_TAG_COLUMNS]
        table = Table(title=title or f"Evaluation (k={self.k}, n={len(self.records)})")
        table.add_column("metric")
        for group in ["all", *tags]:
            table.add_column(group, justify="right")
        for info in METRICS:
            table.add_row(
                metric_label(info, self.k),
                *(format_metric(self.metrics[g].get(info.key), info.kind) for g in ["all", *tags]),
            )
        return table


def score_records(items: Sequence[GoldItem], records: Sequence[Mapping[str, Any]], k: int = 5) -> EvalResult:
    """Score saved records against gold items (matched by ``id``); records of other ids are ignored.

    Raises ``ValueError`` when a gold item has no record.
    """
    by_id = {str(r.get("id")): r for r in records}
    missing = [item.id for item in items if item.id not in by_id]
    if missing:
        raise ValueError(f"{len(missing)} gold item(s) have no record, e.g. {', '.join(missing[:5])}")
    ordered = [dict(by_id[item.id]) for item in items]
    scores = [score_record(item, rec, k) for item, rec in zip(items, ordered, strict=True)]
    return EvalResult(list(items), ordered, scores, by_tag(items, scores), k)


def load_records(path: str | Path) -> list[dict[str, Any]]:
    """Read records written by ``EvalResult.write_records`` (JSONL); errors name the line."""
    records: list[dict[str, Any]] = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{lineno}: invalid JSON: {exc.msg}") from exc
        if not isinstance(obj, dict) or "id" not in obj:
            raise ValueError(f'{path}:{lineno}: expected a JSON object with an "id"')
        records.append(obj)
    return records


def run_eval(
    asker: Asker,
    items: Sequence[GoldItem],
    k: int = 5,
    progress: bool = True,
    *,
    on_error: Literal["raise", "record"] = "raise",
    console: Console | None = None,
) -> EvalResult:
    """Ask every gold question (with its history), record and score the answers, aggregate by tag.

    ``on_error="record"`` keeps going when ``ask`` raises: the question gets an error record (no
    answer, no citations), is scored as a miss and counted in ``n_errors``.
    """
    if not 1 <= k <= MAX_RANK:
        raise ValueError(f"k must be between 1 and {MAX_RANK}, got {k}")
    records: list[dict[str, Any]] = []
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, disable=not progress) as bar:
        task = bar.add_task("evaluating", total=len(items))
        for item in items:
            started = time.perf_counter()
            try:
                answer = asker.ask(item.question, history=list(item.history) or None)
            except Exception as exc:
                if on_error == "raise":
                    raise
                records.append(error_record(item, exc, (time.perf_counter() - started) * 1000))
            else:
                records.append(answer_to_record(item, answer, (time.perf_counter() - started) * 1000))
            bar.advance(task)
    return score_records(items, records, k)
