"""Evaluation harness: gold sets, retrieval/citation/answer/abstention metrics, runs and reports.

Typical use::

    items = load_gold("eval/gold.jsonl")
    result = run_eval(assistant, items, k=5)
    rich.print(result.table())
    result.write_records("runs/records.jsonl")
    result.write_html("runs/report.html")
    # later, independently:
    score_records(items, load_records("runs/records.jsonl"), k=5).to_json()

Metric definitions: see ``assistant.evaluation.metrics``.
"""

from __future__ import annotations

from assistant.evaluation.gold import GoldFormatError, GoldItem, check_evidence, dump_gold, load_gold
from assistant.evaluation.metrics import (
    METRICS,
    MetricInfo,
    QuestionScore,
    aggregate,
    by_tag,
    fold,
    percentile,
    score_record,
    supports,
)
from assistant.evaluation.report import render_html
from assistant.evaluation.runner import (
    Asker,
    EvalResult,
    answer_to_record,
    load_records,
    run_eval,
    score_records,
)

__all__ = [
    "METRICS",
    "Asker",
    "EvalResult",
    "GoldFormatError",
    "GoldItem",
    "MetricInfo",
    "QuestionScore",
    "aggregate",
    "answer_to_record",
    "by_tag",
    "check_evidence",
    "dump_gold",
    "fold",
    "load_gold",
    "load_records",
    "percentile",
    "render_html",
    "run_eval",
    "score_record",
    "score_records",
    "supports",
]
