"""A real Chroma server (``chroma run``) in a subprocess, on a free port of 127.0.0.1, for tests.

``start_chroma(path)`` starts it and waits (bounded) until its heartbeat answers; ``ChromaServer.stop``
terminates it (SIGTERM, then SIGKILL after a grace period). The server's output goes to a log file
beside its data directory, and its tail is quoted when it fails to start.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def chroma_executable() -> Path:
    """The ``chroma`` CLI of the interpreter running the tests (the project's virtualenv)."""
    return Path(sys.executable).parent / "chroma"


def http_client(port: int) -> Any:
    import chromadb

    return chromadb.HttpClient(host=HOST, port=port, settings=chromadb.Settings(anonymized_telemetry=False))


@dataclass
class ChromaServer:
    proc: subprocess.Popen[bytes]
    port: int
    path: Path
    log: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def client(self) -> Any:
        """A fresh ``chromadb.HttpClient`` to this server (for checks behind the assistant's back)."""
        return http_client(self.port)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, grace: float = 10.0) -> None:
        """Terminate the server (its whole process group); kill it when it ignores SIGTERM."""
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=grace)


def start_chroma(path: Path, timeout: float = 30.0) -> ChromaServer:
    """Start ``chroma run --path PATH --host 127.0.0.1 --port FREE`` and wait until its heartbeat answers."""
    exe = chroma_executable()
    if not exe.exists():
        raise RuntimeError(f"no chroma CLI at {exe}")
    path.mkdir(parents=True, exist_ok=True)
    log = path.parent / f"{path.name}.log"
    port = free_port()
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False", "NO_COLOR": "1"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(exe), "run", "--path", str(path), "--host", HOST, "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group: stop() ends it and any children
        )
    server = ChromaServer(proc, port, path, log)
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"chroma exited with code {proc.returncode}:\n{server.log_tail()}")
            try:
                server.client().heartbeat()
                return server
            except Exception as exc:  # not listening yet
                last = exc
                time.sleep(0.2)
        raise RuntimeError(f"chroma did not answer within {timeout:g} s ({last!r}):\n{server.log_tail()}")
    except BaseException:
        server.stop()
        raise


@contextmanager
def running_chroma(path: Path, timeout: float = 30.0) -> Iterator[ChromaServer]:
    """``start_chroma`` as a context manager: the server is stopped on exit, also after a failure."""
    server = start_chroma(path, timeout)
    try:
        yield server
    finally:
        server.stop()
