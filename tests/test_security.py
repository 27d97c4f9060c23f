"""The server attacked as a script would: raw Gradio protocol, no browser, no UI rules.

Each test names the finding of the security review (issue 18) it guards. The server is the real app
(`ui.create_app`: JSON API + Gradio) on uvicorn over the real sample index.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio_raw import RawGradio, file_urls
from ui_fixtures import LiveServer, clone_index, open_assistant, sample_index, serve_app  # noqa: F401

pytestmark = pytest.mark.slow

PASSWORD = "s3cret-staff-pw"
MARKER = "TOP-SECRET-7f3a9c"


@pytest.fixture(scope="module")
def secrets(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Files an attacker wants: mode 600, outside every folder the app serves (and one inside cwd)."""
    base = tmp_path_factory.mktemp("secrets")
    gold_like = base / "api-key.jsonl"  # the Evaluation tab reads *.jsonl
    gold_like.write_text(json.dumps({"id": MARKER, "question": MARKER, "answerable": False}) + "\n")
    plain = base / "secret.txt"
    plain.write_text(f"{MARKER}\n")
    for f in (gold_like, plain):
        f.chmod(0o600)
    return [gold_like, plain]


@pytest.fixture(scope="module")
def staff_server(sample_index: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:  # noqa: F811
    paths = clone_index(sample_index, tmp_path_factory.mktemp("attacked"))
    yield from serve_app(open_assistant(paths), admin_password=PASSWORD)


def _payloads(path: Path) -> list[Any]:
    """The shapes in which a file can hide in an event's data: bare FileData, a list, a chat history."""
    file_data = {"path": str(path), "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}
    return [
        file_data,
        [file_data],
        [{"role": "user", "content": [{"type": "file", "file": file_data}]}],
        [{"role": "user", "content": {"path": str(path), "meta": {"_type": "gradio.FileData"}}}],
    ]


def _leaked(g: RawGradio, message: Any) -> list[str]:
    """Every file named in an event's reply whose served bytes hold the secret marker."""
    leaks = []
    for url in file_urls(message):
        served = g.http.get(url if url.startswith("http") else f"/gradio_api/file={url}")
        if served.status_code == 200 and MARKER in served.text:
            leaks.append(url)
    return leaks


def _gradio_cache_copies() -> list[Path]:
    from gradio.utils import get_upload_folder

    folder = Path(get_upload_folder())
    found = []
    for f in folder.rglob("*") if folder.exists() else []:
        try:
            if f.is_file() and f.stat().st_size < 4096 and MARKER in f.read_text(errors="replace"):
                found.append(f)
        except OSError:
            continue
    return found


def test_finding1_no_event_reads_a_server_file(staff_server: LiveServer, secrets: list[Path]) -> None:
    """Finding 1 (critical): a file path in any input of any event is never copied, served or echoed."""
    g = RawGradio(staff_server.url)
    try:
        tried = 0
        for dep in g.config["dependencies"]:
            if not dep.get("backend_fn", True) or not dep["inputs"]:
                continue
            event_targets = [tuple(t) for t in dep.get("targets", [])]
            trigger = event_targets[0][0] if event_targets else None
            for position in range(len(dep["inputs"])):
                for secret in secrets:
                    for payload in _payloads(secret):
                        data: list[Any] = [None] * len(dep["inputs"])
                        data[position] = payload
                        from gradio_raw import Event

                        event = Event(dep.get("id"), trigger, dep["inputs"], dep["outputs"], dep.get("api_name"))
                        reply = g.run(event, data)
                        tried += 1
                        text = json.dumps(reply, ensure_ascii=False)
                        assert MARKER not in text, (dep.get("api_name"), position, text[:400])
                        assert str(secret.parent) not in text, (dep.get("api_name"), position, text[:400])
                        assert not _leaked(g, reply), (dep.get("api_name"), position)
        assert tried > 50  # every event with inputs was attacked, in every input, with every payload shape
        assert not _gradio_cache_copies()
    finally:
        g.close()


def test_finding1_file_route_serves_no_server_file(staff_server: LiveServer, secrets: list[Path]) -> None:
    """The file route itself serves neither arbitrary paths nor the index."""
    with httpx.Client(base_url=staff_server.url, timeout=30) as http:
        for secret in secrets:
            for route in (f"/gradio_api/file={secret}", f"/file={secret}", f"/gradio_api/file={secret.name}"):
                r = http.get(route)
                assert MARKER not in r.text, route
        r = http.get(f"/gradio_api/file={os.getcwd()}/pyproject.toml")
        assert "[project]" not in r.text
