"""Sentence vectors stored beside the index (``assistant.sentences``) and the dense sentence feature."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from assistant import sentences
from assistant.answer import AnswerSettings, score_candidates
from assistant.query import analyse_query
from assistant.retrieval import LexicalIndex, Retriever
from assistant.schema import Passage, Span
from assistant.scorer import FEATURE_NAMES
from assistant.sentences import SentenceVectors, candidate_spans, chunk_sentences, hash_key
from assistant.text import tokenize


def _unit(*values: float) -> np.ndarray:
    v = np.asarray(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_candidate_spans_are_the_sentences_with_a_word() -> None:
    text = "First one. ... Second one."
    spans = [Span(100, 110), Span(111, 114), Span(115, 126)]
    assert candidate_spans(text, 100, spans) == [Span(100, 110), Span(115, 126)]
    # A chunk without sentence spans is one candidate.
    assert candidate_spans("Only text", 7, []) == [Span(7, 16)]


def test_chunk_sentences_key_on_the_document_hash_and_span() -> None:
    meta = {"start": 10, "doc_hash": "abcdef0123456789ffff", "sentences": json.dumps([[10, 14], [15, 19]])}
    assert chunk_sentences("One. Two.", meta) == [
        (("abcdef0123456789", 10, 14), "One."),
        (("abcdef0123456789", 15, 19), "Two."),
    ]
    assert hash_key("abcdef0123456789ffff") == "abcdef0123456789"


def test_store_round_trip_later_segments_win_and_compaction(tmp_path: Path) -> None:
    store = SentenceVectors(tmp_path, "model-a")
    assert store.lookup([("h1", 0, 5)]) == [None]
    store.write([(("h1", 0, 5), _unit(1, 0)), (("h1", 6, 9), _unit(0, 1)), (("h2", 0, 3), _unit(1, 1))])
    got = store.lookup([("h1", 6, 9), ("h2", 0, 3), ("h1", 1, 2), ("h3", 0, 5)])
    assert got[0] is not None and np.allclose(got[0], [0, 1])
    assert got[1] is not None and np.allclose(got[1], _unit(1, 1), atol=1e-3)  # float16
    assert got[2] is None and got[3] is None
    assert store.hashes() == {"h1", "h2"} and store.complete == ""
    # A second writer's segment is seen by this reader; its rows for h2 replace the old ones.
    SentenceVectors(tmp_path, "model-a").write([(("h2", 0, 3), _unit(0, 1))], complete="gen1")
    again = store.lookup([("h2", 0, 3)])[0]
    assert again is not None and np.allclose(again, [0, 1]) and store.complete == "gen1"
    # h1's two rows are kept; the old h2 row is dead only once the store keeps nothing but h1.
    assert store.compact({"h1", "h2"}) == 0
    assert store.compact({"h1"}) == 2
    assert store.hashes() == {"h1"} and len(list((tmp_path / "sentences").glob("seg-*.vec.npy"))) == 1
    kept = store.lookup([("h1", 0, 5)])[0]
    assert kept is not None and np.allclose(kept, [1, 0])
    # Many small segments (one per ingest) are merged once there are too many.
    for i in range(sentences.MAX_SEGMENTS):
        store.write([((f"x{i}", 0, 1), _unit(1, 0))])
    assert store.compact({"h1"} | {f"x{i}" for i in range(sentences.MAX_SEGMENTS)}) == 0
    assert len(list((tmp_path / "sentences").glob("seg-*.vec.npy"))) == 1
    assert len(store.hashes()) == sentences.MAX_SEGMENTS + 1
    # A segment an interrupted ingest wrote but never named is swept; named ones stay.
    (tmp_path / "sentences" / "seg-orphan.vec.npy").write_bytes(b"partial")
    assert store.sweep() == 1 and store.lookup([("h1", 0, 5)])[0] is not None
    # Another model's vectors are never read, and are dropped before writing.
    other = SentenceVectors(tmp_path, "model-b")
    assert other.lookup([("h1", 0, 5)]) == [None]
    other.reset_if_other_model()
    assert not list((tmp_path / "sentences").glob("seg-*"))


def test_a_store_is_for_one_reading_of_the_text(tmp_path: Path) -> None:
    """Vectors of Chinese read as its English gloss do not compare with vectors of the text as written."""
    glossed = SentenceVectors(tmp_path, "model-a", "gloss-zh-en")
    glossed.write([(("h1", 0, 5), _unit(1, 0))])
    assert json.loads((tmp_path / "sentences" / "manifest.json").read_text())["reading"] == "gloss-zh-en"
    assert SentenceVectors(tmp_path, "model-a", "gloss-zh-en").lookup([("h1", 0, 5)])[0] is not None
    as_written = SentenceVectors(tmp_path, "model-a")
    assert as_written.lookup([("h1", 0, 5)]) == [None]
    as_written.reset_if_other_model()
    assert not list((tmp_path / "sentences").glob("seg-*"))
    # A store written before the reading was recorded holds text as written: kept for that reading only.
    as_written.write([(("h2", 0, 3), _unit(0, 1))])
    manifest = tmp_path / "sentences" / "manifest.json"
    data = json.loads(manifest.read_text())
    del data["reading"]
    manifest.write_text(json.dumps(data))
    assert SentenceVectors(tmp_path, "model-a").lookup([("h2", 0, 3)])[0] is not None
    assert SentenceVectors(tmp_path, "model-a", "gloss-zh-en").lookup([("h2", 0, 3)]) == [None]


class _Embedder:
    def __init__(self) -> None:
        self.settings = SimpleNamespace(model_name="fake")
        self.reading_name = ""
        self.encoded: list[str] = []

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return np.stack([_unit(1, 0) for _ in texts])

    def encode_passages(self, texts: list[str], progress: Any = None) -> np.ndarray:
        self.encoded += texts
        return np.stack([_unit(0, 1) if "Second" in t else _unit(1, 1) for t in texts])


def test_similarities_read_the_store_and_encode_what_it_lacks(tmp_path: Path) -> None:
    text = "First one. Second one."
    passage = Passage(
        "d::0@h", "d", text, 0, len(text), 1.0, metadata={"doc_hash": "h" * 20}, sentences=[Span(0, 10), Span(11, 22)]
    )
    SentenceVectors(tmp_path, "fake").write([(("h" * 16, 0, 10), _unit(1, 0))])
    embedder = _Embedder()
    retriever = Retriever(SimpleNamespace(index_dir=tmp_path), embedder)  # type: ignore[arg-type]
    sims = retriever.sentence_similarities("q", [passage])
    assert sims == {("d", 0, 10): pytest.approx(1.0), ("d", 11, 22): pytest.approx(0.0, abs=1e-3)}
    assert embedder.encoded == ["Second one."]  # only the sentence the store lacks
    retriever.sentence_similarities("q", [passage])
    assert embedder.encoded == ["Second one."]  # kept in memory


def test_the_last_questions_similarities_are_served_without_a_second_lookup(tmp_path: Path) -> None:
    text = "First one. Second one."
    passage = Passage(
        "d::0@h", "d", text, 0, len(text), 1.0, metadata={"doc_hash": "h" * 20}, sentences=[Span(0, 10), Span(11, 22)]
    )
    SentenceVectors(tmp_path, "fake").write([(("h" * 16, 0, 10), _unit(1, 0)), (("h" * 16, 11, 22), _unit(0, 1))])
    retriever = Retriever(SimpleNamespace(index_dir=tmp_path), _Embedder())  # type: ignore[arg-type]
    looked_up: list[int] = []
    lookup = retriever.sentence_vectors.lookup
    retriever.sentence_vectors.lookup = lambda keys: looked_up.append(len(keys)) or lookup(keys)  # type: ignore[method-assign]
    first = retriever.sentence_similarities("q", [passage])
    assert retriever.sentence_similarities("q", [passage]) == first
    assert looked_up == [2]  # the ranker and the answer stage ask for the same question's sentences
    other = Passage("e::0@g", "e", "Other.", 0, 6, 1.0, metadata={"doc_hash": "g" * 20}, sentences=[Span(0, 6)])
    retriever.sentence_similarities("q", [passage, other])
    assert looked_up == [2, 1]  # only what the last call lacked
    retriever.sentence_similarities("another question", [passage])
    assert looked_up == [2, 1, 2]


def _passage(*sentences: str) -> tuple[Passage, LexicalIndex]:
    """One passage of ``sentences`` (joined by a space, each its own span) and its index."""
    text = " ".join(sentences)
    spans, start = [], 0
    for sentence in sentences:
        spans.append(Span(start, start + len(sentence)))
        start += len(sentence) + 1
    lexical = LexicalIndex(["c"], [text], [{}], [tokenize(text)], "g")
    return Passage("c", "d", text, 0, len(text), 1.0, sentences=spans), lexical


def test_the_sentence_features_come_from_the_similarities() -> None:
    first = "The alliance was founded in March 2021 in Changzhou."
    second = "It brings together colleges and enterprises."
    text = f"{first} {second}"
    passage, lexical = _passage(first, second)
    question = "When was the alliance founded?"
    sims = {("d", 0, len(first)): 0.25, ("d", len(first) + 1, len(text)): 0.75}
    cands = score_candidates([passage], analyse_query(question), lexical, AnswerSettings(), sentence_dense=sims)
    at = {name: FEATURE_NAMES.index(name) for name in FEATURE_NAMES if "sentence_dense" in name}
    by_text = {c.text: c.features for c in cands}
    assert by_text[first][at["sentence_dense"]] == 0.25
    assert by_text[first][at["sentence_dense_gap"]] == -0.5
    assert by_text[second][at["sentence_dense_gap"]] == 0.0
    assert by_text[first][at["best_sentence_dense"]] == by_text[second][at["best_sentence_dense"]] == 0.75
    # One document in the question's own script: nothing is cross-lingual.
    assert by_text[second][at["sentence_dense_cross"]] == 0.0
    # Without similarities the features are 0.
    plain = score_candidates([passage], analyse_query(question), lexical, AnswerSettings())
    assert all(c.features[at["sentence_dense"]] == 0.0 for c in plain)


def test_a_sentence_that_refers_back_is_covered_with_the_one_before() -> None:
    first = "Nitrosyl fluoride is a common nitrosyl compound."
    second = "It was first made by Moissan in 1905."
    third = "Moissan also isolated fluorine."
    passage, lexical = _passage(first, second, third)
    cands = score_candidates([passage], analyse_query("Who first made nitrosyl fluoride?"), lexical, AnswerSettings())
    at = {name: FEATURE_NAMES.index(name) for name in FEATURE_NAMES}
    by_text = {c.text: c.features for c in cands}
    # "It ..." speaks of what the sentence before names: covered with its words.
    assert by_text[second][at["referent_coverage"]] > by_text[second][at["coverage"]]
    assert by_text[second][at["referent_coverage"]] > by_text[first][at["coverage"]]
    assert by_text[second][at["referent_gap"]] == 0.0
    # A sentence that does not refer back, and a passage's first sentence, keep their own coverage.
    for plain in (first, third):
        assert by_text[plain][at["referent_coverage"]] == by_text[plain][at["coverage"]]
        assert by_text[plain][at["referent_gap"]] < 0


def test_a_negated_question_marks_the_sentences_that_negate_nothing() -> None:
    first = "Tesla did not want to sell his patents."
    second = "Westinghouse bought the patents in 1888."
    passage, lexical = _passage(first, second)
    at = FEATURE_NAMES.index("negation_missing")

    def missing(question: str) -> dict[str, float]:
        cands = score_candidates([passage], analyse_query(question), lexical, AnswerSettings())
        return {c.text: c.features[at] for c in cands}

    assert missing("What didn't Tesla want to sell?") == {first: 0.0, second: 1.0}
    assert missing("Who bought the patents?") == {first: 0.0, second: 0.0}  # nothing negated
    assert missing("特斯拉没有卖掉什么？") == {first: 0.0, second: 1.0}  # across languages
