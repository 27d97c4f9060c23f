"""The shipped learned sentence scorer: its schema matches the feature extractor, its numbers are finite,
and scoring needs numpy only (``make test`` never retrains)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from assistant.answer import AnswerSettings, score_candidates
from assistant.query import analyse_query
from assistant.retrieval import LexicalIndex
from assistant.schema import Passage, Span
from assistant.scorer import FEATURE_NAMES, SentenceScorer, model_path, shipped_scorer
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
