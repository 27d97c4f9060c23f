"""Conversation: turning a follow-up into a standalone question, and multi-turn sessions.

Without an LLM, a follow-up that leans on earlier turns (pronouns and deictics such as it, its,
they, there, 其, 它, 他们, 该, 这, 那里; elliptical openings such as "What about …", "And …", "…呢";
or very short questions) carries over the previous question as context. When the follow-up names a
new entity ("What about Suzhou?"), the old question's entities are dropped from that context, so a
new topic does not drag the old one in.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any

from .lexicons import lexicon
from .schema import Answer
from .text import EN_STOPWORDS, content_words, detect_language, to_simplified

# Follow-up, name and "respectively" patterns, as data (assistant/lexicon/chat.toml).
_PATTERNS: dict[str, str] = lexicon("chat")["patterns"]
_LIMITS: dict[str, int] = lexicon("chat")["limits"]
_EN_REFERENCE = re.compile(_PATTERNS["en_reference"], re.IGNORECASE)
_EN_ELLIPSIS = re.compile(_PATTERNS["en_ellipsis"], re.IGNORECASE)
_ZH_REFERENCE = re.compile(_PATTERNS["zh_reference"])
_ZH_ELLIPSIS = re.compile(_PATTERNS["zh_ellipsis"])
_CAPITALIZED = re.compile(_PATTERNS["capitalized"])
# Capitalized words that start questions or are not names.
_NOT_NAMES = frozenset(str(w) for w in lexicon("chat")["lists"]["not_names"])
_SHORT_QUESTION = int(_LIMITS["short_question_words"])
MAX_CONTEXT_CHARS = 2000  # of the earlier question a follow-up carries (a question's own limit)


def needs_context(question: str) -> bool:
    """Does this question lean on earlier turns (reference, ellipsis, or too short to stand alone)?"""
    q = question.strip()
    if not q:
        return False
    if detect_language(q) in ("zh", "mixed"):
        if _ZH_REFERENCE.search(q) or _ZH_ELLIPSIS.search(q):
            return True
        # Chinese drops the subject it shares with the last turn ("联盟里有多少家企业？", "成立以后，…怎么
        # 合作？"): a question that names nothing of its own is about what was just discussed.
        if not entities(q):
            return True
    if _EN_REFERENCE.search(q) or _EN_ELLIPSIS.search(q):
        return True
    return len(content_words(q)) <= _SHORT_QUESTION


def is_elliptical(question: str) -> bool:
    """Whether the question leaves out what it asks ("What about Nanhai?", "And Suzhou?", "南海呢？"):
    it asks what the previous question asked, about something else."""
    q = question.strip()
    return bool(_EN_ELLIPSIS.search(q) or (detect_language(q) in ("zh", "mixed") and _ZH_ELLIPSIS.search(q)))


def entities(text: str) -> list[str]:
    """Names in a question: capitalized English words and jieba's place/person/organization words."""
    found = []
    for m in _CAPITALIZED.finditer(text):
        # "Is Huawei a member…": the question word is dropped, the name after it kept.
        words = m.group(1).split(" ")
        # a capitalized stop word or opener names nothing ("Beyond X, how...", "Between A and B...")
        while words and (words[0] in _NOT_NAMES or (words[0].istitle() and words[0].lower() in EN_STOPWORDS)):
            words.pop(0)
        if words:
            found.append(" ".join(words))
    if re.search(r"[\u4e00-\u9fff]", text):
        # jieba.posseg's place/person/organization words, without its 0.3 s import (zh_names)
        from .zh_names import name_words

        # In simplified characters: jieba's tagger knows no traditional character, and on an unknown
        # one its HMM tries every state against every state (about 80 ms per question in traditional
        # Chinese). The names are given back in the question's own characters.
        simple = to_simplified(text)
        words = name_words(simple)
        if simple != text and len(simple) == len(text):
            pos, own = 0, []
            for w in words:
                i = simple.find(w, pos)
                own.append(text[i : i + len(w)] if i >= 0 else w)
                pos = i + len(w) if i >= 0 else pos
            words = own
        found.extend(words)
    return found


# "苏州和常州分别成立了什么样的联盟？", "What did Suzhou and Changzhou set up, respectively?": one
# question about two or more subjects, each answered by a different passage. Answered as one
# question, the best sentences all came from one subject's document (three such questions of
# eval/gold.jsonl), so each subject gets its own sub-question.
_ZH_RESPECTIVELY = re.compile(_PATTERNS["zh_respectively"])
_ZH_CLAUSE = re.compile(_PATTERNS["zh_clause"])
_ZH_AND = re.compile(_PATTERNS["zh_and"])
_EN_RESPECTIVELY = re.compile(_PATTERNS["en_respectively"], re.IGNORECASE)
# English subjects are names joined by commas and "and": "Suzhou, Nanhai and Changzhou".
_EN_NAME = _PATTERNS["en_name"]
_EN_NAME_LIST = re.compile(rf"\b({_EN_NAME}(?:\s*,\s*{_EN_NAME})*\s*,?\s+and\s+{_EN_NAME})\b")
_EN_NAME_SEP = re.compile(_PATTERNS["en_name_separator"])
MAX_SUBJECTS = int(_LIMITS["max_subjects"])


