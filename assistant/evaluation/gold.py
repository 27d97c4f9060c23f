"""Gold question sets in JSON Lines: loading with line-precise errors, and evidence checks.

One JSON object per line::

    {"id": "q1", "question": "...", "history": ["earlier question"], "answerable": true,
     "evidence": ["verbatim supporting text"], "answer_contains": ["key fact"], "tags": ["zh"]}

``history``, ``tags``, ``answer_contains`` and ``meta`` (a free-form object) are optional;
``answerable`` defaults to ``true`` when ``evidence`` is non-empty. Blank lines are skipped.
Unknown keys are rejected so that a misspelt ``"answerable"`` cannot silently default.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.errors import AssistantError
from assistant.evaluation.metrics import fold

__all__ = ["GoldFormatError", "GoldItem", "check_evidence", "dump_gold", "load_gold", "parse_gold_item"]

_KEYS = {"id", "question", "history", "answerable", "evidence", "answer_contains", "tags", "meta"}


class GoldFormatError(AssistantError, ValueError):
    """A gold file line is malformed; the message names the file, the line number and the reason."""

    def __init__(self, path: str, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}" if line else f"{path}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


@dataclass
class GoldItem:
    """One gold question: what to ask, and what a correct, well-cited answer must contain."""

    id: str
    question: str
    history: list[str] = field(default_factory=list)
    answerable: bool = True
    evidence: list[str] = field(default_factory=list)
    answer_contains: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this item (optional keys only when non-empty)."""
        d: dict[str, Any] = {"id": self.id, "question": self.question}
        if self.history:
            d["history"] = list(self.history)
        d["answerable"] = self.answerable
        d["evidence"] = list(self.evidence)
        d["answer_contains"] = list(self.answer_contains)
        if self.tags:
            d["tags"] = list(self.tags)
        if self.meta:
            d["meta"] = dict(self.meta)
        return d


def _str_list(obj: dict[str, Any], key: str) -> list[str]:
    value = obj.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f'"{key}" must be a list of strings, got {json.dumps(value, ensure_ascii=False)[:80]}')
    return list(value)


def parse_gold_item(obj: Any) -> GoldItem:
    """Validate one decoded JSON value as a gold item; raises ``ValueError`` with the reason."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - _KEYS)
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(sorted(_KEYS))}")
    qid = obj.get("id")
    if isinstance(qid, int) and not isinstance(qid, bool):
        qid = str(qid)
    if not isinstance(qid, str) or not qid.strip():
        raise ValueError('"id" must be a non-empty string')
    question = obj.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ValueError('"question" must be a non-empty string')
    history = _str_list(obj, "history")
    evidence = _str_list(obj, "evidence")
    if any(not e.strip() for e in evidence):
        raise ValueError('"evidence" contains an empty string')
    answer_contains = _str_list(obj, "answer_contains")
    if any(not a.strip() for a in answer_contains):
        raise ValueError('"answer_contains" contains an empty string')
    tags = _str_list(obj, "tags")
    answerable = obj.get("answerable", bool(evidence))
    if not isinstance(answerable, bool):
        raise ValueError('"answerable" must be true or false')
    if answerable and not evidence:
        raise ValueError('an answerable question needs at least one "evidence" quote')
    meta = obj.get("meta", {})
    if not isinstance(meta, dict):
        raise ValueError('"meta" must be an object')
    return GoldItem(
        id=qid,
        question=question,
        history=history,
        answerable=answerable,
        evidence=evidence,
        answer_contains=answer_contains,
        tags=tags,
        meta=meta,
    )


def load_gold(path: str | Path) -> list[GoldItem]:
    """Read a gold JSONL file; raises ``GoldFormatError`` (line number + reason) on any bad line."""
    p = Path(path)
    items: list[GoldItem] = []
    seen: dict[str, int] = {}
    try:
        lines = p.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise GoldFormatError(str(p), 0, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise GoldFormatError(str(p), lineno, f"invalid JSON: {exc.msg} (column {exc.colno})") from exc
        try:
            item = parse_gold_item(obj)
        except ValueError as exc:
            raise GoldFormatError(str(p), lineno, str(exc)) from exc
        if item.id in seen:
            raise GoldFormatError(str(p), lineno, f"duplicate id {item.id!r} (first on line {seen[item.id]})")
        seen[item.id] = lineno
        items.append(item)
    if not items:
        raise GoldFormatError(str(p), 0, "no gold items")
    return items


def dump_gold(items: Iterable[GoldItem], path: str | Path) -> None:
    """Write items as gold JSONL (UTF-8, one object per line)."""
    with Path(path).open("w", encoding="utf-8") as fh:
        for item in items:
            fh.write(json.dumps(item.to_dict(), ensure_ascii=False) + "\n")


def check_evidence(items: Iterable[GoldItem], corpus_texts: Iterable[str]) -> list[tuple[str, str]]:
    """Return ``(id, quote)`` for every evidence quote not verbatim in any corpus text.

    Comparison is on folded text (case-folded, white space collapsed), see ``metrics.fold``.
    """
    # "\x00" is not white space, so fold keeps it and no folded quote can match across two texts.
    haystack = "\x00".join(fold(t) for t in corpus_texts)
    missing: list[tuple[str, str]] = []
    for item in items:
        for quote in item.evidence:
            fq = fold(quote)
            if not fq or fq not in haystack:
                missing.append((item.id, quote))
    return missing
