"""The persisted BM25 index: saved score matrix memory-mapped on load, token lists read only on demand,
and anything unreadable or of an older format rebuilt from Chroma rather than trusted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import IndexedCorpus

from assistant.retrieval import LexicalIndex, analyse, chunk_tokens


@pytest.fixture(scope="module")
def built(indexed_corpus: IndexedCorpus) -> LexicalIndex:
    return LexicalIndex.build(indexed_corpus.store)


QUESTIONS = [
    "What are the five strategic focus areas of the Changzhou alliance?",
    "常州检验检测认证产教联盟是由哪个单位牵头发起的？",
    "葫芦种植面积",
]


def test_saved_index_loads_memory_mapped_and_scores_the_same(built: LexicalIndex, tmp_path: Path) -> None:
    built.save(tmp_path / "lexical")
    loaded = LexicalIndex.load(tmp_path / "lexical")
    assert loaded is not None
    assert isinstance(loaded._data, np.memmap) and isinstance(loaded._indptr, np.memmap)
    assert loaded._tokens is None  # not read at start-up
    assert loaded.ids == built.ids and loaded.texts == built.texts and loaded.metas == built.metas
    assert loaded.generation == built.generation and loaded.vocab == built.vocab
    assert np.array_equal(loaded.idf, built.idf)
    assert loaded.char_df == built.char_df and loaded._tokens is None  # chars.json, not the token lists
    for question in QUESTIONS:
        terms = analyse(question)
        query = terms.tokens + terms.translated
        assert query
        assert np.array_equal(loaded.scores(query), built.scores(query)), question
        assert loaded.top(query, 5) == built.top(query, 5)
        assert loaded.top(query, 5)  # the sample corpus answers these
    assert loaded.tokens == built.tokens  # read from tokens.marshal when a rebuild needs them


def test_missing_token_file_is_recomputed(built: LexicalIndex, tmp_path: Path) -> None:
    built.save(tmp_path / "lexical")
    (tmp_path / "lexical" / "tokens.marshal").unlink()
    loaded = LexicalIndex.load(tmp_path / "lexical")
    assert loaded is not None
    assert loaded.tokens == [chunk_tokens(t, m) for t, m in zip(built.texts, built.metas, strict=True)]
    assert loaded.tokens == built.tokens


def test_older_format_and_damaged_files_are_not_trusted(built: LexicalIndex, tmp_path: Path) -> None:
    good = tmp_path / "good"
    built.save(good)
    assert LexicalIndex.load(good) is not None

    old = tmp_path / "old"
    shutil.copytree(good, old)
    meta = json.loads((old / "meta.json").read_text())
    del meta["format"]  # what earlier versions wrote (they pickled token lists only)
    (old / "meta.json").write_text(json.dumps(meta))
    assert LexicalIndex.load(old) is None

    cut = tmp_path / "cut"
    shutil.copytree(good, cut)
    data = (cut / "bm25-data.npy").read_bytes()
    (cut / "bm25-data.npy").write_bytes(data[: len(data) // 2])
    assert LexicalIndex.load(cut) is None

    mismatched = tmp_path / "mismatched"
    shutil.copytree(good, mismatched)
    np.save(mismatched / "bm25-indices.npy", np.zeros(3, dtype=np.int32))
    assert LexicalIndex.load(mismatched) is None

    assert LexicalIndex.load(tmp_path / "absent") is None


def test_rebuild_reuses_the_lazily_loaded_tokens(indexed_corpus: IndexedCorpus, built: LexicalIndex,
                                                 tmp_path: Path) -> None:
    built.save(tmp_path / "lexical")
    loaded = LexicalIndex.load(tmp_path / "lexical")
    assert loaded is not None
    rebuilt = LexicalIndex.build(indexed_corpus.store, loaded)
    assert rebuilt.ids == built.ids and rebuilt.vocab == built.vocab
    assert np.array_equal(np.asarray(rebuilt._data), np.asarray(built._data))


def test_tokens_read_late_belong_to_the_index_that_was_loaded(built: LexicalIndex, tmp_path: Path) -> None:
    """An index loaded before a later save (same number of chunks, other chunks: a replaced document)
    reads its token lists lazily; it must get its own, never the later save's in its positions."""
    directory = tmp_path / "lexical"
    built.save(directory)
    loaded = LexicalIndex.load(directory)
    assert loaded is not None and loaded._tokens is None
    # The same number of chunks in another order: what a later save of other content looks like by length.
    order = list(reversed(range(len(built.ids))))
    other = LexicalIndex([built.ids[i] for i in order], [built.texts[i] for i in order],
                         [built.metas[i] for i in order], [built.tokens[i] for i in order], "other-generation")
    other.save(directory)
    assert loaded.tokens == built.tokens  # recomputed from its own texts, not the other save's list
    again = LexicalIndex.load(directory)
    assert again is not None and again.tokens == other.tokens  # the later save's own lists are used
