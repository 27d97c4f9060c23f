"""The server attacked as a script would: raw Gradio protocol, no browser, no UI rules.

Each test names the finding of the security review (issue 18) it guards. The server is the real app
(`ui.create_app`: JSON API + Gradio) on uvicorn over the real sample index.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio_raw import RawGradio, file_urls
from ui_fixtures import LiveServer, clone_index, open_assistant, sample_index, serve_app  # noqa: F401

pytestmark = pytest.mark.slow

PASSWORD = "s3cret-staff-pw"
MARKER = f"TOP-SECRET-{uuid.uuid4().hex}"  # fresh per run: no earlier run's files can match


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


# --------------------------------------------------------------------------- finding 2: direct routes, guessing


def _login_event(g: RawGradio) -> Any:
    return g.event("staff-login", "click")


def _login(g: RawGradio, password: str) -> str:
    """The staff status message after a login attempt."""
    event = _login_event(g)
    data = [password if g.types[i] == "textbox" else "en" for i in event.inputs]
    out = g.outputs(event, data)
    status = g.component("staff-status")
    return str(out[event.outputs.index(status)])


def test_finding2_direct_call_routes_are_closed(staff_server: LiveServer) -> None:
    g = RawGradio(staff_server.url)
    try:
        login = _login_event(g)
        body = {"data": [PASSWORD, "en"], "fn_index": login.fn_index, "session_hash": "x1"}
        for route in ("/gradio_api/run/predict", "/gradio_api/run/login", "/gradio_api/api/login",
                      "/gradio_api/call/login", "/gradio_api/call/v2/login", "/gradio_api/call/upload"):
            r = g.http.post(route, json=body)
            assert r.status_code == 404, (route, r.status_code, r.text[:200])
            assert "Logged in" not in r.text
        # The documented Gradio-client endpoint stays open.
        r = g.http.post("/gradio_api/call/ask", json={"data": ["What is the Suzhou alliance?"]})
        assert r.status_code == 200 and r.json().get("event_id"), r.text
    finally:
        g.close()


def test_finding2_guessing_locks_out_the_guesser_only(staff_server: LiveServer) -> None:
    """Wrong passwords from one address lock that address out (the right one too), at once, while staff at
    another address log in; a forged X-Forwarded-For from an untrusted client changes nothing."""
    from assistant.server import LoginThrottle

    free = LoginThrottle().free_attempts
    attacker = RawGradio(staff_server.url, source="127.0.0.3")
    staff = RawGradio(staff_server.url, source="127.0.0.1")
    try:
        replies = [_login(attacker, f"guess-{i}") for i in range(free + 3)]
        assert all("Wrong password" in r for r in replies[:free])
        assert not any("Too many" in r for r in replies[: free - 1])
        assert all("Too many" in r for r in replies[free:]), replies
        assert "Too many" in _login(attacker, PASSWORD)  # locked: not even the right password is checked
        spoofer = RawGradio(staff_server.url, source="127.0.0.3", headers={"X-Forwarded-For": "203.0.113.9"})
        try:
            assert "Too many" in _login(spoofer, PASSWORD)
        finally:
            spoofer.close()
        # Not even from 127.0.0.1 (uvicorn's own default trusts it): no proxy is trusted unless named.
        local = RawGradio(staff_server.url, source="127.0.0.1", headers={"X-Forwarded-For": "127.0.0.3"})
        try:
            assert "Logged in" in _login(local, PASSWORD)
        finally:
            local.close()
        assert "Logged in" in _login(staff, PASSWORD)
    finally:
        attacker.close()
        staff.close()


def test_a_staff_session_id_used_from_another_address_grants_nothing(staff_server: LiveServer) -> None:
    """Gradio's session id is a bearer token that travels in URLs (third security review): a client at
    another address presenting a logged-in staff session's id is refused outright, cannot read its
    answer stream, and cannot act as staff or log staff out."""
    staff = RawGradio(staff_server.url, source="127.0.0.1")
    thief = RawGradio(staff_server.url, source="127.0.0.6")
    try:
        assert "Logged in" in _login(staff, PASSWORD)
        thief.session_hash = staff.session_hash
        event = staff.event("reindex-btn", "click")
        data = [False if staff.types[i] == "checkbox" else "en" for i in event.inputs]
        status = event.outputs.index(staff.component("staff-status"))
        refused = thief.run(event, data)
        assert refused["msg"] == "join_refused" and refused["status"] == 403, refused
        stream = thief.http.get("/gradio_api/queue/data", params={"session_hash": staff.session_hash})
        assert stream.status_code == 403
        # Gradio streams a session's messages from ``call/ask/<id>`` when no event has that id.
        for route in ("call/ask", "call/v2/ask"):
            assert thief.http.get(f"/gradio_api/{route}/{staff.session_hash}").status_code == 403
        logout = staff.event("staff-logout", "click")
        assert thief.run(logout, ["en" for _ in logout.inputs])["status"] == 403
        # The staff's own address still acts.
        assert "Staff login required" not in str(staff.outputs(event, data)[status])
    finally:
        staff.close()
        thief.close()


def _state_holder(server: LiveServer) -> Any:
    """Gradio's session store of the app ``server`` serves."""
    app = server.server.config.app
    return next(r.app.state_holder for r in app.routes if hasattr(getattr(r, "app", None), "state_holder"))


