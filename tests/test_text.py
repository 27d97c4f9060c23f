"""Tests of assistant.text with the real jieba, OpenCC and PyStemmer."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

import pytest

from assistant import text
from assistant.text import cjk_chars, content_words, detect_language, split_scripts, stem, to_simplified, tokenize


@pytest.fixture(scope="module", autouse=True)
def _warm() -> None:
    text.warm_up()


# --- split_scripts / detect_language -------------------------------------------------------------


def test_split_scripts_runs_concatenate_back() -> None:
    s = "SGS与常州AI, 2023年!"
    runs = split_scripts(s)
    assert runs == [("other", "SGS"), ("zh", "与常州"), ("other", "AI, 2023"), ("zh", "年"), ("other", "!")]
    assert "".join(r for _, r in runs) == s
    assert split_scripts("") == []


def test_split_scripts_keeps_cjk_punctuation_out_of_zh_runs() -> None:
    assert split_scripts("联盟，成立。") == [("zh", "联盟"), ("other", "，"), ("zh", "成立"), ("other", "。")]


ENGLISH_ARTICLE = (
    "产教融合“破题”人才瓶颈 山东职教赋能区域经济提质增效\n"
    "The integration of vocational education and local industries in Shandong is addressing talent "
    "shortages and enhancing regional economic development through specialized training programs. "
    "Shandong's vocational education is closely aligned with local industries, exemplified by the "
    "establishment of an industry education alliance to merge education with the gourd industry. "
    "The gourd industry in Dongchangfu District has a planting area of 30,000 acres."
)


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        (ENGLISH_ARTICLE, "en"),
        ("SGS与常州职业技术学院合作培养AI人才", "zh"),
        ("AI和IoT技术在常州职业院校的应用有哪些？", "zh"),
        ("什么是AI？", "zh"),
        ("What is 产教融合?", "mixed"),
        ("What are the key areas of the alliance?", "en"),
        ("常州检验检测认证产教联盟的重点领域有哪些？", "zh"),
        ("", "en"),
        ("2023 😀", "en"),
    ],
)
def test_detect_language(sample: str, expected: str) -> None:
    assert detect_language(sample) == expected


# --- to_simplified -------------------------------------------------------------------------------


def test_to_simplified() -> None:
    assert to_simplified("產教融合聯盟") == "产教融合联盟"
    assert to_simplified("職業教育與蘇州") == "职业教育与苏州"
    assert to_simplified("产教融合联盟") == "产教融合联盟"  # already simplified: unchanged
    assert to_simplified("Alliance 2023") == "Alliance 2023"
    assert to_simplified("") == ""


# --- tokenize ------------------------------------------------------------------------------------


def test_mixed_chinese_english() -> None:
    toks = tokenize("SGS与常州职业技术学院合作培养AI人才")
    for t in ("sgs", "ai", "常州", "职业", "技术", "学院", "合作", "培养", "人才"):
        assert t in toks
    assert "与" not in toks
    assert toks.index("sgs") == 0


def test_traditional_folds_to_simplified() -> None:
    assert tokenize("產教融合聯盟") == tokenize("产教融合联盟")
    assert {"产教", "融合", "联盟"} <= set(tokenize("產教融合聯盟"))


def test_chinese_is_segmented_not_kept_as_one_run() -> None:
    run = "常州检验检测认证产教联盟"
    toks = tokenize(run)
    assert run not in toks
    assert {"常州", "检验", "检测", "认证", "联盟"} <= set(toks)
    assert all(len(t) <= 4 for t in toks)


def test_chinese_bigrams_do_not_cross_stop_words() -> None:
    toks = tokenize("联盟关注哪些重点领域")
    assert "重点" in toks and "领域" in toks and "点领" in toks
    assert "些重" not in toks and "哪些" not in toks


def test_numbers() -> None:
    assert tokenize("30,000 acres") == ["30000", "acr"]
    assert tokenize("92.3% growth") == ["92.3", "growth"]
    assert tokenize("in 2023.") == ["2023"]
    assert tokenize("1,2 and 3") == ["1", "2", "3"]
    assert tokenize("5G and COVID-19") == ["5g", "covid", "19"]
    assert tokenize("种植面积3万亩") == ["种植", "面积", "植面", "3", "万亩"]


def test_english_stop_words_dropped() -> None:
    assert tokenize("What is the alliance and how does it work?") == ["allianc", "work"]
    assert tokenize("Which of them were there, and why?") == []
    assert tokenize("who, when, where, what, which, how, do, does, did, is, are, was") == []


def test_acronyms_that_look_like_stop_words() -> None:
    assert tokenize("IT sector in the US") == ["it", "sector", "us"]
    assert tokenize("it is for us") == []


def test_chinese_stop_words_dropped() -> None:
    toks = tokenize("请问什么是产教融合？它有哪些重点领域呢")
    for stop in ("请问", "什么", "是", "它", "有", "哪些", "呢"):
        assert stop not in toks
    assert {"产教", "融合", "重点", "领域"} <= set(toks)


def test_stemming() -> None:
    assert tokenize("alliances") == ["allianc"]
    assert tokenize("Alliance") == ["allianc"]
    assert stem("alliances") == stem("alliance") == "allianc"
    assert tokenize("educating educated education") == ["educ", "educ", "educ"]


def test_possessive_and_apostrophes() -> None:
    assert tokenize("China's vocational schools") == ["china", "vocat", "school"]
    assert tokenize("Changzhou’s industry") == ["changzhou", "industri"]
    assert tokenize("don't") == []


def test_full_width_and_compatibility_forms() -> None:
    assert tokenize("ＡＩ　２０２３") == ["ai", "2023"]


@pytest.mark.parametrize("sample", ["", "   ", "，。！？、“”", "...!!!", "😀🎉👍", "\n\t", "—", "\u200b"])
def test_empty_and_punctuation_only(sample: str) -> None:
    assert tokenize(sample) == []
    assert content_words(sample) == []


def test_content_words_dedupes_in_order() -> None:
    assert content_words("alliance alliances Alliance education") == ["allianc", "educ"]
    words = content_words("联盟与联盟")
    assert words == ["联盟"]


def test_warm_up_is_idempotent() -> None:
    text.warm_up()
    text.warm_up()
    assert tokenize("联盟") == ["联盟"]


# --- the tiny ranking check behind the choice of Chinese segmentation ----------------------------

DOCS = [
    "3月21日，常州首个检验检测认证产教联盟成立，由常州工程职业技术学院和SGS通标标准技术服务（常州）有限公司牵头。",
    "苏州成立全国首个标准化产教联盟，首批成员包括80余家龙头企业、科研院所和高校。",
    "国家智能网联新能源汽车行业产教融合共同体在上海南湖职业技术学院成立。",
    "山东职业教育与地方产业紧密结合，茌头葫芦产教联盟推动乡村振兴。",
    "南海区产教联盟成立，推动教育链、人才链与产业链、创新链有机衔接。",
    "联盟将聚焦新能源、新材料、汽车制造、合成生物和智能装备等重点领域。",
    "学校与企业共建实训基地，开展订单式人才培养，提升学生的职业技能。",
    "双师型教师队伍建设是职业院校提高教学质量的关键。",
    "葫芦种植面积达到3万亩，年产值超过两亿元。",
    "该市出台政策支持校企合作，鼓励企业参与职业学校专业建设。",
]
QUERIES = [
    ("常州检验检测产教联盟是谁牵头的", 0),
    ("标准化联盟的首批成员有哪些", 1),
    ("新能源车产教融合共同体在哪里成立", 2),
    ("葫芦产业联盟", 3),
    ("教育链和人才链如何衔接", 4),
    ("联盟关注哪些重点领域", 5),
    ("实训基地建设", 6),
    ("双师教师队伍", 7),
    ("葫芦种植面积多少亩", 8),
    ("校企合作政策", 9),
    ("汽车行业的产教融合", 2),
    ("职业技术学院牵头成立联盟", 0),
    ("学生职业技能培养", 6),
    ("南海产教联盟", 4),
    ("智能网联汽车", 2),
    ("新材料和合成生物", 5),
    ("工程职院", 0),
    ("南湖职院", 2),
    ("龙头企业", 1),
    ("网联汽车", 2),
    ("乡村振兴", 3),
    ("年产值", 8),
    ("校企共建基地", 6),
    ("职业院校教学质量", 7),
    ("智能装备领域", 5),
    ("检测认证联盟", 0),
    ("标准化", 1),
    ("产业链创新链", 4),
    ("首批成员", 1),
    ("专业建设", 9),
]


def _bm25_top1(segment: Callable[[str], list[str]], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(text, "_zh_segment", segment)
    docs = [tokenize(d) for d in DOCS]
    n = len(docs)
    avg = sum(map(len, docs)) / n
    df = Counter(t for d in docs for t in set(d))
    hits = 0
    for query, relevant in QUERIES:
        scores = []
        for d in docs:
            tf = Counter(d)
            s = 0.0
            for t in tokenize(query):
                if t in tf:
                    idf = math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
                    s += idf * tf[t] * 2.5 / (tf[t] + 1.5 * (0.25 + 0.75 * len(d) / avg))
            scores.append(s)
        hits += max(range(n), key=lambda i: scores[i]) == relevant
    return hits


def test_chosen_chinese_segmentation_ranks_at_least_as_well(monkeypatch: pytest.MonkeyPatch) -> None:
    chosen = _bm25_top1(text._zh_words_bigrams, monkeypatch)
    search_mode = _bm25_top1(text._zh_search, monkeypatch)
    assert chosen == len(QUERIES)
    assert chosen >= search_mode


def test_cjk_chars_of_tokens() -> None:
    assert cjk_chars(["出生地", "2013", "covid", "生于"]) == frozenset("出生地于")
    assert cjk_chars(tokenize("琴娜·杜普洛生於舊金山")) >= frozenset("生于旧金山")
    assert cjk_chars([]) == frozenset()


@pytest.mark.parametrize(
    "sample", ["蓝线裸顶鲷以什么为食？", "為什麼盤古大陸內部有沙漠？", "Which 2 alliances 在苏州?", ""]
)
def test_jieba_words_cover_the_whole_text(sample: str) -> None:
    words = text.jieba_words(sample)
    assert "".join(words) == to_simplified(sample)
    assert ("以" in words) == ("以" in sample)


@pytest.mark.parametrize(
    ("british", "american"),
    [
        ("programmes", "programs"),
        ("organised", "organized"),
        ("specialisation", "specialization"),
        ("centre", "center"),
        ("centred", "centered"),
        ("labourers", "laborers"),
        ("neighbourhood", "neighborhood"),
        ("kilometres", "kilometers"),
        ("analysed", "analyzed"),
    ],
)
def test_british_spellings_meet_american_ones(british: str, american: str) -> None:
    assert text.american(british) == american
    assert tokenize(british) == tokenize(american)


@pytest.mark.parametrize(
    "word", ["enterprises", "promising", "advertising", "otherwise", "raised", "rising", "crises", "exercise"]
)
def test_words_without_an_ize_form_are_left_alone(word: str) -> None:
    assert text.american(word) == word


def test_word_lists_are_read_from_the_lexicon_files() -> None:
    from assistant.lexicons import lexicon, words

    assert text.EN_STOPWORDS == words("en", "stopwords") and "the" in text.EN_STOPWORDS
    assert "new" not in text.EN_STOPWORDS  # a content word in this domain
    assert text.ZH_STOPWORDS == words("zh", "stopwords") and "的" in text.ZH_STOPWORDS
    assert {"IT", "US", "WHO"} == set(lexicon("en")["acronym_stopwords"])
