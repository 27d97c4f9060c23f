"""Writing a file so that a reader in another thread or process sees the old content or the new one,
never half of it: the bytes go to a temporary file beside the target, which is then renamed over it
(``os.replace`` is atomic on one file system). The temporary name is unique to the process and the
call, and the file is created with the process's usual permissions (``mkstemp`` would make it private)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically, creating its folder; raises ``OSError`` (the
    temporary file removed) when it cannot be written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