def test_a_flood_of_new_sessions_does_not_log_staff_out(staff_server: LiveServer) -> None:
    """Gradio drops its oldest sessions past its capacity, and new sessions from enough addresses get
    past any per-client cap: the re-attack pushed a staff login out of the store that way. Staff logins
    are kept apart from that store, so a staff session pushed out still acts."""
    holder = _state_holder(staff_server)
    capacity = holder.capacity
    staff = RawGradio(staff_server.url, source="127.0.0.1")
    crowd = [RawGradio(staff_server.url, source=f"127.0.2.{i}") for i in range(1, 5)]
    try:
        assert "Logged in" in _login(staff, PASSWORD)
        assert staff.session_hash in holder
        holder.capacity = 3  # the store's bound made small: four sessions then do what 1,000 would
        for g in crowd:
            assert "Wrong password" in _login(g, "not-the-password")
        assert staff.session_hash not in holder  # pushed out, by Gradio's own eviction
        event = staff.event("reindex-btn", "click")
        data = [False if staff.types[i] == "checkbox" else "en" for i in event.inputs]
        status = event.outputs.index(staff.component("staff-status"))
        assert "Staff login required" not in str(staff.outputs(event, data)[status])
        assert "Staff login required" in str(crowd[0].outputs(event, data)[status])  # and nobody else gains
    finally:
        holder.capacity = capacity
        for g in [staff, *crowd]:
            g.close()


def test_a_staff_session_whose_gate_record_was_pushed_out_cannot_be_claimed(staff_server: LiveServer) -> None:
    """The gate remembers which address started each session, in a bounded store that a flood of new
    sessions from many addresses can empty. A stolen id whose record went, of a session Gradio still
    holds, is refused rather than given to whoever sends it first."""
    seen = staff_server.gate.seen
    capacity = seen.capacity
    staff = RawGradio(staff_server.url, source="127.0.0.1")
    crowd = [RawGradio(staff_server.url, source=f"127.0.3.{i}") for i in range(1, 4)]
    thief = RawGradio(staff_server.url, source="127.0.0.8")
    try:
        assert "Logged in" in _login(staff, PASSWORD)
        seen.capacity = 2  # the store's bound made small: three new sessions then push the staff's out
        for g in crowd:
            assert "Wrong password" in _login(g, "not-the-password")
        assert seen.is_new(staff.session_hash)  # the staff's record is gone; Gradio still holds the session
        thief.session_hash = staff.session_hash
        event = staff.event("reindex-btn", "click")
        data = [False if staff.types[i] == "checkbox" else "en" for i in event.inputs]
        refused = thief.run(event, data)
        assert refused["msg"] == "join_refused" and refused["status"] == 403, refused
        assert thief.http.get("/gradio_api/queue/data", params={"session_hash": staff.session_hash}).status_code == 403
        assert seen.is_new(staff.session_hash)  # nobody claimed it
    finally:
        seen.capacity = capacity
        for g in [staff, *crowd, thief]:
            g.close()


