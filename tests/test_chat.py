"""Rewriting follow-ups into standalone questions (no LLM), and chat sessions."""

from __future__ import annotations

import pytest

from assistant.chat import ChatSession, entities, needs_context, rewrite
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
