"""Fixtures for the API and browser tests: a sample-corpus index built once, and live servers.

Import the fixtures into a test module (``from ui_fixtures import sample_index  # noqa: F401``).
The index is built once per session from ``corpus/*.txt`` in a temporary directory; tests that
change an index (uploads, deletes) work on a copy (``clone_index``). Servers run uvicorn in a thread
on a free port of 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CORPUS = ROOT / "corpus"
SAMPLE_DOCS = 14  # documents in corpus/*.txt (one file is a digest of ten articles)


@dataclass(frozen=True)
class IndexPaths:
    """A corpus directory and the index built from it."""

    corpus: Path
    index: Path


def open_assistant(paths: IndexPaths) -> Any:
    """An ``Assistant`` over ``paths`` (offline; settings from the environment otherwise)."""
    from assistant.config import Config
    from assistant.core import Assistant
    from assistant.embedding import offline_env

    offline_env()
    return Assistant(Config.from_env(index_dir=paths.index, corpus_dir=paths.corpus))


def build_index(root: Path) -> IndexPaths:
    """Copy the sample corpus under ``root`` and ingest it."""
    paths = IndexPaths(root / "corpus", root / "index")
    paths.corpus.mkdir(parents=True)
    for f in sorted(SAMPLE_CORPUS.glob("*.txt")):
        shutil.copy2(f, paths.corpus / f.name)
    report = open_assistant(paths).ingest()
    assert not report.errors, report.errors
    return paths


def clone_index(src: IndexPaths, root: Path) -> IndexPaths:
    """A writable copy of an index and its corpus (the manifest stores absolute paths: re-ingest fixes them)."""
    dest = IndexPaths(root / "corpus", root / "index")
    shutil.copytree(src.corpus, dest.corpus)
    shutil.copytree(src.index, dest.index)
    return dest


@pytest.fixture(scope="session")
def sample_index(tmp_path_factory: pytest.TempPathFactory) -> IndexPaths:
    """The sample corpus, ingested once per test session (treat as read-only)."""
    return build_index(tmp_path_factory.mktemp("sample"))


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """uvicorn serving ``app`` in a daemon thread; ``url`` ends without a slash."""

    def __init__(self, app: Any, trusted_proxies: tuple[str, ...] = ()) -> None:
        import uvicorn

        from assistant.gate import uvicorn_options

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # The proxy options `assistant serve` uses (by default: X-Forwarded-For is read from nobody).
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on",
                                timeout_graceful_shutdown=1, **uvicorn_options(trusted_proxies))
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=f"uvicorn-{self.port}", daemon=True)

    def start(self, timeout: float = 30.0) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the test server on port {self.port} did not start")
            time.sleep(0.05)
        return self

    @property
    def gate(self) -> Any:
        """The ``RequestGate`` in front of the app (its session records, quotas)."""
        from assistant.gate import RequestGate

        layer = self.server.config.app.middleware_stack
        while layer is not None and not isinstance(layer, RequestGate):
            layer = getattr(layer, "app", None)
        assert layer is not None
        return layer

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)
        if self.thread.is_alive():  # open streaming connections (Gradio's SSE): do not wait for them
            self.server.force_exit = True
            self.thread.join(timeout=5)


def serve_app(assistant: Any, admin_password: str = "", allowed_hosts: tuple[str, ...] = (),
              metered: bool = False) -> Iterator[LiveServer]:
    """Start the full app (API + UI) for ``assistant``; yields the running server, stops it after.

    Unless ``metered``, the per-client event and session limits are lifted: a test module sends hundreds
    of events from 127.0.0.1 in a minute (``test_hardening`` checks the limits on a metered server)."""
    from assistant.cli import load_ui
    from assistant.gate import client_limits

    lifted = client_limits(events_per_minute=10**9, questions_at_once=10**9, new_sessions=10**9)
    app = load_ui().create_app(assistant, admin_password=admin_password, allowed_hosts=allowed_hosts,
                               gate=None if metered else lifted)
    server = LiveServer(app).start()
    try:
        yield server
    finally:
        server.stop()


def ci() -> bool:
    """True on CI (env CI=true), where missing tools fail tests instead of skipping them."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")
