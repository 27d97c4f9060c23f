"""The UI's handlers as plain functions of a UIContext and event values: no browser, no server."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from ui_fixtures import clone_index, open_assistant, sample_index  # noqa: F401

import ui
from assistant import feedback

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ctx(sample_index: Any, tmp_path_factory: pytest.TempPathFactory) -> ui.UIContext:  # noqa: F811
    paths = clone_index(sample_index, tmp_path_factory.mktemp("handlers"))
    return ui.UIContext(open_assistant(paths), password="pw")


def _run(ctx: ui.UIContext, question: str, past: list[str], turns: list[Any], kept: list[Any]) -> tuple[Any, ...]:
    *_, last = ui.answer_question(ctx, question, [], past, turns, kept, "en", {})
    return last


def test_a_conversation_round_trip_through_the_browser_record(ctx: ui.UIContext) -> None:
    messages, _, _, past, turns, panel, kept, saved = _run(ctx, "What is the Suzhou alliance?", [], [], [])
    assert len(messages) == 2 and past == ["What is the Suzhou alliance?"] and 'id="turn-1"' in panel
    assert kept[0]["answer"]["citations"] and saved[0]["question"] == "What is the Suzhou alliance?"
    browser = json.loads(json.dumps(saved))  # what the browser keeps and sends back
    chat, _, history, restored, records, sources, _ = ui.reload_conversation(browser, [], "en")
    assert history == past and len(chat) == 2 and restored[0][1].answer == turns[0][1].answer
    marks = [re.findall(r"<mark>(.*?)</mark>", html) for html in (sources, panel)]
    assert marks[0] == marks[1] and marks[0]  # the same quotes (the saved passage is cut around them)
    # New conversation: the current one goes to the earlier ones, and can be opened again.
    out = ui.new_conversation(turns, [], "en")
    earlier = out[8]
    assert out[0] == [] and earlier[0]["title"] == "What is the Suzhou alliance?"
    opened = ui.open_earlier(0, [], json.loads(json.dumps(earlier)), "en")
    assert opened[2] == past and opened[7] == []
    assert ui.open_earlier(5, [], earlier, "en")[0] == ui.gr.update()  # a pick that does not exist


def test_staff_handlers_refuse_without_login_and_lock_out_guessers(ctx: ui.UIContext) -> None:
    before = [d.doc_id for d in ctx.assistant.documents()]
    assert "login" in ui.staff_upload(ctx, ["/etc/passwd"], False, "en")[0].lower()
    assert "login" in ui.staff_delete(ctx, before[0], True, "yes", "en")[0].lower()  # a truthy non-True flag
    assert "login" in ui.staff_reindex(ctx, True, 1, "en")[0].lower()
    assert "login" in ui.staff_run_evaluation(ctx, "/etc/passwd", 5, False, "en")[0].lower()
    assert [d.doc_id for d in ctx.assistant.documents()] == before
    for _ in range(ctx.throttle.free_attempts + 1):  # the one past the free attempts starts the lock-out
        assert "Wrong password" in ui.staff_login(ctx, "wrong", "en", "10.9.9.9", "s-guess")[1]
    locked = ui.staff_login(ctx, "pw", "en", "10.9.9.9", "s-guess")
    assert "Too many" in locked[1] and not ctx.staff.granted("s-guess", "10.9.9.9")
    assert "登录" in ui.staff_login(ctx, "pw", "zh", "10.9.9.8", "s-staff")[1]
    assert ctx.staff.granted("s-staff", "10.9.9.8")  # the session is logged in from that address only
    assert not ctx.staff.granted("s-staff", "10.9.9.9") and not ctx.staff.granted("s-guess", "10.9.9.8")
    assert "login required" in ui.staff_login(ctx, "pw", "en", "10.9.9.7", None)[1]  # no session id: nothing to bind


def _request(host: str | None, session: str | None) -> Any:
    from types import SimpleNamespace

    return SimpleNamespace(client=SimpleNamespace(host=host) if host else None, session_hash=session)


def test_a_staff_session_acts_only_from_the_address_that_logged_in(ctx: ui.UIContext) -> None:
    """A session hash is a bearer token in URLs (third security review): held elsewhere it grants nothing,
    and logs nobody out."""
    assert ctx.staff.grant("s1", ui.client_address(_request("10.9.9.8", "s1")))
    assert ui.staff_granted(ctx, _request("10.9.9.8", "s1"))
    assert not ui.staff_granted(ctx, _request("10.9.9.9", "s1"))
    assert not ui.staff_granted(ctx, _request("10.9.9.8", "s2")) and not ui.staff_granted(ctx, _request(None, "s1"))
    assert not ui.staff_granted(ctx, _request("10.9.9.8", None))
    ui.staff_logout(ctx, "en", _request("10.9.9.9", "s1"))  # the thief's logout
    assert ui.staff_granted(ctx, _request("10.9.9.8", "s1"))
    assert "Logged out" in ui.staff_logout(ctx, "en", _request("10.9.9.8", "s1"))[1]
    assert not ui.staff_granted(ctx, _request("10.9.9.8", "s1"))
    # An IPv6 client is its /64, as the per-client limits count it.
    assert ctx.staff.grant("s6", ui.client_address(_request("2001:db8:1:2::1", "s6")))
    assert ui.staff_granted(ctx, _request("2001:db8:1:2::99", "s6"))
    assert not ui.staff_granted(ctx, _request("2001:db8:1:3::1", "s6"))


def test_staff_sessions_lapse_when_idle_and_are_bounded() -> None:
    from assistant.server import StaffSessions

    now = [0.0]
    staff = StaffSessions(idle_seconds=100, capacity=2, clock=lambda: now[0])
    assert staff.grant("a", "10.0.0.1") and staff.grant("b", "10.0.0.2")
    now[0] = 99.0
    assert staff.granted("a", "10.0.0.1")  # used at 99: its idle time starts again
    now[0] = 150.0
    assert not staff.granted("b", "10.0.0.2")  # idle for 150 s
    assert staff.granted("a", "10.0.0.1")
    assert staff.grant("c", "10.0.0.3") and staff.grant("d", "10.0.0.4")  # past the capacity: "a" goes
    assert not staff.granted("a", "10.0.0.1") and staff.granted("c", "10.0.0.3") and staff.granted("d", "10.0.0.4")
    assert not staff.revoke("c", "10.0.0.4") and staff.granted("c", "10.0.0.3")
    assert staff.revoke("c", "10.0.0.3") and not staff.granted("c", "10.0.0.3")
    assert not staff.grant("", "10.0.0.1") and not staff.grant(None, "10.0.0.1")
    with pytest.raises(ValueError, match="idle_seconds=0, capacity=1"):
        StaffSessions(idle_seconds=0, capacity=1)
    with pytest.raises(ValueError, match="capacity=0"):
        StaffSessions(capacity=0)


def test_feedback_handler_writes_one_line(ctx: ui.UIContext) -> None:
    *_, kept, _ = _run(ctx, "When was the Changzhou alliance founded?", [], [], [])
    status, comment = ui.give_feedback(ctx, kept, "wrong date", "en", 1, False)
    assert "Thank you" in status and comment == ""
    assert feedback.read(ctx.feedback_file)[-1]["comment"] == "wrong date"
    assert ui.give_feedback(ctx, kept, "x", "en", 0, False) == ("", ui.gr.update())  # a question, not an answer


def test_open_document_only_for_indexed_ids(ctx: ui.UIContext) -> None:
    doc = ctx.assistant.documents()[0]
    shown = ui.open_document(ctx, json.dumps([doc.doc_id, 0, 5]), "en")
    assert "doc-text" in shown
    assert "not in the index" in ui.open_document(ctx, json.dumps([str(Path("/etc/passwd")), 0, 5]), "en")
    assert ui.open_document(ctx, "{bad", "en") == ""


def test_a_forgotten_session_resumes_from_the_browsers_copy(ctx: ui.UIContext) -> None:
    """Gradio forgets idle sessions; the next question of that tab continues the conversation its
    browser shows (a follow-up keeps its context), and nothing else is ever taken from the browser."""
    _, _, _, past, turns, _, kept, saved = _run(ctx, "What is the Suzhou alliance?", [], [], [])
    browser = json.loads(json.dumps(saved))
    messages, history, answers, records = ui.resume([], [], [], [], browser, "en")
    assert history == past and len(messages) == 2 and len(answers) == 1 and records[0]["question"] == past[0]
    assert answers[0][1].answer == turns[0][1].answer
    *_, last = ui.answer_question(ctx, "Who leads it?", messages, history, answers, records, "en", {})
    assert last[3] == [past[0], "Who leads it?"] and len(last[0]) == 4
    # A live session is never replaced by the browser's copy; a malformed copy gives a fresh session.
    live = ([{"role": "user", "content": "x"}], ["x"], [], [])
    assert ui.resume(*live, browser, "en") == live
    assert ui.resume([], [], [], [], [{"question": 5}], "en") == ([], [], [], [])
    assert ui.resume([], [], [], [], "not a list", "en") == ([], [], [], [])


def test_idle_sessions_are_forgotten_and_their_number_is_bounded(ctx: ui.UIContext) -> None:
    import datetime

    app = ui.create_app(ctx.assistant, admin_password="")
    gradio_app = next(r.app for r in app.routes if getattr(getattr(r, "app", None), "state_holder", None))
    holder = gradio_app.state_holder
    assert holder.capacity == ui.SESSION_CAPACITY
    from assistant.server import QUEUE_MAX_SIZE

    assert gradio_app.get_blocks()._queue.max_size == QUEUE_MAX_SIZE  # queued events are bounded too
    for sid in ("old-1", "old-2", "recent"):
        holder[sid]
    now = datetime.datetime.now()
    holder.time_last_used["old-1"] = holder.time_last_used["old-2"] = now - datetime.timedelta(hours=2)
    assert ui.forget_idle_sessions(holder, ui.SESSION_IDLE_SECONDS, now) == 2
    assert "recent" in holder and "old-1" not in holder and "old-2" not in holder
    assert ui.forget_idle_sessions(holder, ui.SESSION_IDLE_SECONDS, now) == 0
    import platform

    assert ui.give_back_memory() == (platform.libc_ver()[0] == "glibc")  # the sweeper's trim after forgetting


def test_reindexing_an_index_built_with_other_settings_says_to_rebuild(
    sample_index: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """After an upgrade (here: another chunk size) a staff re-index is told what differs and what to
    tick, in the staff's language; "Rebuild from scratch" then brings the index to the new settings."""
    from dataclasses import replace

    from assistant.chunking import ChunkerSettings
    from assistant.core import Assistant

    paths = clone_index(sample_index, tmp_path)
    current = open_assistant(paths)
    other = Assistant(replace(current.config, chunker=ChunkerSettings(max_tokens=120)))
    staff = ui.UIContext(other, password="pw")
    before = other.store.count()
    status = ui.staff_reindex(staff, False, True, "en")[0]
    assert "other settings" in status and "chunker settings" in status and "Rebuild from scratch" in status
    assert str(paths.index) not in status  # no server path
    assert "从头重建索引" in ui.staff_reindex(staff, False, True, "zh")[0]
    assert other.store.count() == before  # nothing changed
    rebuilt = ui.staff_reindex(staff, True, True, "en")[0]
    assert "other settings" not in rebuilt and other.store.count() > before
    assert other.index_mismatch() is None


