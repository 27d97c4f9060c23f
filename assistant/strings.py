"""Fixed texts in English and Chinese, from one data file (``strings.toml``) for the answers, the UI, the CLI
and the API.

``text("ui.ask", "zh")`` gives one text; ``section("sources", lang)`` a whole section as a dict (the
form the renderers take). The language of a text follows ``answer_language``: "zh" and "mixed" read
Chinese, everything else English.
"""

from __future__ import annotations

import tomllib
from functools import cache
from importlib.resources import files
from typing import Any

LANGUAGES = ("en", "zh")


def text_language(language: str) -> str:
    """The language of fixed texts for a detected or chosen language: "zh" for "zh" and "mixed"."""
    return "zh" if language in ("zh", "mixed") else "en"


@cache
def _table() -> dict[str, dict[str, dict[str, str]]]:
    data: dict[str, Any] = tomllib.loads(files("assistant").joinpath("strings.toml").read_text(encoding="utf-8"))
    for name, entries in data.items():
        for key, entry in entries.items():
            missing = [lang for lang in LANGUAGES if not isinstance(entry.get(lang), str)]
            if missing:
                raise ValueError(f"strings.toml: {name}.{key} has no {', '.join(missing)} text")
    return data


def section(name: str, language: str) -> dict[str, str]:
    """Every text of one section in ``language``."""
    lang = text_language(language)
    return {key: entry[lang] for key, entry in _table()[name].items()}


def text(key: str, language: str, **values: object) -> str:
    """One text, ``"section.name"``, in ``language``, with its ``{placeholders}`` filled from ``values``."""
    name, _, item = key.partition(".")
    template = _table()[name][item][text_language(language)]
    return template.format(**values) if values else template


def keys() -> list[str]:
    """Every ``section.name`` key (for tests and tooling)."""
    return [f"{name}.{key}" for name, entries in _table().items() for key in entries]
