"""Feedback on answers: thumbs up or down with an optional comment, kept append-only beside the index.

Each item is one JSON line of ``INDEX/feedback.jsonl``: time, rating, option, comment, the question, its
history, the answer text and its citations. Appends hold a process lock and an ``flock`` on the file and
are written in one ``write`` of a whole line, so concurrent users (threads or processes) never interleave
or lose a line. ``draft_gold`` turns thumbs-down items into a gold file for evaluators to complete.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import ConfigError

FEEDBACK_FILE = "feedback.jsonl"
MAX_COMMENT_CHARS = 2000
# What one item keeps of the conversation (a browser's saved conversation may carry long made-up
# turns): enough for a reviewer, and bounded (under 80,000 characters an item).
MAX_TEXT_CHARS = 4000
MAX_HISTORY = 5
MAX_CITATIONS = 10
# Past this size the file takes no more items (each refused one is logged): an anonymous user can
# give feedback, and the disk is the server's.
MAX_FILE_BYTES = 64 * 1024 * 1024
_ITEM_BYTES = 64 * 1024  # what ``read`` reads first per item wanted (most items are a few KB)
RATINGS = ("up", "down")
_append_lock = threading.Lock()


def feedback_path(index_dir: str | Path) -> Path:
    """Where the feedback of an index is kept."""
    return Path(index_dir) / FEEDBACK_FILE


def make_item(rating: str, question: str, history: Sequence[str], answer: Mapping[str, Any] | None,
              option: str = "", comment: str = "") -> dict[str, Any]:
    """A feedback item; ``answer`` is ``Answer.to_dict()`` (only what a reviewer needs is kept)."""
    if rating not in RATINGS:
        raise ConfigError(f"feedback rating must be one of {', '.join(RATINGS)}, got {rating!r}")
    item: dict[str, Any] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "rating": rating,
        "option": str(option or "")[:200],
        "comment": str(comment or "")[:MAX_COMMENT_CHARS],
        "question": str(question)[:MAX_TEXT_CHARS],
        "history": [str(h)[:MAX_TEXT_CHARS] for h in history][-MAX_HISTORY:],
    }
    if answer is not None:
        item["answer"] = str(answer.get("answer", ""))[:MAX_TEXT_CHARS]
        item["abstained"] = bool(answer.get("abstained", False))
        item["standalone_question"] = str(answer.get("standalone_question", question))[:MAX_TEXT_CHARS]
        item["citations"] = [
            {k: (str(v)[: 500 if k == "doc_id" else MAX_TEXT_CHARS] if isinstance(v := c.get(k), str) else v)
             for k in ("n", "doc_id", "quote", "start", "end")}
            for c in answer.get("citations", [])[:MAX_CITATIONS]
        ]
    return item


def line_of(item: Mapping[str, Any]) -> bytes:
    """An item as the line ``record`` appends."""
    return (json.dumps(item, ensure_ascii=False) + "\n").encode("utf-8")


def record(path: Path, item: Mapping[str, Any], max_bytes: int = MAX_FILE_BYTES) -> None:
    """Append one item as one line; safe under concurrent writers (threads and processes).
    Raises ``OSError`` (ENOSPC) when the file has reached ``max_bytes``."""
    line = line_of(item)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _append_lock:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_size + len(line) > max_bytes:
                raise OSError(errno.ENOSPC, f"the feedback file has reached its limit of {max_bytes} bytes")
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)  # closing releases the flock


def read(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """The items of a feedback file, oldest first (the last ``limit`` only); unreadable lines are skipped.
    With ``limit``, only the file's tail is read (a staff login need not parse a large file from its
    start): enough of it for ``limit`` items, read again four times longer while it is not."""
    if not path.is_file():
        return []
    with path.open("rb") as raw:
        size = raw.seek(0, os.SEEK_END)
        window = limit * _ITEM_BYTES if limit else size
        while True:
            start = max(0, size - window)
            raw.seek(start)
            lines = raw.read().split(b"\n")[1 if start else 0:]  # a tail's first line is probably cut
            items = [obj for obj in map(_item, lines) if obj is not None]
            if start == 0 or (limit and len(items) >= limit):
                return items[-limit:] if limit else items
            window *= 4


def _item(line: bytes) -> dict[str, Any] | None:
    try:
        obj = json.loads(line.decode("utf-8", errors="replace"))
    except json.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) and obj.get("rating") in RATINGS else None


def draft_gold(items: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Thumbs-down items as gold questions (the ``eval/gold.jsonl`` format) for a person to complete.

    ``answerable`` and ``evidence`` are left out (the loader reads that as "not answerable, no evidence"):
    the ``needs-review`` tag says a person must set them; what the assistant said is kept in ``meta``.
    """
    drafts = []
    for n, item in enumerate((i for i in items if i.get("rating") == "down"), start=1):
        drafts.append({
            "id": f"feedback-{n:04d}",
            "question": str(item.get("question", "")).strip() or "(empty question)",
            "history": [str(h) for h in item.get("history", [])],
            "tags": ["from-feedback", "needs-review"],
            "meta": {"feedback": {k: item.get(k) for k in ("time", "option", "comment", "answer", "abstained",
                                                            "citations") if k in item}},
        })
    return drafts
