"""Rewriting follow-ups into standalone questions (no LLM), and chat sessions."""

from __future__ import annotations

import pytest

from assistant.chat import (
    ChatSession,
    SubQuestion,
    entities,
    is_elliptical,
    needs_context,
    rewrite,
    split_subjects,
)
from assistant.schema import Answer


@pytest.mark.parametrize(
    "question",
    [
        "Who leads it?",
        "What are its key areas?",
        "What about Suzhou?",
        "And the employment rate?",
        "它的重点领域是什么？",
        "那里有多少家企业参与？",
        "他们帮企业研发出了什么产品？",
        "该联盟何时成立？",
        "南海呢？",
        # Chinese drops the shared subject: no name of its own, no pronoun either.
        "成立以后，学校和企业打算怎么合作？",
        "首任会长是谁？",
        "联盟里有多少家企业？",
    ],
)
def test_follow_ups_need_context(question: str) -> None:
    assert needs_context(question)


@pytest.mark.parametrize(
    "question",
    [
        "How many training bases will the Suzhou standardized alliance build?",
        "苏州标准化产教联盟计划建设多少个培训基地？",
        "Which company partners with Shandong Business Vocational College on cold chain training?",
    ],
)
def test_standalone_questions_stay_as_they_are(question: str) -> None:
    assert not needs_context(question)
    assert rewrite(question, ["Who co-leads the Changzhou alliance?"]).standalone == question


def test_pronoun_carries_previous_topic_en() -> None:
    rw = rewrite("Who unveiled its plaque?", ["Which organizations set up the smart new energy vehicle community?"])
    assert rw.context and "smart new energy vehicle community" in rw.standalone
    assert rw.standalone.endswith("Who unveiled its plaque?")


def test_subjectless_chinese_question_carries_previous_topic() -> None:
    rw = rewrite("每年能培养多少毕业生？", ["常州检验检测认证产教联盟是什么时候成立的？"])
    assert rw.standalone.startswith("常州检验检测认证产教联盟") and rw.standalone.endswith("每年能培养多少毕业生？")
    # A question with a name of its own stands alone, history or not.
    named = rewrite("苏州标准化产教联盟计划建设多少个培训基地？", ["常州检验检测认证产教联盟是什么时候成立的？"])
    assert named.context == ""


def test_pronoun_carries_previous_topic_zh() -> None:
    rw = rewrite("它未来会重点聚焦哪些产业？", ["常州检验检测认证产教联盟是什么时候成立的？"])
    assert "常州" in rw.standalone and rw.standalone.endswith("它未来会重点聚焦哪些产业？")


def test_topic_switch_drops_old_entity() -> None:
    rw = rewrite("What about Nanhai?", ["How many enterprises joined the Suzhou standardized alliance?"])
    assert "Nanhai" in rw.standalone
    assert "Suzhou" not in rw.standalone  # the new entity replaces the old one
    assert "enterprises" in rw.standalone  # the intent is kept


def test_topic_switch_zh() -> None:
    rw = rewrite("那苏州呢？", ["常州检验检测认证产教联盟有哪些重点方向？"])
    assert "苏州" in rw.standalone and "常州" not in rw.standalone


def test_chain_of_follow_ups_resolves_from_the_first() -> None:
    rw = rewrite("那高校和职业院校有多少所？", ["南海区产教联盟在哪里成立？", "联盟里有多少家企业？"])
    assert "南海" in rw.standalone


def test_no_history_means_no_rewrite() -> None:
    assert rewrite("Who leads it?", []).standalone == "Who leads it?"
    assert rewrite("Who leads it?", None).context == ""


def test_entities() -> None:
    assert "Suzhou" in entities("What about Suzhou?")
    assert "What" not in entities("What about Suzhou?")
    assert "深圳" in entities("深圳有哪些产教融合联盟？")
    # Accented Latin letters and digits stay in the name (cut at "ó", "Kraków" became "Krak").
    assert entities("Who moved his court from Kraków to Warsaw?") == ["Kraków", "Warsaw"]
    assert entities("Who was Frédéric Chopin?") == ["Frédéric Chopin"]
    assert entities("Internet2与谁达成合作伙伴关系") == ["Internet2"]
    # A word that opens the question is no name.
    assert entities("Roughly how many students are in Shandong?") == ["Shandong"]
    assert entities("According to its director, what is special about Yifang?") == ["Yifang"]
    assert entities("Beyond its products, how has Ice Wheel grown?") == ["Ice Wheel"]
    assert entities("Until when is Huawei a member?") == ["Huawei"]  # a capitalized stop word
    assert entities("Is IT taught in Suzhou?") == ["IT", "Suzhou"]  # an acronym stays
    # Traditional Chinese is tagged in simplified characters (jieba knows no traditional ones) and
    # the names come back as the question wrote them.
    assert entities("蔣中正與毛澤東在重慶會談的結果是什麼？") == ["蔣中正", "毛澤東", "重慶"]
    assert entities("蒋中正与毛泽东在重庆会谈的结果是什么？") == ["蒋中正", "毛泽东", "重庆"]


