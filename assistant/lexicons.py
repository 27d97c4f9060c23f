"""Language word lists as data: ``assistant/lexicon/<language>.toml`` (read once).

Code names a list by its key (``words("en", "stopwords")``); the lists' meanings and the reasons
behind them are in the files. To add a language, add a file with the keys its code asks for.
"""

from __future__ import annotations

import tomllib
from functools import lru_cache
from importlib import resources
from typing import Any


@lru_cache(maxsize=32)
def lexicon(language: str) -> dict[str, Any]:
    """The parsed ``lexicon/<language>.toml``."""
    path = resources.files("assistant") / "lexicon" / f"{language}.toml"
    return tomllib.loads(path.read_text(encoding="utf-8"))


def words(language: str, key: str) -> frozenset[str]:
    """One word list of ``language``'s lexicon."""
    return frozenset(str(w) for w in lexicon(language)[key])
