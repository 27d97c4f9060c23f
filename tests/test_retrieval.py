"""Hybrid retrieval and grounded answers on the sample corpus (real model, real Chroma), plus the pure
maths (RRF, coverage) with exact values."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from assistant.answer import (
    ANSWER_KINDS,
    AnswerSettings,
    Candidate,
    answer_kind,
    asked_role,
    asks_source,
    cited_first,
    combine_answers,
    counted_tokens,
    counts,
    expected_types,
    first_missing,
    is_heading,
    missing_types,
    names_new_org,
    names_role,
    score_candidates,
    select,
    source_line,
    weighted_share,
    with_continuation,
)
from assistant.chat import Rewrite
from assistant.chunking import ChunkerSettings
from assistant.config import Config
from assistant.core import Assistant
from assistant.documents import source_text
from assistant.errors import ConfigError, QuestionError
from assistant.query import analyse_query
from assistant.retrieval import (
    BIGRAM_WEIGHT,
    LIGHT_VERB_WEIGHT,
    LexicalIndex,
    RetrievalSettings,
    analyse,
    char_coverage,
    chroma_where,
    defines,
    definition_subject,
    focus_text,
    matches,
    merge_weighted,
    rrf,
    title_named,
    validate_filters,
    without_answer_count,
)
from assistant.schema import Answer, AnswerSentence, Citation, Passage, Span
from assistant.text import tokenize

ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- pure functions


def test_rrf_exact_values() -> None:
    fused = rrf({"a": ["x", "y", "z"], "b": ["y", "w"]}, {"a": 1.0, "b": 2.0}, k=1)
    scores = dict(fused)
    assert scores["x"] == pytest.approx(1 / 2)
    assert scores["y"] == pytest.approx(1 / 3 + 2 / 2)
    assert scores["z"] == pytest.approx(1 / 4)
    assert scores["w"] == pytest.approx(2 / 3)
    assert [d for d, _ in fused] == ["y", "w", "x", "z"]


def test_rrf_default_weights_ties_and_zero_weight() -> None:
    fused = rrf({"a": ["p", "q"], "b": ["q", "p"]}, k=60)
    assert fused[0][1] == pytest.approx(fused[1][1]) == pytest.approx(1 / 61 + 1 / 62)
    assert [d for d, _ in fused] == ["p", "q"]  # ties keep first appearance
    assert rrf({"a": ["p"], "b": ["q"]}, {"a": 0.0}, k=0) == [("q", 1.0)]
    with pytest.raises(ValueError):
        rrf({"a": ["p"]}, k=-1)


def test_merge_weighted_sums_repeats_in_order() -> None:
    assert merge_weighted([("a", 1.0), ("b", 0.5)], [("b", 0.25), ("c", 2.0)]) == [
        ("a", 1.0),
        ("b", 0.75),
        ("c", 2.0),
    ]


def test_weights_follow_the_script_share() -> None:
    s = RetrievalSettings()
    assert s.weights_for("zh", 0.0) == {"dense": 0.2, "bm25": pytest.approx(0.6), "translated": pytest.approx(1.0)}
    assert s.weights_for("zh", 1.0) == {"dense": 0.2, "bm25": pytest.approx(1.0), "translated": pytest.approx(0.1)}
    assert s.weights_for("en", 1.0)["bm25"] == pytest.approx(1.0)
    fixed = RetrievalSettings(weights={"dense": 1.0, "bm25": 0.0, "translated": 0.0})
    assert fixed.weights_for("zh", 0.3) == {"dense": 1.0, "bm25": 0.0, "translated": 0.0}


def test_settings_validation_names_the_value() -> None:
    with pytest.raises(ConfigError, match="top_k must be between 1 and 1000, got 0"):
        RetrievalSettings(top_k=0)
    with pytest.raises(ConfigError, match="unknown fusion weights"):
        RetrievalSettings(weights={"sparse": 1.0})
    with pytest.raises(ConfigError, match=r"-1"):
        RetrievalSettings(weights={"dense": -1.0})
    with pytest.raises(ConfigError, match="char_weight must be between 0 and 100, got -0.5"):
        RetrievalSettings(char_weight=-0.5)


def test_char_coverage_is_the_weighted_share_found() -> None:
    weights = [("出", 1.0), ("生", 2.0), ("地", 1.0)]
    assert char_coverage(weights, frozenset("生于旧金山")) == 0.5
    assert char_coverage(weights, frozenset("出生地")) == 1.0
    assert char_coverage(weights, frozenset()) == 0.0
    assert char_coverage([], frozenset("出生")) == 0.0


@pytest.mark.parametrize(
    ("question", "subject"),
    [
        ("什么是“乡里制”？", "乡里制"),
        ("什么是约化群？", "约化群"),
        ("羊水栓塞是什么？", "羊水栓塞"),
        ("什麼是三角關係？", "三角关系"),  # folded to simplified
        ("“乡里制”的特点是什么？", ""),  # asks about a property, not a definition
        ("锦地罗又被称之为什么？", ""),
        ("What is a reductive group?", ""),
    ],
)
def test_definition_subject(question: str, subject: str) -> None:
    assert definition_subject(question) == subject


def test_defines() -> None:
    assert defines("在数学中，约化群是幂单根为平凡群的代数群。", "约化群")
    assert defines("三角关系，亦称做三角恋。", "三角关系")  # opens with the subject
    assert defines("锦地罗（学名：），是茅膏菜科的植物。", "锦地罗")
    assert defines("羊水栓塞為一種罕見的急症。", "羊水栓塞")
    assert not defines("另外，三角关系也可发生在同性伴侣之间。", "三角关系")
    assert not defines("约化群是代数群。", "")


def test_title_named() -> None:
    assert title_named("瓦士本市 (威斯康辛州)", "瓦士本市的地理位置在哪儿？")
    assert title_named("錦地羅", "锦地罗又被称之为什么？")  # folded to simplified
    assert title_named("绝对SuperStar (第一届)", "第一届《绝对SuperStar》的男子组指定演唱的是哪首歌？")
    assert not title_named("三角关系", "锦地罗又被称之为什么？")
    assert not title_named("龙", "龙胆又被称之为什么？")  # one character is too little
    assert not title_named("", "什么是约化群？")


def test_is_heading() -> None:
    assert is_heading("# 青石巷")
    assert is_heading("## Fees and dates\n")
    assert is_heading("Qingshi Lane:", "Qingshi Lane")  # the title again, punctuation aside
    assert not is_heading("Qingshi Lane is old.", "Qingshi Lane is old.")  # a first sentence as the title
    assert is_heading("青石巷", "青石巷")
    assert not is_heading("#3 was the first model built here.")  # no space after the mark
    assert not is_heading("# 青石巷\n青石巷是临江市老城区的一条古街。")  # a heading and a sentence
    assert not is_heading("青石巷是临江市老城区的一条古街。", "青石巷")
    assert not is_heading("", "")
    # a news headline as long as a sentence states something, and stays quotable
    headline = "人工智能重塑技工教育新图景——全国百所院校无锡共话产教融合新路径"
    assert not is_heading(headline, headline)
    english = "Suzhou sets up the first standardized industry-education alliance in China"
    assert not is_heading(english, english) and is_heading("Suzhou alliance", "Suzhou alliance")


def test_char_document_frequency_and_idf() -> None:
    index = LexicalIndex(["a", "b", "c"], ["", "", ""], [{}, {}, {}], [["出生", "2013"], ["生于", "生"], ["美国"]], "g")
    assert index.char_df == {"出": 1, "生": 2, "于": 1, "美": 1, "国": 1}
    assert index.char_idf("生") == pytest.approx(math.log(1 + 1.5 / 2.5))
    assert index.char_idf("出") == pytest.approx(math.log(1 + 2.5 / 1.5))
    assert index.char_idf("龙") == pytest.approx(math.log(1 + 3.5 / 0.5))  # unseen: the highest


def test_filters_validated_and_translated() -> None:
    f = validate_filters({"outlet": "Xin Hua Ri Bao", "date_from": "2025-10-26", "language": ["en", "zh"]})
    assert chroma_where(f) == {
        "$and": [
            {"outlet": "Xin Hua Ri Bao"},
            {"language": {"$in": ["en", "zh"]}},
            {"date_num": {"$gte": 20251026}},
        ]
    }
    assert matches({"outlet": "Xin Hua Ri Bao", "language": "en", "date_num": 20251026}, f)
    assert not matches({"outlet": "Xin Hua Ri Bao", "language": "en", "date_num": 20251025}, f)
    with pytest.raises(ConfigError, match="unknown filter 'colour'"):
        validate_filters({"colour": "red"})
    with pytest.raises(ConfigError, match="YYYY-MM-DD"):
        validate_filters({"date_to": "last week"})


@pytest.mark.parametrize(
    ("question", "focus"),
    [
        ("重庆理工大学电子信息材料卓越人才班的核心合作企业有哪些？", "核心合作企业"),
        ("重庆理工大学卓越人才班实行什么导师制度？", "导师制度"),
        ("山东信息职业技术学院已经举办了多少场培训？", "培训"),
        ("无锡这次产教融合论坛由谁主持？", "主持"),
        # a coverb before the question word: the subject is before it, what is asked for after it
        ("蓝线裸顶鲷以什么为食？", "为食"),
        ("黄鳍紫鱼主要以什么为食？", "为食"),
        ("阿若憍陈如为什么被称为阿若？", ""),
        ("常州检验检测认证产教联盟的五个重点方向是什么？", "五个重点方向"),  # 方向 ends in 向: not a coverb
        ("When was the alliance launched?", ""),  # English questions have none
        ("常州成立了什么样的产教联盟？", "产教联盟"),  # 什么样的 is the question word, not 什么 + 样
        ("常州检验检测认证产教联盟是什么时候成立的？", ""),  # "when": 成立 is what happened, not what is asked
    ],
)
def test_focus_text_is_next_to_the_question_word(question: str, focus: str) -> None:
    assert focus_text(question) == focus


def test_focus_words_weigh_more_only_when_asked() -> None:
    question = "重庆理工大学卓越人才班实行什么导师制度？"
    plain, focused = analyse(question), analyse(question, focus_weight=1.0)
    weight = {frozenset(t for t, _ in alts): imp for imp, alts in plain.groups}
    boosted = {frozenset(t for t, _ in alts): imp for imp, alts in focused.groups}
    mentor = next(k for k in weight if "mentor" in k or "tutor" in k)
    chongqing = next(k for k in weight if "chongq" in k or "chongqing" in k)
    assert boosted[mentor] == pytest.approx(2 * weight[mentor])
    assert boosted[chongqing] == pytest.approx(weight[chongqing])


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Which two platforms will the community build?", "Which platforms will the community build?"),
        ("What three areas does it focus on?", "What areas does it focus on?"),
        ("哪两个城市成立了联盟？", "哪个城市成立了联盟？"),
        ("哪三家企业参与？", "哪家企业参与？"),
        ("What two-way system was set up?", "What two-way system was set up?"),  # a word, not a count
        ("两个平台是什么？", "两个平台是什么？"),
        ("How many of the two bases open this year?", "How many of the two bases open this year?"),
    ],
)
def test_without_answer_count(question: str, expected: str) -> None:
    assert without_answer_count(question) == expected


def test_the_answer_count_is_not_a_query_term() -> None:
    assert "two" not in {t for t, _ in analyse("Which two platforms will the community build?").tokens}
    assert "two" in {t for t, _ in analyse("Which platform has a two-way flow system?").tokens}


def test_question_bigrams_weigh_less_than_its_words() -> None:
    weights = dict(analyse("2017年4月，罗保铭担任什么职务？").tokens)
    assert weights["罗保铭"] == weights["担任"] == weights["职务"] == 1.0  # jieba's words
    assert weights["罗保"] == weights["保铭"] == weights["铭担"] == pytest.approx(BIGRAM_WEIGHT)  # bigrams only
    full = dict(analyse("2017年4月，罗保铭担任什么职务？", bigram_weight=1.0).tokens)
    assert full["铭担"] == 1.0 and set(full) == set(weights)
    assert dict(analyse("Who chairs the alliance?").tokens) == {"chair": 1.0, "allianc": 1.0}


def test_chinese_question_gets_english_translation_groups() -> None:
    terms = analyse("常州检验检测认证产教联盟的五个重点方向是什么？")
    assert terms.language == "zh"
    translated = {t for t, _ in terms.translated}
    assert {"changzhou", "allianc"} <= translated
    # one group per Chinese word: 常州 is a group of its own
    assert any(alts == [("changzhou", 1.0)] for _, alts in terms.groups)


def test_counted_tokens_name_what_a_how_many_question_counts() -> None:
    # English, with dictionary synonyms through Chinese and back: enterprises -> 企业 -> company
    assert {"enterpris", "compani", "企业"} <= counted_tokens("How many enterprises joined the alliance?")
    assert {"train", "session"} <= counted_tokens("How many training sessions has it hosted?")
    # Chinese: the measure word is dropped, the noun translated
    assert {"会员", "member"} <= counted_tokens("哈尔滨工业大学扬州校友会现在有多少名会员？")
    assert {"单位", "unit", "group"} <= counted_tokens("工业互联网安全共同体年会上有几组单位签署了战略合作协议？")
    # "哪几家" asks which, not how many; no question word, no count
    assert counted_tokens("智能新能源汽车产教融合共同体由哪几家单位联合发起成立？") == frozenset()
    assert counted_tokens("Who leads the alliance?") == frozenset()
    # only a measure word after the question word: the thing counted stands before it
    assert {"成员", "单位", "member", "unit"} <= counted_tokens("加入共同体的成员单位一共有多少家？")
    assert {"企业", "enterpris"} <= counted_tokens("联盟有多少家企业？")
    assert counted_tokens("这个联盟总共有多少家？") == frozenset()  # its members: not said
    assert counted_tokens("巴西的大豆产量在全球排第几名？") == frozenset()  # a rank


def test_counts_needs_a_number_before_the_counted_thing() -> None:
    students = counted_tokens("How many students are enrolled at Wuxi Technician College?")
    assert counts("The college now teaches 12,000 students in four programmes.", students)
    assert counts("It enrolled three thousand new students this year.", students)
    # numbers that count something else, or nothing
    assert not counts("It has a 70-year history and a graduate employment rate exceeding 98%.", students)
    assert not counts("Students praised the 2024 programme.", students)
    # a count and its noun stand in one phrase; brackets do not end it
    campuses = counted_tokens("那哈工大一共有几个校区？")
    assert not counts("It is a university established in 1920, with multiple campuses and 35 colleges.", campuses)
    assert counts("It is a university with 3 campuses and 35 colleges.", campuses)
    couples = counted_tokens("How many married couples were there?")
    assert counts("There were 68,511 (43.3%) married couples.", couples)
    members = counted_tokens("校友会有多少名会员？")
    assert counts("校友会共有120名会员。", members)
    assert not counts("校友会成立于2019年。", members)
    assert counts("Today the association has over 500 members.", members)


def test_cited_first_moves_the_cited_passages_to_the_front_in_citation_order() -> None:
    ps = [Passage(chunk_id=c, doc_id=c, text=c, start=0, end=1, score=0.0) for c in "abcde"]
    assert [p.chunk_id for p in cited_first(ps, ["d", "b", "d"])] == ["d", "b", "a", "c", "e"]
    assert [p.chunk_id for p in cited_first(ps, [])] == list("abcde")
    assert [p.chunk_id for p in cited_first(ps, ["zz"])] == list("abcde")  # unknown ids change nothing


def _part(question: str, quotes: list[tuple[str, str, int]], retrieved: str) -> Answer:
    """An answer quoting ``(doc_id, quote, start)`` triples, one sentence each, numbered from 1."""
    cites = [
        Citation(n, doc, doc, "", "", "", doc, quote, start, start + len(quote), quote, start, start + len(quote))
        for n, (doc, quote, start) in enumerate(quotes, start=1)
    ]
    sentences = [AnswerSentence(c.quote, [c.n]) for c in cites]
    passages = [Passage(chunk_id=c, doc_id=c, text=c, start=0, end=1, score=0.0) for c in retrieved]
    return Answer(question, question, "", not quotes, "zh", cites, sentences, retrieved=passages, confidence=0.5)


def test_combine_answers_renumbers_dedupes_and_says_what_is_missing() -> None:
    a = _part("A?", [("x", "Alpha one.", 0), ("y", "Shared.", 5)], "xyq")
    b = _part("B?", [("y", "Shared.", 5), ("z", "Beta.", 9)], "zyr")
    missing = _part("C?", [], "q")
    missing.notes = ["weak match"]
    out = combine_answers("A、B和C分别是什么？", [("A", a), ("B", b), ("C", missing)], "zh")
    assert not out.abstained
    assert [(c.n, c.doc_id, c.quote) for c in out.citations] == [
        (1, "x", "Alpha one."),
        (2, "y", "Shared."),
        (3, "z", "Beta."),
    ]
    assert [(s.text, s.citations) for s in out.sentences] == [("Alpha one.", [1]), ("Shared.", [2]), ("Beta.", [3])]
    assert out.answer == "Alpha one. [1] Shared. [2] Beta. [3] 在联盟文档中没有找到关于“C”的内容。"
    # retrieved: interleaved by rank (x z y q r), then the cited ones first in citation order
    assert [p.chunk_id for p in out.retrieved] == ["x", "y", "z", "q", "r"]
    assert "C: weak match" in out.notes
    english = combine_answers("What did A and C set up, respectively?", [("A", a), ("C", missing)], "en")
    assert english.answer.endswith("Nothing was found in the alliance documents about C.")
    nothing = combine_answers("A和C分别是什么？", [("A", missing), ("C", missing)], "zh")
    assert nothing.abstained and not nothing.citations and [p.chunk_id for p in nothing.related] == ["q"]


def test_asked_role_names_the_role_a_who_question_asks_about() -> None:
    assert {"manag", "经理"} <= asked_role("Who is the general manager of SGS-CSTC Standards Technical Services?")
    assert {"会长", "presid"} <= asked_role("首任会长是谁？")
    # no role named, or no "who": no check
    assert asked_role("Who unveiled its plaque?") == frozenset()
    assert asked_role("杭州的检验检测认证产教联盟由谁牵头？") == frozenset()
    assert asked_role("会长在会上说了什么？") == frozenset()
    # the role through a verb or an election, and "what is the ROLE called"
    assert {"chair", "chairman"} <= asked_role("Who chairs the standardization alliance?")
    assert {"moder", "host"} <= asked_role("Who moderated the forum?")
    assert "chair" in asked_role("Who was elected chair of the alliance?")
    assert {"校长", "presid"} <= asked_role("江苏科技大学现任校长叫什么？")
    assert asked_role("Who attended the forum?") == frozenset()


def test_a_deputy_does_not_name_the_role_asked_about() -> None:
    def named(question: str, sentence: str) -> bool:
        return names_role(sentence, frozenset(tokenize(sentence)), asked_role(question))

    vice = "College Vice President Tian Zhongbao said that the alliance helps the school."
    assert not named("江苏科技大学现任校长叫什么？", vice)
    assert not named("Who is the president of the college?", vice)
    assert named("Who is the president of the college?", "The president of the college, Wang Li, spoke first.")
    assert named("Who is the vice president of the college?", vice)  # asked for: every mention counts
    assert not named("校长是谁？", "该校副校长张三出席了仪式。")
    assert named("校长是谁？", "校长李四在仪式上致辞。")
    assert named("副校长是谁？", "该校副校长张三出席了仪式。")
    # one plain mention is enough, beside a deputy's
    assert named("Who is the chairman?", "Deputy chairman Li Wei and chairman Zhao Gang signed it.")
    assert not named("Who attended the forum?", vice)  # no role asked


def test_expected_answer_types() -> None:
    assert expected_types("南海区产教联盟的联系电话是多少？") == ["phone"]
    assert expected_types("What is the membership fee of the Changzhou alliance?") == ["money"]
    assert expected_types("How have the starting salaries changed?") == []  # no amount asked
    assert expected_types("Who leads the alliance?") == []
    # a year is asked for, which a day of the month is not
    assert expected_types("What year was the alliance set up?") == expected_types("联盟是哪一年成立的？") == ["year"]
    assert expected_types("When is the application deadline?") == ["date"]
    march = Passage("c", "d", "On March 21, Changzhou unveiled its alliance.", 0, 45, 1.0)
    assert missing_types("What year was the alliance set up?", [march]) == ["year"]
    assert missing_types("When is the deadline?", [march]) == []
    p = Passage("c", "d", "Call 0757-86228888 for details.", 0, 31, 1.0)
    assert missing_types("联系电话是多少？", [p]) == []
    assert missing_types("What is the e-mail address?", [p]) == ["email"]


def test_missing_types_looks_at_the_best_matching_sentences() -> None:
    text = "The class opened on 3 March 2024. Students apply through the college."
    p = Passage("c", "d", text, 0, len(text), 1.0)
    opened = Candidate(p, 0, Span(0, 32), text[:32], 0.9, 0.9)
    apply = Candidate(p, 0, Span(33, len(text)), text[33:], 0.8, 1.0)
    question = "What is the application deadline?"
    assert missing_types(question, [p]) == []  # the passage holds a date...
    assert missing_types(question, [p], candidates=[apply, opened], cutoff=0.95) == ["date"]  # ...not where it matches
    assert missing_types(question, [p], candidates=[apply, opened], cutoff=0.5) == []


def test_answer_kind() -> None:
    assert answer_kind("How many colleges are members?") == "number"
    assert answer_kind("南海区产教联盟是什么时候成立的？") == "when"
    assert answer_kind("Who leads the alliance?") is None
    assert answer_kind("哈爾濱工業大學是哪一年創辦的？") == answer_kind("In what year was HIT founded?") == "year"
    year = ANSWER_KINDS["year"][1]
    assert year.search("a key national university established in 1920") and year.search("始建于1920年")
    assert not year.search("The alumni association was established on October 26")
    assert answer_kind("为什么此战奠定了他在土佐的霸权？") == answer_kind("Why did the alliance form?") == "why"
    assert answer_kind("对亚硫酸盐过敏的反应表现为什么？") is None  # "manifests as what"
    assert answer_kind("五月艾在四川被称为什么？") is None  # "is called what"
    number = ANSWER_KINDS["number"][1]
    for text in ("76 companies", "nearly 10,000 people", "2.5% of students", "第3次", "三所学校", "twelve shipyards"):
        assert number.search(text), text
    for text in ("was held today (26th) at Shishan", "in the 21st century", "the 2nd and 3rd rounds"):
        assert not number.search(text), text
    why = ANSWER_KINDS["why"][1]
    assert why.search("由于元亲实行「一领具足」制度，因此集结约7300名士兵") and why.search("because of the floods")
    assert not why.search("此战奠定了长宗我部元亲在土佐的霸权。")
    # the aim, asked for ("what is the goal", "想把…办成什么样"), not a plan or a count
    for question in ("What is the purpose of the alliance?", "What role does the association want to play?",
                     "無錫技師學院想把學校辦成什麼樣？", "A-135反弹道导弹系统设计目的是什么？"):
        assert answer_kind(question) == "purpose", question
    assert answer_kind("How does the alliance plan to speed up training?") is None
    assert answer_kind("How many people was the module designed to carry?") == "number"
    purpose = ANSWER_KINDS["purpose"][1]
    assert purpose.search("It aims to establish a multi-level model") and purpose.search("旨在研究加拿大与亚洲关系")
    assert not purpose.search("The alliance was established on October 26.")


def test_answer_kind_org() -> None:
    for question in (
        "常州检验检测认证产教联盟是由哪个单位牵头发起的？",
        "智能新能源汽车产教融合共同体由哪几家单位联合发起成立？",
        "日本最大的半導體製造商是哪一家公司?",
        "Which company partners with Shandong Business Vocational College?",
        "Which vocational colleges joined the alliance?",
    ):
        assert answer_kind(question) == "org", question
    assert answer_kind("What is Harbin Institute of Technology's motto?") is None  # the name is the subject
    assert answer_kind("有几家单位参与？") == "number"  # 几家 counts; 哪几家 asks which
    assert answer_kind("无锡这次产教融合论坛由谁主持？") is None  # a person hosts
    assert answer_kind("Which forum took place with the launch?") is None


def test_a_further_sentence_must_add_more_than_the_documents_topic() -> None:
    first = "New positions such as data engineer have been integrated into the curriculum."
    second = "The cold chain logistics program leverages its brand."
    text = f"{first} {second} Other sentences about cold chain logistics follow."
    lexical = LexicalIndex(["c", "x"], [text, "unrelated"], [{}, {}], [tokenize(text), ["unrel"]], "g")
    passage = Passage("c", "d", text, 0, len(text), 1.0)
    terms = analyse("What new positions are offered in the cold chain logistics curriculum?")
    a = Candidate(passage, 0, Span(0, len(first)), first, 0.5, 1.0, frozenset(tokenize(first)))
    b = Candidate(passage, 0, Span(len(first) + 1, len(first) + 1 + len(second)), second, 0.5, 0.99)
    b = replace(b, tokens=frozenset(tokenize(second)))
    assert select([a, b], AnswerSettings(), terms, lexical) == [a, b]  # "cold chain logistics" is new
    topic = frozenset({"cold", "chain", "logist"})
    a, b = replace(a, topic=topic), replace(b, topic=topic)
    assert select([a, b], AnswerSettings(), terms, lexical) == [a]  # ...but only what the document is about


def test_light_verbs_weigh_less() -> None:
    weights = dict(analyse("What share of new talent comes through the vocational system?").tokens)
    assert weights["come"] == LIGHT_VERB_WEIGHT == 0.5
    assert weights["talent"] == weights["share"] == 1.0
    assert dict(analyse("Where did the delegation go?").tokens)["go"] == 0.5


def test_source_reference_marks_are_no_number() -> None:
    # News digests end sentences with their own "[1][2]" marks: they are not what "how many" asks for.
    marked = "The college has trained many professionals for the industry [1][2]."
    counted = "It has trained nearly 10,000 professionals for the industry."
    text = f"{marked} {counted}"
    tokens = tokenize(text)
    lexical = LexicalIndex(["c"], [text], [{}], [tokens], "g")
    spans = [Span(0, len(marked)), Span(len(marked) + 1, len(text))]
    passage = Passage("c", "d", text, 0, len(text), 1.0, sentences=spans)
    question = "How many professionals has the college trained?"
    query = analyse_query(question)
    # The hand-written score (one of the learned scorer's features) gives the answer kind its weight.
    typed = score_candidates([passage], query, lexical, AnswerSettings(learned=False))
    plain = score_candidates([passage], query, lexical, AnswerSettings(type_weight=0.0, learned=False))
    bonus = {c.text: c.score - next(p.score for p in plain if p.span == c.span) for c in typed}
    assert bonus[marked] == pytest.approx(0.0)
    assert bonus[counted] == pytest.approx(0.2)
    assert not counts("Students [2] professionals", frozenset({"profession"}))
    assert counts("10,000 professionals", frozenset({"profession"}))


def test_names_new_org() -> None:
    known = frozenset(tokenize("Which company partners with Shandong Business Vocational College?"))
    both = "The collaboration between Ice Wheel Environment Technology Co., Ltd. and Shandong Business Vocational"
    both += " College"
    assert names_new_org(both, known)
    assert not names_new_org("Shandong Business Vocational College's cold chain program leverages its brand", known)
    assert not names_new_org("The alliance will train talent for the region.", known)
    assert names_new_org("该联盟由上汽集团和同济大学联合发起。", frozenset(tokenize("哪几家单位发起")))


# --------------------------------------------------------------------------- on the sample corpus


@pytest.fixture(scope="module")
def assistant(tmp_path_factory: pytest.TempPathFactory) -> Assistant:
    tmp = tmp_path_factory.mktemp("retrieval")
    shutil.copytree(ROOT / "corpus", tmp / "corpus")
    a = Assistant(Config(index_dir=tmp / "index", corpus_dir=tmp / "corpus"))
    a.ingest()
    return a


def _source(a: Assistant, source: str) -> str:
    return source_text(a.config.corpus_dir / source)


@pytest.mark.slow
def test_english_answer_with_exact_citations(assistant: Assistant) -> None:
    answer = assistant.ask("How many standardization training bases will Suzhou establish in the first phase?")
    assert not answer.abstained
    assert "14 standardization training bases" in answer.answer
    assert [c.n for c in answer.citations] == list(range(1, len(answer.citations) + 1))
    for c in answer.citations:
        assert f"[{c.n}]" in answer.answer
        text = _source(assistant, c.source)
        assert text[c.start : c.end] == c.quote  # exact span of the quote in the file
        assert text[c.passage_start : c.passage_end] == c.text
        assert c.quote in c.text
    assert "[0]" not in answer.answer


@pytest.mark.slow
def test_a_question_about_the_article_itself_quotes_its_source_line(assistant: Assistant) -> None:
    # The digest's articles open with "Outlet· YYYY-MM-DD HH:MM", which the loader reads as metadata.
    for question, line in (
        ("Which outlet reported on the Wuxi forum about AI and education?", "Yang Zi Wan Bao Wang· 2025-10-27"),
        ("山东职教赋能区域经济那篇报道是哪家媒体发的？", "Zhong Guo Xin Wen Wang· 2025-10-28"),
    ):
        answer = assistant.ask(question)
        assert not answer.abstained and len(answer.citations) == 1, question
        assert answer.citations[0].quote.startswith(line), question
    # A question about what the article says is answered from its text as before.
    answer = assistant.ask("Who hosted the forum in Wuxi on AI and industry-education integration?")
    assert "Wu Jing" in answer.answer and "Yang Zi Wan Bao Wang" not in answer.answer


def test_asks_source() -> None:
    assert asks_source("When was the article about the Guangxi technical schools published?")
    assert asks_source("Which news outlet reported on the Suzhou alliance?")
    assert asks_source("那篇報道是哪家媒體發的？") and asks_source("这篇新闻是什么时候发布的？")
    assert not asks_source("Who reported that the plague had spread?")
    assert not asks_source("What did the report recommend?") and not asks_source("该报告提出了什么建议？")
    text = "Guang Xi Ri Bao· 2025-10-27 01:13"
    meta = {"outlet": "Guang Xi Ri Bao", "date": "2025-10-27"}
    p = Passage("c", "d", text + " Technical schools grew.", 0, len(text) + 24, 1.0, metadata=meta)
    line = Candidate(p, 0, Span(0, len(text)), text, 0.1, 0.1)
    other = Candidate(p, 0, Span(len(text) + 1, len(text) + 24), "Technical schools grew.", 0.9, 0.9)
    assert source_line([other, line], "d") is line
    assert source_line([other, line], "elsewhere") is None
    assert source_line([other], "d") is None


@pytest.mark.slow
def test_chinese_question_finds_english_passage(assistant: Assistant) -> None:
    answer = assistant.ask("东昌府区葫芦种植面积有多大？")
    assert not answer.abstained and answer.language == "zh"
    assert "30,000 acres" in " ".join(c.quote for c in answer.citations)
    assert answer.retrieved[0].doc_id == "003_bbf56349fcc5548d.txt#1"


@pytest.mark.slow
def test_a_question_about_two_subjects_cites_each(assistant: Assistant) -> None:
    question = "常州检验检测认证联盟和上海智能新能源汽车产教融合共同体分别有哪些企业参与牵头？"
    # Answered as one question, the best sentences all come from one document...
    whole, _ = assistant._extractive(question, Rewrite(question), None, None)
    assert len({c.doc_id for c in whole.citations}) == 1
    # ...so each subject is asked on its own, and each is cited.
    answer = assistant.ask(question)
    assert not answer.abstained and answer.language == "zh"
    docs = [c.doc_id[:4] for c in answer.citations]
    assert "000_" in docs and "002_" in docs
    assert [c.n for c in answer.citations] == list(range(1, len(answer.citations) + 1))
    for c in answer.citations:
        assert f"[{c.n}]" in answer.answer
        assert _source(assistant, c.source)[c.start : c.end] == c.quote
    assert answer.retrieved[0].chunk_id == answer.citations[0].chunk_id


@pytest.mark.slow
def test_a_subject_the_documents_never_mention_is_said_to_be_missing(assistant: Assistant) -> None:
    answer = assistant.ask("苏州和火星分别成立了什么联盟？")
    assert not answer.abstained
    assert answer.citations and all(c.doc_id.startswith("001_") for c in answer.citations)
    assert answer.answer.endswith("在联盟文档中没有找到关于“火星”的内容。")
    english = assistant.ask("What did Suzhou and Atlantis set up, respectively?")
    assert english.answer.endswith("Nothing was found in the alliance documents about Atlantis.")


@pytest.mark.slow
def test_which_two_does_not_look_for_the_word_two(assistant: Assistant) -> None:
    # With "two" as a query term, "a two-way flow system" outscored the sentence naming both platforms.
    answer = assistant.ask("Which two platforms will the smart new energy vehicle community build?")
    quotes = " ".join(c.quote for c in answer.citations)
    assert "service platform" in quotes and "innovation platform" in quotes
    assert "two-way" not in quotes


def _scored(a: Assistant, question: str, **off: float) -> tuple[list[Candidate], list[Candidate]]:
    """The sentences scored by the hand-written score (a feature of the learned scorer) for
    ``question`` with the default weights, and with ``off`` changed."""
    query = analyse_query(question, focus_weight=AnswerSettings().focus_weight)
    passages = a.retriever.retrieve(query)
    lexical = a.retriever.lexical
    return (
        score_candidates(passages, query, lexical, AnswerSettings(learned=False)),
        score_candidates(passages, query, lexical, AnswerSettings(learned=False, **off)),
    )


@pytest.mark.slow
def test_a_sentence_counting_what_is_asked_for_wins_across_languages(assistant: Assistant) -> None:
    question = "有几所职业院校的代表在无锡论坛上分享了经验？"
    lexical = assistant.retriever.lexical
    weighted, plain = _scored(assistant, question, count_weight=0.0)
    assert "six vocational colleges" in weighted[0].text  # "Representatives from six vocational colleges..."
    assert "six vocational colleges" not in plain[0].text  # "...sharing experiences" without it
    counted = counted_tokens(question)
    bonus = 0.4 * (1 - lexical.script_share("zh"))
    for c in weighted:
        same = next(p for p in plain if p.span == c.span and p.passage.chunk_id == c.passage.chunk_id)
        assert c.score == pytest.approx(same.score + bonus * counts(c.text, counted))
    # a question that does not ask "how many" is scored the same either way
    same_default, same_off = _scored(assistant, "无锡论坛由谁主持？", count_weight=0.0)
    assert [c.score for c in same_default] == [c.score for c in same_off]


@pytest.mark.slow
def test_a_light_verb_does_not_pick_the_sentence(assistant: Assistant) -> None:
    # "come" is rare in the sample corpus (IDF 3.5): at full weight "More than 70% of new employees in
    # key industries come from vocational schools" (Shandong) beat the national figure for "talent".
    answer = assistant.ask("What share of China's new skilled talent comes through the vocational education system?")
    assert "new skilled talents being trained through this system" in answer.citations[0].quote


@pytest.mark.slow
def test_an_elliptical_follow_up_asks_what_the_previous_question_asked(assistant: Assistant) -> None:
    # "What about Nanhai?" alone asks for nothing in particular; after "How many enterprises..." it
    # asks for a number, and the inaugural meeting "held today (26th)" holds none.
    history = ["How many enterprises joined the Suzhou standardized industry-education alliance?"]
    answer = assistant.ask("What about Nanhai?", history=history)
    assert not answer.abstained
    assert "76 companies in Nanhai District" in answer.citations[0].quote


@pytest.mark.slow
def test_which_organization_prefers_the_sentence_naming_one(assistant: Assistant) -> None:
    # The alliance's opening sentence matches 常州 检验 检测 认证 联盟 as well as the answer does;
    # the answer names the industrial park and the institute that lead it.
    question = "常州检验检测认证产教联盟是由哪个单位牵头发起的？"
    typed, plain = _scored(assistant, question, type_weight=0.0)
    assert typed[0].text.startswith("Spearheaded by the Sino-Europe (Changzhou) Testing")
    assert not plain[0].text.startswith("Spearheaded")
    answer = assistant.ask(question)
    assert answer.citations[0].quote.startswith("Spearheaded by")


@pytest.mark.slow
def test_digest_bullet_is_quoted_without_its_heading(assistant: Assistant) -> None:
    # The digest runs "Group 1 - ... [5] Group 2 - ..." on one line; the quote is the one bullet
    # that answers (the words next to 有哪些 decide it), with its exact span in the file.
    answer = assistant.ask("重庆理工大学电子信息材料卓越人才班的核心合作企业有哪些？")
    assert not answer.abstained
    quote = answer.citations[0].quote
    assert quote.startswith("Core partner companies, including Fujian Torch Electronic Technology")
    assert "Group" not in quote and len(quote) < 300
    c = answer.citations[0]
    assert _source(assistant, c.source)[c.start : c.end] == quote


@pytest.mark.slow
def test_traditional_chinese_question(assistant: Assistant) -> None:
    answer = assistant.ask("蘇州第一階段將建設多少個標準化培訓基地？")
    assert not answer.abstained
    assert any(p.doc_id == "001_19f0403027cb6d52.txt" for p in answer.retrieved[:3])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("question", "message"),
    [
        ("What is the recipe for a chocolate cake?", "I could not find this in the alliance documents."),
        ("深圳有哪些产教融合联盟？", "在联盟文档中没有找到相关内容。"),
        ("南海区产教联盟的联系电话是多少？", "在联盟文档中没有找到相关内容。"),
        # a role nobody in the documents holds, a count the documents never give
        (
            "Who is the principal of Changzhou Vocational Institute of Engineering?",
            "I could not find this in the alliance documents.",
        ),
        ("How many students does Wuxi Technician College have?", "I could not find this in the alliance documents."),
        ("What is the membership fee of the Changzhou alliance?", "I could not find this in the alliance documents."),
    ],
)
def test_abstains_off_topic_and_absent_facts(assistant: Assistant, question: str, message: str) -> None:
    answer = assistant.ask(question)
    assert answer.abstained
    assert answer.answer == message
    assert answer.citations == [] and answer.related  # closest passages offered instead
    assert answer.notes  # the reason is recorded


@pytest.mark.slow
def test_follow_up_uses_history(assistant: Assistant) -> None:
    answer = assistant.ask("那里有多少家企业参与？", history=["佛山南海区产教联盟在哪里成立？"])
    assert answer.standalone_question != answer.question
    assert "南海" in answer.standalone_question
    assert answer.retrieved[0].doc_id == "004_0a64f4667a42ecd1.txt"


@pytest.mark.slow
def test_filters_restrict_results(assistant: Assistant) -> None:
    answer = assistant.ask("industry-education integration", filters={"outlet": "Xin Hua Ri Bao"})
    assert answer.retrieved and {p.metadata["outlet"] for p in answer.retrieved} == {"Xin Hua Ri Bao"}
    answer = assistant.ask("industry-education integration", filters={"date_from": "2025-10-27"})
    assert all(p.metadata["date"] >= "2025-10-27" for p in answer.retrieved)


@pytest.mark.slow
def test_bad_questions(assistant: Assistant) -> None:
    with pytest.raises(QuestionError):
        assistant.ask("   ")
    long = assistant.ask("Suzhou alliance " * 2000)
    assert any("truncated" in n for n in long.notes)
    for q in ("?!?!", "🙂🙂", "'; DROP TABLE chunks; --", "<script>alert(1)</script>"):
        answer = assistant.ask(q)
        assert answer.answer  # a sensible answer or an abstention, never an exception


@pytest.mark.slow
def test_answer_is_json_serializable(assistant: Assistant) -> None:
    data = json.loads(json.dumps(assistant.ask("Who co-leads the Changzhou alliance?").to_dict()))
    assert data["citations"][0]["n"] == 1 and data["retrieved"]


def test_a_continuing_sentence_joins_the_quote() -> None:
    text = "The company built a new engine. It consumes 4 kg of steam per kWh. Sales began in May."
    p = Passage("c", "d", text, 0, len(text), 1.0, sentences=[Span(0, 31), Span(32, 66), Span(67, len(text))])
    first = Candidate(p, 0, Span(0, 31), text[:31], 0.8, 0.8)
    joined = with_continuation(first, [first])
    assert joined.text == "The company built a new engine. It consumes 4 kg of steam per kWh."
    assert (joined.span.start, joined.span.end) == (0, 66)
    second = Candidate(p, 0, Span(32, 66), text[32:66], 0.5, 0.5)
    assert with_continuation(second, [second]).text == text[32:66]  # "Sales…" does not continue it
    assert with_continuation(first, [first, second]).text == text[:31]  # already quoted on its own
    assert with_continuation(first, [first], max_chars=40).text == text[:31]  # too long together


def test_a_sentence_ending_in_a_colon_joins_what_it_announces() -> None:
    text = "The alliance outlined three focus areas: Training bases come first. Sales began in May."
    spans = [Span(0, 40), Span(41, 67), Span(68, len(text))]
    p = Passage("c", "d", text, 0, len(text), 1.0, sentences=spans)
    intro = Candidate(p, 0, spans[0], text[:40], 0.8, 0.8)
    assert intro.text.endswith(":")
    joined = with_continuation(intro, [intro])
    assert joined.text == "The alliance outlined three focus areas: Training bases come first."
    middle = Candidate(p, 0, spans[1], text[41:67], 0.5, 0.5)
    assert with_continuation(middle, [middle]).text == text[41:67]  # ends in a full stop: not continued


# A made-up article (our own text) whose lead chunk says where the street is, while a later chunk
# names it far more often; and a second article, so that the street's name has an IDF.
_STREET = """# 青石巷