class _RecordingAssistant:
    """Stands in for ``Assistant`` to check what a session passes on (no index needed)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    def ask(self, question: str, history: list[str] | None = None, filters: dict | None = None) -> Answer:
        self.calls.append((question, list(history or [])))
        return Answer(question, question, "ok", False, "en")


def test_session_keeps_history_and_resets() -> None:
    backend = _RecordingAssistant()
    session = ChatSession(backend)
    session.ask("first")
    session.ask("second")
    assert backend.calls == [("first", []), ("second", ["first"])]
    assert session.last is not None and session.last.question == "second"
    session.reset()
    session.ask("third")
    assert backend.calls[-1] == ("third", [])


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        (
            "苏州和常州分别成立了什么样的产教联盟？",
            [("苏州", "苏州成立了什么样的产教联盟？"), ("常州", "常州成立了什么样的产教联盟？")],
        ),
        # the clause before the subjects belongs to every sub-question
        (
            "关于技能人才的比例，山东和全国分别给出了什么数据？",
            [
                ("山东", "关于技能人才的比例，山东给出了什么数据？"),
                ("全国", "关于技能人才的比例，全国给出了什么数据？"),
            ],
        ),
        # the last subject's "的…" is shared
        (
            "山东职业学校和无锡技师学院的毕业生就业率分别是多少？",
            [
                ("山东职业学校的毕业生就业率", "山东职业学校的毕业生就业率是多少？"),
                ("无锡技师学院的毕业生就业率", "无锡技师学院的毕业生就业率是多少？"),
            ],
        ),
        (
            "南海、苏州与常州各自有多少家企业？",
            [("南海", "南海有多少家企业？"), ("苏州", "苏州有多少家企业？"), ("常州", "常州有多少家企业？")],
        ),
        (
            "What did Suzhou and Changzhou set up, respectively?",
            [("Suzhou", "What did Suzhou set up?"), ("Changzhou", "What did Changzhou set up?")],
        ),
        (
            "How many members do the Suzhou alliance and the Nanhai alliance each have?",
            [
                ("the Suzhou alliance", "How many members do the Suzhou alliance have?"),
                ("the Nanhai alliance", "How many members do the Nanhai alliance have?"),
            ],
        ),
        (
            "What alliances did Suzhou, Nanhai and Changzhou found respectively?",
            [
                ("Suzhou", "What alliances did Suzhou found?"),
                ("Nanhai", "What alliances did Nanhai found?"),
                ("Changzhou", "What alliances did Changzhou found?"),
            ],
        ),
    ],
)
def test_split_subjects_asks_one_question_per_subject(question: str, expected: list[tuple[str, str]]) -> None:
    assert split_subjects(question) == [SubQuestion(s, q) for s, q in expected]


@pytest.mark.parametrize(
    "question",
    [
        "苏州成立了什么样的产教联盟？",  # one subject
        "印度野驴与非洲野驴的分别是什么？",  # 分别 the noun: "the difference"
        "分别是什么？",  # no subjects
        "苏州和常州分别",  # nothing asked about them
        "甲和乙和丙和丁和戊分别是什么？",  # more than four
        "How many graduates do Linyi and Jining schools train each year?",  # "each year" is not "respectively"
        "What do students and teachers do respectively?",  # no names
        "What did Suzhou set up?",
    ],
)
def test_split_subjects_leaves_other_questions_alone(question: str) -> None:
    assert split_subjects(question) == []


def test_is_elliptical() -> None:
    elliptical = ("What about Nanhai?", "And Suzhou?", "how about the Changzhou alliance?", "南海呢？", "那常州呢")
    for q in (*elliptical, "还有常州的联盟？"):
        assert is_elliptical(q), q
    for q in ("Who leads it?", "它有多少成员？", "What is the Suzhou alliance?", "Who founded Andover College?"):
        assert not is_elliptical(q), q
