"""Bilingual (Chinese/English) extractive question answering over documents, with cited passages.

``assistant.HybridRetriever`` is the llama-index retriever over an index (``assistant.llamaindex``); it is
imported on first use, so ``import assistant`` does not load llama-index.
"""

from __future__ import annotations

from typing import Any

__all__ = ["HybridRetriever"]


def __getattr__(name: str) -> Any:
    if name == "HybridRetriever":
        from .llamaindex import HybridRetriever

        return HybridRetriever
    raise AttributeError(f"module 'assistant' has no attribute {name!r}")
