"""The lexical index's chunk texts and metadata read from disk one at a time (``assistant.chunk_records``):
the same values as the lists they were saved from, nothing decoded at load, older saves still read, and
damaged files not trusted."""

from __future__ import annotations

import json
import marshal
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import IndexedCorpus, planted_pickle

from assistant import chunk_records
from assistant.retrieval import LexicalIndex, analyse

TEXTS = ["plain", "", "常州检验检测认证产教联盟", "emoji 😀 and a lone surrogate \ud800 kept", "x" * 5000]
METAS: list[dict[str, Any]] = [
    {"doc_id": "a", "chunk_index": 0, "date_num": 20251028, "score": 0.5, "flag": True},
    {},
    {"doc_id": "中文", "title": "产教融合\u201c破题\u201d", "sentences": "[[0, 5], [5, 12]]"},
    {"nested": {"kept": [1, 2]}, "language": "mixed"},
    {"doc_id": "e", "language": "en"},
]


def test_round_trip(tmp_path: Path) -> None:
    chunk_records.write(tmp_path, TEXTS, METAS)
    texts, metas = chunk_records.open_records(tmp_path, len(TEXTS))
    assert len(texts) == len(metas) == 5
    assert list(texts) == TEXTS and list(metas) == METAS
    assert texts == TEXTS and metas == METAS and TEXTS == texts  # compares with lists either way
    assert texts[-1] == TEXTS[-1] and texts[2] == TEXTS[2] and texts[1:3] == TEXTS[1:3]
    assert metas[0] is metas[0]  # a decoded metadata dict is kept (callers shared the list's dicts)
    with pytest.raises(IndexError):
        texts[5]
    with pytest.raises(IndexError):
        metas[-6]
    assert isinstance(metas[np.int64(2)], dict)  # type: ignore[call-overload]  # numpy positions work too


def test_empty(tmp_path: Path) -> None:
    chunk_records.write(tmp_path, [], [])
    texts, metas = chunk_records.open_records(tmp_path, 0)
    assert list(texts) == [] and list(metas) == [] and texts == []


@pytest.mark.parametrize("damage", ["truncate", "count", "offsets"])
def test_damaged_files_raise_value_error(tmp_path: Path, damage: str) -> None:
    chunk_records.write(tmp_path, TEXTS, METAS)
    if damage == "truncate":
        data = (tmp_path / chunk_records.METAS).read_bytes()
        (tmp_path / chunk_records.METAS).write_bytes(data[:-10])
    elif damage == "offsets":
        np.save(tmp_path / chunk_records.OFFSETS, np.zeros(6, dtype=np.int64))
    with pytest.raises(ValueError):
        chunk_records.open_records(tmp_path, 4 if damage == "count" else len(TEXTS))


@pytest.fixture(scope="module")
def built(indexed_corpus: IndexedCorpus) -> LexicalIndex:
    return LexicalIndex.build(indexed_corpus.store)


def test_lexical_index_reads_texts_and_metas_lazily(built: LexicalIndex, tmp_path: Path) -> None:
    built.save(tmp_path / "lexical")
    assert not list((tmp_path / "lexical").glob("*.pkl"))  # no pickle: loading one runs what it holds
    assert marshal.loads((tmp_path / "lexical" / "ids.marshal").read_bytes()) == {"ids": built.ids}
    loaded = LexicalIndex.load(tmp_path / "lexical")
    assert loaded is not None
    assert isinstance(loaded.texts, chunk_records.Records) and isinstance(loaded.metas, chunk_records.Records)
    assert loaded._language_counts == built._language_counts  # saved: counting would decode every record
    assert loaded.metas._kept == {}  # nothing decoded yet
    for question in ("What are the five strategic focus areas of the Changzhou alliance?", "葫芦种植面积"):
        terms = analyse(question)
        for lang in ("en", "zh"):
            assert loaded.script_share(lang) == built.script_share(lang)
        query = terms.tokens + terms.translated
        top = loaded.top(query, 5)
        assert top == built.top(query, 5) and top
        assert [loaded.texts[i] for i, _ in top] == [built.texts[i] for i, _ in top]
        assert [loaded.metas[i] for i, _ in top] == [built.metas[i] for i, _ in top]
        doc = built.metas[top[0][0]]["doc_id"]
        assert loaded.top(query, 5, {"doc_id": doc}) == built.top(query, 5, {"doc_id": doc})
    assert list(loaded.texts) == built.texts and list(loaded.metas) == built.metas


def test_a_planted_pickle_in_the_index_is_never_run(built: LexicalIndex, tmp_path: Path) -> None:
    """An earlier format's files (pickles) are not read (the index is rebuilt from Chroma), and a
    pickle put in place of the current files is refused as bad data, not run."""
    directory = tmp_path / "lexical"
    marker = tmp_path / "owned"
    payload = planted_pickle(marker)
    built.save(directory)
    for name in ("chunks.pkl", "ids.pkl", "tokens.pkl"):
        (directory / name).write_bytes(payload)
    assert LexicalIndex.load(directory) is not None  # the current files are read, the pickles ignored
    (directory / "ids.marshal").write_bytes(payload)
    assert LexicalIndex.load(directory) is None and not marker.exists()
    built.save(directory)
    (directory / "tokens.marshal").write_bytes(payload)
    loaded = LexicalIndex.load(directory)
    assert loaded is not None and loaded.tokens == built.tokens and not marker.exists()  # recomputed
    meta = json.loads((directory / "meta.json").read_text())
    (directory / "meta.json").write_text(json.dumps({**meta, "format": meta["format"] - 1}))
    assert LexicalIndex.load(directory) is None and not marker.exists()  # an earlier format: rebuilt
    pickle.loads(payload)  # the payload is real: unpickled, it runs
    assert marker.read_text() == "ran"


def test_missing_records_are_not_trusted(built: LexicalIndex, tmp_path: Path) -> None:
    directory = tmp_path / "lexical"
    built.save(directory)
    (directory / chunk_records.TEXTS).unlink()
    assert LexicalIndex.load(directory) is None  # rebuilt from Chroma by the retriever


