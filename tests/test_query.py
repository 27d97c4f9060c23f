"""``query.analyse_query``: a question analysed once, as retrieval and the answer stage read it."""

from __future__ import annotations

import numpy as np
from conftest import IndexedCorpus

from assistant.chat import Rewrite
from assistant.embedding import Embedder, EmbeddingSettings
from assistant.query import analyse_query
from assistant.retrieval import LexicalIndex, analyse, plain_query
from assistant.schema import CorpusStats, Retrieved
from assistant.text import tokenize


def test_an_elliptical_follow_up_asks_what_the_previous_question_asked() -> None:
    earlier = "When was the Changzhou alliance founded?"
    q = analyse_query("What about Nanhai?", Rewrite("What about Nanhai?", earlier), focus_weight=1.0)
    assert q.text == "What about Nanhai?"
    assert q.standalone == q.asks == f"{earlier} What about Nanhai?"
    assert (q.kind, q.types, q.names, q.followup, q.language) == ("when", (), ("Nanhai",), True, "en")
    # Search with the whole standalone question; choose sentences by the new words, the carried ones at half.
    assert q.terms.tokens == [("changzhou", 1.0), ("allianc", 1.0), ("found", 1.0), ("nanhai", 1.0)]
    assert q.answer_terms.tokens == [("nanhai", 1.0), ("changzhou", 0.5), ("allianc", 0.5), ("found", 0.5)]


def test_kinds_types_roles_and_counted_words() -> None:
    count = analyse_query("How many colleges joined the alliance?")
    assert count.kind == "number" and count.role == frozenset() and count.types == ()
    assert {"colleg", "institut", "school", "院校", "学校"} <= count.counted
    role = analyse_query("Who is the president of the Changzhou association?")
    assert role.kind is None and role.names == ("Changzhou",)
    assert role.role == frozenset({"presid", "总统", "大总统", "校长"})
    assert role.counted == frozenset()  # only "how many" questions count
    phone = analyse_query("What is the phone number of the office?")
    assert (phone.types, phone.kind) == (("phone",), "number")
    assert analyse_query("Tell me about the alliance", subject="Suzhou").names == ("Suzhou",)
    # Traditional characters are analysed as simplified ones: the lexicons' patterns are written so.
    traditional = analyse_query("廣西總共有幾所技工院校？")
    simplified = analyse_query("广西总共有几所技工院校？")
    assert traditional.kind == simplified.kind == "number"
    assert traditional.counted == simplified.counted and "院校" in simplified.counted
    assert traditional.asks == "广西总共有几所技工院校？" and traditional.text == "廣西總共有幾所技工院校？"
    focus = analyse_query("苏州联盟的龙头企业来自哪个产业体系？").focus
    assert focus and analyse_query("蘇州聯盟的龍頭企業來自哪個產業體系？").focus == focus


def test_focus_words_weigh_more_only_when_choosing_sentences() -> None:
    q = analyse_query("核心合作企业有哪些？", focus_weight=1.0)
    assert q.focus == "核心合作企业" and q.language == "zh"
    assert q.terms == analyse("核心合作企业有哪些？")  # the search's terms
    assert dict(q.answer_terms.tokens) == {"核心": 2.0, "合作": 2.0, "企业": 2.0, "心合": 0.2, "作企": 0.2}
    # Without a focus weight the answer's terms are the search's.
    plain = analyse_query("核心合作企业有哪些？")
    assert plain.answer_terms is plain.terms


def test_plain_query_is_the_text_alone() -> None:
    q = plain_query("Which colleges joined?")
    assert (q.text, q.standalone, q.asks, q.answer_terms) == ("Which colleges joined?",) * 3 + (q.terms,)
    assert (q.kind, q.names, q.followup) == (None, (), False)


def test_the_lexical_index_gives_the_corpus_statistics_the_answer_stage_reads() -> None:
    texts = ["The alliance was founded in 2021.", "常州产教融合联盟成立。"]
    index = LexicalIndex(["a", "b"], texts, [{"language": "en"}, {"language": "zh"}], [tokenize(t) for t in texts], "g")
    stats: CorpusStats = index
    assert len(stats) == 2 and stats.script_share("zh") == 0.5
    assert stats.has_term("allianc") and not stats.has_term("nanhai")
    assert stats.term_idf("allianc") > 0 and stats.term_idf("nanhai") == 0.0


def test_retrieved_passages_carry_the_best_dense_similarity() -> None:
    found = Retrieved([], best_dense=0.61)
    assert found == [] and found.best_dense == 0.61 and isinstance(found, list)


def test_chinese_text_reaches_the_english_only_model_as_its_gloss(embedder: Embedder) -> None:
    zh = analyse_query("常州检验检测认证产教联盟是由哪个单位牵头发起的？").standalone
    gloss = embedder.reading(zh)
    assert "Changzhou" in gloss and "alliance" in gloss and "inspection" in gloss
    en = "Who initiated the Changzhou testing alliance?"
    assert embedder.reading(en) == en  # English is read as written
    assert embedder.reading_name == "gloss-zh-en"
    raw = Embedder(EmbeddingSettings(gloss_chinese=False))
    assert raw.reading(zh) == zh and raw.reading_name == ""
    # The English-only model finds the gloss closer to the English question than the Chinese itself,
    # and questions and passages are read the same way.
    q_zh, q_en = embedder.encode_queries([zh, en])
    r_zh = raw.encode_queries([zh])[0]
    assert np.allclose(q_zh, embedder.encode_queries([gloss])[0])
    assert float(np.dot(q_zh, q_en)) > float(np.dot(r_zh, q_en)) + 0.2
    p_zh = embedder.encode_passages([zh])[0]
    assert np.allclose(p_zh, embedder.encode_passages([gloss])[0])


def test_the_answerability_threshold_decides_over_a_real_index(indexed_corpus: IndexedCorpus) -> None:
    from dataclasses import replace

    from assistant.config import Config
    from assistant.core import Assistant

    base = Config.from_env({}, index_dir=indexed_corpus.index, corpus_dir=indexed_corpus.corpus)
    question = "When was the Changzhou Inspection, Testing and Certification Industry-Education Alliance launched?"
    answered = Assistant(base).ask(question)
    assert not answered.abstained and answered.citations
    strict = replace(base, answer=replace(base.answer, answerability_threshold=1.0))
    declined = Assistant(strict).ask(question)
    assert declined.abstained and any("seem not to answer" in n for n in declined.notes)