青石巷是临江市老城区的一条南北向古街，北起望江门，南至城隍庙前，全长约八百米，宽约四米。此巷始建于明代万历年间，\
因路面铺满青色条石而得名。清代以后，这里逐渐成为临江城内商贾云集的地方，至今仍保留着不少传统店铺，例如老字号的茶庄、布庄和药铺。

青石巷的另一特色，是保留有多处老宅院。青石巷十二号的沈家大院、青石巷三十号的周氏旧居、青石巷四十六号的钱庄旧址都被列为\
市级文物保护单位。青石巷五十八号的古井至今仍有清水，青石巷六十号的戏台每逢节日仍有演出。青石巷的老宅院大多是两进或三进的院落。

每年春节期间，青石巷都会举办灯会，游客可以在巷内欣赏花灯、品尝小吃。近年来，当地政府对青石巷进行了修缮，恢复了部分老建筑的\
原貌，并在巷口设立了游客服务中心，为游客提供导览服务。青石巷因此成为临江市最受欢迎的旅游景点之一。
"""
_LAKE = """# 白鹭湖

白鹭湖位于临江市西郊，是一座人工湖泊，面积约三平方公里，因每年春季有大批白鹭在此栖息而得名。湖畔建有环湖步道和观鸟台，\
是市民休闲散步的好去处。

