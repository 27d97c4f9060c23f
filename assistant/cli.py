"""Command line: ``assistant ingest | docs | ask | chat | eval | serve``.

Thin by design: parse flags, call the library, print. Our own errors become one-line messages with
exit code 2 (1 for a partial ingest: some files were skipped); never a stack trace.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .errors import AssistantError, ConfigError

if TYPE_CHECKING:
    from .config import Settings

EXIT_OK, EXIT_PARTIAL, EXIT_ERROR = 0, 1, 2

console = Console()
err_console = Console(stderr=True)


# C0 and C1 control characters but tab and newline: escape sequences in a document's text, title or
# file name would reach the terminal (retitle it, recolour it, print a hyperlink: fifth security review).
_TERMINAL_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def shown(text: object) -> str:
    """``text`` as it may reach the terminal: control characters (escape sequences) dropped."""
    return _TERMINAL_CONTROL.sub("", str(text))


def _say(text: object) -> None:
    """Print text from documents or users: never parsed as markup, no escape sequences."""
    console.print(shown(text), markup=False, highlight=False)


def _plain(text: object) -> Text:
    """A table cell from documents or users: never parsed as markup, no escape sequences."""
    return Text(shown(text))


def _warn(label: str, message: str, sep: str = ":") -> None:
    """One line on stderr; the message is never parsed as markup nor wrapped (it may quote user input)."""
    err_console.print(f"[bold red]{label}{sep}[/] ", end="")
    err_console.print(shown(message), markup=False, highlight=False, soft_wrap=True)


class _Parser(argparse.ArgumentParser):
    """argparse with our error contract: one line on stderr and exit code 2 (not the usage block)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


class UsageError(ConfigError):
    """The command line does not parse."""


class _Default(str):
    """A setting flag's default, as parsing and --help show it, but not given on the command line:
    its environment variable (read by ``config.Settings``) still comes first."""


