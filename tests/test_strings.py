"""The one table of fixed texts: complete in both languages, and every key the code uses exists."""

from __future__ import annotations

import re
import string
from pathlib import Path

from assistant import strings

ROOT = Path(__file__).resolve().parent.parent
USES = re.compile(r"""\b(?:t|strings\.text)\(\s*f?["']([a-z_]+\.[a-z_{}]+)["']""")


def test_every_text_has_both_languages_and_the_same_placeholders() -> None:
    for key in strings.keys():
        en, zh = strings.text(key, "en"), strings.text(key, "zh")
        assert en.strip() and zh.strip(), key
        fields = [{f for _, f, _, _ in string.Formatter().parse(x) if f} for x in (en, zh)]
        assert fields[0] == fields[1], key


def test_every_key_used_in_the_code_exists() -> None:
    known = set(strings.keys())
    used: set[str] = set()
    for path in [ROOT / "ui.py", *sorted((ROOT / "assistant").rglob("*.py"))]:
        for key in USES.findall(path.read_text(encoding="utf-8")):
            if "{" in key:  # an f-string key: every expansion must exist
                prefix = key.split("{")[0]
                assert any(k.startswith(prefix) for k in known), (path.name, key)
            else:
                used.add(key)
    assert used, "no uses found: the pattern is wrong"
    assert used <= known, sorted(used - known)


def test_language_rules() -> None:
    assert strings.text("ui.ask", "zh") == "提问" and strings.text("ui.ask", "mixed") == "提问"
    assert strings.text("ui.ask", "en") == strings.text("ui.ask", "fr") == "Ask"
    assert strings.text("msg.long_q", "en", n=5) == "The question is too long (at most 5 characters)."
    assert strings.section("sources", "zh")["sources"] == "来源"
