"""The lexical index's chunk texts and metadata on disk, read one chunk at a time (issue 17).

``LexicalIndex`` keeps every chunk's text and metadata beside its BM25 matrix: a question reads those of
its lexical hits (tens of chunks), a filtered question the metadata of its candidates. Unpickling all of
them at start-up was 0.7-0.8 s CPU and ~300 MB at 100k chunks. They are saved here as two files of
concatenated records (``texts.bin``: UTF-8 text; ``metas.bin``: compact JSON) and one array of offsets
(``offsets.npy``, int64, shape (2, n + 1)); ``open_records`` memory-maps them and returns sequences that
decode a record when it is read. A decoded metadata dict is kept (a filtered question may read many, and
callers may share it, as they shared the list's dicts before); texts are decoded on each read.

A file replaced by a later save stays readable through its old mapping (POSIX keeps the inode alive), so
an index object in use never sees half of another save.
"""

from __future__ import annotations

import json
import mmap
import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, overload

import numpy as np

TEXTS = "texts.bin"
METAS = "metas.bin"
OFFSETS = "offsets.npy"

T = TypeVar("T")


def _encode_meta(meta: Mapping[str, Any]) -> bytes:
    return json.dumps(meta, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")


def _decode_text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogatepass")


def _decode_meta(raw: bytes) -> dict[str, Any]:
    value = json.loads(raw.decode("utf-8", "surrogatepass"))
    if not isinstance(value, dict):
        raise ValueError("a chunk's metadata record is not an object")
    return value


def write(directory: Path, texts: Sequence[str], metas: Sequence[Mapping[str, Any]]) -> None:
    """Write the records of ``texts`` and ``metas`` (same length) into ``directory``."""
    if len(texts) != len(metas):
        raise ValueError(f"{len(texts)} texts but {len(metas)} metadata records")
    offsets = np.zeros((2, len(texts) + 1), dtype=np.int64)
    with (directory / TEXTS).open("wb") as ft, (directory / METAS).open("wb") as fm:
        t_end = m_end = 0
        for i, (text, meta) in enumerate(zip(texts, metas, strict=True)):
            bt, bm = text.encode("utf-8", "surrogatepass"), _encode_meta(meta)
            ft.write(bt)
            fm.write(bm)
            t_end += len(bt)
            m_end += len(bm)
            offsets[0, i + 1], offsets[1, i + 1] = t_end, m_end
    np.save(directory / OFFSETS, offsets)


def exists(directory: Path) -> bool:
    return (directory / OFFSETS).exists()


def _map(path: Path, size: int) -> mmap.mmap | bytes:
    with path.open("rb") as fh:
        actual = fh.seek(0, 2)
        if actual != size:
            raise ValueError(f"{path.name} holds {actual} bytes, its offsets say {size}")
        if size == 0:
            return b""  # an empty file cannot be mapped
        return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)


def open_records(directory: Path, count: int) -> tuple[Records[str], Records[dict[str, Any]]]:
    """The texts and metadata saved by ``write``, memory-mapped; ``ValueError`` unless they hold
    ``count`` records each and the files are as long as the offsets say."""
    offsets = np.load(directory / OFFSETS)
    if offsets.ndim != 2 or offsets.shape != (2, count + 1):
        raise ValueError(f"{OFFSETS} has shape {offsets.shape}, expected (2, {count + 1})")
    texts = _map(directory / TEXTS, int(offsets[0, -1]))
    metas = _map(directory / METAS, int(offsets[1, -1]))
    return Records(texts, offsets[0], _decode_text), Records(metas, offsets[1], _decode_meta, keep=True)


class Records(Sequence[T]):
    """A read-only sequence of records decoded from a buffer on access."""

    def __init__(
        self, buf: mmap.mmap | bytes, offsets: np.ndarray, decode: Callable[[bytes], T], keep: bool = False
    ) -> None:
        self._buf = buf
        self._offsets = offsets
        self._decode = decode
        self._kept: dict[int, T] | None = {} if keep else None

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def _read(self, i: int) -> T:
        kept = self._kept
        if kept is not None and i in kept:
            return kept[i]
        value = self._decode(self._buf[int(self._offsets[i]) : int(self._offsets[i + 1])])
        if kept is not None:
            kept[i] = value
        return value

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
        if isinstance(index, slice):
            return [self._read(i) for i in range(*index.indices(len(self)))]
        i = operator.index(index)
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("record index out of range")
        return self._read(i)

    def __iter__(self) -> Iterator[T]:
        for i in range(len(self)):
            yield self._read(i)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str | bytes):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<Records of {len(self)}>"
