"""Quality gate: the project's own gold set, through the same code as `assistant eval`, must stay above
the floors in eval/thresholds.toml (real model, real Chroma, the sample corpus)."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest

from assistant.config import Config
from assistant.core import Assistant
from assistant.evaluation import load_gold, run_eval

ROOT = Path(__file__).resolve().parent.parent
KEYS = {
    "hit_at_1": "hit@1",
    "hit_at_k": "hit@k",
    "citation_precision": "citation_precision",
    "citation_recall": "citation_recall",
    "answer_accuracy": "answer_accuracy",
    "abstention_recall": "abstention_recall",
    "false_abstention_rate": "false_abstention_rate",
    "median_quote_chars": "median_quote_chars",
}


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("gate")
    corpus = tmp / "corpus"
    shutil.copytree(ROOT / "corpus", corpus)
    assistant = Assistant(Config(index_dir=tmp / "index", corpus_dir=corpus))
    report = assistant.ingest()
    assert report.added == 14 and not report.errors
    assistant.warm_up()
    return run_eval(assistant, load_gold(ROOT / "eval" / "gold.jsonl"), k=5, progress=False)


def _checks() -> list[tuple[str, str, float]]:
    thresholds = tomllib.loads((ROOT / "eval" / "thresholds.toml").read_text(encoding="utf-8"))
    out = [("all", key, value) for key, value in thresholds["all"].items()]
    for tag, table in thresholds.get("tag", {}).items():
        out.extend((tag, key, value) for key, value in table.items())
    return out


@pytest.mark.slow
@pytest.mark.parametrize(("scope", "key", "limit"), _checks(), ids=lambda v: str(v))
def test_gold_set_meets_threshold(result: Any, scope: str, key: str, limit: float) -> None:
    metrics = result.metrics["all"] if scope == "all" else result.metrics[scope]
    kind, _, name = key.partition("_")
    value = metrics[KEYS[name]]
    assert value is not None, f"{scope}: {KEYS[name]} was not measured"
    if kind == "min":
        assert value >= limit, f"{scope}: {KEYS[name]} = {value:.3f} fell below {limit}"
    else:
        assert value <= limit, f"{scope}: {KEYS[name]} = {value:.3f} rose above {limit}"


def test_followups_close_to_first_questions(result: Any) -> None:
    """Follow-ups reach a citation precision within 10 points of first questions (issue 5)."""
    followup = result.metrics["followup"]["citation_precision"]
    first = [s for item, s in zip(result.items, result.scores, strict=True) if "followup" not in item.tags]
    from assistant.evaluation.metrics import aggregate

    baseline = aggregate(first)["citation_precision"]
    assert followup is not None and baseline is not None
    assert followup >= baseline - 0.10, f"follow-ups {followup:.3f} vs first questions {baseline:.3f}"