白鹭湖的湖水来自附近的清溪河，湖中有三座小岛，岛上种植了大量的柳树和桃树。每到春天，湖边桃花盛开，吸引了许多摄影爱好者前来拍摄。
"""


@pytest.fixture(scope="module")
def chinese_articles(tmp_path_factory: pytest.TempPathFactory) -> Assistant:
    tmp = tmp_path_factory.mktemp("articles")
    (tmp / "corpus").mkdir()
    (tmp / "corpus" / "青石巷.md").write_text(_STREET, encoding="utf-8")
    (tmp / "corpus" / "白鹭湖.md").write_text(_LAKE, encoding="utf-8")
    # Chunks of 200 pieces, so that the lead paragraph and the later ones are separate chunks.
    chunker = ChunkerSettings(max_tokens_zh=200)
    a = Assistant(Config(index_dir=tmp / "index", corpus_dir=tmp / "corpus", chunker=chunker))
    a.ingest()
    return a


@pytest.mark.slow
def test_the_lead_chunk_answers_what_and_where(chinese_articles: Assistant) -> None:
    a = chinese_articles
    question = "青石巷在哪里？"
    passages = a.retriever.search(question)
    assert passages[0].metadata["chunk_index"] == 0
    assert passages[1].doc_id == passages[0].doc_id  # the later chunk, which names the street six times
    answer = a.ask(question)
    assert not answer.abstained
    assert answer.citations[0].quote.startswith("青石巷是临江市老城区的一条南北向古街")  # not the "# 青石巷" heading
    assert "[1]" in answer.answer
    # The same search without the lead weight puts the later chunk first: the weight is what decides.
    a.retriever.settings = RetrievalSettings(lead_weight=0.0)
    try:
        passages = a.retriever.search(question)
        assert passages[0].metadata["chunk_index"] != 0
    finally:
        a.retriever.settings = RetrievalSettings()


@pytest.mark.slow
def test_passage_score_counts_only_for_chinese_over_chinese(chinese_articles: Assistant) -> None:
    a = chinese_articles
    question = "青石巷有多长？"
    query = analyse_query(question)
    passages = a.retriever.retrieve(query)
    lexical = a.retriever.lexical
    # The hand-written score (a feature of the learned scorer) is what the weight changes.
    hand = AnswerSettings(learned=False)
    with_weight = score_candidates(passages, query, lexical, hand)
    without = score_candidates(passages, query, lexical, replace(hand, passage_weight=0.0))
    top = max(p.score for p in passages)
    for c in with_weight:
        same = next(w for w in without if w.span == c.span and w.passage.chunk_id == c.passage.chunk_id)
        assert c.score == pytest.approx(same.score + c.passage.score / top)  # all chunks are Chinese: share 1
    assert not any(is_heading(c.text, c.passage.title) for c in with_weight)
    english = analyse_query("How long is Qingshi Lane?")
    plain = score_candidates(passages, english, lexical, replace(hand, passage_weight=0.0))
    weighted = score_candidates(passages, english, lexical, hand)
    assert [c.score for c in weighted] == [c.score for c in plain]


def test_first_missing_gives_the_weight_of_the_rarest_absent_word() -> None:
    terms = [("tsinghua", 0.9), ("founded", 0.5), ("year", 0.2)]  # by falling weight
    assert first_missing(terms, {"tsinghua", "founded", "year"}) == 0.0
    assert first_missing(terms, {"tsinghua", "year"}) == 0.5
    assert first_missing(terms, {"founded"}) == 0.9
    assert first_missing([], set()) == 0.0


def test_a_question_word_the_passage_lacks_is_a_feature(assistant: Assistant) -> None:
    from assistant.scorer import FEATURE_NAMES

    column = FEATURE_NAMES.index("passage_missing_idf")

    def values(question: str) -> list[float]:
        query = analyse_query(question)
        retriever = assistant.retriever
        found = score_candidates(retriever.retrieve(query), query, retriever.lexical, AnswerSettings())
        return [c.features[column] for c in found]

    # Every word is in the unveiling's passage; "Antarctica" is in no passage at all.
    assert min(values("Which alliance did Changzhou unveil?")) == 0.0
    assert min(values("Which alliance did Changzhou unveil in Antarctica?")) == 1.0


def test_weighted_share_is_the_weight_found_over_the_whole() -> None:
    weights = {"lantern": 0.6, "festival": 0.3, "held": 0.1}
    assert weighted_share(weights, {"lantern", "held"}) == pytest.approx(0.7)
    assert weighted_share(weights, set()) == 0.0
    assert weighted_share(weights, {"lantern", "festival", "held", "other"}) == pytest.approx(1.0)
    assert weighted_share({}, {"lantern"}) == 0.0
    assert weighted_share({"a": 0.0}, {"a"}) == 0.0


@pytest.mark.slow
def test_what_a_question_asks_beyond_its_title_is_a_feature(chinese_articles: Assistant) -> None:
    """A sentence that names the article's subject again (its title) but not what was asked about
    it scores 0 on the title-free features, though it shares the title's characters with the
    question; the sentence about the lantern festival scores 1."""
    from assistant.scorer import FEATURE_NAMES

    a = chinese_articles
    query = analyse_query("青石巷的灯会在什么时候举办？")
    found = score_candidates(a.retriever.retrieve(query), query, a.retriever.lexical, AnswerSettings())
    by_text = {c.text.strip(): c.features for c in found}
    festival = next(f for t, f in by_text.items() if t.startswith("每年春节期间"))
    houses = by_text["青石巷的老宅院大多是两进或三进的院落。"]
    names = ("chars", "title_free_chars", "title_free_coverage")
    chars, free_chars, free_words = (FEATURE_NAMES.index(n) for n in names)
    assert festival[free_chars] == 1.0 and festival[free_words] > 0.0
    assert houses[free_chars] == 0.0 and houses[free_words] == 0.0 and houses[chars] > 0.0