def test_login_throttle_policy_exact() -> None:
    from assistant.server import LoginThrottle

    now = [1000.0]
    th = LoginThrottle(free_attempts=3, base_lock=10, max_lock=35, window=100, clock=lambda: now[0])
    assert [th.failed("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert th.retry_after("a") == 0.0
    assert th.failed("a") == 10.0 and th.retry_after("a") == 10.0
    assert th.failed("a") == 20.0 and th.failed("a") == 35.0  # doubling, capped
    assert th.retry_after("b") == 0.0  # other clients are not affected
    now[0] += 36
    assert th.retry_after("a") == 0.0
    now[0] += 100  # the window has passed: the count starts again
    assert th.failed("a") == 0.0
    th.succeeded("a")
    assert th.retry_after("a") == 0.0
    with pytest.raises(ValueError, match="free_attempts=0"):
        LoginThrottle(free_attempts=0)


# --------------------------------------------------------------------------- finding 6: request sizes, history


def test_finding6_large_gradio_requests_are_refused(staff_server: LiveServer) -> None:
    g = RawGradio(staff_server.url)
    try:
        ask = g.event("ask-btn", "click")
        data: list[Any] = [None] * len(ask.inputs)
        data[ask.inputs.index(g.component("question"))] = "x" * (20 * 1024 * 1024)
        body = {"data": data, "fn_index": ask.fn_index, "trigger_id": ask.trigger_id, "session_hash": g.session_hash}
        r = g.http.post("/gradio_api/queue/join", content=json.dumps(body),
                        headers={"content-type": "application/json"})
        assert r.status_code == 413, r.status_code
        # Under the byte limit but over the question limit: refused and not kept in the conversation.
        from assistant.core import MAX_QUESTION_CHARS

        data[ask.inputs.index(g.component("lang-toggle"))] = "en"
        data[ask.inputs.index(g.component("question"))] = "长" * (MAX_QUESTION_CHARS + 1)
        g.outputs(ask, data)
        data[ask.inputs.index(g.component("question"))] = "What is the Suzhou alliance?"
        out = g.outputs(ask, data)
        chat = out[ask.outputs.index(g.component("chatbot"))]
        text = json.dumps(chat, ensure_ascii=False)
        assert "长长长" not in text and "Suzhou" in text
        assert len(chat) == 2  # the question and its answer: the refused one left nothing behind
    finally:
        g.close()


def test_request_gate_limits_and_quota() -> None:
    """Exact limits of the outermost middleware, on a bare app (the live server uses the same class)."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from assistant.gate import MAX_BODY_BYTES, MAX_GRADIO_BODY_BYTES, ClientQuota, RequestGate, closed_route

    inner = FastAPI()

    @inner.post("/{rest:path}")
    def echo(rest: str) -> dict[str, str]:
        return {"ok": rest}

    now = [0.0]
    quota = ClientQuota(limit=1000, window=60, clock=lambda: now[0])
    app = RequestGate(inner, quota=quota, allowed_hosts=("testserver",))  # TestClient's host name
    client = TestClient(app)  # type: ignore[arg-type]
    assert client.post("/api/ask", content=b"x" * MAX_BODY_BYTES).status_code == 200
    assert client.post("/api/ask", content=b"x" * (MAX_BODY_BYTES + 1)).status_code == 413
    assert client.post("/gradio_api/queue/join", content=b"x" * (MAX_GRADIO_BODY_BYTES + 1)).status_code == 413
    assert client.post("/gradio_api/upload", content=b"x" * 600).status_code == 200
    assert client.post("/gradio_api/upload", content=b"x" * 600).status_code == 429  # 1,200 > 1,000
    now[0] += 61
    assert client.post("/gradio_api/upload", content=b"x" * 600).status_code == 200
    assert client.post("/gradio_api/run/predict", content=b"{}").status_code == 404
    assert [closed_route(p) for p in ("/gradio_api/call/ask", "/gradio_api/call/login", "/gradio_api/queue/join",
                                      "/api/ask", "/gradio_api/upload")] == [False, True, False, False, False]


# --------------------------------------------------------------------------- finding 7: overwrite, trash, restore


def _upload(g: RawGradio, name: str, content: bytes) -> dict[str, Any]:
    r = g.http.post("/gradio_api/upload", files={"files": (name, content, "text/plain")})
    assert r.status_code == 200, r.text
    [path] = r.json()
    return {"path": path, "orig_name": name, "meta": {"_type": "gradio.FileData"}}


def _staff_event(g: RawGradio, elem_id: str, values: dict[str, Any]) -> str:
    """Run a staff button's event with the given values (by elem_id); the staff status message."""
    event = g.event(elem_id, "click")
    by_id = {g.component(k): v for k, v in values.items()}
    data = [by_id.get(i, "en" if g.types[i] == "radio" else None) for i in event.inputs]
    out = g.outputs(event, data)
    return str(out[event.outputs.index(g.component("staff-status"))])


def test_finding7_overwrite_keeps_the_previous_file_and_delete_goes_to_trash(
        sample_index: Any, tmp_path: Path) -> None:  # noqa: F811
    from assistant.corpus_files import trashed

    paths = clone_index(sample_index, tmp_path)
    assistant = open_assistant(paths)
    server = next(gen := serve_app(assistant, admin_password=PASSWORD))
    g = RawGradio(server.url)
    try:
        assert "Logged in" in _login(g, PASSWORD)
        first = b"The Kestrel alliance was founded in Ningbo in 2021 by six colleges.\n"
        second = b"The Kestrel alliance now counts twelve colleges.\n"
        msg = _staff_event(g, "upload-btn", {"upload": [_upload(g, "kestrel.txt", first)]})
        assert "1 added" in msg, msg
        msg = _staff_event(g, "upload-btn", {"upload": [_upload(g, "kestrel.txt", second)]})
        assert "previous version is kept" in msg, msg
        versions = list((paths.corpus / ".versions").glob("kestrel.txt.*"))
        assert [v.read_bytes() for v in versions] == [first]
        assert (paths.corpus / "kestrel.txt").read_bytes() == second
        # Re-index does not index the kept version (hidden folder).
        assert not any(".versions" in d.path for d in assistant.documents())

        msg = _staff_event(g, "delete-btn", {"delete-doc": "kestrel.txt", "delete-file": True})
        assert "trash" in msg, msg
        assert not (paths.corpus / "kestrel.txt").exists()
        [item] = trashed(paths.corpus)
        assert item.original == "kestrel.txt"
        # The trash list is offered to this session again after a new login.
        assert "Logged in" in _login(g, PASSWORD)
        msg = _staff_event(g, "restore-btn", {"restore-file": item.name})
        assert "Restored kestrel.txt" in msg and "1 added" in msg, msg
        assert (paths.corpus / "kestrel.txt").read_bytes() == second
        assert "kestrel.txt" in {d.doc_id for d in assistant.documents()}
    finally:
        g.close()
        with pytest.raises(StopIteration):
            next(gen)


# --------------------------------------------------------------------------- finding 9: the rest


def test_finding9_evaluation_needs_a_login(staff_server: LiveServer, sample_index: Any) -> None:  # noqa: F811
    from assistant.cli import load_ui

    g = RawGradio(staff_server.url)
    try:
        gold = _upload(g, "gold.jsonl", b'{"id": "a", "question": "q?", "answerable": false}\n')
        event = g.event("run-eval", "click")
        data = [gold if g.types[i] == "file" else 5 if g.types[i] == "slider" else "en" if g.types[i] == "radio"
                else None for i in event.inputs]
        out = g.outputs(event, data)
        assert "Staff login required" in str(out[0])
    finally:
        g.close()
    # Without a staff password there is no Evaluation tab at all.
    blocks = load_ui().build_app(open_assistant(sample_index), admin_password="")
    ids = {getattr(b, "elem_id", None) for b in blocks.blocks.values()}
    assert "tab-eval" not in ids and "run-eval" not in ids


def test_finding9_impossible_dates_are_refused_alike(staff_server: LiveServer) -> None:
    with httpx.Client(base_url=staff_server.url, timeout=30) as http:
        for bad in ("2025-13-45", "0000-00-00", "2025-02-30"):
            r = http.post("/api/ask", json={"question": "alliance", "filters": {"date_from": bad}})
            assert r.status_code == 422 and "not a real date" in r.json()["error"], (bad, r.text)
        r = http.post("/api/ask", json={"question": "alliance", "filters": {"date_from": "2025-02-28"}})
        assert r.status_code == 200


def test_without_paths() -> None:
    from assistant.server import without_paths

    assert without_paths("The index is not available: /srv/app/index/chroma is corrupt") == (
        "The index is not available: chroma is corrupt")
    assert without_paths("/tmp/gradio/ab12/gold.jsonl:3: invalid JSON") == "gold.jsonl:3: invalid JSON"
    assert without_paths("see https://example.org/a/b") == "see https://example.org/a/b"
    assert without_paths("a/b: relative stays") == "a/b: relative stays"


def test_document_viewer_opens_only_indexed_documents(staff_server: LiveServer) -> None:
    g = RawGradio(staff_server.url)
    try:
        event = g.event("doc-open", "click")
        for request in ('["/etc/passwd", 0, 10]', '["../../pyproject.toml", 0, 10]', '["x", -1, 5]', "not json",
                        '["001_19f0403027cb6d52.txt", 0, true]', "[" * 5000):
            data = [request if g.types[i] == "textbox" else "en" for i in event.inputs]
            out = g.outputs(event, data)
            assert "root:" not in str(out) and "[project]" not in str(out)
            assert str(out[0]) in ("", ) or "not in the index" in str(out[0]), (request[:40], str(out)[:200])
        data = ['["001_19f0403027cb6d52.txt", 1110, 1415]' if g.types[i] == "textbox" else "en" for i in event.inputs]
        out = g.outputs(event, data)
        assert 'id="doc-quote"' in str(out[0]) and "Suzhou" in str(out[0])
    finally:
        g.close()
