"""A per-context sink through which training collects what a pipeline stage computed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Generic, TypeVar

T = TypeVar("T")


class Recorder(Generic[T]):
    """Items a stage ``add``s are appended to the list ``collect`` yields, within its block only
    (a ContextVar, so concurrent requests outside the block record nothing)."""

    def __init__(self, name: str) -> None:
        self._sink: ContextVar[list[T] | None] = ContextVar(name, default=None)

    @property
    def active(self) -> bool:
        """Whether a ``collect`` block is open in this context."""
        return self._sink.get() is not None

    def add(self, item: T) -> None:
        sink = self._sink.get()
        if sink is not None:
            sink.append(item)

    @contextmanager
    def collect(self) -> Iterator[list[T]]:
        """The list every ``add`` within the block appends to."""
        sink: list[T] = []
        token = self._sink.set(sink)
        try:
            yield sink
        finally:
            self._sink.reset(token)