@dataclass(frozen=True)
class SubQuestion:
    """One subject of a question about several ("A和B分别…"), asked on its own."""

    subject: str
    question: str


def split_subjects(question: str) -> list[SubQuestion]:
    """The sub-questions of a question about two to four subjects "respectively" (分别 / 各自 /
    respectively / each), one per subject; [] for any other question."""
    q = question.strip()
    if detect_language(q) in ("zh", "mixed"):
        return _split_zh(q)
    return _split_en(q)


def _split_zh(q: str) -> list[SubQuestion]:
    m = _ZH_RESPECTIVELY.search(q)
    if not m or q[: m.start()].endswith("的"):
        return []  # "印度野驴与非洲野驴的分别是什么": 分别 the noun, "the difference"
    before, rest = q[: m.start()], q[m.end() :]
    cut = max((c.end() for c in _ZH_CLAUSE.finditer(before)), default=0)
    prefix, group = before[:cut], before[cut:]
    parts = [p.strip() for p in _ZH_AND.split(group)]
    if not 2 <= len(parts) <= MAX_SUBJECTS or any(len(p) < 2 for p in parts) or not rest.strip():
        return []
    # "山东职业学校和无锡技师学院的毕业生就业率": the last subject's "的…" belongs to every one.
    head, de, tail = parts[-1].rpartition("的")
    if de and head:
        parts = [p if "的" in p else p + de + tail for p in parts[:-1]] + [parts[-1]]
    return [SubQuestion(p, f"{prefix}{p}{rest}") for p in parts]


def _split_en(q: str) -> list[SubQuestion]:
    m = _EN_RESPECTIVELY.search(q)
    if not m:
        return []
    body = re.sub(r"\s+([?.!])", r"\1", q[: m.start()] + q[m.end() :])
    names = _EN_NAME_LIST.search(body)
    if not names:
        return []
    parts = [p for p in _EN_NAME_SEP.split(names.group(1)) if p]
    if not 2 <= len(parts) <= MAX_SUBJECTS:
        return []
    return [SubQuestion(p, body[: names.start()] + p + body[names.end() :]) for p in parts]


@dataclass
class Rewrite:
    """A standalone question: the follow-up itself plus the context carried from earlier turns."""

    question: str
    context: str = ""

    @property
    def standalone(self) -> str:
        if not self.context:
            return self.question
        sep = "" if detect_language(self.context) == "zh" and detect_language(self.question) == "zh" else " "
        return f"{self.context}{sep}{self.question}"


def rewrite(question: str, history: list[str] | None) -> Rewrite:
    """Rewrite a follow-up into a standalone question, resolving earlier turns first."""
    question = question.strip()
    if not history or not needs_context(question):
        return Rewrite(question)
    # The context is the earlier question as it was read; capped, so that a chain of long follow-ups
    # (a client's made-up history) cannot make the searched text grow with every turn.
    previous = rewrite(history[-1], history[:-1]).standalone[:MAX_CONTEXT_CHARS]
    new_names = [e for e in entities(question) if e.lower() not in previous.lower()]
    context = previous
    if new_names:
        # A new entity replaces the old ones: keep the old question's intent, not its subject.
        for old in entities(previous):
            if old not in question:
                context = re.sub(re.escape(old), " ", context)
        context = re.sub(r"\s+", " ", context).strip()
    return Rewrite(question, context)


@dataclass
class Turn:
    question: str
    answer: Answer


@dataclass
class ChatSession:
    """A multi-turn conversation with one assistant; thread-safe for one user at a time."""

    assistant: Any  # an ``Assistant``; typed loosely to keep this module free of the pipeline
    filters: dict[str, Any] = field(default_factory=dict)
    turns: list[Turn] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def history(self) -> list[str]:
        return [t.question for t in self.turns]

    def ask(self, question: str) -> Answer:
        with self._lock:
            answer: Answer = self.assistant.ask(question, history=self.history, filters=self.filters or None)
            self.turns.append(Turn(question, answer))
            return answer

    def reset(self) -> None:
        with self._lock:
            self.turns.clear()

    @property
    def last(self) -> Answer | None:
        return self.turns[-1].answer if self.turns else None
