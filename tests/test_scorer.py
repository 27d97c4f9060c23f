"""The shipped learned sentence scorer: its schema matches the feature extractor, its numbers are finite,
and scoring needs numpy only (``make test`` never retrains)."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from assistant.answer import (
    AnswerSettings,
    abstain_reason,
    answerability,
    run_checks,
    score_candidates,
    unknown_names,
)
from assistant.errors import ConfigError
from assistant.query import analyse_query
from assistant.retrieval import LexicalIndex
from assistant.schema import Passage, Span
from assistant.scorer import (
    ANSWERABILITY_NAMES,
    CHECK_NAMES,
    FEATURE_NAMES,
    SentenceScorer,
    answerability_path,
    answerability_row,
    model_path,
    shipped_answerability,
    shipped_scorer,
)
from assistant.text import tokenize


def test_shipped_model_matches_the_feature_extractor() -> None:
    data = json.loads(model_path().read_text(encoding="utf-8"))
    names = tuple(data["features"])
    assert set(names) <= set(FEATURE_NAMES) and len(set(names)) == len(names)
    for key in ("mean", "scale", "weights"):
        assert len(data[key]) == len(names)
        assert all(math.isfinite(v) for v in data[key])
    assert all(v > 0 for v in data["scale"])
    assert math.isfinite(data["intercept"])
    assert 0.0 < data["threshold"] < 1.0
    assert isinstance(data["seed"], int) and data["date"]
    assert data["top1_supporting_out_of_fold"]  # the figures it reached, per development set
    scorer = shipped_scorer()
    assert scorer is not None and scorer.names == names


def test_model_schema_is_checked() -> None:
    data = json.loads(model_path().read_text(encoding="utf-8"))
    with pytest.raises(ValueError, match="features"):
        SentenceScorer.from_dict({**data, "features": [*data["features"][:-1], "no such feature"]})
    with pytest.raises(ValueError, match="features"):
        SentenceScorer.from_dict({**data, "features": [data["features"][0]] * len(data["features"])})
    with pytest.raises(ValueError, match="one per feature"):
        SentenceScorer.from_dict({**data, "features": data["features"][:-1]})
    with pytest.raises(ValueError, match="finite"):
        SentenceScorer.from_dict({**data, "weights": [float("nan")] * len(FEATURE_NAMES)})


def test_a_model_of_some_features_reads_its_columns() -> None:
    names = FEATURE_NAMES[2:4][::-1]  # two features, in another order than the extractor's
    model = SentenceScorer.from_dict(
        {
            "features": list(names),
            "mean": [0.0, 1.0],
            "scale": [1.0, 2.0],
            "weights": [1.0, -1.0],
            "intercept": 0.5,
            "threshold": 0.1,
        }
    )
    row = np.zeros((1, len(FEATURE_NAMES)))
    row[0, 3], row[0, 2] = 2.0, 3.0  # z = 1 * (2 - 0) / 1 - 1 * (3 - 1) / 2 + 0.5 = 1.5
    assert model.probabilities(row)[0] == pytest.approx(1 / (1 + np.exp(-1.5)))


def test_every_candidate_gets_the_features_and_a_probability() -> None:
    first = "The alliance was founded in March 2021 in Changzhou."
    second = "It brings together colleges and enterprises."
    text = f"{first} {second}"
    lexical = LexicalIndex(["c"], [text], [{}], [tokenize(text)], "g")
    spans = [Span(0, len(first)), Span(len(first) + 1, len(text))]
    passage = Passage("c", "d", text, 0, len(text), 1.0, sentences=spans)
    question = "When was the alliance founded?"
    cands = score_candidates([passage], analyse_query(question), lexical, AnswerSettings())
    assert [len(c.features) for c in cands] == [len(FEATURE_NAMES)] * 2
    assert all(c.probability is not None and 0.0 <= c.probability <= 1.0 for c in cands)
    assert cands[0].text == first  # it holds a date and the question's words
    scorer = shipped_scorer()
    assert scorer is not None
    again = scorer.probabilities(np.asarray([cands[0].features]))
    assert again[0] == pytest.approx(cands[0].score)
    off = AnswerSettings(learned=False, learned_abstention=False)
    hand = score_candidates([passage], analyse_query(question), lexical, off)
    assert all(c.probability is None for c in hand)  # the hand-written score alone


def test_training_helpers_rank_and_choose_the_threshold() -> None:
    from assistant.train import QuestionRows, threshold_for, top1

    width = len(FEATURE_NAMES)
    rows = [
        QuestionRows("a", "1", True, [[0.0] * width, [1.0] * width], [0, 1]),
        QuestionRows("a", "2", True, [[0.0] * width, [1.0] * width], [1, 0]),
        QuestionRows("b", "3", False, [[0.0] * width], [0]),
    ]
    scores = [np.array([0.1, 0.9]), np.array([0.2, 0.8]), np.array([0.05])]
    assert top1(rows, scores) == {"a": 0.5}  # the unanswerable question is not ranked
    # The lowest best probability of an answerable question: none of them abstains at rate 0.
    assert threshold_for(rows, scores, 0.0) == pytest.approx(0.8)


def test_fit_gives_a_model_of_the_extractor_s_features() -> None:
    pytest.importorskip("sklearn")
    from assistant.train import QuestionRows, fit

    rng = np.random.default_rng(0)
    rows = []
    for i in range(40):
        x = rng.normal(size=(5, len(FEATURE_NAMES)))
        labels = [1, 0, 0, 0, 0]
        x[0, 0] += 3.0  # the supporting sentence covers more of the question
        rows.append(QuestionRows("s", str(i), True, x.tolist(), labels))
    model = fit(rows, seed=0)
    assert model.names == FEATURE_NAMES and model.weights[0] > 0
    again = SentenceScorer.from_dict(json.loads(json.dumps(model.to_dict())))
    assert np.allclose(again.weights, model.weights, atol=1e-5)


def test_foreign_questions_are_those_whose_evidence_the_corpus_lacks() -> None:
    from assistant.evaluation.gold import GoldItem
    from assistant.train import FOREIGN_CROSS_LINGUAL, lacking

    texts = ["The Normans gave their name to Normandy.", "诺曼人在十世纪来到法国。"]
    items = [
        GoldItem("1", "Where did the Normans give their name?", evidence=["gave their name to Normandy"]),
        GoldItem("2", "诺曼人何时来到法国？", evidence=["诺曼人在十世纪来到法国"]),
        GoldItem("3", "Who built the bridge?", evidence=["The bridge was built in 1890."]),
        GoldItem("4", "When did it open?", answerable=False),
    ]
    assert [i.id for i in lacking(items, texts)] == ["3"]  # held in the corpus or unanswerable: left out
    # The shipped model learnt from cross-lingual questions asked over a corpus without their article.
    data = json.loads(answerability_path().read_text(encoding="utf-8"))
    for asked, over in FOREIGN_CROSS_LINGUAL:
        assert data["questions"].get(f"{asked}@{over}+", 0) > 0
        assert data["abstention_out_of_fold"][f"{asked}@{over}+"]["abstention_recall"] > 0.2


def test_shipped_answerability_model_matches_its_rows() -> None:
    data = json.loads(answerability_path().read_text(encoding="utf-8"))
    assert data["features"] == list(ANSWERABILITY_NAMES)
    assert set(CHECK_NAMES) <= set(ANSWERABILITY_NAMES)
    for key in ("mean", "scale", "weights"):
        assert len(data[key]) == len(ANSWERABILITY_NAMES) and all(math.isfinite(v) for v in data[key])
    assert 0.0 < data["threshold"] < 1.0 and data["false_abstention_target"] > 0
    assert data["abstention_out_of_fold"]["squad2"]["abstention_recall"] is not None  # figures per set
    model = shipped_answerability()
    assert model is not None and model.names == ANSWERABILITY_NAMES
    with pytest.raises(ValueError, match="features"):  # a sentence feature alone is not a question row's
        SentenceScorer.from_dict({**data, "features": ["coverage", *data["features"][1:]]}, ANSWERABILITY_NAMES)


def test_answerability_row_reads_the_best_and_second_candidates() -> None:
    width = len(FEATURE_NAMES)
    features = np.arange(3 * width, dtype=float).reshape(3, width)
    probabilities = np.array([0.2, 0.8, 0.5])
    row = answerability_row(features, probabilities, (1.0, 0.0, 1.0, 0.0))
    assert row.shape == (len(ANSWERABILITY_NAMES),)
    at = {n: row[i] for i, n in enumerate(ANSWERABILITY_NAMES)}
    assert at["best_logit"] == pytest.approx(math.log(0.8 / 0.2))
    assert at["second_logit"] == pytest.approx(0.0)  # logit(0.5)
    assert at["logit_gap"] == pytest.approx(math.log(4.0))
    assert at["candidates_log"] == pytest.approx(math.log(4.0))
    assert at["best_coverage"] == features[1, 0]  # every feature of the best candidate
    missing = features[1, FEATURE_NAMES.index("missing_idf")]
    assert at["near_miss"] == features[1, 0] * missing
    assert at["near_miss_dense"] == features[1, FEATURE_NAMES.index("sentence_dense")] * missing
    assert [at[n] for n in CHECK_NAMES] == [1.0, 0.0, 1.0, 0.0]
    alone = answerability_row(features[:1], np.array([0.9]), (0.0, 0.0, 0.0, 0.0))
    assert alone[1] == pytest.approx(alone[0]) and alone[2] == 0.0  # one candidate: second = best


def test_the_answerability_model_decides_and_the_rules_are_settings() -> None:
    first = "The alliance was founded in March 2021 in Changzhou."
    text = f"{first} It brings together colleges and enterprises."
    lexical = LexicalIndex(["c"], [text], [{}], [tokenize(text)], "g")
    spans = [Span(0, len(first)), Span(len(first) + 1, len(text))]
    passage = Passage("c", "d", text, 0, len(text), 1.0, sentences=spans)
    query = analyse_query("When was the alliance founded?")
    cands = score_candidates([passage], query, lexical, AnswerSettings())
    checks = run_checks(query, cands, [passage], lexical, AnswerSettings())
    p = answerability(cands, checks)
    assert p is not None and 0.0 < p < 1.0
    above = AnswerSettings(answerability_threshold=min(1.0, p + 0.01))
    assert abstain_reason(query, cands, [passage], 0.5, lexical, above)
    assert abstain_reason(query, cands, [passage], 0.5, lexical, AnswerSettings(answerability_threshold=0.0)) is None
    # A question naming a fee the passage lacks: the "types" rule abstains, "none" leaves it to the models.
    fee = analyse_query("What is the membership fee of the alliance?")
    fee_cands = score_candidates([passage], fee, lexical, AnswerSettings())
    zero = {"answerability_threshold": 0.0, "abstain_threshold": 0.0}
    reason = abstain_reason(fee, fee_cands, [passage], 0.5, lexical, AnswerSettings(abstain_rules="types", **zero))
    assert reason is not None and "hold no" in reason
    assert abstain_reason(fee, fee_cands, [passage], 0.5, lexical, AnswerSettings(abstain_rules="none", **zero)) is None
    with pytest.raises(ConfigError, match="abstain_rules must be one of all, checks, types, names, none, got 'some'"):
        AnswerSettings(abstain_rules="some")
    with pytest.raises(ConfigError, match="answerability_threshold must be between 0 and 1, got 1.5"):
        AnswerSettings(answerability_threshold=1.5)


def test_a_name_the_dictionary_passes_through_is_not_checked_across_scripts() -> None:
    text = "洛杉矶天使队是一支棒球队。"
    lexical = LexicalIndex(["c"], [text], [{"language": "zh"}], [tokenize(text)], "g")
    # "Anaheim" has no Chinese translation (the dictionary hands back "anaheim"): over Chinese text its
    # absence says nothing; a Chinese name over Chinese text the index lacks still counts.
    assert unknown_names(["Anaheim"], lexical) == []
    assert unknown_names(["深圳"], lexical) == ["深圳"]


def test_name_and_count_rules_hold_over_english_text_only() -> None:
    # The same question, the same unknown name, over English and over Chinese text: the rule abstains
    # over English text; over Chinese text the name is only a feature of the answerability model.
    zero = {"answerability_threshold": 0.0, "abstain_threshold": 0.0}
    for language, text, expected in (
        ("en", "The alliance trains welders in Changzhou.", True),
        ("zh", "联盟在常州培养焊工。", False),
    ):
        lexical = LexicalIndex(["c"], [text], [{"language": language}], [tokenize(text)], "g")
        passage = Passage("c", "d", text, 0, len(text), 1.0, sentences=[Span(0, len(text))])
        query = analyse_query("Does the alliance train welders in Ulaanbaatar?")
        cands = score_candidates([passage], query, lexical, AnswerSettings())
        checks = run_checks(query, cands, [passage], lexical, AnswerSettings())
        assert checks.unknown == ("Ulaanbaatar",)
        reason = abstain_reason(query, cands, [passage], 0.5, lexical, AnswerSettings(**zero), checks)
        assert (reason is not None and "never mention Ulaanbaatar" in reason) is expected


def test_training_without_the_question_sets_says_where_it_looked(tmp_path: Any, capsys: Any) -> None:
    from assistant.train import main

    with pytest.raises(SystemExit) as stop:
        main(["--data", str(tmp_path / "nowhere"), "--work", str(tmp_path / "work")])
    assert stop.value.code == 2
    assert f"no question sets at --data {tmp_path / 'nowhere'}" in capsys.readouterr().err
    assert not (tmp_path / "work").exists()  # nothing converted or indexed
