"""Files of the corpus folder as staff change them: uploads that keep what they replace, a trash that restores.

Nothing a staff member does through the UI destroys a file:
- an upload over an existing file keeps the previous one in ``corpus/.versions/`` (``NAME.YYYYmmdd-HHMMSS``);
- deleting a document's file moves it to ``corpus/.trash/``, and ``restore`` moves it back;
- an upload that cannot be indexed leaves the corpus (to the trash, with the reason), so it is not
  reported again at every re-index.
Hidden folders are never indexed (``documents.iter_files``).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import DocumentError

TRASH = ".trash"
VERSIONS = ".versions"


@dataclass(frozen=True)
class Trashed:
    """One file in the trash: its name there, the name it had in the corpus, and when it was moved."""

    name: str
    original: str
    moved_at: str


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def _free_name(folder: Path, name: str) -> Path:
    """``folder/name``, or ``folder/name.2``, ``.3``... when taken."""
    candidate = folder / name
    n = 2
    while candidate.exists():
        candidate = folder / f"{name}.{n}"
        n += 1
    return candidate


def inside(path: Path, folder: Path, strict: bool = False) -> Path | None:
    """``path`` resolved (links followed) when it lies inside ``folder``, else None; with ``strict``, also
    None when it does not exist. The one check for "a file of this folder" (corpus, trash, uploads)."""
    try:
        resolved = path.resolve(strict=strict)
    except OSError:
        return None
    return resolved if resolved.is_relative_to(folder.resolve()) else None


def _inside(path: Path, folder: Path) -> Path:
    resolved = inside(path, folder)
    if resolved is None:
        raise DocumentError(path.name, "not a file of the corpus folder")
    return resolved


def keep_version(dest: Path, corpus_dir: Path) -> Path | None:
    """Copy ``dest`` (about to be replaced) to ``.versions/``; the copy's path, or None if there was no file."""
    if not dest.is_file():
        return None
    folder = corpus_dir / VERSIONS
    folder.mkdir(parents=True, exist_ok=True)
    target = _free_name(folder, f"{dest.name}.{_stamp()}")
    shutil.copy2(dest, target)
    return target


def move_to_trash(path: Path, corpus_dir: Path) -> Path:
    """Move a corpus file to ``.trash/`` (never deletes); its new path."""
    source = _inside(path, corpus_dir)
    folder = corpus_dir / TRASH
    folder.mkdir(parents=True, exist_ok=True)
    relative = source.relative_to(corpus_dir.resolve())
    # The trash name keeps the original relative path readable: sub/x.txt -> sub__x.txt.<stamp>
    target = _free_name(folder, f"{'__'.join(relative.parts)}.{_stamp()}")
    source.replace(target)
    return target


def trashed(corpus_dir: Path) -> list[Trashed]:
    """Files in the trash, newest first."""
    folder = corpus_dir / TRASH
    if not folder.is_dir():
        return []
    found = []
    for f in sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True):
        if not f.is_file():
            continue
        original, _, stamp = f.name.rpartition(".")
        if not original or not stamp[:8].isdigit():  # a "name.2" suffix for a taken name
            original, _, stamp = original.rpartition(".")
        found.append(Trashed(f.name, original.replace("__", "/") or f.name, stamp))
    return found


def restore(name: str, corpus_dir: Path) -> Path:
    """Move ``.trash/name`` back to its place in the corpus; refuses to overwrite a file that is there now."""
    folder = (corpus_dir / TRASH).resolve()
    item = next((t for t in trashed(corpus_dir) if t.name == name), None)
    if item is None or "/" in name or name in ("", ".", ".."):
        raise DocumentError(name or "trash", "no such file in the trash")
    source = folder / item.name
    target = corpus_dir.resolve() / item.original
    try:
        target.resolve().relative_to(corpus_dir.resolve())
    except ValueError:
        raise DocumentError(name, "not a file of the corpus folder") from None
    if target.exists():
        raise DocumentError(item.original, "a file of that name is in the corpus now; rename or delete it first")
    target.parent.mkdir(parents=True, exist_ok=True)
    source.replace(target)
    return target