def test_the_server_updates_an_upgraded_index_in_the_background(
    sample_index: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """`make run` after an upgrade serves at once: the server rebuilds an index built with other
    settings (here another chunk size) in the background, answers from the old one meanwhile, says
    so in /api/health, and refuses staff changes with a word on why until it is done. The rebuild is
    held at its first embedding batch (the real encoder, behind an event) to look at it half-way."""
    import threading
    from dataclasses import replace

    from fastapi.testclient import TestClient

    from assistant.chunking import ChunkerSettings
    from assistant.core import Assistant
    from assistant.server import create_api, start_upgrade, upgrade_of

    paths = clone_index(sample_index, tmp_path)
    current = open_assistant(paths)
    other = Assistant(replace(current.config, chunker=ChunkerSettings(max_tokens=120)))
    pending = other.pending_upgrade()
    assert pending is not None and pending.kind == "rebuild" and "chunker settings" in pending.reason
    before, files = other.store.count(), sorted(p.name for p in paths.corpus.iterdir())

    reached, release = threading.Event(), threading.Event()
    encoder = other.embedder.background()  # what a server's ingest embeds with
    encode = encoder.encode_passages

    def held(texts: Any, progress: Any = None) -> Any:
        reached.set()
        assert release.wait(120)
        return encode(texts, progress)

    encoder.encode_passages = held  # type: ignore[method-assign]
    lines: list[str] = []
    job = start_upgrade(other, say=lines.append)
    try:
        assert job is not None and reached.wait(120) and job.running and upgrade_of(other) is job
        answer = other.ask("What is the Suzhou alliance?")
        assert answer.citations and not answer.abstained  # from the old index
        health = TestClient(create_api(other)).get("/api/health").json()
        upgrade = health["upgrade"]  # no reason: it names the index directory
        assert upgrade.pop("total") > 0
        assert upgrade == {"kind": "rebuild", "running": True, "failed": False, "embedded": 0}
        staff = ui.UIContext(other, password="pw")
        doc = other.documents()[0].doc_id
        for status in (
            ui.staff_upload(staff, ["new.txt"], True, "en")[0],
            ui.staff_delete(staff, doc, True, True, "en")[0],
            ui.staff_reindex(staff, True, True, "en")[0],
            ui.staff_restore_file(staff, "gone.txt", True, "en")[0],
        ):
            assert "updated in the background" in status and "chunker settings" in status, status
        assert "后台更新" in ui.staff_reindex(staff, False, True, "zh")[0]
        assert other.store.count() == before and sorted(p.name for p in paths.corpus.iterdir()) == files
    finally:
        release.set()
    assert job.done.wait(300) and job.error is None
    assert other.index_mismatch() is None and other.pending_upgrade() is None and other.store.count() > before
    assert lines[0].startswith("Rebuilding the index in the background") and "rebuilt" in lines[-1]
    assert any(re.fullmatch(r"Rebuilding the index: [\d,]+ of [\d,]+ chunks embedded", line) for line in lines)
    assert TestClient(create_api(other)).get("/api/health").json()["upgrade"]["running"] is False
    assert "in the background" not in ui.staff_reindex(staff, False, True, "en")[0]  # staff may go on


def test_the_server_completes_sentence_vectors_of_another_version(
    sample_index: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Sentence vectors made by an earlier version (no reading recorded) are made again in the
    background without reading the corpus; an index the server could not answer from meanwhile (made
    with another model) is not its business: that one is rebuilt before the start."""
    from dataclasses import replace

    from assistant.core import Assistant
    from assistant.embedding import EmbeddingSettings, default_model_path
    from assistant.server import start_upgrade

    paths = clone_index(sample_index, tmp_path)
    manifest = paths.index / "sentences" / "manifest.json"
    data = json.loads(manifest.read_text(encoding="utf-8"))
    del data["reading"]
    manifest.write_text(json.dumps(data), encoding="utf-8")
    assistant = open_assistant(paths)
    assert not assistant.sentence_vectors_current()
    pending = assistant.pending_upgrade()
    assert pending is not None and pending.kind == "sentences"
    (paths.corpus / "new.txt").write_text("A file added after the last ingest stays unindexed.", encoding="utf-8")
    lines: list[str] = []
    job = start_upgrade(assistant, say=lines.append)
    assert job is not None and job.done.wait(300) and job.error is None, lines
    assert assistant.sentence_vectors_current() and assistant.pending_upgrade() is None
    assert json.loads(manifest.read_text(encoding="utf-8"))["reading"] == "gloss-zh-en"
    assert "new.txt" not in {Path(d.path).name for d in assistant.documents()}
    assert start_upgrade(assistant, say=lines.append) is None  # nothing left to do

    settings = EmbeddingSettings(model=default_model_path())  # the same weights under another name
    renamed = Assistant(replace(assistant.config, embedding=settings), check_index=False)
    assert renamed.index_mismatch() is not None and renamed.pending_upgrade() is None
