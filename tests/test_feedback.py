"""Feedback on answers: append-only storage under concurrency, the draft gold export, the CLI."""

from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import run_cli

from assistant import feedback
from assistant.errors import ConfigError
from assistant.evaluation import load_gold

ANSWER = {"answer": "It was founded in 2021 [1].", "abstained": False, "standalone_question": "When?",
          "citations": [{"n": 1, "doc_id": "a.txt", "quote": "founded in 2021", "start": 3, "end": 18, "text": "x"}]}


def _write_many(path: str, tag: str, n: int) -> None:
    for i in range(n):
        feedback.record(Path(path), feedback.make_item("down", f"{tag}-{i} " + "长" * 500, [], None, comment="c"))


def test_concurrent_appends_lose_no_line(tmp_path: Path) -> None:
    path = tmp_path / "index" / feedback.FEEDBACK_FILE
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda t: _write_many(str(path), f"t{t}", 25), range(8)))
    procs = [multiprocessing.get_context("spawn").Process(target=_write_many, args=(str(path), f"p{i}", 25))
             for i in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 8 * 25 + 3 * 25
    questions = {json.loads(line)["question"].split()[0] for line in lines}  # every line is whole JSON
    assert len(questions) == len(lines)
    assert len(feedback.read(path)) == len(lines) and len(feedback.read(path, 5)) == 5


def test_make_item_keeps_what_a_reviewer_needs() -> None:
    item = feedback.make_item("up", "When was it founded?", ["What is it?"], ANSWER, comment="x" * 5000)
    assert item["rating"] == "up" and item["history"] == ["What is it?"]
    assert item["citations"] == [{"n": 1, "doc_id": "a.txt", "quote": "founded in 2021", "start": 3, "end": 18}]
    assert len(item["comment"]) == feedback.MAX_COMMENT_CHARS
    with pytest.raises(ConfigError, match="got 'meh'"):
        feedback.make_item("meh", "q", [], None)


def test_draft_gold_loads_with_the_gold_loader(tmp_path: Path) -> None:
    items = [feedback.make_item("down", "When was it founded?", ["What is it?"], ANSWER, "Wrong source", "bad"),
             feedback.make_item("up", "Fine?", [], ANSWER),
             feedback.make_item("down", "Who leads it?", [], None)]
    drafts = feedback.draft_gold(items)
    assert [d["question"] for d in drafts] == ["When was it founded?", "Who leads it?"]
    gold = tmp_path / "draft.jsonl"
    gold.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in drafts), encoding="utf-8")
    loaded = load_gold(gold)
    assert [g.id for g in loaded] == ["feedback-0001", "feedback-0002"]
    assert loaded[0].history == ["What is it?"] and "needs-review" in loaded[0].tags
    assert loaded[0].meta["feedback"]["option"] == "Wrong source"


def test_feedback_item_takes_only_an_answer_index_from_the_browser() -> None:
    import ui

    kept = [{"question": "q1", "history": [], "answer": ANSWER}, {"question": "q2", "history": ["q1"], "answer": None}]
    assert ui.feedback_item(kept, 1, False, "c")["rating"] == "down"  # type: ignore[index]
    assert ui.feedback_item(kept, 3, True, None)["question"] == "q2"  # type: ignore[index]
    assert ui.feedback_item(kept, [1, 0], "Wrong source", "")["option"] == "Wrong source"  # type: ignore[index]
    for index in (0, 2, 5, -1, "1", True, None, 1.0):  # a question, out of range, or not an int
        assert ui.feedback_item(kept, index, False, "") is None, index
    assert ui.feedback_item(kept, 1, "<script>", "") is None  # an option we never offered


def test_cli_feedback_export(tmp_path: Path) -> None:
    index = tmp_path / "index"
    for item in (feedback.make_item("down", "Who leads the alliance?", [], ANSWER, comment="wrong person"),
                 feedback.make_item("up", "Fine", [], ANSWER)):
        feedback.record(feedback.feedback_path(index), item)
    out = tmp_path / "draft.jsonl"
    r = run_cli("feedback", "export", "--out", out, "--index", index, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    [item] = load_gold(out)
    assert item.question == "Who leads the alliance?" and item.meta["feedback"]["comment"] == "wrong person"
    r = run_cli("feedback", "list", "--index", index, cwd=tmp_path)
    assert r.returncode == 0 and "2 feedback items" in r.stdout and "wrong person" in r.stdout
