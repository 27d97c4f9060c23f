"""One small error hierarchy; the CLI and the UI map these to user messages (never a stack trace)."""

from __future__ import annotations


class AssistantError(Exception):
    """Base class of every error the assistant reports to a user."""


class ConfigError(AssistantError, ValueError):
    """A setting has an invalid value; the message names the setting and the value."""


class DocumentError(AssistantError):
    """A file could not be read as a document (broken, empty, unsupported, undecodable)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class LinesSkippedError(DocumentError):
    """Some lines of a file gave no document and were skipped; its other documents were indexed."""


class StoreError(AssistantError):
    """The index is missing, corrupt, or incompatible with the configured settings."""


class IndexMismatchError(StoreError):
    """The index was built with another embedding model, dimension or chunker: re-ingest needed.

    ``reason`` says what differs; the message adds what to do about it (``advice``)."""

    def __init__(self, reason: str, advice: str = "re-ingest with `assistant ingest --rebuild`") -> None:
        super().__init__(f"{reason}: {advice}")
        self.reason = reason


class IndexLockedError(StoreError):
    """Another ingest holds the index lock."""


class IndexRebuildingError(IndexLockedError):
    """The server is rebuilding the index (or completing its sentence vectors) in the background:
    a change to it would wait until that is done."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the index is being updated in the background ({reason})")
        self.reason = reason


class QuestionError(AssistantError, ValueError):
    """The question cannot be answered as given (empty, too long...)."""


class LLMError(AssistantError):
    """The configured LLM endpoint failed or timed out."""