def _common(parser: argparse.ArgumentParser) -> None:
    # Setting flags are read as text and parsed by config.Settings, beside their environment variables.
    parser.add_argument("--index", help="index directory (env ASSISTANT_INDEX; default: index)")
    parser.add_argument("--corpus", help="corpus directory (env ASSISTANT_CORPUS; default: corpus)")
    parser.add_argument(
        "--chroma-url", help="use a Chroma server, e.g. http://127.0.0.1:8000 (env ASSISTANT_CHROMA_URL)"
    )
    parser.add_argument("--model", help="sentence-transformers model id or path (env ASSISTANT_EMBEDDING_MODEL)")
    parser.add_argument("--llm-url", help="OpenAI-compatible endpoint for answer synthesis (env ASSISTANT_LLM_URL)")
    parser.add_argument("--llm-model", help="model name at the LLM endpoint (env ASSISTANT_LLM_MODEL)")
    parser.add_argument("--reranker", help="cross-encoder model id or path; off by default (env ASSISTANT_RERANKER)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="assistant", description="Cited answers over alliance documents.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", help="index files (default: the corpus directory), incrementally")
    p.add_argument("paths", nargs="*", type=Path)
    p.add_argument("--rebuild", action="store_true", help="drop the index and build it again")
    p.add_argument(
        "--if-missing",
        action="store_true",
        help="only ingest when the index is empty, or rebuild it when it was built with other settings",
    )
    p.add_argument(
        "--defer",
        action="store_true",
        help="with --if-missing: leave an update the server can make while it answers (a rebuild for another "
        "chunker or reading; sentence vectors) to `assistant serve`, which makes it in the background",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    _common(p)

    p = sub.add_parser("docs", help="list the indexed documents")
    p.add_argument("--json", action="store_true")
    _common(p)

    p = sub.add_parser("ask", help="answer one question with cited sources")
    p.add_argument("question")
    p.add_argument("--history", action="append", default=[], help="an earlier question (repeatable)")
    p.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="doc_id, source, outlet, language, date_from, date_to (repeatable)",
    )
    p.add_argument("--k", help="passages to retrieve (1-50, default 10)")
    p.add_argument("--json", action="store_true", help="print the Answer as JSON")
    _common(p)

    p = sub.add_parser("chat", help="interactive chat in the terminal (/sources, /new, /quit)")
    _common(p)

    p = sub.add_parser("eval", help="measure retrieval and citation accuracy on a gold file")
    p.add_argument("gold", type=Path)
    p.add_argument("--k", default="5", help="k of hit@k (1-10, default 5)")
    p.add_argument("--out", type=Path, help="write the metrics report as JSON")
    p.add_argument("--records", type=Path, help="write one JSON line per question (raw outputs)")
    p.add_argument("--html", type=Path, help="write a self-contained HTML report")
    p.add_argument("--ingest", type=Path, help="ingest this corpus directory first (for converted public sets)")
    p.add_argument("--no-progress", action="store_true")
    _common(p)

    p = sub.add_parser("feedback", help="feedback given in the web UI: list it, or export thumbs-down as draft gold")
    p.add_argument("action", choices=["list", "export"])
    p.add_argument("--out", type=Path, help="export: write the draft gold JSONL here (default: stdout)")
    _common(p)

    p = sub.add_parser("serve", help="serve the web UI and the HTTP API")
    p.add_argument(
        "--host",
        default=_Default("127.0.0.1"),
        help="address to bind (env ASSISTANT_HOST; default 127.0.0.1; 0.0.0.0 exposes it to the network)",
    )
    p.add_argument("--port", default=_Default("7860"), help="port to listen on (env ASSISTANT_PORT; default 7860)")
    _common(p)
    return parser


# Setting flags -> the Settings fields they set (the rest of a command's arguments are its own).
SETTING_FLAGS = {
    "index": "index",
    "corpus": "corpus",
    "chroma_url": "chroma_url",
    "model": "embedding_model",
    "reranker": "reranker",
    "llm_url": "llm_url",
    "llm_model": "llm_model",
    "host": "host",
    "port": "port",
}


def settings_from(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Settings:
    """Every setting, from the environment and this command's flags (flags win); ``ConfigError`` if
    any is bad, even one this command does not use: a broken environment is reported at once."""
    from .config import Settings

    flags = {
        field: value
        for attr, field in SETTING_FLAGS.items()
        if not isinstance(value := getattr(args, attr, None), _Default)
    }
    return Settings.from_env(env, flags=flags)


def _index_missing(settings: Settings) -> bool:
    """No local index to read (a Chroma server keeps its own; the local directory is then a cache)."""
    return settings.chroma_url is None and not (settings.index / "chroma").is_dir()


def _assistant(args: argparse.Namespace, check_index: bool = True) -> Any:
    from .core import Assistant

    settings: Settings = args.settings
    # Commands that only read must not create an empty index where a typo points; ingest builds it.
    reads_only = args.command in ("docs", "ask", "chat") or (args.command == "eval" and not args.ingest)
    if reads_only and _index_missing(settings):
        raise ConfigError(
            f"no index at {settings.index}: run `assistant ingest` to build it, "
            "or point --index / ASSISTANT_INDEX at an existing index"
        )
    return Assistant(settings.config(), check_index=check_index)


def _parse_filters(items: Sequence[str]) -> dict[str, Any]:
    from .errors import ConfigError

    filters: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--filter expects KEY=VALUE, got {item!r}")
        key = key.strip()
        if key in filters:
            prev = filters[key]
            filters[key] = (prev if isinstance(prev, list) else [prev]) + [value]
        else:
            filters[key] = value
    return filters


# --------------------------------------------------------------------------- commands


def cmd_ingest(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    # Ingest checks the index itself (a rebuild may replace one made with another model).
    assistant = _assistant(args, check_index=False)
    rebuild = args.rebuild
    if args.if_missing and assistant.store.documents():
        where = assistant.config.chroma_url or assistant.config.index_dir
        stale = assistant.index_mismatch()
        # With --defer (`make run`), what the server can do while it answers is left to it.
        deferred = assistant.pending_upgrade() if args.defer else None
        if stale is not None and assistant.config.chroma_url is None and deferred is None:
            # An upgrade (or a changed setting) made the index unusable for new documents: rebuild it
            # from the corpus; it keeps answering until the new one is complete.
            console.print(f"Rebuilding the index: {stale}. The current index stays until the new one is complete.",
                          markup=False)
            rebuild = True
        else:
            if deferred is not None:
                what = "rebuilds it" if deferred.kind == "rebuild" else "completes them"
                console.print(
                    f"The index needs an update ({deferred.reason}): `assistant serve` {what} in the background "
                    "and answers from the index meanwhile."
                )
            elif stale is not None:
                # A replica of a shared Chroma server: only the host that ingests may change the index
                # (docs/index-and-replicas.md); a replica answers with what it has.
                advice = "rebuild it from the host that ingests (`assistant ingest --rebuild`)"
                err_console.print(f"warning: {stale}: {advice}")
            elif not assistant.sentence_vectors_current():
                # Not worth holding up the start: answers are the same, each question computes the
                # sentence vectors it needs (an index of 100k chunks has ~580k sentences to encode).
                console.print(
                    "Its sentence vectors are missing or were made for another version: `assistant ingest` "
                    "makes them again (until then each question computes those it needs)."
                )
            n = len(assistant.store.documents())
            console.print(f"Index at {where} already built ({n} documents); skipping ingest.", markup=False)
            return EXIT_OK
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=args.json,
    ) as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, advance: int, total: int) -> None:
            if stage not in tasks:
                label = "Reading files" if stage == "files" else "Embedding chunks"
                tasks[stage] = bar.add_task(label, total=total)
            bar.update(tasks[stage], advance=advance, total=total)

        report = assistant.ingest(args.paths or None, rebuild=rebuild, progress=progress)
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        table = Table(title="Ingest summary")
        table.add_column("")
        table.add_column("count", justify="right")
        for label, value in [
            ("files read", report.files),
            ("files unchanged", report.files_unchanged),
            ("documents added", report.added),
            ("documents updated", report.updated),
            ("documents removed", report.removed),
            ("documents unchanged", report.unchanged),
            ("chunks added", report.chunks_added),
            ("chunks removed", report.chunks_removed),
            ("files skipped (errors)", len(report.errors)),
        ]:
            table.add_row(label, str(value))
        console.print(table)
        console.print(
            f"{len(assistant.store.documents())} documents, {assistant.store.count()} chunks in "
            f"{assistant.config.chroma_url or assistant.config.index_dir} ({report.seconds:.2f} s)"
        )
        for error in report.errors:
            _warn("skipped", f"{error.path}: {error.reason}", sep="")
    return EXIT_PARTIAL if report.partial else EXIT_OK


def cmd_docs(args: argparse.Namespace) -> int:
    assistant = _assistant(args)
    docs = assistant.documents()
    if args.json:
        from dataclasses import asdict

        print(json.dumps([asdict(d) for d in docs], ensure_ascii=False, indent=2))
        return EXIT_OK
    table = Table(title=f"{len(docs)} indexed documents")
    for col in ("doc_id", "title", "outlet", "date", "lang", "chunks"):
        table.add_column(col, overflow="fold")
    for d in docs:
        table.add_row(*(_plain(v) for v in (d.doc_id, d.title, d.outlet, d.date, d.language, d.chunks)))
    console.print(table)
    return EXIT_OK


def print_answer(answer: Any) -> None:
    from .answer import messages

    text = messages(answer.language)
    if answer.standalone_question != answer.question:
        console.print(Text(f"{text['searched']}: {shown(answer.standalone_question)}", style="dim"))
    _say(answer.answer)
    if answer.citations:
        console.print(f"\n[bold]{text['sources']}[/]")
        for c in answer.citations:
            where = ", ".join(x for x in (c.outlet, c.date) if x)
            page = f" p. {c.page}" if c.page else ""
            head = f"[{c.n}] {c.title}" + (f" ({where})" if where else "")
            _say(f"{head} — {c.doc_id}{page} chars {c.start}-{c.end}")
            _say(f"    “{c.quote}”")
    if answer.abstained and answer.related:
        console.print(f"\n[bold]{text['related']}[/]")
        for p in answer.related:
            _say(f"- {p.title} ({p.doc_id}): {p.text[:200]}…")
    for note in answer.notes:
        console.print(Text(f"note: {shown(note)}", style="dim"))


def cmd_ask(args: argparse.Namespace) -> int:
    assistant = _assistant(args)
    answer = assistant.ask(args.question, history=args.history, filters=_parse_filters(args.filter), k=args.k)
    if args.json:
        print(json.dumps(answer.to_dict(), ensure_ascii=False, indent=2))
    else:
        print_answer(answer)
    return EXIT_OK


def cmd_chat(args: argparse.Namespace) -> int:
    from .chat import ChatSession

    session = ChatSession(_assistant(args))
    console.print("Ask in Chinese or English. Commands: /sources, /export FILE, /new, /quit")
    while True:
        try:
            line = input("> ").strip()
        except (EOFError, KeyboardInterrupt):
            console.print()
            return EXIT_OK
        if not line:
            continue
        if line in ("/quit", "/exit", "/q"):
            return EXIT_OK
        if line == "/new":
            session.reset()
            console.print("[dim]New conversation.[/]")
            continue
        if line == "/export" or line.startswith("/export "):
            _export_chat(session, line.removeprefix("/export").strip())
            continue
        if line == "/sources":
            last = session.last
            if last is None or not last.citations:
                console.print("[dim]No sources yet.[/]")
            else:
                for c in last.citations:
                    _say(f"[{c.n}] {c.title} — {c.doc_id}\n{c.text}\n")
            continue
        try:
            print_answer(session.ask(line))
        except AssistantError as exc:
            _warn("error", str(exc))


def _export_chat(session: Any, target: str) -> None:
    """``/export FILE``: the conversation so far as Markdown, with footnotes and quoted sources."""
    from . import strings
    from .transcript import to_markdown

    answers = [t.answer for t in session.turns]
    if not target:
        _warn("error", "usage: /export FILE (for example /export chat.md)")
    elif not answers:
        console.print("[dim]Nothing to export yet.[/]")
    else:
        path = Path(target).expanduser()
        try:
            title = strings.text("status.conversation_title", answers[0].language)
            path.write_text(to_markdown(answers, title=title), encoding="utf-8")
        except OSError as exc:
            _warn("error", f"cannot write {path}: {exc.strerror or exc}")
            return
        console.print(f"{len(answers)} turns exported to {path}", markup=False, highlight=False)


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluation import check_evidence, load_gold, run_eval

    assistant = _assistant(args)
    if args.ingest:
        report = assistant.ingest([args.ingest])
        err_console.print(f"ingested {args.ingest}: {report.added} added, {report.unchanged} unchanged")
    if not assistant.sentence_vectors_current():
        # Same results, but each question encodes its candidate sentences (SQuAD 1.1: ~150 ms a
        # question instead of ~20): say so rather than leave an evaluator wondering.
        _warn(
            "the index's sentence vectors are missing or were made by another version",
            "each question computes those it needs, which is slower; `assistant ingest` (or --ingest) makes them",
        )
    items = load_gold(args.gold)
    corpus_texts = _corpus_texts(assistant)
    missing = check_evidence(items, corpus_texts)
    for qid, quote in missing:
        _warn("evidence not found verbatim in the corpus", f"{qid}: {quote[:80]!r}")
    assistant.warm_up()
    result = run_eval(assistant, items, k=args.k, progress=not args.no_progress)
    console.print(result.table())
    if args.out:
        result.write_json(args.out)
    if args.records:
        result.write_records(args.records)
    if args.html:
        result.write_html(args.html)
    return EXIT_OK


def _corpus_texts(assistant: Any) -> list[str]:
    """The texts of the indexed documents, to check that gold evidence is verbatim."""
    from .documents import load_file

    texts: list[str] = []
    for path in sorted({rec.path for rec in assistant.documents()}):
        try:
            texts.extend(doc.text for doc in load_file(Path(path)))
        except AssistantError:
            continue
    return texts


def load_ui() -> Any:
    """The top-level ``ui`` module (it lives beside the package, in the project root; installed as a
    module of its own, or found next to the package in a source checkout)."""
    try:
        import ui
    except ModuleNotFoundError:
        import importlib.util

        path = Path(__file__).resolve().parent.parent / "ui.py"
        if not path.is_file():
            raise ConfigError(f"the web UI module ui.py was not found at {path}") from None
        spec = importlib.util.spec_from_file_location("ui", path)
        assert spec is not None and spec.loader is not None
        ui = importlib.util.module_from_spec(spec)
        sys.modules["ui"] = ui
        spec.loader.exec_module(ui)
    return ui


def cmd_serve(args: argparse.Namespace) -> int:
    ui = load_ui()
    settings: Settings = args.settings
    from .gate import client_limits, names

    limits = client_limits(settings.events_per_minute, settings.questions_at_once, settings.new_sessions)
    ui.serve(_assistant(args), host=settings.host, port=settings.port, admin_password=settings.admin_password,
             allowed_hosts=names(settings.allowed_hosts), trusted_proxies=names(settings.trusted_proxies),
             gate=limits)
    return EXIT_OK


def cmd_feedback(args: argparse.Namespace) -> int:
    from . import feedback

    settings: Settings = args.settings
    items = feedback.read(feedback.feedback_path(settings.index))
    if args.action == "list":
        for item in items:
            comment = f" — {item['comment']}" if item.get("comment") else ""
            option = f" [{item['option']}]" if item.get("option") else ""
            # Anonymous visitors wrote these: never escape sequences to the staff's terminal.
            line = f"{item.get('time', '')}  {item['rating']:>4}{option}  {item.get('question', '')}{comment}"
            _say(line)
        console.print(f"{len(items)} feedback items", markup=False)
        return EXIT_OK
    lines = "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in feedback.draft_gold(items))
    if args.out:
        args.out.write_text(lines, encoding="utf-8")
        err_console.print(f"{lines.count(chr(10))} draft gold questions written to {args.out}")
    else:
        sys.stdout.write(lines)
    return EXIT_OK


COMMANDS = {
    "feedback": cmd_feedback,
    "ingest": cmd_ingest,
    "docs": cmd_docs,
    "ask": cmd_ask,
    "chat": cmd_chat,
    "eval": cmd_eval,
    "serve": cmd_serve,
}


def main(argv: Sequence[str] | None = None) -> int:
    from .embedding import offline_env

    offline_env()
    try:
        args = build_parser().parse_args(argv)
        from .config import check_arguments  # here: ``assistant --help`` need not import the library

        check_arguments(args)
        args.settings = settings_from(args)
        return COMMANDS[args.command](args)
    except AssistantError as exc:
        _warn("error", str(exc))
        return EXIT_ERROR
    except KeyboardInterrupt:
        err_console.print("interrupted; the index stays as it was before the interrupted step")
        return 130


if __name__ == "__main__":
    sys.exit(main())
